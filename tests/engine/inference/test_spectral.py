"""The engine's EEG spectral summary against the Sleep-EDF recipe, written out here literally."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sleepstream.engine.inference.spectral import (
    BANDS,
    mobility_at_reference,
    nperseg_for,
    summarize,
)


def _recipe(x: np.ndarray, fs: float) -> list[float]:
    """One epoch by the dataset README: welch defaults, band means lo <= f <= hi, var, mobility."""
    nper = 256 if fs == 100 else round(2.56 * fs)
    f, p = signal.welch(x, fs=fs, nperseg=nper)
    bands = [float(p[(f >= lo) & (f <= hi)].mean()) if ((f >= lo) & (f <= hi)).any()
             else float("nan") for _, lo, hi in BANDS]
    mob = float(np.sqrt(np.var(np.diff(x)) / np.var(x)))
    return [*bands, float(np.var(x)), mob]


def _eeg_like(rng: np.random.Generator, fs: float, n: int) -> np.ndarray:
    t = np.arange(int(30 * fs)) / fs
    pink = np.cumsum(rng.normal(size=(n, t.size)), axis=1) * 0.02
    waves = (20 * np.sin(2 * np.pi * 1.5 * t) + 8 * np.sin(2 * np.pi * 10.3 * t + 1.0)
             + 3 * np.sin(2 * np.pi * 21 * t))
    return (pink + waves + rng.normal(scale=5.0, size=(n, t.size))) * 1e-6 + 3e-6  # volts


@pytest.mark.parametrize("fs", [100.0, 200.0, 256.0, 50.0])
def test_summary_matches_recipe(fs: float) -> None:
    rng = np.random.default_rng(int(fs))
    x = _eeg_like(rng, fs, 4)
    got = summarize(x, fs)
    want = np.array([_recipe(row, fs) for row in x])
    assert got.shape == (4, 7)
    if fs == 50.0:
        assert np.isnan(got[:, 4]).all() and np.isnan(want[:, 4]).all()  # no gamma below 50 Hz
        assert np.isfinite(got[:, :4]).all()
    fin = np.isfinite(want)
    assert np.array_equal(fin, np.isfinite(got))
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-6, atol=0)


def test_reference_rate_is_the_dataset_call() -> None:
    assert nperseg_for(100.0) == 256
    assert nperseg_for(200.0) == 512


def test_mobility_maps_sinusoid_across_rates() -> None:
    f0 = 7.0
    at100 = summarize(np.sin(2 * np.pi * f0 * np.arange(3000) / 100.0), 100.0)[0, 6]
    at256 = summarize(np.sin(2 * np.pi * f0 * np.arange(7680) / 256.0), 256.0)[0, 6]
    assert abs(at256 - at100) / at100 > 0.5  # per-sample mobility depends on the rate ...
    np.testing.assert_allclose(mobility_at_reference(at256, 256.0), at100, rtol=1e-3)  # ... mapped


def test_flat_epoch_has_no_mobility() -> None:
    out = summarize(np.zeros((1, 3000)), 100.0)
    assert out[0, 5] == 0.0 and np.isnan(out[0, 6])
