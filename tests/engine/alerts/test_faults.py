"""Sensor faults give a technical alarm and no physiological alarm; recovery ends the alarm.

Real nights (Gran Canaria oximetry, Apnea-ECG heart rate) and a synthetic ECG built on real RR
intervals (MIT-BIH slpdb beat times) with faults injected."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from sleepstream.drivers.edf import read_recording
from sleepstream.engine.types import AlertState
from sleepstream.models.alert_replay import Track

from .harness import run

SECONDS = 1500
FAULT = (600, 900)


def _tracks(path, seconds, start=0):
    rec = read_recording(path)
    out = []
    for s in rec.signals:
        span = slice(round(start * s.spec.fs), round((start + seconds) * s.spec.fs))
        out.append(Track(s.label, s.spec.modality, s.spec.fs, s.data[span].copy(),
                         s.valid[span].copy()))
    return out


def _during(alerts, lo, hi, channel=None):
    return [a for a in alerts if lo <= a.emitted_at <= hi and a.state != AlertState.ENDED
            and (channel is None or channel in a.channels)]


def _check_technical(result, code, channel, delay, hold):
    tech = [a for a in result.technical if a.code == code and channel in a.channels
            and FAULT[0] - 1 <= a.onset <= FAULT[1]]
    active = [a for a in tech if a.state == AlertState.ACTIVE]
    ended = [a for a in tech if a.state == AlertState.ENDED]
    assert active, f"no {code} alarm"
    assert FAULT[0] <= active[0].emitted_at <= FAULT[0] + delay + 1.0
    assert ended and FAULT[1] <= ended[0].emitted_at <= FAULT[1] + hold + 1.0


@pytest.fixture(scope="module")
def oxi(data_dir):
    return _tracks(data_dir / "oximetry-hugcdn" / "D2.edf", SECONDS, start=1500)


def test_probe_off_real_night(oxi):
    tracks = [Track(t.name, t.modality, t.fs, t.data.copy(), t.valid) for t in oxi]
    spo2 = next(t for t in tracks if t.modality == "spo2")
    spo2.data[FAULT[0] : FAULT[1]] = 0.0
    res = run(tracks, SECONDS)
    _check_technical(res, "probe_off", spo2.name, 10.0, 5.0)
    assert _during(res.physiological, FAULT[0], FAULT[1], spo2.name) == []
    assert _scored(res, FAULT[0], FAULT[1]) == []
    # the same night without the fault does score desaturations in that span: the test can fail
    clean = run(oxi, SECONDS)
    assert _scored(clean, FAULT[0], FAULT[1])


def _scored(result, lo, hi):
    return [e for e in result.events if e["type"] == "event" and lo <= e["onset"] <= hi]


def test_stream_lost_real_night(oxi):
    tracks = [Track(t.name, t.modality, t.fs, t.data, t.valid.copy()) for t in oxi]
    for t in tracks:
        t.valid[round(FAULT[0] * t.fs) : round(FAULT[1] * t.fs)] = False
    res = run(tracks, SECONDS)
    for t in tracks:
        _check_technical(res, "signal_gap", t.name, 2.0, 2.0)
    assert _during(res.physiological, FAULT[0], FAULT[1]) == []
    assert not [e for e in res.events if e["type"] == "apnea_minute"
                and FAULT[0] + 120 <= 60 * e["minute"] < FAULT[1] - 60 and e["prob"] is not None]


def test_heart_rate_no_reading_real_night(data_dir):
    tracks = _tracks(data_dir / "apnea-ecg-hr" / "a01.edf", SECONDS)
    tracks[0].data[FAULT[0] : FAULT[1]] = 0.0  # 0 bpm: no beat detected (sensor off)
    res = run(tracks, SECONDS)
    _check_technical(res, "no_reading", tracks[0].name, 10.0, 5.0)
    assert [a for a in res.physiological if a.code in ("bradycardia", "asystole")] == []


def _synthetic_ecg(data_dir, seconds, fs=250.0):
    """ECG-like waveform: a narrow QRS at each real beat time, P/T waves, baseline wander, noise."""
    with gzip.open(data_dir / "slpdb" / "slp01a.beats.csv.gz", "rt") as f:
        beats = np.loadtxt(f, delimiter=",", skiprows=1, ndmin=2)[:, 0]
    beats = beats[(beats > 1) & (beats < seconds - 1)] - beats[0]
    t = np.arange(round(seconds * fs)) / fs
    x = np.zeros_like(t)
    rng = np.random.default_rng(0)
    for b in beats:  # vectorised per beat over a short neighbourhood
        i = slice(max(0, round((b - 0.3) * fs)), round((b + 0.45) * fs))
        d = t[i] - b
        qrs = np.exp(-((d / 0.012) ** 2)) - 0.15 * np.exp(-(((d - 0.03) / 0.01) ** 2))
        pt = 0.12 * np.exp(-(((d + 0.16) / 0.03) ** 2)) + 0.25 * np.exp(-(((d - 0.3) / 0.06) ** 2))
        x[i] += qrs + pt
    x += 0.2 * np.sin(2 * np.pi * 0.25 * t) + 0.03 * rng.standard_normal(t.size)
    return x.astype(np.float32), beats[beats > 0]


def test_beat_detector_finds_real_rr(data_dir):
    from sleepstream.engine.alerts import beats as bm

    x, truth = _synthetic_ecg(data_dir, 300)
    st = bm.new_state(bm.ECG, 250.0, 0.0)
    found = np.concatenate([bm.step(st, x[i : i + 250], np.ones(250, bool))
                            for i in range(0, x.size, 250)])
    truth = truth[truth > 3]
    k = np.searchsorted(found, truth)
    near = np.minimum(np.abs(found[np.clip(k, 0, found.size - 1)] - truth),
                      np.abs(found[np.clip(k - 1, 0, found.size - 1)] - truth))
    assert (near < 0.1).mean() > 0.99  # QRS energy peak within 100 ms of the R time
    assert found.size <= truth.size * 1.01 + 3


def test_ecg_leads_off_flatline(data_dir):
    x, _ = _synthetic_ecg(data_dir, SECONDS)
    fs = 250.0
    x[round(FAULT[0] * fs) : round(FAULT[1] * fs)] = 0.0  # leads off: a flat trace
    ecg = Track("ECG", "ecg", fs, x, np.ones(x.size, bool))
    res = run([ecg], SECONDS)
    _check_technical(res, "flatline", "ECG", 3.0, 2.0)
    assert [a for a in res.physiological if a.code in ("asystole", "bradycardia")] == []
    assert [a for a in res.physiological if a.code == "tachycardia"] == []
