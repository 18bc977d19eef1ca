"""Airflow events at their edges, fed one second at a time on the engine clock (``t_emit`` = the
second's end) as the bed feeds them: amplitudes in the sensor's own scale, the events' messages,
a desaturation that starts inside a hypopnea's window but is only reported after it, two
pending hypopneas confirmed each by its own window, the AHI from exactly ten minutes of valid
airflow, and the apnea alarm's configured escalation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sleepstream.engine.alerts import respiration
from sleepstream.engine.alerts.condition import tick_condition
from sleepstream.engine.alerts.config import DEFAULT
from sleepstream.engine.types import AlertState, Priority


def _resp(amp, marks, config=DEFAULT):
    """Feed per-second amplitudes; ``marks[k]`` are desaturation onsets reported at second k."""
    state = respiration.new_state("b1", config, "Flow")
    out = []
    for k, a in enumerate(amp):
        out += respiration.step(state, np.array([float(k)]), np.array([a]), marks.get(k, []),
                                k + 1.0)
    return state, out


@pytest.mark.parametrize("scale", [40.0, 0.02])  # e.g. a pressure in Pa, a flow in L/s
def test_events_are_relative_to_the_baseline_in_any_scale(scale) -> None:
    amp = np.full(300, scale)
    amp[150:165] = 0.05 * scale  # apnea
    amp[220:232] = 0.6 * scale  # hypopnea, desaturation at its onset
    _, out = _resp(amp, {225: [221.0]})
    apnea = [a for a in out if a.code == "apnea"]
    assert [(a.state, a.onset) for a in apnea] == [
        (AlertState.ACTIVE, 147.0), (AlertState.ENDED, 147.0)]
    assert apnea[0].message == "airflow down >= 90 % from baseline"
    [hyp] = [a for a in out if a.code == "hypopnea"]
    assert (hyp.onset, hyp.end) == (220.0, 232.0)
    assert hyp.message == "airflow down >= 30 % with desaturation"


def test_a_desaturation_starting_by_the_window_end_confirms_when_reported_later() -> None:
    amp = np.ones(260)
    amp[150:162] = 0.6  # candidate 150-162, window (30 s) until 192
    delay = DEFAULT.desat3.delay_s
    _, out = _resp(amp, {int(191 + delay): [191.0]})  # starts at 191, announced 3 s later
    [hyp] = [a for a in out if a.code == "hypopnea"]
    assert (hyp.onset, hyp.end, hyp.emitted_at) == (150.0, 162.0, 191.0 + delay + 1.0)


def test_a_desaturation_after_the_window_confirms_nothing() -> None:
    amp = np.ones(260)
    amp[150:162] = 0.6
    _, out = _resp(amp, {196: [193.0]})
    assert [a for a in out if a.code == "hypopnea"] == []


def test_two_pending_hypopneas_are_confirmed_each_by_its_own_window() -> None:
    amp = np.ones(300)
    amp[150:162] = 0.6  # window until 192
    amp[170:182] = 0.6  # window until 212
    _, out = _resp(amp, {203: [200.0]})
    hyp = [a for a in out if a.code == "hypopnea"]
    assert [(a.onset, a.end) for a in hyp] == [(170.0, 182.0)]


def test_the_ahi_appears_after_exactly_ten_minutes_of_valid_airflow() -> None:
    state = respiration.new_state("b1", DEFAULT, "Flow")
    k = 0
    while state.valid_s < 599:
        respiration.step(state, np.array([float(k)]), np.array([1.0]), [], k + 1.0)
        k += 1
    assert state.valid_s == 599 and respiration.ahi(state) is None
    respiration.step(state, np.array([float(k)]), np.array([1.0]), [], k + 1.0)
    assert state.valid_s == 600 and respiration.ahi(state) == 0.0


def test_a_high_priority_apnea_escalates_after_the_configured_delay() -> None:
    config = replace(DEFAULT, apnea=replace(DEFAULT.apnea, priority=Priority.HIGH),
                     escalate_after_s=30.0)
    amp = np.ones(200)
    amp[150:200] = 0.05
    state, out = _resp(amp, {}, config)
    [on] = [a for a in out if a.code == "apnea"]
    assert tick_condition(state.apnea, on.emitted_at + 29.0) == []
    [esc] = tick_condition(state.apnea, on.emitted_at + 30.0)
    assert esc.state == AlertState.ESCALATED
