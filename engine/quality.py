"""Signal-quality detectors: they set the valid mask and raise technical alarms.

Per channel and per block of native-rate samples, each detector marks the samples it finds bad:

- ``signal_gap``: samples the device or driver flagged invalid (EDF+D gaps, lost packets);
- ``nan``: NaN or infinite values the device said were valid;
- ``probe_off``: SpO2 at 0 (the oximeter reports no reading) — a special case of out-of-range;
- ``no_reading``: heart rate at 0 (no beat detected: leads or sensor off);
- ``out_of_range``: outside the channel's plausible range (``ChannelSpec.valid_min/max``);
- ``clipping``: runs at the device's physical limits (waveforms only);
- ``flatline``: runs of identical values longer than the modality's window;
- ``implausible_amplitude``: a biopotential (EEG, EOG, EMG, ECG) whose amplitude cannot be real
  in its declared unit (EEG sent in volts but declared µV: ~1e-5; or 1e6 µV). Per 2-s segment,
  the median absolute deviation of the valid samples, converted to µV by the unit
  (``AMPLITUDE_UV``), must lie in the modality's range; a segment's verdict marks the samples of
  the next one (causal and chunk-invariant), so the channel is invalid (not staged, its
  detectors abstain) and a technical alarm names it. A channel with no or an unknown unit is not
  judged; an exactly flat one is the flatline detector's.

A technical alarm condition starts at the first bad sample of a run, is announced once it has
lasted ``delay_s`` and ends after ``hold_s`` of good samples (hysteresis against chatter); it runs
on the same alarm-condition state machine as every other alarm (``alerts.condition``), so it can
be acknowledged and escalates like them.
Everything is streaming: state carries across blocks and a chunked run gives the same mask and
the same alarm transitions as a one-shot run.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from sleepstream.engine.alerts.condition import (
    ConditionState,
    end_condition,
    new_condition,
    step_condition,
)
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.types import (
    Alert,
    AlertKind,
    BoolArray,
    ChannelSpec,
    F32Array,
    FloatArray,
    Priority,
)

WAVEFORMS = frozenset({"eeg", "eog", "emg", "ecg", "resp", "ppg", "acc"})

# Flatline windows (s) per modality; 0 disables. Slow vital signs are legitimately constant for
# minutes, so their windows are long.
FLATLINE_S: dict[str, float] = {
    "eeg": 5.0, "eog": 5.0, "emg": 5.0, "ecg": 3.0, "resp": 30.0, "ppg": 5.0, "acc": 0.0,
    "spo2": 900.0, "hr": 600.0,
}


@dataclass(frozen=True, slots=True)
class ConditionSpec:
    code: str
    priority: Priority
    delay_s: float
    hold_s: float
    message: str
    lookback_s: float = 0.0  # the condition is seen this long after it began (dates the onset)


# Technical alarm conditions, in the order used to name the reason a sample is invalid.
CONDITIONS: dict[str, ConditionSpec] = {
    "signal_gap": ConditionSpec("signal_gap", Priority.LOW, 2.0, 2.0, "no samples from {ch}"),
    "nan": ConditionSpec("nan", Priority.LOW, 2.0, 2.0, "{ch} sends NaN values"),
    "probe_off": ConditionSpec(
        "probe_off", Priority.MEDIUM, 10.0, 5.0, "{ch} reads 0 %: check the sensor on the finger"
    ),
    "no_reading": ConditionSpec(
        "no_reading", Priority.MEDIUM, 10.0, 5.0, "{ch} reports no beat (sensor or leads off?)"
    ),
    "out_of_range": ConditionSpec(
        "out_of_range", Priority.LOW, 10.0, 5.0, "{ch} reads values no body produces"
    ),
    "clipping": ConditionSpec("clipping", Priority.LOW, 1.0, 2.0, "{ch} sits at its range limits"),
    "flatline": ConditionSpec(
        "flatline", Priority.MEDIUM, 0.0, 2.0, "{ch} does not move (leads off?)"),
    "implausible_amplitude": ConditionSpec(
        "implausible_amplitude", Priority.MEDIUM, 10.0, 5.0,
        "{ch}: its amplitude cannot be real in {unit} (wrong unit or scale?)"),
}

# Plausible robust amplitude (median absolute deviation over 2 s, in µV) per biopotential: real
# EEG is ~5-100 µV (artefacts a few hundred), EMG in deep sleep ~1 µV, ECG ~50-500 µV around its
# baseline; the bounds are one to two orders of magnitude outside that, so only a wrong unit or
# scale (a factor of 1e3 or 1e6) falls outside.
AMPLITUDE_UV: dict[str, tuple[float, float]] = {
    "eeg": (0.2, 2000.0), "eog": (0.2, 5000.0), "emg": (0.05, 5000.0), "ecg": (1.0, 20000.0),
}
TO_UV = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "nv": 1e-3, "mv": 1e3, "v": 1e6}
SEGMENT_S = 2.0


@dataclass(slots=True)
class ChannelQualityState:
    spec: ChannelSpec
    flat_run: int = 0  # length of the current run of identical values
    clip_run: int = 0
    last_value: float = float("nan")
    conditions: dict[str, ConditionState] = field(default_factory=dict)  # the alarm machines
    specs: dict[str, ConditionSpec] = field(default_factory=dict)  # this channel's conditions
    bad_samples: dict[str, int] = field(default_factory=dict)
    segment: list[F32Array] = field(default_factory=list)  # samples of the segment being filled
    implausible: bool = False  # verdict of the last complete segment

    @property
    def active(self) -> tuple[str, ...]:
        """Codes of the technical alarms announced on this channel (acknowledged ones too)."""
        return tuple(code for code, c in self.conditions.items() if c.current is not None)


def new_state(spec: ChannelSpec, bed: str = "") -> ChannelQualityState:
    specs = dict(CONDITIONS)
    # flatline: the modality's window is the condition delay; the onset is dated back to the
    # start of the run of repeats
    specs["flatline"] = replace(CONDITIONS["flatline"],
                                delay_s=FLATLINE_S.get(spec.modality or "", 0.0),
                                lookback_s=_flat_min(spec.fs) / spec.fs)
    state = ChannelQualityState(spec, specs=specs)
    _bind(state, bed)
    return state


def _bind(state: ChannelQualityState, bed: str) -> None:
    """One alarm-condition state machine (``alerts.condition``) per technical condition."""
    ch = state.spec.name
    state.conditions = {
        code: new_condition(
            bed, code, RuleConfig(0.0, cs.delay_s, cs.priority, hold_s=cs.hold_s),
            message=cs.message.format(ch=ch, unit=state.spec.unit), channels=(ch,),
            kind=AlertKind.TECHNICAL,
            lookback_s=cs.lookback_s, id_prefix=f"{bed}/{ch}/{code}")
        for code, cs in state.specs.items()
    }


def _run_lengths(same: BoolArray, carried: int) -> np.ndarray:
    """Length of the run of True ending at each index, continuing ``carried`` from before."""
    n = same.shape[0]
    idx = np.arange(1, n + 1)
    last_break = np.where(same, 0, idx)
    np.maximum.accumulate(last_break, out=last_break)
    runs = idx - last_break
    # Runs that never broke in this block continue the carried run.
    runs = np.where(last_break == 0, runs + carried, runs)
    return runs


def masks(
    state: ChannelQualityState, data: F32Array, valid: BoolArray
) -> dict[str, tuple[BoolArray, BoolArray]]:
    """Per condition, (alarm-condition mask, invalid-sample mask) of one block. They differ
    only for flatline, whose condition starts at the first repeated value."""
    spec = state.spec
    modality = spec.modality or ""
    none = np.zeros_like(valid)  # shared by every condition with no bad sample (read only)
    finite = np.isfinite(data)
    gap = ~valid
    nan = valid & ~finite
    ok = valid & finite
    x = np.where(ok, data, np.float32(0))
    oor = np.zeros_like(valid)
    if spec.valid_min is not None:
        oor |= ok & (x < spec.valid_min)
    if spec.valid_max is not None:
        oor |= ok & (x > spec.valid_max)
    probe_off = no_reading = none
    if modality in ("spo2", "hr"):
        zero = oor & (x <= 0.5)
        if modality == "spo2":
            probe_off = zero
        else:
            no_reading = zero
        oor &= ~zero
    out = {
        "signal_gap": gap, "nan": nan, "probe_off": probe_off, "no_reading": no_reading,
        "out_of_range": oor,
    }
    out["clipping"] = _clipping(state, x, ok) if modality in WAVEFORMS else none
    out["implausible_amplitude"] = _implausible(state, np.where(ok, data, np.nan))
    result = {code: (m, m) for code, m in out.items()}
    result["flatline"] = _flatline(state, x, ok)
    return result


def amplitude_range(spec: ChannelSpec) -> tuple[float, float] | None:
    """The plausible amplitude range in the channel's own unit, or None (not judged)."""
    uv = AMPLITUDE_UV.get(spec.modality or "")
    factor = TO_UV.get(spec.unit.strip().lower())
    if uv is None or factor is None:
        return None
    return uv[0] / factor, uv[1] / factor


