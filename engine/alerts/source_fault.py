"""One technical alarm per source fault of a bed, whatever the number of channels and symptoms.

A source fault is data that stops arriving or arrives unusable. One fault shows several symptoms
on every channel it hits: a 5-s packet loss on a wearable is, per channel, the MQTT source's
``packet_loss`` (and ``stream_lost`` when it outlasts ``lost_after_s``) and the quality stage's
``signal_gap``. They are one alarm condition of the bed (IEC 60601-1-8: one condition, one
alarm), so they raise ONE technical alarm, code ``source_fault``:

- ``channels``: every affected channel that carries a signal (a sample counter never; a source
  event naming no channel means all of the bed's signal channels);
- ``extra["causes"]``: the symptoms seen (sorted codes), ``extra["details"]``: the first message
  of each; the message names the channels and the causes in words;
- priority: the highest of its causes (``PRIORITY``: a lost stream or broker leaves the bed
  unmonitored, high; packet loss and a sensor off, medium; a signal gap and one-off notices such
  as a clock jump or duplicate packets, low).

Symptoms are every ``SourceEvent`` and the quality stage's data-missing conditions
(``QUALITY_CAUSES``); the quality stage's sensor conditions (probe off, flatline, clipping, out
of range, implausible amplitude) stay one alarm per sensor: each has its own remedy.

Life cycle (engine time, on the data timeline): symptoms are collected as they come and announced
together at the bed's first tick (the end of a block, or the live clock's advance) ``DELAY_S``
after the earliest one's onset (the alarm-condition delay: the layers that see one loss report it
within that time, so the first announcement names every channel); while announced, a new channel
or a higher priority re-announces the same alarm ``DELAY_S`` after the symptom that brought it
began (same ``id``, ``extra["update"]``; a higher priority also clears an acknowledgement); the
alarm ends
``HOLD_S`` after its last symptom ended (a symptom back within it continues the same alarm) with
``end`` the time the last symptom ended. It is acknowledged and escalates like every alarm
(``alerts.condition``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from sleepstream.engine.alerts.condition import (
    ConditionState,
    end_condition,
    new_condition,
    raise_condition,
    tick_condition,
)
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.types import Alert, AlertKind, AlertState, Priority

CODE = "source_fault"
QUALITY_CAUSES = frozenset({"signal_gap", "nan"})  # quality conditions that are source symptoms
DELAY_S = 2.0  # condition delay, as the quality stage's signal_gap: symptoms gather meanwhile
HOLD_S = 2.0  # quiet time before the alarm ends: one loss seen by several layers stays one alarm
PRIORITY: dict[str, Priority] = {
    "stream_lost": Priority.HIGH,
    "broker_lost": Priority.HIGH,
    "packet_loss": Priority.MEDIUM,
    "sensor_off": Priority.MEDIUM,
    "signal_gap": Priority.LOW,
    "nan": Priority.LOW,
    "clock_jump": Priority.LOW,
    "duplicate_packets": Priority.LOW,
    "reordered_packets": Priority.LOW,
}
_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2}


@dataclass(slots=True)
class SourceFaultState:
    condition: ConditionState  # the bed's one source-fault alarm machine
    hold_s: float = HOLD_S
    delay_s: float = DELAY_S
    on: dict[tuple[str, str], float] = field(default_factory=dict)  # (cause, channel) -> onset
    onset: float | None = None  # earliest onset of the current episode (None: no episode)
    quiet_since: float | None = None  # every symptom ended here
    causes: dict[str, str] = field(default_factory=dict)  # cause -> its first message
    channels: list[str] = field(default_factory=list)  # affected channels, first seen first
    priority: Priority = Priority.LOW
    dirty: bool = False  # something new to announce
    pending_since: float = 0.0  # onset of the earliest symptom not yet announced

    @property
    def faulted(self) -> frozenset[str]:
        """Channels with a symptom on now (their detectors abstain)."""
        return frozenset(ch for _, ch in self.on)


def new_state(bed: str, *, escalate_after_s: float = 60.0, hold_s: float = HOLD_S,
              delay_s: float = DELAY_S) -> SourceFaultState:
    cond = new_condition(bed, CODE, RuleConfig(0.0, delay_s, Priority.LOW), message="",
                         kind=AlertKind.TECHNICAL, escalate_after_s=escalate_after_s)
    return SourceFaultState(cond, hold_s=hold_s, delay_s=delay_s)


def _mark(state: SourceFaultState, t: float) -> None:
    state.pending_since = min(state.pending_since, t) if state.dirty else t
    state.dirty = True


def symptom(state: SourceFaultState, cause: str, channels: tuple[str, ...], t: float,
            active: bool, message: str) -> None:
    """A symptom on ``channels`` started (``active``) or ended at engine time ``t``."""
    if not active:
        for ch in channels or ("",):
            state.on.pop((cause, ch), None)
        if state.onset is not None and not state.on:
            state.quiet_since = max(t, state.quiet_since or t)
        return
    state.onset = t if state.onset is None else min(state.onset, t)
    state.quiet_since = None
    state.causes.setdefault(cause, message)
    prio = PRIORITY.get(cause, Priority.MEDIUM)
    if _RANK[prio] > _RANK[state.priority] or state.condition.current is None:
        _mark(state, t)
        state.priority = prio if _RANK[prio] > _RANK[state.priority] else state.priority
    for ch in channels or ("",):
        state.on.setdefault((cause, ch), t)
        if ch and ch not in state.channels:
            state.channels.append(ch)
            _mark(state, t)


def symptom_of(state: SourceFaultState, alert: Alert) -> None:
    """A quality-stage transition of a data-missing condition, as a symptom."""
    if alert.state == AlertState.ACTIVE and alert.end is None:
        symptom(state, alert.code, alert.channels, alert.onset, True, alert.message)
    elif alert.state == AlertState.ENDED:
        symptom(state, alert.code, alert.channels,
                alert.onset if alert.end is None else alert.end, False, alert.message)


def tick(state: SourceFaultState, t: float) -> list[Alert]:
    """Announce what is new, end a quiet episode after its hold, escalate: at engine time t."""
    out: list[Alert] = []
    if state.dirty and state.onset is not None and t - state.pending_since >= (
            state.delay_s - 1e-9):
        out += _announce(state, t)
    quiet = state.quiet_since
    if quiet is not None and not state.on and t - quiet >= state.hold_s - 1e-9:
        return out + _end(state, quiet, t)
    return out + tick_condition(state.condition, t)


def finish(state: SourceFaultState, t_end: float) -> list[Alert]:
    """The stream ended: announce what is pending and end the episode now."""
    if state.onset is None:
        return []
    out = _announce(state, t_end) if state.dirty else []
    quiet = state.quiet_since if state.quiet_since is not None and not state.on else t_end
    return out + _end(state, quiet, t_end)


def _message(state: SourceFaultState) -> str:
    where = ", ".join(state.channels) or "the bed's source"
    why = ", ".join(c.replace("_", " ") for c in sorted(state.causes))
    return f"no usable data from {where} ({why})"


def _announce(state: SourceFaultState, t: float) -> list[Alert]:
    state.dirty = False
    cond = state.condition
    assert state.onset is not None
    cond.channels = tuple(state.channels)
    cond.message = _message(state)
    cond.rule = RuleConfig(0.0, 0.0, state.priority)
    extra = {"causes": sorted(state.causes), "details": list(state.causes.values())}
    cur = cond.current
    if cur is None:
        cond.extra = extra
        [first] = raise_condition(cond, state.onset)
        alert = replace(first, emitted_at=t, extra={**first.extra, "criterion_t": t,
                                                    "announced_at": t})
    else:
        rose = _RANK[state.priority] > _RANK[cur.priority]
        if rose:
            cond.acknowledged = cond.escalated = False
        alert = replace(cur, channels=cond.channels, message=cond.message,
                        priority=state.priority, emitted_at=max(t, cur.emitted_at),
                        state=AlertState.ACTIVE if rose else cur.state,
                        extra={**cur.extra, **extra})
        cond.current = alert
        return [replace(alert, extra={**alert.extra, "update": True})]
    cond.current = alert
    return [alert]


def _end(state: SourceFaultState, end: float, t: float) -> list[Alert]:
    cond = state.condition
    t = max(t, cond.current.emitted_at) if cond.current is not None else t
    out = [replace(a, emitted_at=t, extra={**a.extra, "causes": sorted(state.causes),
                                           "details": list(state.causes.values())})
           for a in end_condition(cond, end)]
    state.on.clear()
    state.onset = state.quiet_since = None
    state.causes.clear()
    state.channels.clear()
    state.priority = Priority.LOW
    state.dirty = False
    return out
