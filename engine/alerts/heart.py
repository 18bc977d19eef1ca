"""Cardiac detectors: bradycardia, tachycardia, asystole and atrial fibrillation.

Heart rate per second comes from the best usable source that second: beats detected in ECG
(``beats.ECG``), else beats in PPG, else a heart-rate channel. From beats, the rate at the end of
second s is 60 / mean of the last four RR intervals (only while the last beat is < 4 s old).
Asystole is "no beat for >= threshold seconds" on a beat source that stayed usable the whole
pause (an ECG lead-off is a technical alarm, never an asystole). AF uses the last 64 RR
intervals of a beat source: irregularity = RMSSD / mean RR (>= 0.1 by default; the 3 largest
successive differences are left out, so one abrupt rate step, e.g. 150 -> 62 bpm, or an isolated
ectopic beat does not read as irregularity, while AF's differences are all large) together with a
turning-point ratio in the random range (0.54-0.80), which rejects the slow, regular cyclic
variation of sleep apnea. Once the AF alarm is announced it holds with hysteresis (score >= 0.75 x
threshold, turning-point ratio 0.45-0.85): over 63 differences the ratio of a truly random series
has a standard deviation of ~0.05 around 2/3, so a fixed 0.54 bound cut one episode into several
alarms. A heart-rate channel gives no RR intervals, so no AF or asystole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sleepstream.engine.alerts import beats as beat_mod
from sleepstream.engine.alerts.condition import ConditionState, new_condition, step_condition
from sleepstream.engine.alerts.config import AlertConfig
from sleepstream.engine.alerts.series import tri
from sleepstream.engine.types import Alert, BoolArray, FloatArray

RR_WINDOW = 64
MAX_BEAT_AGE_S = 4.0
TURNS_ENTER = (0.54, 0.80)  # turning-point ratio range that starts an AF criterion
TURNS_HOLD = (0.45, 0.85)  # ... and that keeps an announced AF alarm
TRIM_DIFFS = 3  # largest successive differences left out of the RMSSD (a rate step, an ectopic)
HOLD_FRACTION = 0.75  # an announced AF alarm holds while score >= this x threshold


@dataclass(slots=True)
class BeatTrack:
    """Recent beats of one beat source, in a fixed ring (oldest first, NaN where empty)."""

    peaks: beat_mod.PeakState | None
    params: beat_mod.PeakParams
    times: FloatArray  # (RR_WINDOW + 1,)
    usable_since: float | None = None  # start of the current fully-usable stretch


@dataclass(slots=True)
class HeartState:
    tracks: dict[str, BeatTrack]  # by channel name, ECG channels first
    brady: ConditionState
    tachy: ConditionState
    asystole: ConditionState
    af: ConditionState


def new_state(bed: str, config: AlertConfig) -> HeartState:
    esc = config.escalate_after_s
    return HeartState(
        tracks={},
        brady=new_condition(bed, "bradycardia", config.bradycardia, escalate_after_s=esc,
                            message=f"heart rate below {config.bradycardia.threshold:g} bpm"),
        tachy=new_condition(bed, "tachycardia", config.tachycardia, worst="max",
                            escalate_after_s=esc,
                            message=f"heart rate above {config.tachycardia.threshold:g} bpm"),
        asystole=new_condition(bed, "asystole", config.asystole, worst="max",
                               escalate_after_s=esc,
                               message=f"no heartbeat for {config.asystole.threshold:g} s"),
        af=new_condition(bed, "af", config.af, worst="max", escalate_after_s=esc,
                         message="irregular RR intervals suggesting atrial fibrillation"),
    )


def feed_beats(
    track: BeatTrack, fs: float, t0: float, data: FloatArray, valid: BoolArray, t_end: float
) -> None:
    """Run the beat detector of one channel over a chunk and remember the beats."""
    if track.peaks is None or abs(track.peaks.fs - fs) > 1e-9:
        track.peaks = beat_mod.new_state(track.params, fs, t0)
    new = beat_mod.step(track.peaks, data.astype(np.float32), valid)
    if new.size:
        track.times = np.concatenate([track.times, new])[-track.times.size :]
    if valid.size and valid.all():
        if track.usable_since is None:
            track.usable_since = t0 + track.params.learn_s
    else:
        track.usable_since = None


def _beat_series(
    track: BeatTrack, ends: FloatArray, holding: bool = False
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per second ending at ``ends``: (heart rate, seconds since the last beat, AF score); NaN
    where the source cannot tell. The score is 0 when the turning-point ratio is outside the
    random range (the wider hold range while an AF alarm is ``holding``)."""
    n = ends.size
    hr, gap, score = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    if track.usable_since is None:
        return hr, gap, score
    ok = ends >= track.usable_since + 1.0
    bt = track.times[np.isfinite(track.times)]
    k = np.searchsorted(bt, ends, side="right") - 1  # last beat before each end
    has = ok & (k >= 0)
    prior = bt[np.maximum(k, 0)] if bt.size else np.zeros(n)
    last = np.where(k >= 0, prior, track.usable_since)
    gap[ok] = ends[ok] - np.maximum(last[ok], track.usable_since)
    rr = np.diff(bt)
    if rr.size >= 4:
        c = np.concatenate([[0.0], np.cumsum(rr)])
        j = np.clip(k, 4, rr.size)  # RR index end (exclusive)
        mean4 = (c[j] - c[j - 4]) / 4.0
        fresh = has & (k >= 4) & (gap < MAX_BEAT_AGE_S)
        hr[fresh] = 60.0 / mean4[fresh]
    if rr.size >= RR_WINDOW // 2:
        d = np.diff(rr)
        big = np.sort(np.abs(d))[: max(d.size - TRIM_DIFFS, 1)]  # drop the largest few
        rmssd = np.sqrt(np.mean(big * big)) if d.size else 0.0
        turns = ((d[:-1] * d[1:]) < 0).mean() if d.size > 1 else 0.0
        lo, hi = TURNS_HOLD if holding else TURNS_ENTER
        irregular = lo <= turns <= hi
        s = rmssd / rr.mean() if irregular else 0.0
        score[has & (gap < MAX_BEAT_AGE_S)] = s
    return hr, gap, score