def _implausible(state: ChannelQualityState, x: F32Array) -> BoolArray:
    """Samples judged by the previous complete segment's amplitude (NaN: not a valid sample).
    Vectorised over the block: every segment completed here is judged in one call."""
    bounds = amplitude_range(state.spec)
    if bounds is None:
        return np.zeros(x.shape[0], dtype=bool)
    seg = max(2, round(SEGMENT_S * state.spec.fs))
    pending = np.concatenate(state.segment) if state.segment else x[:0]
    buf = np.concatenate([pending, x]) if pending.size else x
    k = buf.shape[0] // seg
    judged = _judge(buf[: k * seg].reshape(k, seg), bounds)  # (k,) one per complete segment
    before = np.concatenate([[state.implausible], judged])  # segment m is judged by m - 1
    which = np.arange(pending.shape[0], buf.shape[0]) // seg
    if k:
        state.implausible = bool(judged[-1])
    rest = buf[k * seg:]
    state.segment = [rest.copy()] if rest.size else []
    return before[which].astype(bool)


def _judge(rows: F32Array, bounds: tuple[float, float]) -> npt.NDArray[np.bool_]:
    """Per row (one segment each): its median absolute deviation outside ``bounds``; a row
    that is mostly gaps is not judged (the gap detectors' business)."""
    if rows.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    finite = np.isfinite(rows)
    enough = finite.sum(axis=1) >= rows.shape[1] // 2
    if finite.all():
        mad = np.median(np.abs(rows - np.median(rows, axis=1, keepdims=True)), axis=1)
    else:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: not enough anyway
            mad = np.nanmedian(np.abs(rows - np.nanmedian(rows, axis=1, keepdims=True)), axis=1)
    return enough & (mad > 0) & ~((mad >= bounds[0]) & (mad <= bounds[1]))


