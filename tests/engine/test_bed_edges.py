"""Edges of the bed's block path: model-rate blocks of a channel that starts off the hop grid,
the source-fault alarm as configured, a one-sample overrun, per-reason invalid counts over
blocks, a pending quality condition cut by a clean block, alarms ended at finish, the live
clock's tick, channels that never start, and commands to processors that cannot acknowledge."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sleepstream.engine import resample
from sleepstream.engine.bed import BedState
from sleepstream.engine.protocols import Block, Event, SourceEvent
from sleepstream.engine.types import MODEL_RATES, ChannelSpec, Command, Frame
from tests.engine.recorder import Recorder

SPO2 = ChannelSpec("SpO2", 4.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)
HR = ChannelSpec("HR", 1.0, "hr", "bpm", 0.0, 250.0, 20.0, 250.0)
EEG = ChannelSpec("EEG", 250.0, "eeg", "uV", -500.0, 500.0)


class Marker(Recorder):
    """Keeps every block and answers each with one event at the block's end."""

    def process(self, block: Block) -> Sequence[object]:
        super().process(block)
        return [{"type": "mark", "t": block.t_end}]


def _bed(*specs: ChannelSpec, name: str = "b1", ring_s: float = 60.0,
         escalate_after_s: float = 60.0, rec: Recorder | None = None
         ) -> tuple[BedState, Recorder]:
    rec = rec or Recorder()
    bed = BedState(name, hop_s=1.0, ring_s=ring_s, processors=(rec,),
                   escalate_after_s=escalate_after_s)
    bed.add_channels(list(specs))
    return bed, rec


def _push_by_second(
        bed: BedState, spec: ChannelSpec, t0: float, x: np.ndarray) -> list[Event]:
    """Push one frame per second, as a live source does: one block per push."""
    step = int(spec.fs)
    events: list[Event] = []
    for i in range(0, x.shape[0], step):
        events += bed.push(_frame(spec, t0 + i / spec.fs, x[i:i + step]))
    return events


def _frame(spec: ChannelSpec, t0: float, x: np.ndarray) -> Frame:
    t = t0 + np.arange(x.shape[0]) / spec.fs
    return Frame((spec.name,), t, x.astype(np.float32)[:, None],
                 np.ones((x.shape[0], 1), bool))


def test_model_blocks_of_a_channel_starting_off_the_grid_equal_a_direct_resample() -> None:
    bed, rec = _bed(EEG)
    t0, n = 3.3, 2500
    x = (40.0 * np.sin(2 * np.pi * 7.0 * np.arange(n) / EEG.fs)).astype(np.float32)
    for i in range(0, n, 125):
        bed.push(_frame(EEG, t0 + i / EEG.fs, x[i:i + 125]))
    bed.finish()
    native = [b.native["EEG"] for b in rec.blocks]
    for b, cb in zip(rec.blocks, native, strict=True):  # each native block lies in its hop
        assert b.t_start - 1e-9 <= cb.t0
        assert cb.t0 + cb.data.shape[0] / EEG.fs <= b.t_end + 1e-9
    assert native[0].t0 == t0 and native[0].data.shape[0] == 175  # 3.3 .. 4.0
    assert sum(cb.data.shape[0] for cb in native) == n
    ref = resample.new_state(resample.design(EEG.fs, MODEL_RATES["eeg"]))
    fs_out = ref.spec.fs_out
    want_t, want_y, got_t, got_y = [], [], [], []
    for cb in native:
        before = ref.aligned_out
        y, ok = resample.step(ref, cb.data, cb.valid)
        want_t.append(t0 + (before + np.arange(y.shape[0])) / fs_out)
        want_y.append(np.where(ok, y, np.nan))
    for b in rec.blocks:
        m = b.model["EEG"]
        got_t.append(m.t0 + np.arange(m.data.shape[0]) / m.fs)
        got_y.append(m.data)
    np.testing.assert_allclose(np.concatenate(got_t), np.concatenate(want_t), atol=1e-9)
    np.testing.assert_array_equal(np.concatenate(got_y), np.concatenate(want_y))
    assert np.isfinite(np.concatenate(got_y)).sum() > 0.9 * np.concatenate(got_y).size


def test_source_fault_alarm_carries_the_bed_its_escalation_and_the_source_message() -> None:
    bed, _ = _bed(SPO2, name="ward-7", escalate_after_s=5.0)
    bed.push(_frame(SPO2, 0.0, np.full(4, 96.0)))
    bed.source_event(SourceEvent("stream_lost", ("SpO2",), 1.0, True, "socket closed by peer"))
    announced = [e for e in bed.tick(3.0) if e["type"] == "alert"]
    assert len(announced) == 1
    a = announced[0]
    assert a["bed"] == "ward-7" and a["id"].startswith("ward-7")
    assert a["details"] == ["socket closed by peer"] and a["t"] == 3.0
    assert bed.tick(7.9) == []  # 4.9 s after it was announced: not yet
    esc = bed.tick(8.0)  # escalate_after_s = 5 as configured, not the default 60
    assert [e["state"] for e in esc] == ["escalated"] and esc[0]["t"] == 8.0


