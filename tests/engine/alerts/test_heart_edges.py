"""Cardiac detector edges: what each alarm says and when, which source the rate comes from,
configured escalation, the announced worst value, and the AF score's trimming and ties.

Heart rate and ECG are fed as the engine gets them: a 1-Hz ``hr`` channel and a 250-Hz ``ecg``
(or 100-Hz ``ppg``) waveform in 1-s blocks; the AF tests put exact beat times (multiples of
1/8 s) into a beat track and step the detector one second at a time, as the engine does after
its beat detector ran. Each transition is recorded with the end of the block it came out of.
A detected beat is timed a fixed few tens of ms after its R peak: gaps have a 0.1-s tolerance.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from sleepstream.engine.alerts import heart
from sleepstream.engine.alerts.condition import tick_condition
from sleepstream.engine.alerts.config import DEFAULT, AlertConfig
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.protocols import Block, ChannelBlock
from sleepstream.engine.types import Alert, AlertState, Priority

Seen = list[tuple[float, Any]]
ECG_FS, PPG_FS = 250.0, 100.0


def _ecg(seconds: float, beats: np.ndarray) -> np.ndarray:
    t = np.arange(round(seconds * ECG_FS)) / ECG_FS
    x = np.random.default_rng(0).normal(0, 0.01, t.size)
    for b in beats:
        x += np.exp(-0.5 * ((t - b) / 0.012) ** 2)  # a QRS-like spike
    return x


def _ppg(seconds: float, beats: np.ndarray) -> np.ndarray:
    t = np.arange(round(seconds * PPG_FS)) / PPG_FS
    x = np.random.default_rng(1).normal(0, 0.005, t.size)
    for b in beats + 0.25:  # the pulse arrives a quarter second after the R wave
        x += np.exp(-0.5 * ((t - b) / 0.12) ** 2)
    return x


def _engine(tracks: dict[str, tuple[str, float, np.ndarray]], seconds: int,
            config: AlertConfig = DEFAULT) -> Seen:
    eng = AlertEngine("b1", config)
    out: Seen = []
    for k in range(seconds):
        native = {}
        for name, (modality, fs, x) in tracks.items():
            a, b = round(k * fs), round((k + 1) * fs)
            native[name] = ChannelBlock(name, modality, fs, float(k),
                                        x[a:b].astype(np.float32), np.ones(b - a, bool))
        for item in eng.process(Block("b1", float(k), k + 1.0, native, {}, frozenset())):
            out.append((k + 1.0, item))
    return out


def _hr(*parts: tuple[float, int], config: AlertConfig = DEFAULT) -> Seen:
    x = np.concatenate([np.full(n, v) for v, n in parts])
    return _engine({"HR": ("hr", 1.0, x)}, x.size, config)


def _alarms(seen: Seen, code: str) -> list[tuple[float, Alert]]:
    return [(t, a) for t, a in seen if isinstance(a, Alert) and a.code == code]


def _announced(seen: Seen, code: str) -> tuple[float, Alert]:
    active = [(t, a) for t, a in _alarms(seen, code)
              if a.state == AlertState.ACTIVE and a.end is None]
    assert len(active) == 1, active
    return active[0]


# ---- what the alarms say, and when their transitions come out --------------------------------

def test_bradycardia_from_the_heart_rate_channel() -> None:
    seen = _hr((70.0, 30), (35.0, 15), (70.0, 30))
    t, a = _announced(seen, "bradycardia")
    assert (t, a.onset, a.extra["criterion_t"], a.emitted_at) == (40.0, 30.0, 40.0, 40.0)
    assert (a.bed, a.id, a.channels, a.priority) == ("b1", "b1/bradycardia/1", ("HR",),
                                                     Priority.HIGH)
    assert a.message == "heart rate below 40 bpm" and a.value == 35.0
    [(t, latched)] = [(t, x) for t, x in _alarms(seen, "bradycardia") if x.end is not None]
    assert latched.extra["latched"] and (t, latched.emitted_at, latched.end) == (46.0, 46.0,
                                                                                  45.0)


def test_tachycardia_announces_the_highest_rate_of_its_delay() -> None:
    """The rate climbs 131, 132, ... 145 bpm: announced after 10 s with the highest rate seen
    so far (140), and it ends in the block where the rate fell back."""
    rising = np.arange(131.0, 146.0)
    x = np.concatenate([np.full(30, 70.0), rising, np.full(30, 70.0)])
    seen = _engine({"HR": ("hr", 1.0, x)}, x.size)
    t, a = _announced(seen, "tachycardia")
    assert (t, a.onset, a.value) == (40.0, 30.0, 140.0)
    assert (a.bed, a.id, a.channels) == ("b1", "b1/tachycardia/1", ("HR",))
    assert a.message == "heart rate above 130 bpm"
    [(t, end)] = [(t, x) for t, x in _alarms(seen, "tachycardia") if x.end is not None]
    assert end.state == AlertState.ENDED and (t, end.emitted_at, end.end) == (46.0, 46.0, 45.0)


def _pause_beats(pause_from: float, pause_s: float, until: float) -> np.ndarray:
    return np.concatenate([np.arange(0.5, pause_from, 1.0),
                           np.arange(pause_from + pause_s - 0.5, until, 1.0)])


def test_asystole_from_the_ecg() -> None:
    """Beats every second to 39.5 s, then none until 49.5 s: announced in the block where the
    pause reached 4 s, latched in the block where the beats came back."""
    beats = _pause_beats(40.0, 10.0, 70.0)
    seen = _engine({"ECG": ("ecg", ECG_FS, _ecg(70.0, beats))}, 70)
    t, a = _announced(seen, "asystole")
    assert (t, a.emitted_at, a.extra["criterion_t"]) == (44.0, 44.0, 44.0)
    assert (a.bed, a.id, a.channels) == ("b1", "b1/asystole/1", ("ECG",))
    assert a.message == "no heartbeat for 4 s" and a.value == pytest.approx(4.5, abs=0.1)
    [(t, latched)] = [(t, x) for t, x in _alarms(seen, "asystole") if x.end is not None]
    assert latched.extra["latched"] and latched.emitted_at == t == 50.0 and latched.end == 49.0


def test_asystole_with_a_delay_announces_the_longest_pause_so_far() -> None:
    cfg = replace(DEFAULT, asystole=replace(DEFAULT.asystole, delay_s=3.0))
    beats = _pause_beats(40.0, 10.0, 70.0)
    seen = _engine({"ECG": ("ecg", ECG_FS, _ecg(70.0, beats))}, 70, cfg)
    t, a = _announced(seen, "asystole")
    assert (t, a.onset) == (46.0, 43.0)  # 4 s reached in the second [43, 44), held 3 s
    assert a.value == pytest.approx(46.0 - 39.5, abs=0.1)  # the gap when announced


def test_an_asystole_at_the_start_of_monitoring_counts_from_the_first_beat() -> None:
    """Leads on at 0 s (2 s of learning: usable from 2 s), beats at 0.5, 1.5, 2.5 s and then
    none: the 4 s count from the beat at 2.5 s, not from the start of the usable stretch."""
    beats = np.concatenate([[0.5, 1.5, 2.5], np.arange(14.5, 30.0, 1.0)])
    seen = _engine({"ECG": ("ecg", ECG_FS, _ecg(30.0, beats))}, 30)
    t, a = _announced(seen, "asystole")
    assert t == 7.0 and a.value == pytest.approx(4.5, abs=0.1)


def test_ecg_beats_take_precedence_over_a_heart_rate_channel_even_in_a_pause() -> None:
    """An oximeter's heart-rate channel reads 38 bpm while the ECG shows 60 bpm and then a
    20-s pause: the ECG is the source throughout (asystole, never a bradycardia from the
    heart-rate channel)."""
    beats = _pause_beats(40.0, 20.0, 90.0)
    seen = _engine({"ECG": ("ecg", ECG_FS, _ecg(90.0, beats)),
                    "HR": ("hr", 1.0, np.full(90, 38.0))}, 90)
    assert _alarms(seen, "bradycardia") == []
    t, a = _announced(seen, "asystole")
    assert t == 44.0 and a.channels == ("ECG",)


def test_ecg_beats_take_precedence_over_ppg_beats() -> None:
    beats = np.arange(0.5, 80.0, 1.75)  # 34 bpm, in both the ECG and the pulse wave
    seen = _engine({"ECG": ("ecg", ECG_FS, _ecg(80.0, beats)),
                    "Pleth": ("ppg", PPG_FS, _ppg(80.0, beats))}, 80)
    _, a = _announced(seen, "bradycardia")
    assert a.channels == ("ECG",) and a.value == pytest.approx(60 / 1.75, abs=0.5)


# ---- configured escalation ---------------------------------------------------------------------

def _all_high(escalate_after_s: float) -> AlertConfig:
    rules = {name: replace(getattr(DEFAULT, name), priority=Priority.HIGH)
             for name in ("bradycardia", "tachycardia", "asystole", "af")}
    return replace(DEFAULT, escalate_after_s=escalate_after_s, **rules)


def _escalated(seen: Seen, code: str) -> list[float]:
    return [t for t, a in _alarms(seen, code) if a.state == AlertState.ESCALATED]


@pytest.mark.parametrize(("code", "rate"), [("bradycardia", 35.0), ("tachycardia", 140.0)])
def test_rate_alarms_escalate_after_the_configured_delay(code: str, rate: float) -> None:
    seen = _hr((70.0, 30), (rate, 60), config=_all_high(20.0))
    assert _announced(seen, code)[0] == 40.0
    assert _escalated(seen, code) == [60.0]


def test_asystole_escalates_after_the_configured_delay() -> None:
    beats = _pause_beats(40.0, 40.0, 90.0)
    seen = _engine({"ECG": ("ecg", ECG_FS, _ecg(90.0, beats))}, 90, _all_high(20.0))
    assert _announced(seen, "asystole")[0] == 44.0
    assert _escalated(seen, "asystole") == [64.0]


# ---- atrial fibrillation: exact beat times straight into a beat track -------------------------

def _steps(beats: np.ndarray, seconds: int, config: AlertConfig = DEFAULT) -> Seen:
    state = heart.new_state("b1", config)
    track = heart.new_track("ecg")
    track.usable_since = 0.0
    state.tracks["ECG"] = track
    n = track.times.size
    out: Seen = []
    for k in range(seconds):
        track.times = np.concatenate([np.full(n, np.nan), beats[beats < k + 1.0]])[-n:]
        alerts, _ = heart.step(state, np.array([float(k)]), np.array([np.nan]), (), k + 1.0)
        for cond in (state.brady, state.tachy, state.asystole, state.af):
            alerts += tick_condition(cond, k + 1.0)  # the engine's alarm clock at block end
        out += [(k + 1.0, a) for a in alerts]
    return out


SIGNS = np.array([1, -1, 1, -1, 1, 1, -1, -1])  # successive-difference signs: 6 turns in 8


def _rr_beats(rr: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(rr)])


def _varied_rr(n: int, delta: float) -> np.ndarray:
    """RR 1 + delta x (running sum of SIGNS): every successive difference is +-delta, with a
    turning-point ratio of ~0.74 (in the random range)."""
    return 1.0 + delta * np.cumsum(SIGNS[np.arange(n) % 8])


def test_af_alarm_fields_and_its_worst_score() -> None:
    """Irregularity rising (RMSSD / mean RR 0.114 when first known at 35 s, 0.149 at 65 s):
    announced 30 s after the score is first known, with the highest score of those 30 s (not
    the first), and escalated after the configured delay when AF is made high priority."""
    rr = np.concatenate([_varied_rr(40, 0.125), _varied_rr(200, 0.25)[40:]])
    seen = _steps(_rr_beats(rr), 150, _all_high(20.0))
    t, a = _announced(seen, "af")
    assert (a.bed, a.id, a.channels) == ("b1", "b1/af/1", ("ECG",))
    assert a.message == "irregular RR intervals suggesting atrial fibrillation"
    assert (a.onset, t) == (35.0, 65.0) and a.value == pytest.approx(0.149, abs=1e-3)
    assert _escalated(seen, "af") == [t + 20.0]


def test_an_isolated_ectopic_beat_does_not_read_as_irregularity() -> None:
    """A mildly variable rhythm (score ~0.06) with one premature beat and its compensatory
    pause (RR -0.375 s, +0.375 s): the three largest successive differences are left out, so
    no AF; the same premature beat every 8 beats is irregular enough to alarm."""
    rr = _varied_rr(200, 0.0625)
    rr[80] -= 0.375
    rr[81] += 0.375
    assert _alarms(_steps(_rr_beats(rr), 200), "af") == []
    many = _varied_rr(200, 0.0625)
    many[80::8] -= 0.375
    many[81::8] += 0.375
    assert len([a for _, a in _alarms(_steps(_rr_beats(many), 200), "af")
                if a.state == AlertState.ACTIVE and a.end is None]) == 1


def test_equal_successive_rr_intervals_are_not_turning_points() -> None:
    """Differences in the sign pattern (-, +, -, 0, +) of size 1/8 s (RR on the sample grid,
    so ties are exact): 0.61 of the products are turning points and the ties count as none;
    counting a tie as a turn (ratio 1.0, or 0.81 by the sign of a quotient) would put the
    rhythm outside the random range and hide the AF."""
    pattern = np.array([-1.0, 1.0, -1.0, 0.0, 1.0])
    rr = 1.0 + 0.125 * np.cumsum(np.tile(pattern, 40))
    d = np.diff(rr[-heart.RR_WINDOW:])
    assert (d == 0).sum() > 10  # exact ties
    seen = _steps(_rr_beats(rr), 150)
    t, a = _announced(seen, "af")
    assert t == a.onset + 30.0 and a.value == pytest.approx(0.12, abs=0.01)
