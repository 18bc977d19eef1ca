"""The detectors' waveform front ends: airflow amplitude and ECG beats, through the engine.

The boundary tests feed per-second amplitudes and beat times straight to the detectors; these
check what turns a waveform into them: ``respiration.amplitude`` (band-pass, sqrt(2) x RMS over
the trailing 4 s, frozen or invalid seconds unknown) and ``heart.feed_beats`` (beats from an
ECG, a lead-off resets the usable stretch, so a pause in it is never an asystole).
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

FS = 10.0


def _breath(seconds: int, amp: float = 1.0, f: float = 0.25, seed: int = 0) -> np.ndarray:
    t = np.arange(round(seconds * FS)) / FS
    noise = np.random.default_rng(seed).normal(0, 0.002, t.size)
    return amp * np.sin(2 * np.pi * f * t) + noise


def _amplitude(x: np.ndarray, valid: np.ndarray, chunk_s: int) -> np.ndarray:
    state = respiration.new_state("b1", DEFAULT, "Flow")
    per = round(chunk_s * FS)
    out = [respiration.amplitude(state, FS, x[a:a + per], valid[a:a + per], chunk_s)
           for a in range(0, x.size, per)]
    return np.concatenate(out)


def test_amplitude_of_a_breathing_sine_is_its_peak_amplitude() -> None:
    x = _breath(60, amp=2.0)
    amp = _amplitude(x, np.ones(x.size, bool), 1)
    assert amp.shape == (60,)
    assert np.isnan(amp[:3]).all()  # the 4-s window is not full yet
    np.testing.assert_allclose(amp[30:], 2.0, rtol=0.05)


@pytest.mark.parametrize("chunk_s", [1, 60])
def test_amplitude_frozen_and_invalid_seconds_are_unknown_for_the_window(chunk_s: int) -> None:
    x = _breath(60)
    valid = np.ones(x.size, bool)
    x[200:210] = x[200]  # second 20 frozen (a disconnected cannula)
    valid[400:405] = False  # half of second 40 invalid
    amp = _amplitude(x, valid, chunk_s)
    for bad in (20, 40):  # unknown in every 4-s window that holds the bad second
        assert np.isnan(amp[bad:bad + 4]).all()
        assert np.isfinite(amp[bad - 1]) and np.isfinite(amp[bad + 4])
    assert np.isfinite(amp[4:20]).all()


def test_amplitude_recovers_after_an_invalid_stretch_and_ignores_fast_components() -> None:
    """Invalid samples enter the filter as 0 (the signal's baseline), so no step transient
    follows them; a 1.8-Hz component is outside the 0.05-1 Hz breathing band."""
    x = _breath(60)
    valid = np.ones(x.size, bool)
    valid[200:250] = False
    amp = _amplitude(x + 0.0, valid, 60)
    np.testing.assert_allclose(amp[30:60], 1.0, rtol=0.1)
    fs = 25.0
    t = np.arange(round(60 * fs)) / fs
    fast = np.sin(2 * np.pi * 1.8 * t) + np.random.default_rng(0).normal(0, 0.002, t.size)
    state = respiration.new_state("b1", DEFAULT, "Flow")
    amp = respiration.amplitude(state, fs, fast, np.ones(t.size, bool), 60)
    assert float(np.nanmax(amp[20:])) < 0.5


def test_amplitude_in_chunks_equals_one_shot() -> None:
    x = _breath(60)
    valid = np.ones(x.size, bool)
    np.testing.assert_allclose(_amplitude(x, valid, 60), _amplitude(x, valid, 1), atol=1e-9)
    np.testing.assert_allclose(_amplitude(x, valid, 60), _amplitude(x, valid, 5), atol=1e-9)


def _engine(tracks: dict[str, tuple[str, float, np.ndarray, np.ndarray]], seconds: int
            ) -> list[tuple[float, Any]]:
    eng = AlertEngine("b1")
    out: list[tuple[float, Any]] = []
    for k in range(seconds):
        native = {}
        for name, (modality, fs, x, valid) in tracks.items():
            a, b = round(k * fs), round((k + 1) * fs)
            native[name] = ChannelBlock(name, modality, fs, float(k),
                                        x[a:b].astype(np.float32), valid[a:b])
        out += [(k + 1.0, e) for e in eng.process(Block("b1", float(k), k + 1.0, native, {},
                                                        frozenset()))]
    return out


@pytest.mark.parametrize(("level", "apnea"), [(0.02, True), (0.3, False)])
def test_an_apnea_from_the_airflow_waveform(level: float, apnea: bool) -> None:
    """Breathing at amplitude 1 for 3 minutes, then 15 s at ``level``: a 98 % drop is an
    apnea, a 70 % drop is not (a hypopnea candidate that no desaturation confirms)."""
    x = np.concatenate([_breath(180), _breath(15, amp=level, seed=1), _breath(60, seed=2)])
    out = _engine({"Nasal flow": ("resp", FS, x, np.ones(x.size, bool))}, 255)
    events = [e for _, e in out if isinstance(e, dict) and e.get("type") == "event"]
    assert [e["code"] for e in events] == (["apnea"] if apnea else [])
    if apnea:
        assert (events[0]["onset"], events[0]["end"]) == pytest.approx((183.0, 195.0), abs=3.0)


def _ecg(seconds: float, fs: float, beats: np.ndarray) -> np.ndarray:
    t = np.arange(round(seconds * fs)) / fs
    x = np.random.default_rng(0).normal(0, 0.01, t.size)
    for b in beats:
        x += np.exp(-0.5 * ((t - b) / 0.012) ** 2)  # a QRS-like spike
    return x


@pytest.mark.parametrize(("lead_off", "asystole"), [(False, True), (True, False)])
def test_a_pause_in_the_ecg_is_an_asystole_unless_the_leads_are_off(lead_off: bool,
                                                                    asystole: bool) -> None:
    fs = 250.0
    beats = np.concatenate([np.arange(0.5, 40.0, 1.0), np.arange(46.5, 70.0, 1.0)])
    x = _ecg(70.0, fs, beats)
    valid = np.ones(x.size, bool)
    if lead_off:
        valid[round(40.2 * fs):round(46.2 * fs)] = False  # the pause is a lead-off
    out = _engine({"ECG": ("ecg", fs, x, valid)}, 70)
    alarms = [(t, a) for t, a in out if isinstance(a, Alert)]
    brady = [a for _, a in alarms if a.code == "bradycardia"]
    assert brady == []  # 60 bpm from the beats
    asy = [(t, a) for t, a in alarms if a.code == "asystole" and a.end is None]
    if not asystole:
        assert asy == []
        return
    assert len(asy) == 1
    t, a = asy[0]
    assert a.state == AlertState.ACTIVE and a.emitted_at == t
    assert t == 44.0 and a.channels == ("ECG",)  # 4 s after the last beat at 39.5, seen at 44


def test_heart_rate_from_ecg_beats_and_the_beat_track() -> None:
    fs = 250.0
    beats = np.arange(0.5, 30.0, 0.75)  # 80 bpm
    x = _ecg(30.0, fs, beats)
    state = heart.new_state("b1", DEFAULT)
    track = state.tracks.setdefault("ECG", heart.new_track("ecg"))
    for k in range(30):
        a, b = round(k * fs), round((k + 1) * fs)
        heart.feed_beats(track, fs, float(k), x[a:b], np.ones(b - a, bool), k + 1.0)
    seen = track.times[np.isfinite(track.times)]
    assert seen.size == heart.RR_WINDOW + 1 or seen.size >= 35
    assert np.abs(np.diff(seen) - 0.75).max() < 0.02
    assert track.usable_since == pytest.approx(0.0 + heart.beat_mod.ECG.learn_s)
    _, hr = heart.step(state, np.array([29.0]), np.array([np.nan]), (), 30.0)
    assert hr[0] == pytest.approx(80.0, rel=0.02)
    feed_invalid = np.ones(round(fs), bool)
    feed_invalid[10] = False
    heart.feed_beats(track, fs, 30.0, x[:round(fs)], feed_invalid, 31.0)
    assert track.usable_since is None  # one invalid sample ends the usable stretch


def test_ahi_counts_apneas_and_arousal_confirmed_hypopneas_per_hour_of_airflow() -> None:
    state = respiration.new_state("b1", DEFAULT, "Flow")
    amp = np.ones(720)
    amp[200:215] = 0.05  # an apnea
    amp[400:412] = 0.6  # a hypopnea, confirmed by an arousal
    for k, a in enumerate(amp):
        if k == 405:
            respiration.note_arousal(state, 405.0)
        respiration.step(state, np.array([float(k)]), np.array([a]), [], k + 1.0)
        if k == 598:
            assert respiration.ahi(state) is None  # under 10 minutes of valid airflow
    valid_s = 720 - 60  # the baseline needs 60 valid seconds first
    assert state.valid_s == valid_s
    assert state.apnea.count == 1 and state.hypopneas == 1
    assert respiration.ahi(state) == pytest.approx(2 / (valid_s / 3600))