def test_an_overrun_of_exactly_one_sample_is_counted() -> None:
    bed, _ = _bed(SPO2, HR, ring_s=5.0)  # SpO2 ring: 20 samples
    bed.push(_frame(HR, 0.0, np.full(1, 60.0)))  # HR stalls: nothing past 1 s is processed
    bed.push(_frame(SPO2, 0.0, np.full(20, 96.0)))  # 20 unprocessed: the ring is full
    assert bed.channels["SpO2"].counters.overrun == 0
    bed.push(_frame(SPO2, 5.0, np.full(1, 96.0)))  # one more: one lost
    assert bed.channels["SpO2"].counters.overrun == 1


def test_invalid_counts_per_reason_accumulate_over_blocks() -> None:
    bed, _ = _bed(SPO2)
    x = np.full(12, 96.0)
    x[[1, 5, 6, 9]] = np.nan  # NaN in each of three blocks
    x[[2, 10]] = 30.0  # out of range in two blocks
    _push_by_second(bed, SPO2, 0.0, x)
    s = bed.summary()["SpO2"]
    assert s["invalid_by_reason"] == {"nan": 4, "out_of_range": 2}
    assert s["invalid"] == 6 and s["processed"] == 12


def test_a_pending_condition_cut_by_a_clean_block_starts_again() -> None:
    bed, _ = _bed(SPO2)  # out_of_range: announced after 10 s
    x = np.concatenate([np.full(24, 30.0), np.full(4, 96.0), np.full(32, 30.0)])
    events = _push_by_second(bed, SPO2, 0.0, x)  # 6 s, a clean 1-s block, 8 s: none lasts 10 s
    assert [e for e in events if e["type"] == "alert"] == []
    assert bed.channels["SpO2"].quality.conditions["out_of_range"].current is None
    more = _push_by_second(bed, SPO2, 15.0, np.full(8, 30.0))  # the second run reaches 10 s
    alerts = [e for e in more if e["type"] == "alert"]
    assert [(e["code"], e["state"], e["t"]) for e in alerts] == [
        ("out_of_range", "active", 17.0)]


def test_alarms_ended_at_finish_carry_the_end_time() -> None:
    bed, _ = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, np.full(50, 30.0)))  # out of range for 12.5 s
    ended = [e for e in bed.finish() if e["type"] == "alert" and e["state"] == "ended"]
    assert [(e["code"], e["end"]) for e in ended] == [("out_of_range", 12.5)]


def test_the_live_clock_ticks_when_no_block_closes() -> None:
    bed, _ = _bed(SPO2)
    bed.push(_frame(SPO2, 0.0, np.full(14, 96.0)))  # blocks up to 3 s
    bed.source_event(SourceEvent("packet_loss", ("SpO2",), 1.3, True, "lost 3 packets"))
    assert bed.advance(3.2, 0.0) == []  # the fault is due at 3.3
    events = bed.advance(3.4, 0.0)  # no block closes: the clock's tick announces it
    assert [(e["type"], e["state"], e["t"]) for e in events] == [("alert", "active", 3.4)]


def test_the_live_clock_keeps_the_events_of_the_blocks_it_closes() -> None:
    bed, _ = _bed(SPO2, rec=Marker())
    bed.push(_frame(SPO2, 0.0, np.full(18, 96.0)))  # data to 4.5 s, blocks up to 4 s
    events = bed.advance(5.2, 0.0)  # fills to 5 s, closes 4..5, then ticks at 5.2
    assert [(e["type"], e["t"]) for e in events] == [("mark", 5.0)]


def test_channels_that_never_start_do_not_stop_the_others() -> None:
    bed, rec = _bed(HR, SPO2)  # HR first, and it never sends
    assert bed.advance(5.0, 1.0) == [] and rec.blocks == []  # no channel started: no block
    bed.push(_frame(SPO2, 0.0, np.full(8, 96.0)))
    assert [(b.t_start, b.t_end, sorted(b.native)) for b in rec.blocks] == [
        (0.0, 2.0, ["SpO2"])]


def test_ack_reaches_processors_that_cannot_acknowledge_without_error() -> None:
    bed, _ = _bed(SPO2)
    events = bed.command(Command("b1", "ack", 2.0, None, "nurse"))
    assert [(e["type"], e["matched"]) for e in events] == [("status", False)]


def test_the_last_partial_block_holds_only_the_channels_with_samples_in_it() -> None:
    bed, rec = _bed(SPO2, HR)
    for t in (0.0, 1.0):
        bed.push(_frame(SPO2, t, np.full(4, 96.0)))
        bed.push(_frame(HR, t, np.full(1, 60.0)))  # HR ends at 2 s
    bed.push(_frame(SPO2, 2.0, np.full(2, 96.0)))  # SpO2 goes on to 2.5 s
    bed.finish()
    last = rec.blocks[-1]
    assert (last.t_start, last.t_end, sorted(last.native)) == (2.0, 2.5, ["SpO2"])
    assert last.native["SpO2"].data.shape[0] == 2