def step(
    state: HeartState,
    t: FloatArray,
    hr_channel: FloatArray,
    hr_names: tuple[str, ...],
    t_emit: float,
) -> tuple[list[Alert], FloatArray]:
    """Evaluate the cardiac criteria for seconds ``t`` once beat tracks were fed this block.
    ``hr_channel`` (n,) is the per-second heart-rate channel (NaN where unusable). Returns the
    alerts and the per-second heart rate used (NaN where none)."""
    ends = t + 1.0
    hr, gap, score = np.full(t.size, np.nan), np.full(t.size, np.nan), np.full(t.size, np.nan)
    src = np.full(t.size, "", dtype=object)
    holding = state.af.current is not None and not state.af.latched
    for name, track in state.tracks.items():
        h, g, s = _beat_series(track, ends, holding)
        take = np.isnan(gap) & ~np.isnan(g)
        hr = np.where(take, h, hr)
        gap = np.where(take, g, gap)
        score = np.where(take, s, score)
        src[take] = name
    fill = np.isnan(hr) & np.isnan(gap) & ~np.isnan(hr_channel)
    hr = np.where(fill, hr_channel, hr)
    used = tuple(sorted({str(v) for v in src if v})) or (hr_names if fill.any() else ())
    out: list[Alert] = []
    for cond in (state.brady, state.tachy, state.asystole, state.af):
        cond.channels = used or cond.channels
    b = state.brady.rule.threshold
    out += step_condition(state.brady, t, tri(np.nan_to_num(hr, nan=b) < b, ~np.isnan(hr)), hr,
                          dt=1.0, t_emit=t_emit)
    c = state.tachy.rule.threshold
    out += step_condition(state.tachy, t, tri(np.nan_to_num(hr, nan=c) > c, ~np.isnan(hr)), hr,
                          dt=1.0, t_emit=t_emit)
    a = state.asystole.rule.threshold
    out += step_condition(state.asystole, t, tri(np.nan_to_num(gap) >= a, ~np.isnan(gap)), gap,
                          dt=1.0, t_emit=t_emit)
    f = state.af.rule.threshold * (HOLD_FRACTION if holding else 1.0)
    out += step_condition(state.af, t, tri(np.nan_to_num(score) >= f, ~np.isnan(score)), score,
                          dt=1.0, t_emit=t_emit)
    return out, hr


def new_track(modality: str) -> BeatTrack:
    params = beat_mod.ECG if modality == "ecg" else beat_mod.PPG
    return BeatTrack(peaks=None, params=params, times=np.full(RR_WINDOW + 1, np.nan))
