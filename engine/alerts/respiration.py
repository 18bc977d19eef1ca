"""Respiratory events from airflow: apnea, hypopnea and the running apnea-hypopnea index (AHI).

Airflow (nasal pressure or thermistor) is band-passed to the breathing band (0.05-1 Hz, state
carried across chunks) and its amplitude per second is sqrt(2) x the RMS over the trailing
``ENVELOPE_S`` seconds. The pre-event baseline at second t is the 75th percentile of that
amplitude over ``[t - baseline_s, t)`` (at least half valid). Then (AASM):

- apnea: amplitude <= (1 - 0.9) x baseline held for 10 s: an alarm condition (ACTIVE / ENDED).
  An apnea-level amplitude over the trailing ``ENVELOPE_S`` seconds implies that every second of
  that window was itself at most 2 x 0.1 of baseline (one normal second alone would lift the
  window to ~0.5), so the apnea's onset is dated to the start of the first such window and the
  10 s count from there (``lookback_s = ENVELOPE_S - 1``). Without it every apnea was announced
  ~3 s late and dated ~3-5 s after its true start, and 12-s apneas were missed;
- hypopnea: amplitude <= (1 - 0.3) x baseline held for 10 s (not an apnea), confirmed when a
  >= 3 % desaturation starts between its onset and ``hypopnea_desat_window_s`` after its end,
  or an arousal is reported in that span (``note_arousal``). A desaturation is only reported
  once its own delay has passed, so a candidate waits that long past its window. It is emitted
  once confirmed, as an ENDED event with its onset and end;
- AHI: (apneas + confirmed hypopneas) per hour of valid airflow.

A second in which the airflow trace does not change at all (every sample identical) is unknown,
not zero flow: a disconnected cannula or a frozen stream gives such a trace and the quality stage
only calls it a flatline after 30 s, while real breathing-free airflow still carries sensor noise.
Without this a frozen trace was announced as an apnea ~20 s before its technical alarm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

from sleepstream.engine.alerts.condition import ConditionState, new_condition, step_condition
from sleepstream.engine.alerts.config import AlertConfig
from sleepstream.engine.alerts.series import tri, window_percentile
from sleepstream.engine.types import Alert, AlertState, BoolArray, FloatArray

ENVELOPE_S = 4


@dataclass(slots=True)
class RespState:
    bed: str
    channel: str
    fs: float | None
    sos: FloatArray | None
    zi: FloatArray | None
    power: FloatArray  # (ENVELOPE_S - 1,) last per-second mean squares (NaN invalid)
    history: FloatArray  # (baseline_s,) last per-second amplitudes
    apnea: ConditionState
    hypopnea: ConditionState  # internal: announces candidates, confirmed separately
    desat_window_s: float
    candidates: list[tuple[float, float | None]] = field(default_factory=list)  # (onset, end)
    desat_onsets: list[float] = field(default_factory=list)
    arousals: list[float] = field(default_factory=list)
    hypopneas: int = 0
    valid_s: float = 0.0
    mark_delay_s: float = 0.0  # a desaturation is reported this long after it starts


def new_state(bed: str, config: AlertConfig, channel: str) -> RespState:
    ch = (channel,)
    return RespState(
        bed=bed, channel=channel, fs=None, sos=None, zi=None,
        power=np.full(ENVELOPE_S - 1, np.nan), history=np.full(int(config.baseline_s), np.nan),
        apnea=new_condition(bed, "apnea", config.apnea, channels=ch,
                            escalate_after_s=config.escalate_after_s,
                            lookback_s=float(ENVELOPE_S - 1),
                            message="airflow down >= 90 % from baseline"),
        hypopnea=new_condition(bed, "hypopnea", config.hypopnea, channels=ch,
                               message="airflow down >= 30 % with desaturation"),
        desat_window_s=config.hypopnea_desat_window_s, mark_delay_s=config.desat3.delay_s,
    )


def amplitude(
    state: RespState, fs: float, data: FloatArray, valid: BoolArray, n: int
) -> FloatArray:
    """(n,) per-second breathing amplitude of a chunk of ``n`` whole seconds (NaN invalid)."""
    if state.sos is None or state.fs != fs:
        state.fs = fs
        state.sos = np.asarray(sps.butter(2, [0.05, min(1.0, 0.45 * fs)], btype="band", fs=fs,
                                          output="sos"))
        state.zi = np.zeros((state.sos.shape[0], 2))
    y, state.zi = sps.sosfilt(state.sos, np.where(valid, data, 0.0), zi=state.zi)
    per = round(fs)
    y = np.asarray(y)[: n * per].reshape(n, per)  # (n, samples per second)
    ok = np.asarray(valid)[: n * per].reshape(n, per).all(axis=1)
    raw = np.asarray(data, dtype=np.float64)[: n * per].reshape(n, per)  # (n, samples per s)
    ok &= raw.max(axis=1) > raw.min(axis=1)  # a frozen trace is a sensor fault, not an apnea
    ms = np.where(ok, (y * y).mean(axis=1), np.nan)
    both = np.concatenate([state.power, ms])
    view = np.lib.stride_tricks.sliding_window_view(both, ENVELOPE_S)  # (n, ENVELOPE_S)
    state.power = both[-(ENVELOPE_S - 1) :]
    return np.asarray(np.sqrt(2.0 * view.mean(axis=1)))


def _baseline(history: FloatArray, amp: FloatArray) -> FloatArray:
    w = history.size
    view = np.lib.stride_tricks.sliding_window_view(np.concatenate([history, amp])[:-1], w)
    return window_percentile(view, 75.0, w // 2)


def _confirm(state: RespState, t_now: float) -> list[Alert]:
    out: list[Alert] = []
    keep: list[tuple[float, float | None]] = []
    marks = state.desat_onsets + state.arousals
    for onset, end in state.candidates:
        horizon = (end if end is not None else t_now) + state.desat_window_s
        if end is not None and any(onset <= m <= horizon for m in marks):
            state.hypopneas += 1
            out.append(Alert(
                bed=state.bed, id=f"{state.bed}/hypopnea/{state.hypopneas}", code="hypopnea",
                kind=state.hypopnea.kind, priority=state.hypopnea.rule.priority,
                state=AlertState.ENDED, onset=onset,
                end=end, value=None, message=state.hypopnea.message,
                channels=(state.channel,), delay_s=state.hypopnea.rule.delay_s,
                emitted_at=t_now, extra={"event": True},
            ))
        elif end is None or t_now <= horizon + state.mark_delay_s:
            keep.append((onset, end))  # a desaturation starting by the horizon is still due
    state.candidates = keep[-8:]
    state.desat_onsets = [m for m in state.desat_onsets if m >= t_now - 300][-16:]
    state.arousals = [m for m in state.arousals if m >= t_now - 300][-16:]
    return out


def step(
    state: RespState, t: FloatArray, amp: FloatArray, desat_onsets: list[float], t_emit: float
) -> list[Alert]:
    """Evaluate apnea/hypopnea for seconds ``t`` with per-second amplitudes ``amp``."""
    base = _baseline(state.history, amp)
    known = ~np.isnan(amp) & ~np.isnan(base) & (np.nan_to_num(base) > 0)
    ratio = np.where(known, amp / np.where(known, base, 1.0), np.nan)
    drop = 1.0 - np.nan_to_num(ratio, nan=1.0)  # compared as a drop: 1 - 0.9 != 0.1 in binary
    apnea_met = drop >= state.apnea.rule.threshold
    out = step_condition(state.apnea, t, tri(apnea_met, known), ratio, dt=1.0, t_emit=t_emit)
    hyp_met = (drop >= state.hypopnea.rule.threshold) & ~apnea_met
    for a in step_condition(state.hypopnea, t, tri(hyp_met, known), ratio, dt=1.0,
                            t_emit=t_emit):
        if a.state == AlertState.ACTIVE and a.end is None:
            state.candidates.append((a.onset, None))
        elif a.state == AlertState.ENDED:
            state.candidates = [(o, a.end if o == a.onset else e) for o, e in state.candidates]
    state.desat_onsets += desat_onsets
    out += _confirm(state, t_emit)
    w = state.history.size
    state.history = np.concatenate([state.history, amp])[-w:]
    state.valid_s += float(known.sum())
    return out


def note_arousal(state: RespState, t: float) -> None:
    """An arousal was scored (by the model or an operator) at engine time ``t``."""
    state.arousals.append(t)


def ahi(state: RespState) -> float | None:
    """Apneas + confirmed hypopneas per hour of valid airflow (None before 10 minutes)."""
    if state.valid_s < 600:
        return None
    return (state.apnea.count + state.hypopneas) / (state.valid_s / 3600.0)
