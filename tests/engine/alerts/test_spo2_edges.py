"""SpO2 detector edges: invalid readings, the hypoxemia integrator's configurable limits, the
pre-event baseline's percentile and fill rule, and the desaturation marks hypopneas rely on.

SpO2 is fed as the engine gets it: a 1-Hz ``spo2`` channel in 1-s blocks (60-s blocks where
stated), a probe-off second as ``valid`` False. Each alarm or event is recorded with the end of
the block it came out of; values are exact in binary so boundaries are told apart.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from sleepstream.engine.alerts import spo2
from sleepstream.engine.alerts.config import DEFAULT, AlertConfig
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.protocols import Block, ChannelBlock
from sleepstream.engine.types import Alert, AlertState, Priority

Seen = list[tuple[float, Any]]
OFF = float("nan")  # a probe-off second: fed with valid False


def _series(*parts: tuple[float, int]) -> np.ndarray:
    return np.concatenate([np.full(n, v, dtype=np.float64) for v, n in parts])


def _feed(x: np.ndarray, config: AlertConfig = DEFAULT, block_s: int = 1,
          extra: dict[str, tuple[str, float, np.ndarray]] | None = None
          ) -> tuple[Seen, AlertEngine]:
    """SpO2 ``x`` (NaN = probe off) through an ``AlertEngine`` in ``block_s``-second blocks;
    ``extra`` channels (modality, fs, data) ride along in the same blocks."""
    eng = AlertEngine("b1", config)
    out: Seen = []
    for k in range(0, x.size, block_s):
        n = min(block_s, x.size - k)
        seg = x[k:k + n]
        native = {"SpO2": ChannelBlock("SpO2", "spo2", 1.0, float(k),
                                       np.nan_to_num(seg, nan=0.0).astype(np.float32),
                                       ~np.isnan(seg))}
        for name, (modality, fs, data) in (extra or {}).items():
            a, b = round(k * fs), round((k + n) * fs)
            native[name] = ChannelBlock(name, modality, fs, float(k),
                                        data[a:b].astype(np.float32), np.ones(b - a, bool))
        for item in eng.process(Block("b1", float(k), float(k + n), native, {}, frozenset())):
            out.append((float(k + n), item))
    return out, eng


def _alarms(seen: Seen, code: str) -> list[tuple[float, Alert]]:
    return [(t, a) for t, a in seen if isinstance(a, Alert) and a.code == code]


def _active(seen: Seen, code: str) -> list[tuple[float, Alert]]:
    return [(t, a) for t, a in _alarms(seen, code)
            if a.state == AlertState.ACTIVE and a.end is None]


def _events(seen: Seen, code: str | None = None) -> list[dict[str, Any]]:
    return [e for _, e in seen if isinstance(e, dict) and e.get("type") == "event"
            and (code is None or e["code"] == code)]


def _rule(name: str, **changes: Any) -> AlertConfig:
    return replace(DEFAULT, **{name: replace(getattr(DEFAULT, name), **changes)})


# ---- the hypoxemia alarm's fields and its normal end ----------------------------------------

def test_hypoxemia_alarms_carry_the_episode_onset_delay_and_area_through_their_end() -> None:
    """87 % for 30 s: both alarms, announced with the episode's onset, the 30-s delay and the
    SatSeconds limit; 60 s back at 95 % ends hypoxemia90 normally (not as suppressed) with the
    same onset, and latches hypoxemia88 (high priority, latching) instead of ending it."""
    seen, _ = _feed(_series((95.0, 60), (87.0, 30), (95.0, 70)))
    for code in ("hypoxemia90", "hypoxemia88"):
        [(t, a)] = _active(seen, code)
        assert t == 90.0 and a.onset == 60.0 and a.delay_s == 30.0
        assert a.extra["satseconds"] == 100.0 and a.channels == ("SpO2",)
        assert a.bed == "b1" and a.id == f"b1/{code}/1"
    [(t, end)] = [(t, a) for t, a in _alarms(seen, "hypoxemia90") if a.end is not None]
    assert end.state == AlertState.ENDED and "ended_by" not in end.extra
    assert (t, end.emitted_at, end.onset, end.delay_s) == (150.0, 150.0, 60.0, 30.0)
    [(t, latched)] = [(t, a) for t, a in _alarms(seen, "hypoxemia88")
                      if a.end is not None and a.state == AlertState.ACTIVE]
    assert latched.extra["latched"]
    assert (t, latched.onset) == (150.0, 60.0)
    assert end.end == latched.end == 90.0  # the first second back above the limits


def test_a_latched_alarm_keeps_its_end_when_acknowledged_or_ended_by_a_new_episode() -> None:
    """hypoxemia88 latches: 60 s back at 95 % give an active alarm whose ``end`` is the first
    second back (90); an acknowledgement ends it with that end. Without one, it escalates
    (unacknowledged for 60 s) with that end, and a second episode ends it (same end) as it
    announces its own."""
    seen, eng = _feed(_series((95.0, 60), (87.0, 30), (95.0, 70)))
    [ack] = eng.acknowledge("b1/hypoxemia88/1", 165.0)
    assert (ack.state, ack.onset, ack.end) == (AlertState.ENDED, 60.0, 90.0)

    seen, _ = _feed(_series((95.0, 60), (87.0, 30), (95.0, 70), (87.0, 30), (95.0, 10)))
    got = [(t, a.id, a.state, a.onset, a.end) for t, a in _alarms(seen, "hypoxemia88")]
    assert got == [(90.0, "b1/hypoxemia88/1", AlertState.ACTIVE, 60.0, None),
                   (150.0, "b1/hypoxemia88/1", AlertState.ACTIVE, 60.0, 90.0),
                   (150.0, "b1/hypoxemia88/1", AlertState.ESCALATED, 60.0, 90.0),
                   (190.0, "b1/hypoxemia88/1", AlertState.ENDED, 60.0, 90.0),
                   (190.0, "b1/hypoxemia88/2", AlertState.ACTIVE, 160.0, None)]


# ---- invalid readings --------------------------------------------------------------------------

def test_a_probe_off_without_an_episode_never_alarms() -> None:
    seen, eng = _feed(_series((95.0, 60), (OFF, 120), (95.0, 30)))
    assert [a for _, a in seen if isinstance(a, Alert)] == []
    assert eng.spo2 is not None and eng.spo2.valid_s == 90.0


def test_invalid_seconds_neither_count_nor_break_an_episode() -> None:
    """15 s below, 20 s probe off, 15 s below: announced at the 30th valid second below the
    limit (not during the probe-off), with the episode's first second as onset."""
    seen, _ = _feed(_series((95.0, 60), (89.0, 15), (OFF, 20), (89.0, 15), (95.0, 70)))
    [(t, a)] = _active(seen, "hypoxemia90")
    assert t == 60.0 + 15 + 20 + 15 and a.onset == 60.0


