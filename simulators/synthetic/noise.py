"""Vectorised signal primitives: coloured noise, smooth envelopes and transient placement.

Everything works on whole-night arrays at once; nothing loops over samples.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def power_law_noise(n: int, fs: float, exponent: float, rng: np.random.Generator) -> FloatArray:
    """Unit-RMS noise whose power falls as 1/f**exponent (flat below 0.3 Hz)."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    spectrum *= np.maximum(f, 0.3) ** (-exponent / 2.0)
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, n)
    return x / (x.std() + 1e-12)


def band_noise(
    n: int, fs: float, lo: float, hi: float, rng: np.random.Generator, edge: float = 0.5
) -> FloatArray:
    """Unit-RMS noise band-limited to [lo, hi] Hz with raised-cosine edges ``edge`` Hz wide."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / fs)
    gain = np.clip((f - (lo - edge)) / edge, 0.0, 1.0) * np.clip(((hi + edge) - f) / edge, 0.0, 1.0)
    x = np.fft.irfft(spectrum * np.sin(gain * np.pi / 2.0) ** 2, n)
    return x / (x.std() + 1e-12)


def smooth(x: FloatArray, width: int) -> FloatArray:
    """Moving average over ``width`` samples (same length, edges padded with the end values)."""
    if width <= 1:
        return x
    pad = np.concatenate([np.full(width, x[0]), x, np.full(width, x[-1])])
    c = np.cumsum(pad, dtype=np.float64)
    out = (c[width:] - c[:-width]) / width
    start = width - width // 2
    return out[start : start + x.size]


def epoch_envelope(
    per_epoch: FloatArray, epoch_s: float, fs: float, n: int, ramp_s: float = 4.0
) -> FloatArray:
    """A per-sample envelope from one value per epoch, with smooth ramps at epoch changes."""
    per = round(epoch_s * fs)
    x = np.repeat(per_epoch.astype(np.float64), per)
    if x.size < n:
        x = np.concatenate([x, np.full(n - x.size, x[-1] if x.size else 0.0)])
    return smooth(x[:n], int(ramp_s * fs))


def interval_mask(
    onsets: FloatArray, durations: FloatArray, fs: float, n: int, ramp_s: float = 0.0
) -> FloatArray:
    """1 inside the given intervals, 0 outside, optionally with linear ramps of ``ramp_s``."""
    delta = np.zeros(n + 1)
    a = np.clip(np.round(onsets * fs).astype(np.int64), 0, n)
    b = np.clip(np.round((onsets + durations) * fs).astype(np.int64), 0, n)
    np.add.at(delta, a, 1.0)
    np.add.at(delta, b, -1.0)
    mask = np.minimum(np.cumsum(delta)[:n], 1.0)
    return smooth(mask, int(ramp_s * fs)) if ramp_s > 0 else mask


def place(
    n: int, centres: IntArray, templates: FloatArray, offset: int | IntArray = 0
) -> FloatArray:
    """Sum ``templates[i]`` (k, L) into a length-n signal with sample 0 at ``centres[i] - offset``.

    ``templates`` may be (L,) to use one shape for all; parts falling outside [0, n) are dropped.
    """
    if centres.size == 0:
        return np.zeros(n)
    shapes = np.broadcast_to(templates, (centres.size, templates.shape[-1]))
    start = centres - np.asarray(offset)
    idx = start[:, None] + np.arange(shapes.shape[1])[None, :]  # (k, L)
    keep = (idx >= 0) & (idx < n)
    out = np.bincount(idx[keep], weights=shapes[keep], minlength=n)[:n]
    return out.astype(np.float64)


def poisson_times(
    rate_per_s: FloatArray, fs: float, rng: np.random.Generator
) -> IntArray:
    """Sample indices of an inhomogeneous Poisson process with per-sample rate ``rate_per_s``."""
    p = np.clip(rate_per_s / fs, 0.0, 1.0)
    return np.flatnonzero(rng.random(p.size) < p).astype(np.int64)


def thin(times: IntArray, min_gap: int) -> IntArray:
    """Drop events closer than ``min_gap`` samples to the previous kept one (keeps the first)."""
    if times.size < 2:
        return times
    keep = np.ones(times.size, dtype=bool)
    keep[1:] = np.diff(times) >= min_gap
    return times[keep]


def interval_level(
    onsets: FloatArray, durations: FloatArray, values: FloatArray, fs: float, n: int,
    ramp_s: float = 0.0,
) -> FloatArray:
    """``values[i]`` inside interval i (intervals must not overlap), 0 elsewhere, ramped edges."""
    delta = np.zeros(n + 1)
    a = np.clip(np.round(onsets * fs).astype(np.int64), 0, n)
    b = np.clip(np.round((onsets + durations) * fs).astype(np.int64), 0, n)
    np.add.at(delta, a, values)
    np.add.at(delta, b, -values)
    level = np.cumsum(delta)[:n]
    return smooth(level, int(ramp_s * fs)) if ramp_s > 0 else level
