"""The spectral summary of one 30-s EEG epoch, the seven numbers the real-data stage model reads.

Per epoch and EEG derivation: the mean Welch power spectral density in five bands (delta 0.5-4,
theta 4-8, alpha 8-13, beta 13-30, gamma 30-50 Hz, bins with ``lo <= f <= hi``), the variance of
the epoch's samples and their Hjorth mobility ``sqrt(var(diff x) / var(x))`` (per sample).
At the reference rate of 100 Hz this is exactly ``scipy.signal.welch(x, fs=100, nperseg=256)``
with its defaults (Hann window, 50 % overlap, constant detrend, one-sided density) on the raw
epoch, in the signal's units squared per Hz: the recipe the Sleep-EDF training summaries were
computed with. At another rate the window keeps its length in seconds (``nperseg`` = 2.56 s of
samples), so the bins keep their spacing; a band with no bin below Nyquist (gamma at 50 Hz) is
NaN. ``mobility_at_reference`` maps a mobility measured at one rate to the 100-Hz scale.

``welch`` computes that estimate with numpy alone (strided segments, one batched FFT): the same
numbers as scipy's to float rounding (tested), at a fraction of its per-call cost, which
dominated the EEG path when a night is replayed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from sleepstream.engine.types import FloatArray

BANDS: tuple[tuple[str, float, float], ...] = (
    ("delta", 0.5, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 50.0),
)
FEATURES: tuple[str, ...] = (*(f"{b}_psd" for b, _, _ in BANDS), "var", "mobility")
REFERENCE_FS = 100.0
REFERENCE_NPERSEG = 256
EPOCH_S = 30


def nperseg_for(fs: float) -> int:
    """Welch segment length at ``fs``: 256 samples at 100 Hz, the same 2.56 s elsewhere."""
    return max(8, round(REFERENCE_NPERSEG * fs / REFERENCE_FS))


def summarize(epochs: npt.ArrayLike, fs: float) -> FloatArray:
    """(n, 7) summaries of ``epochs`` (n, samples) recorded at ``fs``, columns ``FEATURES``.

    Samples must be finite; an epoch with zero variance has NaN mobility."""
    x = np.atleast_2d(np.asarray(epochs, np.float64))  # (n, samples)
    nper = min(nperseg_for(fs), x.shape[1])
    f, pxx = welch(x, fs, nper)  # (F,), (n, F)
    out = np.full((x.shape[0], len(FEATURES)), np.nan)
    for j, (_, lo, hi) in enumerate(BANDS):
        sel = (f >= lo) & (f <= hi)
        if sel.any():
            out[:, j] = pxx[:, sel].mean(axis=1)
    var = x.var(axis=1)
    dvar = np.diff(x, axis=1).var(axis=1)
    out[:, 5] = var
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, 6] = np.where(var > 0, np.sqrt(dvar / np.where(var > 0, var, 1.0)), np.nan)
    return out


@lru_cache(maxsize=16)
def _hann(nper: int) -> FloatArray:
    """The periodic Hann window of ``nper`` samples (scipy's ``get_window("hann", nper)``)."""
    return np.asarray(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(nper) / nper), np.float64)


def welch(x: FloatArray, fs: float, nper: int) -> tuple[FloatArray, FloatArray]:
    """``scipy.signal.welch(x, fs=fs, nperseg=nper, axis=-1)`` with its defaults (Hann window,
    ``nper // 2`` overlap, constant detrend, one-sided density, mean of the segments):
    frequencies (F,) and densities (n, F) of ``x`` (n, samples), samples >= ``nper``."""
    step = nper - nper // 2
    segs = sliding_window_view(x, nper, axis=-1)[:, ::step]  # (n, S, nper), a view
    win = _hann(nper)
    spec = np.fft.rfft((segs - segs.mean(axis=-1, keepdims=True)) * win, axis=-1)
    pxx = (spec.real**2 + spec.imag**2).mean(axis=1) / (fs * float((win * win).sum()))
    last = None if nper % 2 else -1  # an even length's Nyquist bin is not doubled
    pxx[:, 1:last] *= 2.0
    return np.asarray(np.fft.rfftfreq(nper, 1.0 / fs), np.float64), pxx


def mobility_at_reference(mobility: npt.ArrayLike, fs: float) -> FloatArray:
    """A per-sample Hjorth mobility measured at ``fs`` on the 100-Hz scale.

    A sinusoid of frequency f has mobility ``2 sin(pi f / fs)`` at rate ``fs``; the mobility is
    mapped through the frequency it stands for (exact for one sinusoid, the identity at 100 Hz;
    frequencies above 50 Hz saturate at the 100-Hz maximum of 2)."""
    m = np.asarray(mobility, np.float64)
    if fs == REFERENCE_FS:
        return m.copy()
    freq = fs / np.pi * np.arcsin(np.clip(m / 2.0, 0.0, 1.0))
    return np.asarray(
        2.0 * np.sin(np.pi * np.minimum(freq, REFERENCE_FS / 2) / REFERENCE_FS), np.float64
    )
