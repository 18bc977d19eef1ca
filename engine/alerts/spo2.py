"""SpO2 detectors: scored desaturations (3 % and 4 % below the pre-event baseline), hypoxemia
alarms (< 90 % medium, < 88 % high) and the running oxygen desaturation index (ODI).

Works on the 1-Hz per-second SpO2 series (NaN where the probe is off or under a technical
alarm). The pre-event baseline at second t is the 90th percentile of the valid SpO2 in
``[t - baseline_s, t)`` (at least half of it valid, else unknown): a high percentile keeps the
baseline at the pre-event level while a dip of up to ~10 % of the window is in progress. A
desaturation is the criterion ``SpO2 <= baseline - drop`` held for the rule's delay (3 s); it is
a scored event (``events.scored``), emitted when it ends, never an alarm.

A hypoxemia alarm integrates, in the manner of Nellcor's SatSeconds: an episode starts at the
first valid reading below the limit and collects the valid seconds below it and the area below
it (% x s); invalid seconds neither count nor break the episode, a valid reading at or above the
limit ends it. The alarm is announced once the episode has ``delay_s`` valid seconds below the
limit, or earlier once its area reaches ``satseconds`` (a deep fall alarms within seconds, a
brief shallow dip never); its onset is the episode's start. Once announced it ends only after
``hold_s`` seconds of valid readings at or above the limit, so the cyclic dips of one apnea
cluster are one alarm, and it is suppressed after ``hold_s`` of invalid readings (the technical
alarm is what shows then).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sleepstream.engine.alerts.condition import (
    ConditionState,
    Criterion,
    new_condition,
    step_condition,
)
from sleepstream.engine.alerts.config import AlertConfig
from sleepstream.engine.alerts.series import tri, window_percentile
from sleepstream.engine.types import Alert, AlertState, FloatArray


@dataclass(slots=True)
class IntegratorState:
    """One hypoxemia alarm's episode: valid seconds and area below the limit so far."""

    cond: ConditionState
    onset: float | None = None  # the episode's first reading below the limit
    held: float = 0.0  # valid seconds below the limit in the episode
    area: float = 0.0  # % x s below the limit in the episode
    on: bool = False  # the alarm criterion is met
    good: int = 0  # valid seconds at or above the limit since the last one below it
    unknown: int = 0  # consecutive invalid seconds
    good_start: float = 0.0  # the first of the ``good`` seconds
    unknown_start: float = 0.0  # the first of the ``unknown`` seconds


@dataclass(slots=True)
class SpO2State:
    history: FloatArray  # (baseline_s,) last seconds of SpO2 before the next chunk, NaN invalid
    desat3: ConditionState
    desat4: ConditionState
    hyp90: IntegratorState
    hyp88: IntegratorState
    valid_s: float = 0.0  # seconds of valid SpO2 seen (ODI denominator)
    desat_onsets: list[float] = field(default_factory=list)  # desat3 detected in the last step


def new_state(bed: str, config: AlertConfig, channel: str = "SpO2") -> SpO2State:
    ch = (channel,)
    esc = config.escalate_after_s

    def integrator(code: str, rule_name: str) -> IntegratorState:
        rule = getattr(config, rule_name)
        return IntegratorState(new_condition(
            bed, code, rule, channels=ch, escalate_after_s=esc,
            message=f"SpO2 below {rule.threshold:g} %"))

    return SpO2State(
        history=np.full(int(config.baseline_s), np.nan),
        desat3=new_condition(bed, "desat3", config.desat3, channels=ch, escalate_after_s=esc,
                             message="SpO2 desaturation >= 3 % from baseline"),
        desat4=new_condition(bed, "desat4", config.desat4, channels=ch, escalate_after_s=esc,
                             message="SpO2 desaturation >= 4 % from baseline"),
        hyp90=integrator("hypoxemia90", "hypoxemia90"),
        hyp88=integrator("hypoxemia88", "hypoxemia88"),
    )


