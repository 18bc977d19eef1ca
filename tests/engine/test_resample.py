"""Streaming resampler: chunked == one-shot exactly; == scipy's resample_poly away from edges."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from sleepstream.engine import resample

RATES = [(256.0, 100.0), (200.0, 100.0), (128.0, 100.0), (4.0, 1.0), (1.0, 1.0), (50.0, 25.0)]

# Stated tolerance against scipy.signal.resample_poly (same filter), away from the edges:
# outputs are float32, so agreement is to float32 rounding of unit-variance signals.
SCIPY_ATOL = 1e-5


def _run(spec, x, valid, cuts):
    state = resample.new_state(spec)
    ys, vs = [], []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(x)), len(x)]
    for a, b in itertools.pairwise(bounds):
        y, v = resample.step(state, x[a:b], valid[a:b])
        ys.append(y)
        vs.append(v)
    return np.concatenate(ys), np.concatenate(vs)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    seconds=st.integers(1, 20),
    cuts=st.lists(st.integers(0, 5000), max_size=15),
    dropout=st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 300)), max_size=3),
    seed=st.integers(0, 10_000),
)
def test_random_chunkings_and_dropout_equal_one_shot(rate, seconds, cuts, dropout, seed):
    fs_in, fs_out = rate
    n = int(fs_in * seconds)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n).astype(np.float32)
    valid = np.ones(n, bool)
    for start, length in dropout:
        valid[start : start + length] = False
        x[start : start + length] = np.nan
    spec = resample.design(fs_in, fs_out)
    y1, v1 = _run(spec, x, valid, [])
    y2, v2 = _run(spec, x, valid, cuts)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(v1, v2)
    assert np.isfinite(y1).all()


@pytest.mark.parametrize(("fs_in", "fs_out"), RATES)
def test_matches_resample_poly_away_from_edges(fs_in, fs_out):
    rng = np.random.default_rng(0)
    x = rng.normal(size=int(fs_in * 60)).astype(np.float32)
    spec = resample.design(fs_in, fs_out)
    y, valid = _run(spec, x, np.ones(x.size, bool), [1000, 1001, 5000])
    ref = resample_poly(x.astype(np.float64), spec.up, spec.down, window=spec.taps / spec.up)
    edge = spec.delay_out + spec.history
    n = y.size
    assert n == ref.size - spec.delay_out  # the last delay_out outputs await more input
    np.testing.assert_allclose(y[edge : n - edge], ref[edge : n - edge], atol=SCIPY_ATOL)
    assert valid[edge:].all()


def test_invalid_input_marks_only_nearby_outputs_invalid():
    spec = resample.design(256.0, 100.0)
    x = np.sin(np.arange(256 * 10) / 10).astype(np.float32)
    valid = np.ones(x.size, bool)
    valid[256 * 5 : 256 * 6] = False  # one second out
    x[~valid] = np.nan
    y, v = _run(spec, x, valid, [])
    t = np.arange(y.size) / 100.0
    assert not v[(t >= 5.0) & (t < 6.0)].any()
    assert v[(t > 1.0) & (t < 4.5)].all() and v[(t > 6.5) & (t < 9.0)].all()


def test_delay_stays_bounded_for_slow_signals():
    assert resample.design(4.0, 1.0).delay_s <= 2.0
    assert resample.design(256.0, 100.0).delay_s <= 0.2
