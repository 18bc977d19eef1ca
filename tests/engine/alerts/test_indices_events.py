"""Running indices (ODI-3/ODI-4, AHI) by hand, and the fields of the alarms and events the
SpO2 and airflow detectors emit (bed, id, channel, priority, escalation)."""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.engine.alerts import respiration, spo2
from sleepstream.engine.alerts.config import DEFAULT
from sleepstream.engine.types import AlertKind, AlertState, Priority


def _spo2_night(seconds: int, dips: dict[int, float]) -> tuple[spo2.SpO2State, list]:
    """97 % with dips of 5 s at the given seconds; fed one 60-s chunk at a time."""
    x = np.full(seconds, 97.0)
    for start, value in dips.items():
        x[start:start + 5] = value
    state = spo2.new_state("b1", DEFAULT, "SpO2")
    out = []
    for a in range(0, seconds, 60):
        t = np.arange(a, min(a + 60, seconds), dtype=np.float64)
        alarms, desats = spo2.step(state, t, x[a:a + 60], float(t[-1] + 1))
        out += alarms + desats
    return state, out


def test_odi_counts_desaturations_per_hour_of_valid_spo2_after_ten_minutes() -> None:
    state, _ = _spo2_night(540, {200: 94.0, 400: 93.0})  # a 3 % and a 4 % dip
    assert state.valid_s == 540 and spo2.odi(state, 3) is None  # under 10 minutes
    state, out = _spo2_night(600, {200: 94.0, 400: 93.0})
    assert state.valid_s == 600
    assert spo2.odi(state, 3) == pytest.approx(2 / (600 / 3600))  # both count as 3 %
    assert spo2.odi(state, 4) == pytest.approx(1 / (600 / 3600))
    ended = [a for a in out if a.state == AlertState.ENDED]
    assert sorted(a.id for a in ended) == ["b1/desat3/1", "b1/desat3/2", "b1/desat4/1"]
    assert all(a.bed == "b1" and a.channels == ("SpO2",) for a in ended)
    assert all(a.priority == Priority.LOW for a in ended)


def test_hypoxemia_alarms_name_the_bed_and_channel_and_escalate() -> None:
    state, _ = _spo2_night(240, {})
    x = np.full(120, 85.0)
    t = np.arange(240.0, 360.0)
    alarms, _ = spo2.step(state, t, x, 360.0)
    codes = {a.code: a for a in alarms if a.state == AlertState.ACTIVE}
    assert set(codes) == {"hypoxemia90", "hypoxemia88"}
    for code, a in codes.items():
        assert a.bed == "b1" and a.channels == ("SpO2",) and a.id == f"b1/{code}/1"
        assert a.kind == AlertKind.PHYSIOLOGICAL
    assert codes["hypoxemia88"].priority == Priority.HIGH and codes["hypoxemia88"].latching
    assert codes["hypoxemia90"].message == "SpO2 below 90 %"
    assert state.hyp88.cond.escalate_after_s == DEFAULT.escalate_after_s
    assert state.desat3.escalate_after_s == DEFAULT.escalate_after_s


def _resp(amp: np.ndarray, marks: dict[int, float]) -> tuple[respiration.RespState, list]:
    state = respiration.new_state("b1", DEFAULT, "Flow")
    out = []
    for k, a in enumerate(amp):
        m = [marks[k]] if k in marks else []
        out += respiration.step(state, np.array([float(k)]), np.array([a]), m, k + 1.0)
    return state, out


def test_confirmed_hypopneas_are_numbered_events_of_the_airflow_channel() -> None:
    amp = np.ones(400)
    amp[150:162] = 0.6
    amp[250:262] = 0.6
    amp[320:332] = 0.6  # not confirmed
    state, out = _resp(amp, {150: 150.0, 270: 265.0})  # marks at the onset, after the end
    hyp = [a for a in out if a.code == "hypopnea"]
    assert [(a.id, a.onset, a.end) for a in hyp] == [
        ("b1/hypopnea/1", 150.0, 162.0), ("b1/hypopnea/2", 250.0, 262.0)]
    for a in hyp:
        assert (a.bed, a.channels, a.kind, a.state) == (
            "b1", ("Flow",), AlertKind.PHYSIOLOGICAL, AlertState.ENDED)
        assert a.priority == DEFAULT.hypopnea.priority and a.delay_s == DEFAULT.hypopnea.delay_s
        assert a.extra == {"event": True}
    assert state.hypopneas == 2
    apneas = [a for a in out if a.code == "apnea"]
    assert apneas == []


def test_apnea_alarm_fields() -> None:
    amp = np.ones(200)
    amp[150:165] = 0.05
    _, out = _resp(amp, {})
    [end] = [a for a in out if a.code == "apnea" and a.state == AlertState.ENDED]
    assert (end.bed, end.id, end.channels) == ("b1", "b1/apnea/1", ("Flow",))
    assert end.value == pytest.approx(0.05)


def test_a_zero_baseline_is_unknown_not_an_apnea() -> None:
    amp = np.concatenate([np.zeros(130), np.full(30, 0.5)])  # no breathing seen yet
    state, out = _resp(amp, {})
    assert out == [] and state.valid_s == 0