@pytest.mark.parametrize(("off", "suppressed"), [(59, False), (60, True)])
def test_an_announced_alarm_is_suppressed_after_its_hold_of_invalid_readings(
        off: int, suppressed: bool) -> None:
    """Announced at 90; one valid second back above the limit, then the probe is off: 59 s
    keep the alarm (the dip that follows is the same alarm), 60 s suppress it in the block of
    the 60th invalid second, counted from the last valid reading. Either way its ``end`` is the
    start of the stretch that ended it (the first invalid second, or the first second back
    above the limit), as every held condition gives it, not the hold's last second."""
    seen, _ = _feed(_series((95.0, 60), (89.0, 30), (92.0, 1), (OFF, off), (89.0, 5),
                            (95.0, 70)))
    transitions = _alarms(seen, "hypoxemia90")
    announced = [a for _, a in transitions if a.state == AlertState.ACTIVE and a.end is None]
    assert len(announced) == 1  # 5 s at 89 % alone never alarms
    t, first_end = next((t, a) for t, a in transitions if a.end is not None)
    assert first_end.state == AlertState.ENDED and first_end.emitted_at == t
    if suppressed:
        assert first_end.extra["ended_by"] == "suppressed"
        assert (t, first_end.end) == (91.0 + 60, 91.0)
    else:  # ended normally 60 s after the second dip
        assert "ended_by" not in first_end.extra
        assert (t, first_end.end) == (91.0 + off + 5 + 60, 91.0 + off + 5)


# ---- configurable SatSeconds and hold ------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds", "fires_at"), [
    (81.0, 11, None),  # 11 s x 9 % = 99 < 100
    (81.0, 12, 12),  # 108: on the area
])
@pytest.mark.parametrize("earlier_dip", [False, True])
def test_satseconds_area_counts_from_zero_in_each_episode(
        value: float, seconds: int, fires_at: int | None, earlier_dip: bool) -> None:
    """The area starts at 0 in a first episode and again after an earlier brief dip (5 s at
    89 %, ended by the first reading back at 95 %): nothing of it carries over."""
    pre = [(89.0, 5), (95.0, 25)] if earlier_dip else [(95.0, 30)]
    seen, _ = _feed(_series((95.0, 30), *pre, (value, seconds), (95.0, 90)))
    active = _active(seen, "hypoxemia90")
    if fires_at is None:
        assert active == []
    else:
        assert [(t, a.onset) for t, a in active] == [(60.0 + fires_at, 60.0)]