def _clipping(state: ChannelQualityState, x: F32Array, ok: BoolArray) -> BoolArray:
    spec = state.spec
    if spec.physical_min is None or spec.physical_max is None:
        return np.zeros_like(ok)
    margin = 1e-4 * (spec.physical_max - spec.physical_min)
    at_limit = ok & ((x >= spec.physical_max - margin) | (x <= spec.physical_min + margin))
    runs = _run_lengths(at_limit, state.clip_run)
    state.clip_run = int(runs[-1]) if runs.size else state.clip_run
    min_run = max(2, round(0.05 * spec.fs))
    return at_limit & (runs >= min_run)


def _flatline(
    state: ChannelQualityState, x: F32Array, ok: BoolArray
) -> tuple[BoolArray, BoolArray]:
    """(samples in runs of at least ``_flat_min(fs)`` repeats, samples of runs longer than the
    window): the first drives the alarm condition (its delay is the window, its onset dated back
    to the run's start), the second the valid mask. Isolated repeats of a quantised signal do not
    count, so the alarm ends promptly when the signal moves again."""
    spec = state.spec
    window_s = FLATLINE_S.get(spec.modality or "", 0.0)
    if window_s <= 0 or x.shape[0] == 0:
        return np.zeros_like(ok), np.zeros_like(ok)
    # an invalid sample breaks a run: the next valid one starts a new run (it is no repeat of
    # the value before the gap, whether the gap falls inside a block or at its end)
    xn = np.where(ok, x, np.nan)
    prev = np.concatenate([[state.last_value], xn[:-1]])
    same = ok & (x == prev)
    runs = _run_lengths(same, state.flat_run)
    state.flat_run = int(runs[-1])
    state.last_value = float(xn[-1])
    return same & (runs >= _flat_min(spec.fs)), same & (runs >= round(window_s * spec.fs))


def _flat_min(fs: float) -> int:
    """Repeats that make a run count towards flatline: 0.1 s of samples, at least 2."""
    return max(2, round(0.1 * fs))


@dataclass(frozen=True, slots=True)
class QualityResult:
    valid: BoolArray  # (n,) the quality mask
    alerts: tuple[Alert, ...]
    bad_counts: Mapping[str, int]


def step(
    state: ChannelQualityState, bed: str, t0: float, data: F32Array, valid: BoolArray
) -> QualityResult:
    """Run all detectors on one block whose row 0 lies at engine time ``t0``. A channel without
    a modality (a device's sample counter) marks its bad samples but never raises an alarm."""
    spec = state.spec
    if state.conditions and next(iter(state.conditions.values())).bed != bed:
        _bind(state, bed)
    bad_masks = masks(state, data, valid)
    ok = np.ones_like(valid)
    alerts: list[Alert] = []
    counts: dict[str, int] = {}
    t: FloatArray | None = None  # sample times, made when a condition machine needs them
    t_emit = t0 + valid.shape[0] / spec.fs  # the engine time this block is seen: its end
    for code, (condition, bad) in bad_masks.items():
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            ok &= ~bad
            counts[code] = n_bad
            state.bad_samples[code] = state.bad_samples.get(code, 0) + n_bad
        cond = state.conditions[code]
        if spec.modality is None or (
                cond.current is None and cond.run_start is None and not condition.any()):
            continue
        if t is None:
            t = t0 + np.arange(valid.shape[0], dtype=np.float64) / spec.fs
        alerts += step_condition(cond, t, condition.astype(np.int8), np.zeros(t.size),
                                 dt=1.0 / spec.fs, t_emit=t_emit)
    alerts.sort(key=lambda a: a.emitted_at)
    return QualityResult(ok, tuple(alerts), counts)


def finish(state: ChannelQualityState, bed: str, t_end: float) -> tuple[Alert, ...]:
    """End every announced condition when the stream ends (the recording is over)."""
    out: list[Alert] = []
    for cond in state.conditions.values():
        out += end_condition(cond, t_end)
    return tuple(out)
