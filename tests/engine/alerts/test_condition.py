"""The alarm-condition state machine: delay, latching, acknowledgement, escalation, abstention."""

from __future__ import annotations

import itertools

import numpy as np

from sleepstream.engine.alerts.condition import (
    acknowledge_condition,
    new_condition,
    step_condition,
    tick_condition,
)
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.types import AlertState, Priority


def _run(cond, met, t0=0.0):
    met = np.asarray(met, dtype=np.int8)
    t = t0 + np.arange(met.size, dtype=float)
    out = []
    for i in range(met.size):  # one block per second, as the pipeline delivers them
        out += step_condition(cond, t[i : i + 1], met[i : i + 1], np.full(1, 50.0), dt=1.0,
                              t_emit=t[i] + 1)
    return out


def test_delay_then_end():
    cond = new_condition("b", "x", RuleConfig(1.0, 5.0, Priority.MEDIUM), message="m")
    out = _run(cond, [0, 1, 1, 1, 1, 1, 1, 1, 0, 0])
    assert [a.state for a in out] == [AlertState.ACTIVE, AlertState.ENDED]
    assert out[0].onset == 1.0 and out[0].emitted_at == 6.0 and out[0].extra["criterion_t"] == 6.0
    assert out[1].end == 8.0


def test_short_run_never_announced():
    cond = new_condition("b", "x", RuleConfig(1.0, 5.0, Priority.MEDIUM), message="m")
    assert _run(cond, [1, 1, 1, 1, 0, 1, 1, 1, 1, 0]) == []


def test_unknown_drops_pending_run_and_never_alarms():
    cond = new_condition("b", "x", RuleConfig(1.0, 3.0, Priority.HIGH), message="m")
    assert _run(cond, [1, 1, -1, 1, 1, -1, -1, -1, -1]) == []


def test_suppression_ends_non_latching_alarm():
    cond = new_condition("b", "x", RuleConfig(1.0, 2.0, Priority.MEDIUM), message="m")
    out = _run(cond, [1, 1, 1, -1, -1])
    assert [a.state for a in out] == [AlertState.ACTIVE, AlertState.ENDED]
    assert out[1].extra["ended_by"] == "suppressed"


def test_latching_holds_until_acknowledged_and_escalates():
    cond = new_condition("b", "brady", RuleConfig(40.0, 2.0, Priority.HIGH, latching=True),
                         message="m", escalate_after_s=10.0)
    out = _run(cond, [1, 1, 1, 0, 0, 0])
    assert [a.state for a in out] == [AlertState.ACTIVE, AlertState.ACTIVE]
    assert out[1].extra["latched"] and out[1].end == 3.0
    assert tick_condition(cond, 5.0) == []
    esc = tick_condition(cond, 12.0)
    assert [a.state for a in esc] == [AlertState.ESCALATED]
    assert tick_condition(cond, 20.0) == []  # once
    ack = acknowledge_condition(cond, 30.0)
    assert [a.state for a in ack] == [AlertState.ENDED]
    assert cond.current is None


def test_acknowledge_active_then_end():
    cond = new_condition("b", "x", RuleConfig(1.0, 1.0, Priority.HIGH), message="m",
                         escalate_after_s=5.0)
    out = _run(cond, [1, 1])
    ack = acknowledge_condition(cond, 2.5)
    assert [a.state for a in ack] == [AlertState.ACKNOWLEDGED] and ack[0].id == out[0].id
    assert tick_condition(cond, 100.0) == []  # acknowledged: no escalation
    end = _run(cond, [0], t0=3.0)
    assert [a.state for a in end] == [AlertState.ENDED]


def test_chunked_equals_one_shot():
    rng = np.random.default_rng(1)
    met = np.repeat(rng.integers(-1, 2, 60), rng.integers(1, 15, 60)).astype(np.int8)
    t = np.arange(met.size, dtype=float)
    vals = rng.normal(50, 5, met.size)

    def run(cuts):
        cond = new_condition("b", "x", RuleConfig(1.0, 4.0, Priority.LOW), message="m")
        out = []
        for a, b in itertools.pairwise(cuts):
            out += step_condition(cond, t[a:b], met[a:b], vals[a:b], dt=1.0, t_emit=0.0)
        return [(x.state, x.onset, x.end, x.value) for x in out]

    cuts = sorted({0, met.size, *rng.integers(1, met.size, 30).tolist()})
    assert run([0, met.size]) == run(cuts)