@pytest.mark.parametrize(("satseconds", "seconds", "fires_at"), [
    (0.0, 29, None),  # 0 disables the area criterion: only the 30-s delay
    (0.0, 30, 30),
    (1.0, 1, 1),  # 1 % s: the first second at 89 % already reaches it
])
def test_satseconds_zero_disables_the_area_criterion(satseconds: float, seconds: int,
                                                     fires_at: int | None) -> None:
    cfg = _rule("hypoxemia90", satseconds=satseconds)
    x = _series((95.0, 60), (89.0 if satseconds else 80.0, seconds), (95.0, 90))
    active = _active(_feed(x, cfg)[0], "hypoxemia90")
    if fires_at is None:
        assert active == []
    else:
        assert [(t, a.onset) for t, a in active] == [(60.0 + fires_at, 60.0)]


def test_hold_zero_ends_the_alarm_at_the_first_reading_back_above_the_limit() -> None:
    """hold_s 0: one second at 92 % ends the alarm, and the dip after it is a new episode
    counting its own 30 s."""
    cfg = _rule("hypoxemia90", hold_s=0.0)
    seen, _ = _feed(_series((95.0, 60), (89.0, 30), (92.0, 1), (89.0, 30), (95.0, 10)), cfg)
    assert [(t, a.onset) for t, a in _active(seen, "hypoxemia90")] == [(90.0, 60.0),
                                                                       (121.0, 91.0)]
    ends = [(t, a.end) for t, a in _alarms(seen, "hypoxemia90") if a.state == AlertState.ENDED]
    assert ends == [(91.0, 90.0), (122.0, 121.0)]


def test_in_one_long_block_an_alarm_ends_and_the_next_keeps_its_own_onset() -> None:
    """60-s blocks (a replay's hop), hold_s 0: in the block [120, 180) the first alarm ends,
    the next episode is announced and ends; every transition keeps its own episode's onset
    (never the second the integrator turned on), delay and SatSeconds limit."""
    cfg = _rule("hypoxemia90", hold_s=0.0)
    x = _series((95.0, 60), (89.0, 65), (92.0, 1), (89.0, 40), (95.0, 14))
    seen, _ = _feed(x, cfg, block_s=60)
    got = [(t, a.state, a.onset, a.end) for t, a in _alarms(seen, "hypoxemia90")]
    assert got == [(120.0, AlertState.ACTIVE, 60.0, None),
                   (180.0, AlertState.ENDED, 60.0, 125.0),
                   (180.0, AlertState.ACTIVE, 126.0, None),
                   (180.0, AlertState.ENDED, 126.0, 166.0)]
    assert all(a.delay_s == 30.0 and a.extra["satseconds"] == 100.0
               for _, a in _alarms(seen, "hypoxemia90"))


def test_escalation_follows_the_configured_delay_for_high_priority_only() -> None:
    cfg = replace(DEFAULT, escalate_after_s=30.0)
    seen, _ = _feed(_series((95.0, 60), (87.0, 100)), cfg)
    esc = [(t, a.code) for t, a in seen if isinstance(a, Alert)
           and a.state == AlertState.ESCALATED]
    assert esc == [(120.0, "hypoxemia88")]  # announced at 90; hypoxemia90 is medium
    assert _active(seen, "hypoxemia88")[0][1].priority == Priority.HIGH


# ---- the pre-event baseline ------------------------------------------------------------------

@pytest.mark.parametrize(("nadir", "codes"), [(93.0, ["desat3"]), (92.0, ["desat3", "desat4"])])
def test_baseline_is_the_90th_percentile_of_the_window(nadir: float, codes: list[str]) -> None:
    """109 s at 96 % then 11 s at 100 %: the 90th percentile of the 120 s is 96 (the 91st
    would be 97.16), so 93 % is a 3 % desaturation only and 92 % a 4 % one."""
    seen, _ = _feed(_series((96.0, 109), (100.0, 11), (nadir, 5), (96.0, 20)))
    events = _events(seen)
    assert sorted(e["code"] for e in events) == codes
    assert all((e["onset"], e["end"], e["value"]) == (120.0, 125.0, nadir) for e in events)


