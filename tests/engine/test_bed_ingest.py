"""How the bed takes frames: rejected frames, jitter tolerance, overlaps, ring overruns, the
hop grid, and the blocks it hands on (names, times, the quality stage's bed)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytest

from sleepstream.engine import ring_buffer as rb
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.bed import BedState, event_time
from sleepstream.engine.protocols import Block, SourceEvent
from sleepstream.engine.types import ChannelSpec, Frame
from tests.engine.recorder import Recorder

SPO2 = ChannelSpec("SpO2", 4.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)
HR = ChannelSpec("HR", 1.0, "hr", "bpm", 0.0, 250.0, 20.0, 250.0)
EEG = ChannelSpec("EEG", 250.0, "eeg", "uV", -500.0, 500.0)
COUNTER = ChannelSpec("counter", 1.0, None)


def _bed(*specs: ChannelSpec, hop_s: float = 1.0, ring_s: float = 60.0
         ) -> tuple[BedState, Recorder]:
    rec = Recorder()
    bed = BedState("b1", hop_s=hop_s, ring_s=ring_s, processors=(rec,))
    bed.add_channels(list(specs))
    return bed, rec


def _frame(spec: ChannelSpec, t0: float, n: int, value: float = 96.0) -> Frame:
    t = t0 + np.arange(n) / spec.fs
    x = np.full((n, 1), value, np.float32) + (np.arange(n) % 2)[:, None]
    return Frame((spec.name,), t, x.astype(np.float32), np.ones((n, 1), bool))


def test_frames_with_undeclared_channels_or_no_rows_are_counted_and_logged_sparsely(
        caplog: pytest.LogCaptureFixture) -> None:
    bed, _ = _bed(SPO2)
    stray = Frame(("nope",), np.arange(4.0), np.zeros((4, 1), np.float32), np.ones((4, 1), bool))
    with caplog.at_level(logging.WARNING, logger="sleepstream.engine.bed"):
        for _ in range(10):
            assert bed.push(stray) == []
        assert bed.push(_frame(SPO2, 0.0, 0)) == []  # no rows
    assert bed.rejected_frames == 11
    assert [r.getMessage() for r in caplog.records] == [
        "bed b1: rejected 1 frames with undeclared channels or no rows",
        "bed b1: rejected 10 frames with undeclared channels or no rows",
    ]
    bed.push(_frame(SPO2, 0.0, 8))
    assert bed.rejected_frames == 11 and bed.channels["SpO2"].counters.samples_in == 8


@pytest.mark.parametrize(("lead", "filled", "dropped", "written"), [
    (0, 0, 0, 16),  # on time
    (1, 0, 0, 16),  # one sample late: jitter, appended as is
    (2, 2, 0, 18),  # two samples missing: filled
    (-1, 0, 0, 16),  # one sample early: jitter
    (-2, 0, 2, 14),  # two samples overlap what we have: dropped
    (-8, 0, 8, 8),  # all of it is old
])
def test_jitter_of_a_sample_is_tolerated_more_is_filled_or_dropped(
        lead: int, filled: int, dropped: int, written: int) -> None:
    bed, _ = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, 8))
    bed.push(_frame(SPO2, (8 + lead) / SPO2.fs, 8))
    c = bed.channels["SpO2"].counters
    assert (c.filled, c.dropped_overlap, bed.channels["SpO2"].ring.written) == (
        filled, dropped, written)
    assert c.samples_in == 16


def test_ring_overrun_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    bed, rec = _bed(SPO2, HR, ring_s=5.0)  # SpO2 ring: 20 samples
    bed.push(_frame(HR, 0.0, 1))  # HR stalls after 1 s: nothing past 1 s is processed
    with caplog.at_level(logging.WARNING, logger="sleepstream.engine.bed"):
        bed.push(_frame(SPO2, 0.0, 24))  # 4 unprocessed over capacity
        bed.push(_frame(SPO2, 6.0, 4))
    c = bed.channels["SpO2"].counters
    assert bed.channels["SpO2"].ring.capacity == 20
    assert c.processed == 0 and c.overrun == 4 + 4  # the first hop's samples were lost
    assert [r.getMessage() for r in caplog.records] == [
        "bed b1: SpO2 ring overrun, 4 samples lost", "bed b1: SpO2 ring overrun, 4 samples lost"]
    bed.push(_frame(HR, 1.0, 9))  # HR catches up: blocks resume after the lost samples
    assert rec.blocks[-1].t_end == 7.0 and c.processed == 28 - 8
    spo2 = np.concatenate([b.native["SpO2"].data for b in rec.blocks if "SpO2" in b.native])
    assert spo2.size == 20  # 0..7 s at 4 Hz is 28 samples, 8 of them overwritten


def test_the_ring_holds_the_grid_times_and_has_a_minimum_capacity() -> None:
    bed, _ = _bed(SPO2, ring_s=1.0)
    ring = bed.channels["SpO2"].ring
    assert ring.capacity == 16  # at least 16 samples whatever ring_s
    bed.push(_frame(SPO2, 2.0, 6))
    bed.push(_frame(SPO2, 4.0, 4))  # a 0.5-s hole, filled
    t, _, valid = rb.read_index(ring, ring.written - 12, ring.written)
    np.testing.assert_allclose(t, 2.0 + np.arange(12) / SPO2.fs)
    assert valid[:6].all() and not valid[6:8].any() and valid[8:].all()


def test_hops_align_to_the_hop_grid_not_to_the_first_sample() -> None:
    bed, rec = _bed(HR, hop_s=5.0)
    bed.push(_frame(HR, 12.0, 13))  # samples 12..24 s
    assert [(b.bed, b.t_start, b.t_end) for b in rec.blocks] == [("b1", 10.0, 25.0)]
    assert bed.t_done == 25.0
    bed.push(_frame(HR, 25.0, 4))  # up to 29 s: no whole hop yet
    assert len(rec.blocks) == 1
    bed.push(_frame(HR, 29.0, 1))
    assert (rec.blocks[-1].t_start, rec.blocks[-1].t_end) == (25.0, 30.0)


def test_blocks_name_their_channels_and_date_the_model_rows() -> None:
    bed, rec = _bed(EEG)
    x = np.random.default_rng(0).normal(0, 20, 1000).astype(np.float32)
    bed.push(Frame(("EEG",), np.arange(1000) / EEG.fs, x[:, None], np.ones((1000, 1), bool)))
    blocks = [b for b in rec.blocks if "EEG" in b.native]
    native = [b.native["EEG"] for b in blocks]
    assert [(c.name, c.modality, c.fs) for c in native[:1]] == [("EEG", "eeg", 250.0)]
    assert sum(c.data.shape[0] for c in native) == 1000
    model = [b.model["EEG"] for b in blocks if "EEG" in b.model]
    assert model and all((m.name, m.modality, m.fs) == ("EEG", "eeg", 100.0) for m in model)
    rows = 0
    for m in model:  # each model block starts where the previous one ended
        assert m.t0 == pytest.approx(rows / 100.0)
        rows += m.data.shape[0]
    assert 380 <= rows <= 400  # 4 s at 100 Hz less the resampler's settling


def test_quality_alarms_carry_the_bed_and_channel() -> None:
    bed, _ = _bed(HR)
    events = bed.push(_frame(HR, 0.0, 30, value=5.0))  # 5 bpm: out of range for 30 s
    alerts = [e for e in events if e.get("type") == "alert"]
    assert alerts and alerts[0]["code"] == "out_of_range"
    assert alerts[0]["id"].startswith("b1/HR/out_of_range/") and alerts[0]["bed"] == "b1"


def test_adding_channels_twice_keeps_the_first_and_adds_the_rest() -> None:
    bed, _ = _bed(SPO2)
    ring = bed.channels["SpO2"].ring
    bed.add_channels([SPO2, HR])
    assert bed.channels["SpO2"].ring is ring and "HR" in bed.channels
    assert bed.channels["HR"].quality.conditions["out_of_range"].bed == "b1"


def test_a_source_fault_naming_no_channel_concerns_every_signal_channel() -> None:
    bed, _ = _bed(SPO2, HR, COUNTER)
    assert bed.source_event(SourceEvent("stream_lost", (), 5.0, True, "lost")) == []
    [active] = bed.tick(7.5)
    assert active["code"] == "source_fault" and active["state"] == "active"
    assert sorted(active["channels"]) == ["HR", "SpO2"]
    assert bed.source_event(SourceEvent("stream_lost", ("counter",), 8.0, True, "x")) == []


def test_a_bed_that_starts_late_dates_its_blocks_and_model_rows_from_its_start() -> None:
    bed, rec = _bed(EEG)
    x = np.random.default_rng(0).normal(0, 20, 1000).astype(np.float32)
    t = 100.0 + np.arange(1000) / EEG.fs
    bed.push(Frame(("EEG",), t, x[:, None], np.ones((1000, 1), bool)))
    assert rec.blocks[0].t_start == 100.0 and rec.blocks[-1].t_end == 104.0
    native = [b.native["EEG"] for b in rec.blocks]
    assert native[0].t0 == 100.0 and sum(c.data.shape[0] for c in native) == 1000
    rows = 0
    for m in (b.model["EEG"] for b in rec.blocks if "EEG" in b.model):
        assert m.t0 == pytest.approx(100.0 + rows / 100.0)
        rows += m.data.shape[0]
    assert rows > 300


def test_holes_and_overlaps_accumulate_in_the_counters() -> None:
    bed, _ = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, 8))
    bed.push(_frame(SPO2, 3.0, 8))  # 4 samples missing (2..3 s)
    bed.push(_frame(SPO2, 6.0, 8))  # 4 samples missing again
    bed.push(_frame(SPO2, 7.0, 4))  # 4 samples of overlap (7..8 s)
    bed.push(_frame(SPO2, 7.25, 4))  # 3 more
    bed.push(_frame(SPO2, 7.75, 1))  # a single old sample: nothing left to take
    c = bed.channels["SpO2"].counters
    assert (c.filled, c.dropped_overlap) == (8, 8) and bed.channels["SpO2"].ring.written == 33


def test_the_live_clock_fills_at_the_channel_s_rate() -> None:
    bed, rec = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, 8))  # 2 s at 4 Hz
    bed.advance(t_now=7.0, grace_s=2.0)  # closes up to 5 s: 3 s x 4 Hz filled
    assert bed.channels["SpO2"].counters.filled == 12 and rec.blocks[-1].t_end == 5.0


def test_finish_returns_what_processors_and_source_faults_say_at_the_end() -> None:
    bed = BedState("b1", hop_s=1.0, ring_s=60.0, processors=(AlertEngine("b1"),))
    bed.add_channels([HR])
    bed.push(_frame(HR, 0.0, 10, value=70.0))
    bed.source_event(SourceEvent("stream_lost", ("HR",), 9.0, True, "lost"))
    out = bed.finish()
    assert bed.t_done == 10.0
    kinds = [(e["type"], e.get("code"), e.get("state")) for e in out]
    assert ("index", None, None) in kinds  # the alert engine's closing index event
    fault = [e for e in out if e.get("code") == "source_fault"]
    assert fault and fault[-1]["state"] == "ended" and fault[-1]["end"] == 10.0
    assert all(e["t"] == 10.0 for e in fault)


def test_finishing_on_a_hop_boundary_processes_no_empty_block() -> None:
    bed, rec = _bed(HR)
    bed.push(_frame(HR, 0.0, 5))
    n = len(rec.blocks)
    bed.finish()
    assert len(rec.blocks) == n and bed.t_done == 5.0


def test_events_of_a_block_come_in_time_order() -> None:
    assert event_time({"type": "stage", "epoch_start": 30.0, "epoch_s": 30.0, "t": 75.0}) == 60.0
    assert event_time({"type": "alert", "t": 12.5}) == 12.5
    assert event_time({"type": "status"}) == float("inf")
    assert event_time({"type": "stage", "epoch_start": 0, "epoch_s": 30}) == 30.0

    class Late:
        def process(self, block: Block) -> Sequence[object]:
            return [{"type": "x", "t": block.t_end + 5}, {"type": "x", "t": block.t_start},
                    {"type": "x"}]

        def finish(self, t_end: float) -> Sequence[object]:
            return []

    bed = BedState("b1", hop_s=1.0, ring_s=60.0, processors=(Late(),))
    bed.add_channels([HR])
    out = bed.push(_frame(HR, 0.0, 1))
    assert [e.get("t") for e in out] == [0.0, 6.0, None]
