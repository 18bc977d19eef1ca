"""Sensor faults injected into a synthetic night, replayed through the real pipeline.

Each fault gives its technical alarm within the condition delay, not one physiological alarm
that depends on the faulty sensor is announced while it lasts, and the technical alarm ends once
the signal is back. The same span of the clean night does raise physiological alarms from that
sensor, so every test can fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.engine.app.commands.bench_alerts import replay
from sleepstream.engine.quality import CONDITIONS

from .synthetic import with_signal

NIGHT = ("osa-severe", 1.5, 1)
FAULT = (3000.0, 3600.0)
CHUNK_S = 5.0  # the replay's chunk: an alarm is emitted at the end of the block that showed it


def _announced(events, channel, lo, hi):
    """Physiological alarms that rely on ``channel`` announced (or re-announced) in [lo, hi],
    and scored events the detectors saw there."""
    return [e for e in events if e["type"] == "alert" and e["kind"] == "physiological"
            and channel in e["channels"] and e["state"] != "ended" and e["end"] is None
            and lo <= e["t"] <= hi] + [
        e for e in events if e["type"] == "event" and channel in e["channels"]
        and lo <= e["detected_at"] <= hi]


def _technical(events, code, channel):
    alarms = [e for e in events if e["type"] == "alert" and e["kind"] == "technical"
              and e["code"] == code and channel in e["channels"]
              and FAULT[0] - 1 <= e["onset"] <= FAULT[1]]
    active = [e for e in alarms if e["state"] == "active"]
    ended = [e for e in alarms if e["state"] == "ended"]
    return active, ended


def _check(events, clean, code, channel, *, codes=None, delay=None):
    spec = CONDITIONS[code]
    delay = spec.delay_s if delay is None else delay
    active, ended = _technical(events, code, channel)
    assert active, f"no {code} alarm on {channel}"
    assert FAULT[0] <= active[0]["t"] <= FAULT[0] + delay + CHUNK_S
    assert ended and FAULT[1] <= ended[0]["t"] <= FAULT[1] + spec.hold_s + CHUNK_S
    during = [e for e in _announced(events, channel, *FAULT)
              if codes is None or e["code"] in codes]
    assert during == [], during
    assert [e for e in _announced(clean, channel, *FAULT) if codes is None or e["code"] in codes]


def _span(sig):
    fs = sig.spec.fs
    return slice(round(FAULT[0] * fs), round(FAULT[1] * fs))


@pytest.fixture(scope="module")
def night(synthetic):
    return synthetic(*NIGHT)


def test_probe_off(night):
    sig = night.rec.signal("SpO2")
    data = sig.data.copy()
    data[_span(sig)] = 0.0
    events = replay(with_signal(night.rec, "SpO2", data=data))
    _check(events, night.events, "probe_off", "SpO2")


def test_airflow_flatline(night):
    sig = night.rec.signal("Resp airflow")
    data = sig.data.copy()
    data[_span(sig)] = data[_span(sig).start]  # cannula off: the trace freezes
    events = replay(with_signal(night.rec, "Resp airflow", data=data))
    # the resp flatline window (30 s) is the alarm's delay
    _check(events, night.events, "flatline", "Resp airflow", delay=30.0)


def test_ecg_leads_off(night):
    sig = night.rec.signal("ECG")
    data = sig.data.copy()
    data[_span(sig)] = 0.0
    events = replay(with_signal(night.rec, "ECG", data=data))
    active, ended = _technical(events, "flatline", "ECG")
    assert active and FAULT[0] <= active[0]["t"] <= FAULT[0] + 3.0 + CHUNK_S
    # the quality stage ends a flatline after hold_s without a single repeated sample; a 16-bit
    # EDF ECG repeats a value about every few hundred samples, so the end comes a few s late
    assert ended and FAULT[1] <= ended[0]["t"] <= FAULT[1] + 10.0
    assert _announced(events, "ECG", *FAULT) == []
    # (the generator's heart rate starts at its 35-bpm floor: a bradycardia in the first minute)
    assert [e for e in events if e.get("code") in ("asystole", "bradycardia")
            and e["end"] is None and e["onset"] > 60] == []


def test_stream_lost(night):
    rec = night.rec
    for sig in night.rec.signals:
        valid = sig.valid.copy()
        valid[_span(sig)] = False
        data = sig.data.copy()
        data[_span(sig)] = np.nan
        rec = with_signal(rec, sig.label, data=data, valid=valid)
    events = replay(rec)
    # every channel lost at once: one source-fault alarm naming them all, not one per channel
    tech = [e for e in events if e["type"] == "alert" and e["kind"] == "technical"
            and FAULT[0] - 1 <= e["onset"] <= FAULT[1]]
    assert {e["id"] for e in tech} == {tech[0]["id"]} and tech[0]["code"] == "source_fault"
    assert tech[0]["causes"] == ["signal_gap"]
    active = [e for e in tech if e["state"] == "active"]
    ended = [e for e in tech if e["state"] == "ended"]
    assert set(active[-1]["channels"]) == {s.label for s in rec.signals}
    assert FAULT[0] <= active[0]["t"] <= FAULT[0] + 2.0 + CHUNK_S
    assert active[0]["onset"] == FAULT[0] and ended[0]["end"] == FAULT[1]
    assert len(ended) == 1 and FAULT[1] <= ended[0]["t"] <= FAULT[1] + 2.0 + 2.0 + CHUNK_S
    assert [e for e in events if e["type"] == "alert" and e["kind"] == "physiological"
            and e["end"] is None and FAULT[0] <= e["t"] <= FAULT[1]] == []
    assert _announced(night.events, "SpO2", *FAULT) and _announced(night.events, "Resp airflow",
                                                                   *FAULT)
