"""Operator actions and raised conditions on the alarm state machine, field by field:
acknowledgement times and ids, a second acknowledgement, escalation at exactly its delay, a
raised source fault's onset, and a condition ended while latched."""

from __future__ import annotations

import numpy as np

from sleepstream.engine.alerts.condition import (
    acknowledge_condition,
    end_condition,
    new_condition,
    raise_condition,
    step_condition,
    tick_condition,
)
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.types import AlertKind, AlertState, Priority


def _feed(cond, met, t0=0.0):
    out = []
    for i, m in enumerate(met):
        t = np.array([t0 + i])
        out += step_condition(cond, t, np.array([m], np.int8), np.array([30.0 + i]), dt=1.0,
                              t_emit=t0 + i + 1)
    return out


def test_acknowledging_an_active_alarm_records_when_and_only_once() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.MEDIUM), message="m")
    [on] = _feed(cond, [1, 1])
    assert on.id == "b/x/1" and on.emitted_at == 2.0 and on.extra["announced_at"] == 2.0
    [ack] = acknowledge_condition(cond, 7.5)
    assert ack.state == AlertState.ACKNOWLEDGED and ack.emitted_at == 7.5
    assert ack.extra["acknowledged_at"] == 7.5 and ack.id == on.id and ack.onset == 0.0
    assert cond.current == ack and cond.acknowledged
    assert acknowledge_condition(cond, 8.0) == []  # already acknowledged
    [end] = _feed(cond, [0], t0=2.0)
    assert end.state == AlertState.ENDED and end.extra["acknowledged_at"] == 7.5
    assert acknowledge_condition(cond, 9.0) == []  # nothing announced


def test_acknowledging_a_latched_alarm_ends_it() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 1.0, Priority.HIGH, latching=True),
                         message="m")
    _feed(cond, [1, 0])
    assert cond.latched
    [ended] = acknowledge_condition(cond, 5.0)
    assert ended.state == AlertState.ENDED and ended.emitted_at == 5.0
    assert ended.extra["acknowledged_at"] == 5.0 and ended.end == 1.0
    assert cond.current is None and not cond.latched


def test_escalation_at_exactly_its_delay_and_only_for_high_priority() -> None:
    high = new_condition("b", "x", RuleConfig(1.0, 1.0, Priority.HIGH), message="m",
                         escalate_after_s=10.0)
    _feed(high, [1])  # announced at 1.0
    assert tick_condition(high, 10.9) == []
    [esc] = tick_condition(high, 11.0)
    assert esc.state == AlertState.ESCALATED and esc.emitted_at == 11.0
    assert esc.extra["escalated_at"] == 11.0 and high.escalated
    medium = new_condition("b", "y", RuleConfig(1.0, 1.0, Priority.MEDIUM), message="m",
                           escalate_after_s=10.0)
    _feed(medium, [1])
    assert tick_condition(medium, 100.0) == []


def test_a_raised_condition_is_announced_at_once_with_its_own_id() -> None:
    cond = new_condition("b", "stream_lost", RuleConfig(0.0, 0.0, Priority.HIGH),
                         message="old", kind=AlertKind.TECHNICAL, lookback_s=2.0)
    [a] = raise_condition(cond, 12.0, alert_id="b/stream_lost/7", message="lost")
    assert (a.id, a.onset, a.emitted_at, a.message) == ("b/stream_lost/7", 12.0, 12.0, "lost")
    assert a.extra["criterion_t"] == 12.0 and a.kind == AlertKind.TECHNICAL
    assert cond.run_start is None and cond.current == a
    assert raise_condition(cond, 13.0) == []  # already announced
    [e] = end_condition(cond, 20.0, message="back")
    assert (e.state, e.end, e.emitted_at, e.message) == (AlertState.ENDED, 20.0, 20.0, "back")
    [b] = raise_condition(cond, 30.0)
    assert b.id == "b/stream_lost/2" and b.message == "lost"


def test_end_condition_ends_a_latched_alarm_and_keeps_the_message() -> None:
    cond = new_condition("b", "x", RuleConfig(1.0, 1.0, Priority.HIGH, latching=True),
                         message="m")
    _feed(cond, [1, 0])
    [e] = end_condition(cond, 9.0)
    assert e.state == AlertState.ENDED and e.end == 9.0 and e.message == "m"
    assert not cond.latched and cond.current is None
    assert end_condition(cond, 10.0) == []


def test_announced_value_is_the_worst_so_far() -> None:
    low = new_condition("b", "x", RuleConfig(1.0, 3.0, Priority.LOW), message="m")
    [on] = _feed(low, [1, 1, 1])  # values 30, 31, 32: min 30
    assert on.value == 30.0
    high = new_condition("b", "y", RuleConfig(1.0, 3.0, Priority.LOW), message="m",
                         worst="max")
    [on] = _feed(high, [1, 1, 1])
    assert on.value == 32.0
