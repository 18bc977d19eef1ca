"""Every physiological alarm and scored-event criterion at its boundary.

Each test feeds 1-s blocks one at a time (the bed's hop) and records the end of the block each
alarm or event came out of: just below the threshold (or one second short of the delay) nothing
fires, at the threshold (or the delay) it fires as ``alerts.config`` documents, and its ``t`` is
the end of the block where it came out, the engine time at which it was announced. Values are
exact in binary (97 - 94 = 3) so ``>=`` and ``>`` are told apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sleepstream.engine.alerts import heart, respiration
from sleepstream.engine.alerts.config import DEFAULT
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.protocols import Block, ChannelBlock
from sleepstream.engine.types import Alert, AlertState

Seen = list[tuple[float, Any]]  # (end of the block it came out of, alert or event)


def _engine(channel: str, modality: str, series: np.ndarray) -> Seen:
    """A 1-Hz channel through an ``AlertEngine``, one 1-s block at a time."""
    eng = AlertEngine("b1")
    out: Seen = []
    for k, v in enumerate(series):
        cb = ChannelBlock(channel, modality, 1.0, float(k), np.array([v], np.float32),
                          np.array([True]))
        for item in eng.process(Block("b1", float(k), k + 1.0, {channel: cb}, {}, frozenset())):
            out.append((k + 1.0, item))
    return out


def _spo2(*parts: tuple[float, int]) -> Seen:
    return _engine("SpO2", "spo2", np.concatenate([np.full(n, v) for v, n in parts]))


def _hr(*parts: tuple[float, int]) -> Seen:
    return _engine("HR", "hr", np.concatenate([np.full(n, v) for v, n in parts]))


def _alarms(seen: Seen, code: str) -> list[tuple[float, Alert]]:
    return [(t, a) for t, a in seen if isinstance(a, Alert) and a.code == code]


def _events(seen: Seen, code: str) -> list[tuple[float, dict[str, Any]]]:
    return [(t, e) for t, e in seen
            if isinstance(e, dict) and e.get("type") == "event" and e["code"] == code]


def _announced(seen: Seen, code: str) -> tuple[float, Alert]:
    """The one announcement of ``code``; its ``t`` is the end of the block it came out of."""
    active = [(t, a) for t, a in _alarms(seen, code)
              if a.state == AlertState.ACTIVE and a.end is None]
    assert len(active) == 1, active
    t, alert = active[0]
    assert alert.emitted_at == t
    return t, alert


# ---- SpO2: desaturations (scored events) ---------------------------------------------------

BASE = (97.0, 120)  # two minutes at 97 %: the pre-event baseline


@pytest.mark.parametrize(("nadir", "codes"), [
    (94.5, set()),  # 2.5 % below baseline
    (94.1, set()),  # just under 3 %
    (94.0, {"desat3"}),  # exactly 3 %: counts (>=)
    (93.1, {"desat3"}),
    (93.0, {"desat3", "desat4"}),  # exactly 4 %
])
def test_desaturation_depth_boundary(nadir: float, codes: set[str]) -> None:
    seen = _spo2(BASE, (nadir, 5), (97.0, 20))
    got = {e["code"] for _, e in seen if isinstance(e, dict) and e.get("type") == "event"}
    assert got == codes


@pytest.mark.parametrize(("seconds", "scored"), [(2, False), (3, True)])
def test_desaturation_minimum_duration(seconds: int, scored: bool) -> None:
    seen = _spo2(BASE, (94.0, seconds), (97.0, 20))
    events = _events(seen, "desat3")
    assert len(events) == int(scored)
    if scored:
        t, e = events[0]
        assert (e["onset"], e["end"]) == (120.0, 120.0 + seconds)
        assert e["detected_at"] == 123.0  # the block where the 3-s minimum was reached
        assert e["t"] == t == 120.0 + seconds + 1  # emitted once complete: the next block


# ---- SpO2: hypoxemia alarms ------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds", "code", "fires_at"), [
    (90.0, 100, "hypoxemia90", None),  # at the limit: not below it
    (89.0, 29, "hypoxemia90", None),  # one second short of the 30-s delay (area 29 < 100)
    (89.0, 30, "hypoxemia90", 30),
    (88.0, 100, "hypoxemia88", None),
    (88.0, 30, "hypoxemia90", 30),
    (87.0, 29, "hypoxemia88", None),
    (87.0, 30, "hypoxemia88", 30),
    (80.0, 9, "hypoxemia90", None),  # SatSeconds: 9 s x 10 % = 90 < 100
    (80.0, 10, "hypoxemia90", 10),  # 10 s x 10 % = 100: the area criterion
    (80.5, 10, "hypoxemia90", None),  # 10 s x 9.5 % = 95
    (80.5, 11, "hypoxemia90", 11),
    (80.0, 12, "hypoxemia88", None),  # 12 s x 8 % = 96
    (80.0, 13, "hypoxemia88", 13),
])
def test_hypoxemia_limit_delay_and_area(value: float, seconds: int, code: str,
                                        fires_at: int | None) -> None:
    seen = _spo2((95.0, 60), (value, seconds), (95.0, 90))
    if fires_at is None:
        assert _alarms(seen, code) == []
        return
    t, alert = _announced(seen, code)
    assert t == 60.0 + fires_at
    assert alert.onset == 60.0 and alert.value == value


@pytest.mark.parametrize(("good", "ends"), [(59, False), (60, True)])
def test_hypoxemia_ends_only_after_its_hold(good: int, ends: bool) -> None:
    """hold_s 60: a return above the limit shorter than that keeps the one alarm."""
    seen = _spo2((95.0, 60), (89.0, 30), (92.0, good), (89.0, 5), (95.0, 100))
    transitions = _alarms(seen, "hypoxemia90")  # the 5-s second dip alone never alarms
    assert len([a for _, a in transitions if a.state == AlertState.ACTIVE]) == 1
    t_end, first_end = next((t, a) for t, a in transitions if a.state == AlertState.ENDED)
    assert first_end.emitted_at == t_end
    if ends:  # ended in the block where the 60th good second was seen
        assert t_end == 90.0 + 60
    else:  # held over the short return; ends 60 s after the second dip
        assert t_end == 90.0 + good + 5 + 60


# ---- heart rate ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "seconds", "code", "fires"), [
    (40.0, 60, "bradycardia", False),  # at the limit: not below it
    (39.0, 9, "bradycardia", False),  # one second short of the 10-s delay
    (39.0, 10, "bradycardia", True),
    (130.0, 60, "tachycardia", False),
    (131.0, 9, "tachycardia", False),
    (131.0, 10, "tachycardia", True),
])
def test_heart_rate_limit_and_delay(value: float, seconds: int, code: str, fires: bool
                                    ) -> None:
    seen = _hr((70.0, 30), (value, seconds), (70.0, 30))
    if not fires:
        assert _alarms(seen, code) == []
        return
    t, alert = _announced(seen, code)
    assert t == 30.0 + 10 and alert.onset == 30.0 and alert.value == value
    after = [a for _, a in _alarms(seen, code) if a.end is not None]
    assert after and after[0].end == 30.0 + seconds
    if code == "bradycardia":  # latching: stays announced until acknowledged
        assert after[0].state == AlertState.ACTIVE and after[0].extra["latched"]
    else:
        assert after[0].state == AlertState.ENDED


def _heart(beats: np.ndarray, seconds: int) -> Seen:
    """Beat times straight into a beat track, then ``heart.step`` one second at a time."""
    state = heart.new_state("b1", DEFAULT)
    track = heart.new_track("ecg")
    track.usable_since = 0.0
    state.tracks["ECG"] = track
    out: Seen = []
    n = track.times.size
    for k in range(seconds):
        seen = beats[beats < k + 1.0]
        track.times = np.concatenate([np.full(n, np.nan), seen])[-n:]
        alerts, _ = heart.step(state, np.array([float(k)]), np.array([np.nan]), (), k + 1.0)
        out += [(k + 1.0, a) for a in alerts]
    return out


@pytest.mark.parametrize(("pause", "fires_at"), [(3.9, None), (4.5, 34.0), (6.0, 34.0)])
def test_asystole_pause_boundary(pause: float, fires_at: float | None) -> None:
    """Beats every second to 30 s, then a pause: 'no beat for >= 4 s' (delay 0) is announced
    at the end of the second in which the pause reached 4 s."""
    beats = np.concatenate([np.arange(0.0, 30.5, 1.0), 30.0 + pause + np.arange(0, 20.0)])
    seen = _heart(beats, 50)
    if fires_at is None:
        assert _alarms(seen, "asystole") == []
        return
    t, alert = _announced(seen, "asystole")
    assert t == fires_at and alert.value == pytest.approx(4.0)


# ---- airflow: apnea and hypopnea (scored events) ---------------------------------------------

def _resp(ratio: float, seconds: int, desat_at: float | None = None) -> Seen:
    """Per-second airflow amplitude 1 for two minutes (the baseline), then ``ratio`` of it."""
    state = respiration.new_state("b1", DEFAULT, "Flow")
    amp = np.concatenate([np.ones(120), np.full(seconds, ratio), np.ones(60)])
    out: Seen = []
    for k, a in enumerate(amp):
        marks = [desat_at] if desat_at is not None and k == round(desat_at) else []
        for al in respiration.step(state, np.array([float(k)]), np.array([a]), marks, k + 1.0):
            out.append((k + 1.0, al))
    return out


@pytest.mark.parametrize(("ratio", "seconds", "apnea"), [
    (0.11, 30, False),  # an 89 % drop: a hypopnea-range drop, not an apnea
    (0.1, 30, True),  # exactly 90 %: counts (>=)
    (0.1, 6, False),  # the amplitude's 4-s window dates the onset 3 s back: 6 + 3 < 10 s
    (0.1, 7, True),  # 7 + 3 = 10 s
    (0.0, 7, True),
])
def test_apnea_depth_and_duration(ratio: float, seconds: int, apnea: bool) -> None:
    ends = [(t, a) for t, a in _resp(ratio, seconds)
            if a.code == "apnea" and a.state == AlertState.ENDED]
    assert len(ends) == int(apnea)
    if apnea:
        t, a = ends[0]
        assert a.onset == 120.0 - 3 and a.end == 120.0 + seconds
        assert a.emitted_at == t == 120.0 + seconds + 1
        assert a.extra["announced_at"] == 120.0 + 7  # when the 10 s were reached


@pytest.mark.parametrize(("ratio", "seconds", "desat_at", "confirmed"), [
    (0.7, 10, 125.0, True),  # exactly 30 % down for 10 s, with a desaturation
    (0.71, 10, 125.0, False),  # 29 % down
    (0.7, 9, 125.0, False),  # one second short
    (0.7, 10, None, False),  # no desaturation or arousal: not confirmed
    (0.7, 10, 160.0, True),  # desaturation 30 s after the end: still in the window
    (0.7, 10, 161.0, False),  # just past it
])
def test_hypopnea_depth_duration_and_confirmation(ratio: float, seconds: int,
                                                  desat_at: float | None, confirmed: bool
                                                  ) -> None:
    seen = [(t, a) for t, a in _resp(ratio, seconds, desat_at) if a.code == "hypopnea"]
    assert len(seen) == int(confirmed)
    if confirmed:
        t, a = seen[0]
        assert (a.onset, a.end) == (120.0, 130.0) and a.emitted_at == t
        assert t == max(131.0, desat_at + 1)  # emitted once both the end and the mark are in


# ---- atrial fibrillation: irregularity score, delay and hysteresis ---------------------------

SIGNS = np.array([1, -1, 1, -1, 1, 1, -1, -1])  # successive-difference signs: 6 turns in 8


# 10 turns in 12 (0.83): outside the range that starts an AF criterion, inside the hold range
SIGNS_FAST = np.array([1, -1, 1, -1, 1, -1, 1, -1, 1, 1, -1, -1])


def _af_beats(score: list[float], fast_from: int | None = None) -> np.ndarray:
    """Beats whose RR intervals 1 + delta * c (c the running sum of SIGNS, mean 0.75 over any
    64 intervals) have every successive difference of size delta: RMSSD / mean RR = score, and
    a turning-point ratio of ~0.74, inside the random range. From beat ``fast_from`` on, the
    signs follow SIGNS_FAST instead."""
    i = np.arange(len(score))
    signs = SIGNS[i % 8]
    if fast_from is not None:
        signs = np.where(i >= fast_from, SIGNS_FAST[i % 12], signs)
    c = np.cumsum(signs)
    s = np.asarray(score)
    return np.concatenate([[0.0], np.cumsum(1.0 + s / (1 - 0.75 * s) * c)])


def _af(score: list[float], seconds: int, fast_from: int | None = None
        ) -> tuple[Seen, np.ndarray]:
    beats = _af_beats(score, fast_from)
    return _heart(beats, seconds), beats


@pytest.mark.parametrize(("score", "fires"), [(0.099, False), (0.09, False), (0.101, True)])
def test_af_score_threshold_and_delay(score: float, fires: bool) -> None:
    seen, beats = _af([score] * 200, 150)
    if not fires:
        assert _alarms(seen, "af") == []
        return
    t, alert = _announced(seen, "af")
    first = np.floor(beats[32])  # the score is known once 32 RR intervals are in
    assert alert.onset == first and t == first + 30.0  # the 30-s condition delay
    assert alert.value == pytest.approx(score, abs=1e-3)  # the worst score of the run


@pytest.mark.parametrize(("held", "ends"), [(0.08, False), (0.07, True)])
def test_af_holds_down_to_three_quarters_of_the_threshold(held: float, ends: bool) -> None:
    """Announced at 0.12; a score of 0.08 (>= 0.75 x 0.1) keeps it, 0.07 ends it."""
    seen, _ = _af([0.12] * 100 + [held] * 150, 240)
    _announced(seen, "af")
    ended = [(t, a) for t, a in _alarms(seen, "af") if a.state == AlertState.ENDED]
    assert len(ended) == int(ends)
    if ends:
        t, a = ended[0]
        assert a.emitted_at == t and a.end == t - 1.0  # ended in the block where it stopped


@pytest.mark.parametrize(("fast_from", "alarms", "ends"), [(0, 0, False), (100, 1, False)])
def test_af_turning_point_ranges(fast_from: int, alarms: int, ends: bool) -> None:
    """A turning-point ratio of 0.83 never starts an AF alarm (entry range 0.54-0.80) but keeps
    an announced one (hold range 0.45-0.85)."""
    seen, _ = _af([0.12] * 250, 240, fast_from=fast_from)
    transitions = _alarms(seen, "af")
    assert len([a for _, a in transitions if a.state == AlertState.ACTIVE]) == alarms
    assert any(a.state == AlertState.ENDED for _, a in transitions) is ends


def test_a_second_hypoxemia_episode_counts_its_delay_from_zero() -> None:
    """After an alarm ended (60 s back above the limit), a new dip of 29 s does not alarm and
    one of 30 s does, at its own 30th second: nothing of the first episode carries over."""
    for seconds, fires in ((29, False), (30, True)):
        seen = _spo2((95.0, 60), (89.0, 30), (95.0, 70), (89.0, seconds), (95.0, 70))
        active = [(t, a) for t, a in _alarms(seen, "hypoxemia90")
                  if a.state == AlertState.ACTIVE and a.end is None]
        assert len(active) == 1 + int(fires)
        if fires:
            t, a = active[1]
            assert a.onset == 160.0 and t == 190.0 == a.emitted_at
