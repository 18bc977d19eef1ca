"""Streaming polyphase resampling to the model rates.

The filter is the same Kaiser-windowed FIR that ``scipy.signal.resample_poly`` designs, applied
causally: output ``m`` of the upsampled-by-``up``, filtered, downsampled-by-``down`` signal
needs input up to index ``floor(m * down / up)`` only. The filter's group delay is a whole
number of output samples (``delay_out``), which the state drops at the start, so aligned output
``i`` lies at time ``t0 + i / fs_out`` like one-shot ``resample_poly`` output. The last
``delay_out`` outputs of a stream are only produced once later input arrives.

Chunked processing equals one-shot processing of the same stream exactly (same arithmetic on
the same samples); against ``resample_poly`` it agrees to float32 rounding away from the edges.
Invalid input is held at the last valid value before filtering, and an output is invalid when
more than ``invalid_tolerance`` of its filter's absolute weight falls on invalid input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt
from scipy.signal import firwin

from sleepstream.engine.types import BoolArray, F32Array

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ResamplerSpec:
    fs_in: float
    fs_out: float
    up: int
    down: int
    taps: F64  # (L,) FIR coefficients, gain ``up``
    polyphase: F64  # (up, P): polyphase[p, j] = taps[p + j * up]
    weight: F64  # (up, P): |polyphase| normalised per phase (validity weighting)
    delay_out: int  # group delay in output samples

    @property
    def history(self) -> int:
        return int(self.polyphase.shape[1]) - 1

    @property
    def delay_s(self) -> float:
        return self.delay_out / self.fs_out


def design(fs_in: float, fs_out: float, *, max_delay_s: float = 2.0) -> ResamplerSpec:
    """A resampler from ``fs_in`` to ``fs_out``; its delay stays under ``max_delay_s`` where a
    filter of at least 2 zero crossings per side allows it: the shortest, and only for rates of
    a few hertz, delays by ``2 max(up, down) / (up fs_in)`` s (1 -> 0.5 Hz: 4 s; no model rate
    is that slow)."""
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    up, down = ratio.numerator, ratio.denominator
    if abs(up / down * fs_in - fs_out) > 1e-6 * fs_out:
        raise ValueError(f"cannot resample {fs_in} Hz to {fs_out} Hz with a rational ratio")
    if up == down == 1:
        taps = np.ones(1)
        half = 0
    else:
        max_rate = max(up, down)
        # scipy's default half length is 10 * max_rate; shorten it for slow signals so the
        # delay (half / (up * fs_in) seconds) stays bounded.
        k = max(2, min(10, math.floor(max_delay_s * up * fs_in / max_rate)))
        half = math.ceil(k * max_rate / down) * down
        taps = firwin(2 * half + 1, 1.0 / max_rate, window=("kaiser", 5.0)) * up
    n_phase = math.ceil(taps.shape[0] / up)
    padded = np.zeros(n_phase * up)
    padded[: taps.shape[0]] = taps
    poly = padded.reshape(n_phase, up).T.copy()  # (up, P)
    weight = np.abs(poly) / np.maximum(np.abs(poly).sum(axis=1, keepdims=True), 1e-12)
    return ResamplerSpec(fs_in, fs_out, up, down, taps, poly, weight, half // down)


@dataclass(slots=True)
class ResamplerState:
    spec: ResamplerSpec
    history: F64  # (H,) last H held input samples before the next chunk
    history_bad: BoolArray  # (H,) their invalid flags
    last_value: float = 0.0
    n_in: int = 0  # input samples consumed
    n_out: int = 0  # raw (undelayed) outputs produced

    @property
    def aligned_out(self) -> int:
        """Aligned output samples emitted so far."""
        return max(0, self.n_out - self.spec.delay_out)


def new_state(spec: ResamplerSpec) -> ResamplerState:
    h = spec.history
    return ResamplerState(spec, np.zeros(h), np.ones(h, dtype=bool))


def reset(state: ResamplerState) -> None:
    state.history[:] = 0.0
    state.history_bad[:] = True
    state.last_value = 0.0
    state.n_in = state.n_out = 0


def _hold_invalid(x: F64, bad: BoolArray, last: float) -> F64:
    """Replace invalid samples by the last valid value before them (vectorised)."""
    if not bad.any():
        return x
    idx = np.where(bad, -1, np.arange(x.shape[0]))
    np.maximum.accumulate(idx, out=idx)
    held = np.where(idx >= 0, x[np.maximum(idx, 0)], last)
    return held


def step(
    state: ResamplerState, x: F32Array, valid: BoolArray, *, invalid_tolerance: float = 0.05
) -> tuple[F32Array, BoolArray]:
    """Consume a chunk; return the aligned outputs it completes and their valid flags."""
    spec = state.spec
    n = int(x.shape[0])
    if n == 0:
        return np.zeros(0, np.float32), np.zeros(0, bool)
    bad = ~valid | ~np.isfinite(x)
    held = _hold_invalid(x.astype(np.float64), bad, state.last_value)
    good_idx = np.flatnonzero(~bad)
    if good_idx.size:
        state.last_value = float(held[good_idx[-1]])
    if spec.up == spec.down == 1:
        y, y_bad = held, bad
        state.n_in += n
        state.n_out += n
    else:
        y, y_bad = _filter(state, held, bad, invalid_tolerance)
    skip = max(0, spec.delay_out - (state.n_out - y.shape[0]))
    return y[skip:].astype(np.float32), ~y_bad[skip:]


def _filter(
    state: ResamplerState, held: F64, bad: BoolArray, tol: float
) -> tuple[F64, BoolArray]:
    spec = state.spec
    hlen = spec.history
    n = held.shape[0]
    ext = np.concatenate([state.history, held])  # (H + n,) input with its history
    ext_bad = np.concatenate([state.history_bad, bad])
    n_total = state.n_in + n
    m_stop = (n_total * spec.up - 1) // spec.down + 1  # raw outputs whose inputs have all arrived
    m = np.arange(state.n_out, m_stop)
    pos = m * spec.down
    i_m = pos // spec.up - state.n_in + hlen  # index of the newest input in ``ext``
    phase = pos % spec.up
    gather = i_m[:, None] - np.arange(spec.polyphase.shape[1])[None, :]  # (M, P)
    y = (spec.polyphase[phase] * ext[gather]).sum(axis=1)
    bad_weight = (spec.weight[phase] * ext_bad[gather]).sum(axis=1)
    if hlen:
        state.history[:] = ext[-hlen:]
        state.history_bad[:] = ext_bad[-hlen:]
    state.n_in = n_total
    state.n_out = int(m_stop)
    return y, bad_weight > tol
