"""The numpy Welch estimate the EEG path runs on every epoch equals scipy's, the reference the
Sleep-EDF summaries were computed with, at every rate and segment length the engine meets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from sleepstream.engine.inference.spectral import nperseg_for, summarize, welch


@pytest.mark.parametrize("fs", [100.0, 128.0, 200.0, 256.0, 250.0, 512.0, 50.0, 63.0])
@pytest.mark.parametrize("extra", [0, 7])
def test_welch_equals_scipy(fs: float, extra: int) -> None:
    """Even and odd segment lengths (a Nyquist bin or none), epochs a few samples longer than a
    whole number of hops, an offset that the constant detrend removes."""
    rng = np.random.default_rng(int(fs) + extra)
    n = round(30 * fs) + extra
    x = rng.normal(scale=2e-5, size=(3, n)) + 4e-5
    nper = nperseg_for(fs)
    f_want, p_want = signal.welch(x, fs=fs, nperseg=nper, axis=-1)
    f_got, p_got = welch(x, fs, nper)
    np.testing.assert_array_equal(f_got, f_want)
    assert p_got.shape == p_want.shape
    np.testing.assert_allclose(p_got, p_want, rtol=1e-10, atol=0)


@pytest.mark.parametrize("n", [300, 257, 256])
def test_short_epoch_uses_one_short_segment_like_scipy(n: int) -> None:
    """An epoch shorter than the segment length is one segment of its own length."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=(2, n))
    nper = min(nperseg_for(128.0), n)
    f_want, p_want = signal.welch(x, fs=128.0, nperseg=nper, axis=-1)
    f_got, p_got = welch(x, 128.0, nper)
    np.testing.assert_array_equal(f_got, f_want)
    np.testing.assert_allclose(p_got, p_want, rtol=1e-10, atol=0)


def test_summary_of_a_sinusoid_puts_its_power_in_its_band() -> None:
    t = np.arange(3000) / 100.0
    s = summarize(np.sin(2 * np.pi * 10.0 * t) * 1e-5, 100.0)[0]
    assert s[2] > 100 * max(s[0], s[1], s[3], s[4])  # alpha (8-13 Hz) holds it
