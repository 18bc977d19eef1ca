"""The alarm-condition state machine (IEC 60601-1-8 terms) shared by every detector.

A detector turns its signal into a per-sample criterion on a time grid: 1 met, 0 not met,
-1 unknown (the sensor it depends on is invalid or under a technical alarm: the detector
abstains). ``step_condition`` walks the runs of that criterion (a loop over runs, not samples):

- the criterion must hold for ``delay_s`` (the alarm-condition delay) before the condition is
  announced ACTIVE; the announced ``onset`` is when the criterion started and
  ``extra["criterion_t"]`` the data time at which the delay was satisfied;
- when the criterion stops (0) the condition ENDS, unless it is latching and unacknowledged: then
  it stays announced (ACTIVE with ``end`` set, ``extra["latched"]``) until acknowledged;
- when the criterion becomes unknown (-1), a pending run is dropped and an announced,
  non-latching condition ends with ``extra["ended_by"] = "suppressed"`` (the technical alarm of
  the sensor is what shows from then on); a physiological alarm is never raised from unknown data;
- ``lookback_s`` (default 0) is for criteria computed over a trailing window that proves the
  signal already met the threshold that long before the first met sample: the announced onset is
  ``lookback_s`` before the run's first sample and the delay counts from there;
- ``acknowledge_condition`` silences an active alarm (ACKNOWLEDGED) or clears a latched one
  (ENDED); ``tick_condition`` escalates a high-priority alarm left unacknowledged for
  ``escalate_after_s`` (ESCALATED, once).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.types import Alert, AlertKind, AlertState, FloatArray, Priority

Criterion = npt.NDArray[np.int8]  # 1 met, 0 not met, -1 unknown


@dataclass(slots=True)
class ConditionState:
    bed: str
    code: str
    kind: AlertKind
    rule: RuleConfig
    channels: tuple[str, ...]
    message: str
    worst: Literal["min", "max"]
    escalate_after_s: float
    lookback_s: float = 0.0
    id_prefix: str = ""  # alarm ids are f"{id_prefix}/{count}" (default f"{bed}/{code}")
    run_start: float | None = None
    off_start: float | None = None  # start of the unmet run an announced condition holds over
    run_value: float | None = None
    current: Alert | None = None  # last announced transition while the condition is announced
    acknowledged: bool = False
    escalated: bool = False
    latched: bool = False
    count: int = 0  # announcements so far
    extra: dict[str, Any] = field(default_factory=dict)


def new_condition(
    bed: str,
    code: str,
    rule: RuleConfig,
    *,
    message: str,
    channels: tuple[str, ...] = (),
    worst: Literal["min", "max"] = "min",
    kind: AlertKind = AlertKind.PHYSIOLOGICAL,
    escalate_after_s: float = 60.0,
    lookback_s: float = 0.0,
    id_prefix: str = "",
) -> ConditionState:
    return ConditionState(
        bed=bed, code=code, kind=kind, rule=rule, channels=channels, message=message,
        worst=worst, escalate_after_s=escalate_after_s, lookback_s=lookback_s,
        id_prefix=id_prefix or f"{bed}/{code}",
    )


def _worse(state: ConditionState, values: FloatArray) -> None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return
    v = float(finite.min() if state.worst == "min" else finite.max())
    if state.run_value is None:
        state.run_value = v
    else:
        state.run_value = min(state.run_value, v) if state.worst == "min" else max(
            state.run_value, v)


def _emit(state: ConditionState, alert: Alert, out: list[Alert]) -> None:
    out.append(alert)
    state.current = None if alert.state == AlertState.ENDED else alert


def _end(state: ConditionState, t: float, t_emit: float, out: list[Alert], **extra: Any) -> None:
    """The criterion stopped (or became unknown) at ``t``."""
    cur = state.current
    state.run_start, state.run_value = None, None
    if cur is None or state.latched:
        return
    if state.rule.latching and not state.acknowledged and not extra:
        state.latched = True
        _emit(state, replace(cur, state=AlertState.ACTIVE, end=t, emitted_at=t_emit,
                             extra={**cur.extra, "latched": True}), out)
        return
    _emit(state, replace(cur, state=AlertState.ENDED, end=t, emitted_at=t_emit,
                         extra={**cur.extra, **extra}), out)


def _announce(state: ConditionState, criterion_t: float, t_emit: float, out: list[Alert],
              alert_id: str | None = None) -> None:
    assert state.run_start is not None
    state.count += 1
    state.acknowledged = state.escalated = state.latched = False
    state.off_start = None
    _emit(state, Alert(
        bed=state.bed, id=alert_id or f"{state.id_prefix}/{state.count}", code=state.code,
        kind=state.kind, priority=state.rule.priority, state=AlertState.ACTIVE,
        onset=state.run_start - state.lookback_s, end=None, value=state.run_value,
        message=state.message, channels=state.channels, delay_s=state.rule.delay_s,
        latching=state.rule.latching, emitted_at=t_emit,
        extra={"criterion_t": criterion_t, "announced_at": t_emit, **state.extra},
    ), out)


def raise_condition(state: ConditionState, t: float, *, alert_id: str | None = None,
                    message: str | None = None) -> list[Alert]:
    """Announce the condition now (a source fault, a failed bed: no criterion to wait for);
    nothing when it is already announced."""
    if state.current is not None:
        return []
    if message is not None:
        state.message = message
    out: list[Alert] = []
    state.run_start = t + state.lookback_s
    _announce(state, t, t, out, alert_id)
    state.run_start = None
    return out


def end_condition(state: ConditionState, t: float, *, message: str | None = None
                  ) -> list[Alert]:
    """End an announced condition at ``t`` (its source said so, or the stream ended), latched
    or not."""
    cur = state.current
    state.run_start = state.run_value = state.off_start = None
    state.latched = False
    if cur is None:
        return []
    out: list[Alert] = []
    _emit(state, replace(cur, state=AlertState.ENDED, end=t, emitted_at=t,
                         message=cur.message if message is None else message), out)
    return out


def step_condition(
    state: ConditionState,
    t: FloatArray,
    met: Criterion,
    values: FloatArray,
    *,
    dt: float,
    t_emit: float | None,
) -> list[Alert]:
    """Feed criterion samples at times ``t`` (each covering ``[t, t + dt)``); alerts emitted at
    engine time ``t_emit``, or (None) at the data time the transition happened: announced when
    the delay is met, ended ``hold_s`` after the criterion stopped."""
    out: list[Alert] = []
    if not state.rule.enabled or t.size == 0:
        return out
    hold = state.rule.hold_s
    cut = np.flatnonzero(np.diff(met)) + 1
    starts = np.concatenate([[0], cut])
    stops = np.concatenate([cut, [met.size]])
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        v = int(met[a])
        if v == 1:
            state.off_start = None
            if state.run_start is None:
                state.run_start = float(t[a])
            split = a
            if state.current is None or state.latched:
                held = t[a:b] + dt - state.run_start + state.lookback_s
                hit = np.flatnonzero(held >= state.rule.delay_s - 1e-9)
                if hit.size:
                    split = a + int(hit[0]) + 1
                    _worse(state, values[a:split])  # the value announced: worst so far
                    crit_t = float(t[split - 1] + dt)
                    at = crit_t if t_emit is None else t_emit
                    if state.current is not None:  # a new episode while the old one is latched
                        state.latched = False
                        _emit(state, replace(state.current, state=AlertState.ENDED,
                                             emitted_at=at), out)
                    _announce(state, crit_t, at, out)
            _worse(state, values[split:b])
        elif v == 0 and hold > 0 and state.current is not None and not state.latched:
            if state.off_start is None:
                state.off_start = float(t[a])
            if float(t[b - 1]) + dt - state.off_start >= hold - 1e-9:
                off = state.off_start
                _end(state, off, off + hold if t_emit is None else t_emit, out)
                state.off_start = None
        elif v == 0:
            _end(state, float(t[a]), float(t[a]) if t_emit is None else t_emit, out)
        else:
            if state.current is not None and not state.latched and not state.rule.latching:
                _end(state, float(t[a]), float(t[a]) if t_emit is None else t_emit, out,
                     ended_by="suppressed")
            state.run_start, state.run_value = None, None
    return out


def acknowledge_condition(state: ConditionState, t: float) -> list[Alert]:
    """An operator acknowledged this condition's alarm at engine time ``t``."""
    cur = state.current
    if cur is None or state.acknowledged:
        return []
    state.acknowledged = True
    if state.latched:
        state.latched = False
        state.current = None
        return [replace(cur, state=AlertState.ENDED, emitted_at=t,
                        extra={**cur.extra, "acknowledged_at": t})]
    ack = replace(cur, state=AlertState.ACKNOWLEDGED, emitted_at=t,
                  extra={**cur.extra, "acknowledged_at": t})
    state.current = ack
    return [ack]


def tick_condition(state: ConditionState, t: float) -> list[Alert]:
    """Escalate an announced high-priority alarm unacknowledged for ``escalate_after_s``."""
    cur = state.current
    if (cur is None or state.acknowledged or state.escalated
            or cur.priority != Priority.HIGH):
        return []
    first = float(cur.extra.get("announced_at", cur.emitted_at))
    if t - first < state.escalate_after_s:
        return []
    state.escalated = True
    esc = replace(cur, state=AlertState.ESCALATED, emitted_at=t,
                  extra={**cur.extra, "escalated_at": t})
    state.current = esc
    return [esc]