@pytest.mark.parametrize(("seconds", "scored"), [(5, False), (6, True)])
def test_baseline_needs_half_its_window_valid(seconds: int, scored: bool) -> None:
    """A dip from second 57: the baseline is unknown until 60 valid seconds precede it, so the
    dip counts from second 60 and needs to last to 62 (3 s) to be scored."""
    seen, _ = _feed(_series((97.0, 57), (93.0, seconds), (97.0, 30)))
    got = [(e["onset"], e["end"]) for e in _events(seen, "desat3")]
    assert got == ([(60.0, 57.0 + seconds)] if scored else [])


def test_a_desaturation_cut_by_a_probe_off_is_scored_as_suppressed() -> None:
    seen, _ = _feed(_series((97.0, 120), (93.0, 5), (OFF, 10), (97.0, 20)))
    [e] = _events(seen, "desat3")
    assert (e["onset"], e["end"], e["t"], e.get("ended_by")) == (120.0, 125.0, 126.0,
                                                                "suppressed")


# ---- desaturations as hypopnea marks, the default channel and the ODI -------------------------

FS = 10.0


def _breath(seconds: int, amp: float, seed: int) -> np.ndarray:
    t = np.arange(round(seconds * FS)) / FS
    return amp * np.sin(2 * np.pi * 0.25 * t) + np.random.default_rng(seed).normal(0, 0.002,
                                                                                    t.size)


@pytest.mark.parametrize("nadir", [94.0, None])
def test_a_3_percent_desaturation_confirms_a_hypopnea_as_it_is_detected(
        nadir: float | None) -> None:
    """Airflow at half its amplitude for 15 s from 180 s, SpO2 3 % down from 186 s for 20 s:
    the desaturation, detected at 189 s, confirms the hypopnea, which is emitted when its own
    end is in (before the desaturation ends); without the dip there is none."""
    flow = np.concatenate([_breath(180, 1.0, 0), _breath(15, 0.5, 1), _breath(60, 1.0, 2)])
    parts = [(97.0, 186), (nadir, 20), (97.0, 49)] if nadir else [(97.0, 255)]
    seen, _ = _feed(_series(*parts), extra={"Nasal flow": ("resp", FS, flow)})
    hyp = _events(seen, "hypopnea")
    if nadir is None:
        assert hyp == []
        return
    [e] = hyp
    [d] = _events(seen, "desat3")
    assert _events(seen, "desat4") == [] and d["detected_at"] == 189.0
    assert e["onset"] <= 186.0 and e["t"] == e["end"] + 1 < d["end"]


def test_a_desaturation_begun_before_the_airflow_fell_does_not_confirm_it() -> None:
    """SpO2 3 % down from 170 s, deepening to 4 % at 185 s, while airflow is at half from
    180 s: the 3 % desaturation started before the hypopnea, so nothing confirms it (the 4 %
    deepening is the same desaturation, not a new mark)."""
    flow = np.concatenate([_breath(180, 1.0, 0), _breath(15, 0.5, 1), _breath(60, 1.0, 2)])
    x = _series((97.0, 170), (94.0, 15), (93.0, 20), (97.0, 50))
    seen, _ = _feed(x, extra={"Nasal flow": ("resp", FS, flow)})
    assert [e["onset"] for e in _events(seen, "desat3")] == [170.0]
    assert [e["onset"] for e in _events(seen, "desat4")] == [185.0]
    assert _events(seen, "hypopnea") == []


def test_the_detector_names_its_default_channel_spo2() -> None:
    st = spo2.new_state("b1", DEFAULT)
    x = _series((95.0, 120), (87.0, 40))
    alarms: list[Alert] = []
    desats: list[Alert] = []
    for k, v in enumerate(x):
        a, d = spo2.step(st, np.array([float(k)]), np.array([v]), k + 1.0)
        alarms += a
        desats += d
    assert alarms and all(a.channels == ("SpO2",) for a in alarms + desats)
    assert desats


def test_odi_defaults_to_3_percent_desaturations() -> None:
    """One 3 % dip in 11 minutes of valid SpO2: ODI-3 (the default) counts it, ODI-4 not."""
    seen, eng = _feed(_series((97.0, 300), (94.0, 5), (97.0, 355)))
    assert eng.spo2 is not None
    assert spo2.odi(eng.spo2) == spo2.odi(eng.spo2, 3) == pytest.approx(1 / (660 / 3600))
    assert spo2.odi(eng.spo2, 4) == 0.0
    assert [e["onset"] for e in _events(seen)] == [300.0]
