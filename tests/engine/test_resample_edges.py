"""Streaming resampler edges, fed 1-s chunks as the bed feeds them: its filter is scipy's own
default design (not just the same arithmetic on its own taps), integer upsampling, outputs
released as soon as their inputs have arrived, a reset stream equal to a fresh one, and rates
whose ratio needs a denominator over 1000 refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from sleepstream.engine import resample as rs


def _stream(state, x, valid, chunk):
    ys, vs = [], []
    for i in range(0, x.shape[0], chunk):
        y, v = rs.step(state, x[i:i + chunk], valid[i:i + chunk])
        ys.append(y)
        vs.append(v)
    return np.concatenate(ys), np.concatenate(vs)


def test_the_filter_is_scipys_default_kaiser_design() -> None:
    spec = rs.design(256.0, 100.0)  # a full-length filter: scipy's own half length
    rng = np.random.default_rng(3)
    x = rng.standard_normal(256 * 30).astype(np.float32)
    y, _ = _stream(rs.new_state(spec), x, np.ones(x.shape[0], bool), 256)
    ref = resample_poly(x.astype(np.float64), spec.up, spec.down)  # default window
    mid = slice(200, y.shape[0] - 200)
    assert np.allclose(y[mid], ref[mid], rtol=0, atol=1e-5)


def test_integer_upsampling_doubles_the_samples_on_the_same_grid() -> None:
    spec = rs.design(50.0, 100.0)
    assert (spec.up, spec.down) == (2, 1)
    t = np.arange(50 * 20) / 50.0
    x = np.sin(2 * np.pi * 1.0 * t).astype(np.float32)
    y, v = _stream(rs.new_state(spec), x, np.ones(x.shape[0], bool), 50)
    assert y.shape[0] == 2 * x.shape[0] - spec.delay_out and v[spec.history:].all()
    ty = np.arange(y.shape[0]) / 100.0
    mid = slice(200, y.shape[0] - 200)
    assert np.allclose(y[mid], np.sin(2 * np.pi * ty[mid]), atol=1e-3)


def test_an_output_is_released_in_the_chunk_its_last_input_arrives() -> None:
    spec = rs.design(200.0, 100.0)
    assert (spec.up, spec.down) == (1, 2)
    st = rs.new_state(spec)
    n_in = 0
    for chunk in [3, 5, 1, 7, 200, 201, 199]:
        rs.step(st, np.zeros(chunk, np.float32), np.ones(chunk, bool))
        n_in += chunk
        # raw output m needs input up to index 2 m: all m with 2 m <= n_in - 1
        assert st.n_out == (n_in - 1) // 2 + 1
        assert st.aligned_out == max(0, st.n_out - spec.delay_out)


def test_a_reset_stream_equals_a_fresh_one_even_when_it_starts_invalid() -> None:
    spec = rs.design(256.0, 100.0)
    rng = np.random.default_rng(5)
    x = (5.0 + rng.standard_normal(256 * 6)).astype(np.float32)
    valid = np.ones(x.shape[0], bool)
    valid[:300] = False
    used = rs.new_state(spec)
    _stream(used, (x * 3.0 + 7.0).astype(np.float32), np.ones(x.shape[0], bool), 256)
    rs.reset(used)
    for s in (spec, rs.design(100.0, 100.0)):
        fresh, again = rs.new_state(s), rs.new_state(s)
        _stream(again, np.full(512, 9.0, np.float32), np.ones(512, bool), 256)
        rs.reset(again)
        a = _stream(fresh, x, valid, 256)
        b = _stream(again, x, valid, 256)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    y_fresh = _stream(rs.new_state(spec), x, valid, 256)
    y_used = _stream(used, x, valid, 256)
    assert np.array_equal(y_fresh[0], y_used[0])


def test_a_ratio_beyond_a_denominator_of_1000_is_refused() -> None:
    with pytest.raises(ValueError, match="rational ratio"):
        rs.design(1001.0, 1.0)
    spec = rs.design(1000.0, 1.0)
    assert (spec.up, spec.down) == (1, 1000)
