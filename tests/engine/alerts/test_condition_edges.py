"""The alarm-condition state machine at its less-travelled edges, fed one 1-s criterion sample
per call as the detectors feed it (engine time ``t_emit`` = end of the second): a latched alarm
replaced by a new episode, the latched announcement's fields, a disabled rule, a pending run
broken while a hold is configured, a short hold, a latching alarm whose sensor turns unknown,
the data-time mode (``t_emit=None``), the worst value inside a block, the announced delay and
the default escalation delay."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sleepstream.engine.alerts.condition import (
    new_condition,
    step_condition,
    tick_condition,
)
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.types import AlertState, Priority


def _feed(cond, met, t0=0.0, *, engine_clock=True):
    out = []
    for i, m in enumerate(met):
        t = np.array([t0 + i])
        out += step_condition(cond, t, np.array([m], np.int8), np.array([30.0 + t0 + i]),
                              dt=1.0, t_emit=t0 + i + 1 if engine_clock else None)
    return out


def test_a_new_episode_ends_the_latched_one_before_it_is_announced() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.HIGH, latching=True),
                         message="m")
    on1, latched = _feed(cond, [1, 1, 0, 0])
    assert latched.state == AlertState.ACTIVE and latched.extra["latched"] is True
    assert latched.end == 2.0 and latched.emitted_at == 3.0
    old_end, on2 = _feed(cond, [1, 1], t0=4.0)
    assert old_end.id == on1.id == "b/x/1" and old_end.state == AlertState.ENDED
    assert old_end.emitted_at == 6.0 and old_end.end == 2.0
    assert on2.id == "b/x/2" and on2.state == AlertState.ACTIVE and on2.onset == 4.0
    assert on2.emitted_at == 6.0 and cond.current == on2 and not cond.latched


def test_a_latched_escalated_alarm_shows_active_when_latched_at_the_stop_time() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.HIGH, latching=True),
                         message="m", escalate_after_s=5.0)
    [on] = _feed(cond, [1, 1])
    [esc] = tick_condition(cond, 7.0)
    assert esc.state == AlertState.ESCALATED
    [latched] = _feed(cond, [0], t0=9.0)
    assert latched.state == AlertState.ACTIVE and latched.extra["latched"] is True
    assert latched.end == 9.0 and latched.emitted_at == 10.0 and latched.id == on.id


def test_a_disabled_rule_never_announces() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.HIGH, enabled=False),
                         message="m")
    assert _feed(cond, [1] * 10) == []
    assert cond.current is None and cond.count == 0


def test_an_unmet_second_restarts_the_delay_even_when_a_hold_is_configured() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 10.0, Priority.MEDIUM, hold_s=2.0),
                         message="m")
    assert _feed(cond, [1] * 9 + [0]) == []  # 9 s met, then one unmet second
    [on] = _feed(cond, [1] * 10, t0=10.0)
    assert on.onset == 10.0 and on.emitted_at == 20.0
    assert _feed(cond, [1] * 8, t0=10.0 + 10) == []


def test_a_one_second_hold_keeps_the_alarm_over_a_shorter_gap() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.MEDIUM, hold_s=1.0),
                         message="m")
    [on] = _feed(cond, [1, 1])
    step = step_condition(cond, np.array([2.0, 2.5]), np.array([0, 1], np.int8),
                          np.array([1.0, 1.0]), dt=0.5, t_emit=3.0)
    assert step == [] and cond.current == on  # 0.5 s unmet < 1 s hold
    [end] = _feed(cond, [0], t0=3.0)
    assert end.state == AlertState.ENDED and end.end == 3.0 and end.emitted_at == 4.0


def test_a_latching_alarm_stays_announced_when_its_sensor_turns_unknown() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.HIGH, latching=True),
                         message="m")
    [on] = _feed(cond, [1, 1])
    assert _feed(cond, [-1, -1], t0=2.0) == []
    assert cond.current == on


def test_a_suppressed_end_carries_when_and_the_engine_time() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.MEDIUM), message="m")
    _feed(cond, [1, 1, 1])
    [end] = _feed(cond, [-1], t0=3.0)
    assert end.state == AlertState.ENDED and end.extra["ended_by"] == "suppressed"
    assert end.end == 3.0 and end.emitted_at == 4.0


def test_data_time_mode_dates_each_transition_when_it_happened() -> None:
    rule = RuleConfig(1.0, 3.0, Priority.MEDIUM, hold_s=2.0)
    cond = new_condition("b", "x", rule, message="m")
    [on] = _feed(cond, [1, 1, 1, 1], engine_clock=False)
    assert on.emitted_at == 3.0 and on.extra["criterion_t"] == 3.0
    [end] = _feed(cond, [0, 0, 0], t0=4.0, engine_clock=False)
    assert end.state == AlertState.ENDED and end.end == 4.0 and end.emitted_at == 6.0
    nohold = new_condition("b", "y", replace(rule, hold_s=0.0), message="m")
    _feed(nohold, [1, 1, 1], engine_clock=False)
    [end0] = _feed(nohold, [0], t0=3.0, engine_clock=False)
    assert end0.end == 3.0 and end0.emitted_at == 3.0
    sup = new_condition("b", "z", rule, message="m")
    _feed(sup, [1, 1, 1], engine_clock=False)
    [s] = _feed(sup, [-1], t0=3.0, engine_clock=False)
    assert s.extra["ended_by"] == "suppressed" and s.end == 3.0 and s.emitted_at == 3.0


def test_a_max_condition_announces_the_highest_value_inside_one_block() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 3.0, Priority.MEDIUM), message="m",
                         worst="max")
    t = np.arange(4.0)
    [on] = step_condition(cond, t, np.ones(4, np.int8), np.array([120.0, 150.0, 130.0, 90.0]),
                          dt=1.0, t_emit=4.0)
    assert on.value == 150.0


def test_the_announced_alarm_carries_its_rule_delay() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.MEDIUM), message="m")
    [on] = _feed(cond, [1, 1])
    assert on.delay_s == 2.0


def test_a_high_alarm_escalates_after_sixty_seconds_by_default() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.HIGH), message="m")
    [on] = _feed(cond, [1, 1])
    assert tick_condition(cond, on.emitted_at + 59.9) == []
    [esc] = tick_condition(cond, on.emitted_at + 60.0)
    assert esc.state == AlertState.ESCALATED and esc.emitted_at == 62.0
