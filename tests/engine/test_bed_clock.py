"""The bed's grid and clock: timestamp holes are filled with invalid samples, the live clock
closes hops for silent channels, and the end of the source processes the last partial hop."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from sleepstream.engine import resample
from sleepstream.engine.bed import BedState
from sleepstream.engine.protocols import Block
from sleepstream.engine.types import ChannelSpec, Frame

SPO2 = ChannelSpec("SpO2", 2.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)
HR = ChannelSpec("HR", 1.0, "hr", "bpm", 0.0, 250.0, 20.0, 250.0)


class Recorder:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.finished: list[float] = []

    def process(self, block: Block) -> Sequence[object]:
        self.blocks.append(block)
        return []

    def finish(self, t_end: float) -> Sequence[object]:
        self.finished.append(t_end)
        return []


def _bed(*specs: ChannelSpec) -> tuple[BedState, Recorder]:
    rec = Recorder()
    bed = BedState("b1", hop_s=1.0, ring_s=60.0, processors=(rec,))
    bed.add_channels(list(specs))
    return bed, rec


def _frame(spec: ChannelSpec, t0: float, seconds: float) -> Frame:
    n = round(seconds * spec.fs)
    t = t0 + np.arange(n) / spec.fs
    return Frame((spec.name,), t, np.full((n, 1), 96.0, np.float32), np.ones((n, 1), bool))


def _mask(rec: Recorder, name: str) -> tuple[np.ndarray, np.ndarray]:
    cbs = [b.native[name] for b in rec.blocks if name in b.native]
    t = np.concatenate([c.t0 + np.arange(c.data.shape[0]) / c.fs for c in cbs])
    return t, np.concatenate([c.valid for c in cbs])


def test_a_timestamp_hole_is_filled_with_invalid_samples() -> None:
    bed, rec = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, 5.0))
    bed.push(_frame(SPO2, 8.0, 4.0))  # 3 s (6 samples) missing
    ch = bed.channels["SpO2"]
    assert ch.counters.filled == 6 and ch.counters.samples_in == 18
    t, valid = _mask(rec, "SpO2")
    np.testing.assert_array_equal(t, np.arange(24) / 2.0)  # the grid has no hole
    assert not valid[(t >= 5.0) & (t < 8.0)].any() and valid[t < 5.0].all()
    spans = [(b.t_start, b.t_end) for b in rec.blocks]  # whole hops, tiling [0, 12)
    assert spans[0][0] == 0.0 and spans[-1][1] == 12.0
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_overlapping_samples_are_dropped_and_counted() -> None:
    bed, _ = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, 5.0))
    bed.push(_frame(SPO2, 4.0, 3.0))  # its first 2 s are already there
    ch = bed.channels["SpO2"]
    assert ch.counters.dropped_overlap == 2 and ch.ring.written == 14


def test_the_live_clock_closes_hops_and_fills_a_silent_channel() -> None:
    bed, rec = _bed(SPO2, HR)
    bed.push(_frame(HR, 0.0, 4.0))  # HR goes silent after 4 s
    bed.push(_frame(SPO2, 0.0, 10.0))
    assert rec.blocks[-1].t_end == 4.0  # replay waits for every channel
    bed.advance(t_now=10.5, grace_s=2.0)  # closes up to 8.5: hops to 8
    assert rec.blocks[-1].t_end == 8.0
    hr = bed.channels["HR"]
    assert hr.counters.filled == 4  # 4..8.5 s at 1 Hz: floor(4.5) samples
    t, valid = _mask(rec, "HR")
    assert valid[t < 4.0].all() and not valid[(t >= 4.0) & (t < 8.0)].any()
    assert bed.advance(t_now=10.9, grace_s=2.0) == [] and rec.blocks[-1].t_end == 8.0


def test_finish_processes_the_last_partial_hop_and_finishes_processors() -> None:
    bed, rec = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, 5.5))
    assert rec.blocks[-1].t_end == 5.0
    bed.finish()
    assert (rec.blocks[-1].t_start, rec.blocks[-1].t_end) == (5.0, 5.5)
    assert rec.finished == [5.5] and bed.t_done == 5.5
    assert bed.channels["SpO2"].counters.processed == 11


def test_finish_of_a_bed_that_never_had_data_does_nothing() -> None:
    bed, rec = _bed(SPO2)
    assert bed.finish() == [] and rec.blocks == [] and rec.finished == []


def test_resampler_reset_starts_over() -> None:
    spec = resample.design(250.0, 100.0)
    x = np.random.default_rng(0).normal(0, 1, 2500).astype(np.float32)
    ok = np.ones(x.size, bool)
    fresh = resample.new_state(spec)
    y0, v0 = resample.step(fresh, x, ok)
    used = resample.new_state(spec)
    resample.step(used, x[::-1].copy(), ~ok)  # some other history, all invalid
    resample.reset(used)
    y1, v1 = resample.step(used, x, ok)
    np.testing.assert_array_equal(v0, v1)
    np.testing.assert_allclose(y0, y1)
    assert used.n_in == x.size == pytest.approx(fresh.n_in)
