"""SpO2 detectors: desaturation (3 % and 4 % below the pre-event baseline), hypoxemia (< 90 %,
< 88 % sustained) and the running oxygen desaturation index (ODI).

Works on the 1-Hz per-second SpO2 series (NaN where the probe is off or under a technical
alarm). The pre-event baseline at second t is the 90th percentile of the valid SpO2 in
``[t - baseline_s, t)`` (at least half of it valid, else unknown): a high percentile keeps the
baseline at the pre-event level while a dip of up to ~10 % of the window is in progress. A
desaturation is the criterion ``SpO2 <= baseline - drop`` held for the rule's delay (10 s).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sleepstream.engine.alerts.condition import ConditionState, new_condition, step_condition
from sleepstream.engine.alerts.config import AlertConfig
from sleepstream.engine.alerts.series import tri, window_percentile
from sleepstream.engine.types import Alert, FloatArray


@dataclass(slots=True)
class SpO2State:
    history: FloatArray  # (baseline_s,) last seconds of SpO2 before the next chunk, NaN invalid
    desat3: ConditionState
    desat4: ConditionState
    hyp90: ConditionState
    hyp88: ConditionState
    valid_s: float = 0.0  # seconds of valid SpO2 seen (ODI denominator)


def new_state(bed: str, config: AlertConfig, channel: str = "SpO2") -> SpO2State:
    ch = (channel,)
    esc = config.escalate_after_s
    return SpO2State(
        history=np.full(int(config.baseline_s), np.nan),
        desat3=new_condition(bed, "desat3", config.desat3, channels=ch, escalate_after_s=esc,
                             message="SpO2 desaturation >= 3 % from baseline"),
        desat4=new_condition(bed, "desat4", config.desat4, channels=ch, escalate_after_s=esc,
                             message="SpO2 desaturation >= 4 % from baseline"),
        hyp90=new_condition(bed, "hypoxemia90", config.hypoxemia90, channels=ch,
                            escalate_after_s=esc,
                            message=f"SpO2 below {config.hypoxemia90.threshold:g} %"),
        hyp88=new_condition(bed, "hypoxemia88", config.hypoxemia88, channels=ch,
                            escalate_after_s=esc,
                            message=f"SpO2 below {config.hypoxemia88.threshold:g} %"),
    )


def baseline(history: FloatArray, x: FloatArray) -> FloatArray:
    """(n,) pre-event baseline for each second of ``x`` given the ``history`` before it."""
    w = history.size
    both = np.concatenate([history, x])
    view = np.lib.stride_tricks.sliding_window_view(both[:-1], w)  # (n, w): [t - w, t)
    return window_percentile(view, 90.0, w // 2)


def step(state: SpO2State, t: FloatArray, spo2: FloatArray, t_emit: float) -> list[Alert]:
    """Feed per-second SpO2 ``spo2`` at seconds ``t``; returns the alert transitions."""
    base = baseline(state.history, spo2)
    known = ~np.isnan(spo2)
    base_known = known & ~np.isnan(base)
    drop = np.where(base_known, base - spo2, np.nan)
    out: list[Alert] = []
    for cond in (state.desat3, state.desat4):
        met = tri(np.nan_to_num(drop) >= cond.rule.threshold, base_known)
        out += step_condition(cond, t, met, spo2, dt=1.0, t_emit=t_emit)
    for cond in (state.hyp90, state.hyp88):
        met = tri(np.nan_to_num(spo2, nan=100.0) < cond.rule.threshold, known)
        out += step_condition(cond, t, met, spo2, dt=1.0, t_emit=t_emit)
    w = state.history.size
    state.history = np.concatenate([state.history, spo2])[-w:]
    state.valid_s += float(known.sum())
    return out


def odi(state: SpO2State, drop: int = 3) -> float | None:
    """Desaturations per hour of valid SpO2 so far (None before 10 minutes of valid data)."""
    if state.valid_s < 600:
        return None
    cond = state.desat3 if drop == 3 else state.desat4
    return cond.count / (state.valid_s / 3600.0)
