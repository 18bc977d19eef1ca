"""Streaming beat detection: R peaks in ECG and pulse peaks in PPG.

ECG follows the Pan-Tompkins chain: band-pass 5-15 Hz, derivative, squaring, 150-ms moving
integration, then local maxima of the integrated signal accepted against an adaptive threshold
between running signal and noise peak levels (``NPK + 0.25 (SPK - NPK)``) with a 250-ms refractory
period. The integrated signal's maximum is broad and wanders by tens of ms from beat to beat, which
alone would make a sinus rhythm look irregular (RMSSD/mean RR ~0.10 instead of ~0.04 on synthetic
sinus rhythm); so each accepted beat is timed at the largest band-passed deflection in the
integration window before that maximum (a fixed filter delay of a few tens of ms after the R peak,
the same for every beat, so RR intervals keep ~3 ms precision).
PPG uses a 0.5-4 Hz band-pass and the same peak logic on the filtered pulse wave with a
330-ms refractory period. Filters carry their state across chunks (``sosfilt``/``lfilter`` with
``zi``), so a stream split into any chunks gives the same beats as one call. After an invalid
stretch the detector re-learns its levels over ``learn_s`` seconds before it reports beats again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from sleepstream.engine.types import BoolArray, F32Array, FloatArray


@dataclass(frozen=True, slots=True)
class PeakParams:
    band: tuple[float, float]
    square: bool  # derivative + square + moving integration (ECG) or the filtered wave (PPG)
    mwi_s: float
    refractory_s: float
    learn_s: float = 2.0


ECG = PeakParams(band=(5.0, 15.0), square=True, mwi_s=0.15, refractory_s=0.25)
PPG = PeakParams(band=(0.5, 4.0), square=False, mwi_s=0.0, refractory_s=0.33)


@dataclass(slots=True)
class PeakState:
    params: PeakParams
    fs: float
    sos: FloatArray
    zi: FloatArray
    mwi: FloatArray
    mwi_zi: FloatArray
    prev_x: float = 0.0
    tail: FloatArray | None = None  # last two feature samples (for the local-max test)
    band_tail: FloatArray | None = None  # last band-passed samples (for timing the beat)
    n_seen: int = 0  # samples consumed so far (time of sample i = t0 + i / fs)
    t0: float = 0.0
    learn_max: float = 0.0
    learn_sum: float = 0.0
    learn_n: int = 0
    spk: float | None = None
    npk: float = 0.0
    last_beat: float = -np.inf


def new_state(params: PeakParams, fs: float, t0: float) -> PeakState:
    hi = min(params.band[1], 0.45 * fs)
    sos = np.asarray(sps.butter(2, [params.band[0], hi], btype="band", fs=fs, output="sos"))
    width = max(1, round(params.mwi_s * fs))
    mwi = np.full(width, 1.0 / width)
    return PeakState(params=params, fs=fs, sos=sos, zi=np.zeros((sos.shape[0], 2)), mwi=mwi,
                     mwi_zi=np.zeros(width - 1), t0=t0)


def _feature(state: PeakState, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(band-passed signal, detection feature), both (n,)."""
    y, state.zi = sps.sosfilt(state.sos, x, zi=state.zi)
    y = np.asarray(y)
    if not state.params.square:
        return y, y
    d = np.diff(np.concatenate([[state.prev_x], y]))
    state.prev_x = float(y[-1])
    m, state.mwi_zi = sps.lfilter(state.mwi, [1.0], d * d, zi=state.mwi_zi)
    return y, np.asarray(m)


def _beat_times(state: PeakState, y: FloatArray, first: int, peaks: list[int]) -> FloatArray:
    """Times of the beats whose feature maxima are at global sample indices ``peaks``: the
    largest |band-passed| sample in the integration window ending there (ECG), else the peak."""
    width = state.mwi.size
    band = y if state.band_tail is None else np.concatenate([state.band_tail, y])
    base = first - (band.size - y.size)  # global index of band[0]
    state.band_tail = band[-(width + 2) :]
    if not state.params.square or not peaks:
        return state.t0 + np.asarray(peaks, dtype=np.float64) / state.fs
    out = np.empty(len(peaks))
    for k, g in enumerate(peaks):
        j = g - base
        a = max(0, j - width)
        seg = band[a : j + 1]
        out[k] = state.t0 + (base + a + int(np.argmax(np.abs(seg)))) / state.fs if seg.size \
            else state.t0 + g / state.fs
    return out


def _relearn(state: PeakState) -> None:
    state.spk, state.npk = None, 0.0
    state.learn_max = state.learn_sum = 0.0
    state.learn_n = 0


def step(state: PeakState, data: F32Array, valid: BoolArray) -> FloatArray:
    """Consume one chunk; returns the engine times of the beats confirmed in it."""
    n = data.shape[0]
    if n == 0:
        return np.zeros(0)
    x = np.where(valid, data, 0.0).astype(np.float64)
    y, f = _feature(state, x)
    first = state.n_seen
    state.n_seen += n
    if not valid.all():
        _relearn(state)
        state.tail = state.band_tail = None
        return np.zeros(0)
    skip = 0  # samples of this chunk spent learning (no beats are reported there)
    if state.spk is None:
        part = f[: max(int(np.ceil(state.params.learn_s * state.fs)) - state.learn_n, 0)]
        state.learn_max = max(state.learn_max, float(part.max(initial=0.0)))
        state.learn_sum += float(part.sum())
        state.learn_n += part.size
        skip = part.size
        if skip == n and state.learn_n < state.params.learn_s * state.fs:
            state.tail = f[-2:]
            _beat_times(state, y, first, [])
            return np.zeros(0)
        state.spk = state.learn_max / 3.0
        state.npk = 0.5 * state.learn_sum / state.learn_n
    ext = f if state.tail is None else np.concatenate([state.tail, f])
    offset = first - (ext.size - n)  # sample index of ext[0]
    state.tail = f[-2:] if f.size >= 2 else ext[-2:]
    core = ext[1:-1]
    peaks = np.flatnonzero((core > ext[:-2]) & (core >= ext[2:])) + 1
    peaks = peaks[offset + peaks >= first + skip]  # levels are learnt on exactly learn_s
    accepted: list[int] = []
    lag = state.params.mwi_s / 2.0
    for i in peaks.tolist():
        v = float(ext[i])
        t = state.t0 + (offset + i) / state.fs - lag
        thr = state.npk + 0.25 * (state.spk - state.npk)
        if v > thr and t - state.last_beat >= state.params.refractory_s:
            state.spk = 0.125 * v + 0.875 * state.spk
            state.last_beat = t
            accepted.append(offset + i)
        elif v <= thr:
            state.npk = 0.125 * v + 0.875 * state.npk
    return _beat_times(state, y, first, accepted)
