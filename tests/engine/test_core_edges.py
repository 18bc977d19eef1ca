"""Edges of the ring buffer, the resampler and the quality stage: what they refuse, empty and
one-to-one cases, the resampler's gain and delay, clipping's margin, the end of a stream."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sleepstream.engine import quality, resample
from sleepstream.engine import ring_buffer as rb
from sleepstream.engine.types import AlertState, ChannelSpec


def test_a_ring_needs_a_capacity_and_stores_typed_arrays() -> None:
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"ring capacity must be > 0, got {bad}"):
            rb.new_ring(bad)
    ring = rb.new_ring(1)
    assert ring.capacity == 1
    assert (ring.data.dtype, ring.timestamps.dtype, ring.valid.dtype) == (
        np.float32, np.float64, np.bool_)


def test_reading_outside_the_ring_is_refused_and_an_empty_range_is_empty() -> None:
    ring = rb.new_ring(8)
    rb.push(ring, np.arange(10.0), np.arange(10, dtype=np.float32), np.ones(10, bool))
    t, x, v = rb.read_index(ring, 5, 5)
    assert t.size == x.size == v.size == 0
    for start, stop in ((1, 4), (5, 11), (6, 5)):
        with pytest.raises(IndexError, match=r"are not in the ring \(holds \[2, 10\)\)"):
            rb.read_index(ring, start, stop)
    t, x, _ = rb.read_index(ring, 2, 10)
    np.testing.assert_array_equal(x, np.arange(2, 10))


def test_one_to_one_resampling_passes_samples_through_and_counts_them() -> None:
    spec = resample.design(100.0, 100.0)
    assert (spec.up, spec.down, spec.delay_out, spec.history) == (1, 1, 0, 0)
    np.testing.assert_array_equal(spec.taps, [1.0])
    state = resample.new_state(spec)
    x = np.array([1.0, np.nan, 3.0, 4.0], np.float32)
    valid = np.array([True, True, False, True])
    for _ in range(2):
        y, ok = resample.step(state, x, valid)
        assert y.dtype == np.float32 and ok.dtype == np.bool_
        np.testing.assert_array_equal(ok, [True, False, False, True])
        np.testing.assert_array_equal(y[ok], [1.0, 4.0])
    assert (state.n_in, state.n_out) == (8, 8)
    y, ok = resample.step(state, np.zeros(0, np.float32), np.zeros(0, bool))
    assert (y.dtype, ok.dtype, y.size) == (np.float32, np.bool_, 0)


@pytest.mark.parametrize(("fs_in", "fs_out", "taps", "delay"), [
    (256.0, 100.0, 1281, 10),  # k = 10: scipy's default half length
    (500.0, 100.0, 101, 10),
    (10.0, 4.0, 81, 8),  # slow signals: half length shortened to keep the delay bounded
    (4.0, 1.0, 17, 2),
])
def test_resampler_gain_length_and_delay(fs_in: float, fs_out: float, taps: int, delay: int
                                         ) -> None:
    spec = resample.design(fs_in, fs_out)
    assert spec.fs_in == fs_in and spec.fs_out == fs_out
    assert spec.taps.shape == (taps,) and spec.delay_out == delay
    assert delay / fs_out <= 2.0 + 1e-9  # within max_delay_s
    np.testing.assert_allclose(spec.polyphase.sum(axis=1), 1.0, atol=0.02)  # unit DC gain
    np.testing.assert_allclose(spec.weight.sum(axis=1), 1.0)
    assert spec.polyphase.shape == (spec.up, math.ceil(taps / spec.up))
    state = resample.new_state(spec)
    assert state.history.shape == (spec.history,) and state.history_bad.dtype == np.bool_
    assert state.history_bad.all()


def test_a_ratio_that_is_not_rational_enough_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cannot resample 256\.0 Hz to 100\.0005 Hz"):
        resample.design(256.0, 100.0005)
    resample.design(256.0, 100.0 * (1 + 1e-9))  # within the 1e-6 tolerance


def test_a_constant_passes_the_resampler_at_its_level() -> None:
    spec = resample.design(256.0, 100.0)
    state = resample.new_state(spec)
    y, ok = resample.step(state, np.full(2560, 7.0, np.float32), np.ones(2560, bool))
    assert ok[spec.history:].all()
    np.testing.assert_allclose(y[ok][-100:], 7.0, rtol=1e-3)


EEG = ChannelSpec("EEG", 100.0, "eeg", "uV", -500.0, 500.0)


@pytest.mark.parametrize(("level", "clipped"), [
    (500.0, True), (500.0 - 0.05, True),  # the margin is 1e-4 of the range: 0.1 uV
    (500.0 - 0.2, False), (-500.0 + 0.05, True), (-500.0 + 0.2, False), (-500.0, True),
])
def test_clipping_counts_samples_within_the_margin_of_a_limit(level: float, clipped: bool
                                                              ) -> None:
    x = np.random.default_rng(0).normal(0, 20, 1000).astype(np.float32)
    x[300:310] = level
    r = quality.step(quality.new_state(EEG, "b1"), "b1", 0.0, x, np.ones(x.size, bool))
    assert (r.bad_counts.get("clipping", 0) > 0) is clipped


@pytest.mark.parametrize(("lo", "hi"), [(None, 500.0), (-500.0, None)])
def test_clipping_needs_both_physical_limits(lo: float | None, hi: float | None) -> None:
    spec = ChannelSpec("EEG", 100.0, "eeg", "uV", lo, hi)
    x = np.random.default_rng(0).normal(0, 20, 1000).astype(np.float32)
    x[300:400] = 500.0 if hi is not None else -500.0
    r = quality.step(quality.new_state(spec, "b1"), "b1", 0.0, x, np.ones(x.size, bool))
    assert "clipping" not in r.bad_counts


def test_finish_ends_every_announced_technical_alarm_at_the_end() -> None:
    x = np.random.default_rng(0).normal(0, 20, 3000).astype(np.float32)
    valid = np.ones(x.size, bool)
    x[2000:] = np.nan  # NaN to the end
    x[1000:1200] = 500.0  # clipping ... and a flatline at the rail: three conditions
    state = quality.new_state(EEG, "b1")
    r = quality.step(state, "b1", 0.0, x[:1500], valid[:1500])
    r2 = quality.step(state, "b1", 15.0, x[1500:], valid[1500:])
    announced = {a.code for a in r.alerts + r2.alerts if a.state == AlertState.ACTIVE}
    ended_live = {a.code for a in r.alerts + r2.alerts if a.state == AlertState.ENDED}
    open_ = announced - ended_live
    assert "nan" in open_
    out = quality.finish(state, "b1", 30.0)
    assert {a.code for a in out} == open_
    assert all(a.state == AlertState.ENDED and a.end == 30.0 for a in out)
    assert quality.finish(state, "b1", 31.0) == ()
