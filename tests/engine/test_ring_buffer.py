"""Ring buffers: chunked pushes equal one-shot pushes; reads and overflow behave."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepstream.engine import ring_buffer as rb


def _stream(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = np.arange(n) / 10.0
    data = rng.normal(size=n).astype(np.float32)
    valid = rng.random(n) > 0.1
    return ts, data, valid


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    capacity=st.integers(1, 128),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    seed=st.integers(0, 1000),
)
def test_random_chunkings_give_the_same_ring(n, capacity, cuts, seed):
    ts, data, valid = _stream(n, seed)
    one = rb.new_ring(capacity)
    rb.push(one, ts, data, valid)
    chunked = rb.new_ring(capacity)
    bounds = [0, *sorted(c for c in cuts if c < n), n]
    for a, b in itertools.pairwise(bounds):
        rb.push(chunked, ts[a:b], data[a:b], valid[a:b])
    assert chunked.written == one.written == n
    keep = min(n, capacity)
    held = (rb.read_index(r, n - keep, n) for r in (chunked, one))
    for got, want in zip(*held, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(rb.read_index(one, n - keep, n)[1], data[n - keep :])


def test_reading_samples_already_overwritten_is_an_error():
    ring = rb.new_ring(10)
    ts, data, valid = _stream(25, 0)
    rb.push(ring, ts, data, valid)
    assert ring.overwritten == 15
    with pytest.raises(IndexError):
        rb.read_index(ring, 10, 20)
    _t, x, _ = rb.read_index(ring, 15, 25)
    np.testing.assert_array_equal(x, data[15:])


def test_push_does_not_allocate_new_storage():
    ring = rb.new_ring(64)
    before = ring.data.__array_interface__["data"][0]
    ts, data, valid = _stream(1000, 1)
    for a in range(0, 1000, 7):
        rb.push(ring, ts[a : a + 7], data[a : a + 7], valid[a : a + 7])
    assert ring.data.__array_interface__["data"][0] == before