def baseline(history: FloatArray, x: FloatArray) -> FloatArray:
    """(n,) pre-event baseline for each second of ``x`` given the ``history`` before it."""
    w = history.size
    both = np.concatenate([history, x])
    view = np.lib.stride_tricks.sliding_window_view(both[:-1], w)  # (n, w): [t - w, t)
    return window_percentile(view, 90.0, w // 2)


def _reset(st: IntegratorState) -> None:
    st.onset, st.held, st.area, st.on = None, 0.0, 0.0, False


def integrate(
    st: IntegratorState, t: FloatArray, spo2: FloatArray
) -> tuple[Criterion, list[float], dict[float, float]]:
    """Per second: the alarm criterion (1 on, 0 off, -1 unknown); for seconds where it turns
    on, the episode onset to announce; for seconds where an announced episode's hold is
    over, {that second: the start of the stretch that ended it} (the first valid reading back
    at or above the limit, or the first invalid one), the alarm's ``end`` as every held
    condition gives it. A loop over seconds only while an episode is open."""
    rule = st.cond.rule
    limit = rule.threshold
    known = ~np.isnan(spo2)
    below = known & (np.nan_to_num(spo2, nan=100.0) < limit)
    out = np.where(known, np.int8(0), np.int8(-1)).astype(np.int8)
    onsets: list[float] = []
    ends: dict[float, float] = {}
    if st.onset is None and not below.any():
        return out, onsets, ends
    hold = max(rule.hold_s, 1.0)
    for i in range(t.size):
        if below[i]:
            if st.onset is None:
                st.onset = float(t[i])
            st.held += 1.0
            st.area += limit - float(spo2[i])
            st.good = st.unknown = 0
            if not st.on and (st.held >= rule.delay_s - 1e-9 or (
                    rule.satseconds > 0 and st.area >= rule.satseconds)):
                st.on = True
                onsets.append(st.onset)
        elif known[i]:
            if st.good == 0:
                st.good_start = float(t[i])
            st.good += 1
            st.unknown = 0
            if not st.on or st.good >= hold:
                if st.on:
                    ends[float(t[i])] = st.good_start
                _reset(st)
        else:
            if st.unknown == 0:
                st.unknown_start = float(t[i])
            st.unknown += 1
            if st.unknown >= hold:
                if st.on:
                    ends[float(t[i])] = st.unknown_start
                _reset(st)
        out[i] = 1 if st.on else (0 if known[i] else -1)
    return out, onsets, ends


def _hypoxemia(st: IntegratorState, t: FloatArray, spo2: FloatArray, t_emit: float
               ) -> list[Alert]:
    met, onsets, ends = integrate(st, t, spo2)
    cond = st.cond
    rule = cond.rule
    cond.rule = replace(rule, delay_s=0.0, hold_s=0.0)  # the integrator applied both
    try:
        alerts = step_condition(cond, t, met, spo2, dt=1.0, t_emit=t_emit)
    finally:
        cond.rule = rule
    out: list[Alert] = []
    episode: dict[str, float] = {}  # alarm id -> its episode's onset, announced this step
    for a in alerts:
        if a.state == AlertState.ACTIVE and a.end is None and onsets:
            episode[a.id] = onsets.pop(0)
        if a.end is not None and a.end in ends:  # ended by the hold at second ``a.end``
            a = replace(a, end=ends.pop(a.end))
            if cond.current is not None and cond.current.id == a.id:
                cond.current = a
        if a.id in episode:  # its announcement, and any later transition in the same block
            a = replace(a, onset=episode[a.id], delay_s=rule.delay_s,
                        extra={**a.extra, "satseconds": rule.satseconds})
            if cond.current is not None and cond.current.id == a.id:
                cond.current = a
        out.append(a)
    return out


def step(state: SpO2State, t: FloatArray, spo2: FloatArray, t_emit: float
         ) -> tuple[list[Alert], list[Alert]]:
    """Feed per-second SpO2 ``spo2`` at seconds ``t``; returns (hypoxemia alarm transitions,
    desaturation transitions). The desaturations that started this step are in
    ``state.desat_onsets``."""
    base = baseline(state.history, spo2)
    known = ~np.isnan(spo2)
    base_known = known & ~np.isnan(base)
    drop = np.where(base_known, base - spo2, np.nan)
    desats: list[Alert] = []
    for cond in (state.desat3, state.desat4):
        met = tri(np.nan_to_num(drop) >= cond.rule.threshold, base_known)
        desats += step_condition(cond, t, met, spo2, dt=1.0, t_emit=t_emit)
    state.desat_onsets = [a.onset for a in desats if a.code == "desat3"
                          and a.state == AlertState.ACTIVE and a.end is None]
    alarms: list[Alert] = []
    for st in (state.hyp90, state.hyp88):
        if st.cond.rule.enabled:
            alarms += _hypoxemia(st, t, spo2, t_emit)
    w = state.history.size
    state.history = np.concatenate([state.history, spo2])[-w:]
    state.valid_s += float(known.sum())
    return alarms, desats


def odi(state: SpO2State, drop: int = 3) -> float | None:
    """Desaturations per hour of valid SpO2 so far (None before 10 minutes of valid data)."""
    if state.valid_s < 600:
        return None
    cond = state.desat3 if drop == 3 else state.desat4
    return cond.count / (state.valid_s / 3600.0)
