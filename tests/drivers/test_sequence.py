"""Packet ordering: every sample released once, in order, whatever the arrival order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepstream.drivers.sequence import Segment, SequenceState


def _packets(n_packets: int, size: int) -> list[Segment]:
    return [
        Segment(k * size, np.arange(k * size, (k + 1) * size, dtype=np.float32),
                np.ones(size, dtype=bool))
        for k in range(n_packets)
    ]


def _released(state: SequenceState, arrivals: list[Segment]) -> list[Segment]:
    out: list[Segment] = []
    for i, seg in enumerate(arrivals):
        released, _ = state.push(seg, now=float(i))
        out.extend(released)
    out.extend(state.flush_stale(now=1e9))
    while state.pending:
        out.extend(state.flush_stale(now=1e9))
    return out


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_shuffled_duplicated_and_lost_packets_are_accounted(data: st.DataObject) -> None:
    n, size = data.draw(st.integers(2, 40)), data.draw(st.integers(1, 9))
    packets = _packets(n, size)
    lost = set(data.draw(st.lists(st.integers(1, n - 1), max_size=4)))
    arrivals = [p for k, p in enumerate(packets) if k not in lost]
    arrivals += data.draw(st.lists(st.sampled_from(arrivals), max_size=5))  # duplicates
    # local reordering: swap neighbours within a distance of 3
    for _ in range(data.draw(st.integers(0, 10))):
        i = data.draw(st.integers(0, len(arrivals) - 1))
        j = min(len(arrivals) - 1, i + data.draw(st.integers(1, 3)))
        arrivals[i], arrivals[j] = arrivals[j], arrivals[i]
    first = arrivals[0].seq
    state = SequenceState(window=8, max_wait_s=5.0)
    out = _released(state, arrivals)
    data_out = np.concatenate([s.data for s in out])
    valid_out = np.concatenate([s.valid for s in out])
    seq_out = np.concatenate([np.arange(s.seq, s.end) for s in out])
    # in order, exactly once, contiguous from the first arrival to the last packet received
    last = max(a.end for a in arrivals)  # a lost tail is unknowable until more data arrives
    np.testing.assert_array_equal(seq_out, np.arange(first, last))
    np.testing.assert_array_equal(data_out[valid_out], seq_out[valid_out])
    n_missing = int((~valid_out).sum())
    assert n_missing == state.gap_samples
    assert state.packets == len(arrivals)


def test_counts_duplicates_late_and_reordering() -> None:
    p = _packets(6, 4)
    state = SequenceState(window=2, max_wait_s=10.0)
    state.push(p[0], 0.0)
    state.push(p[0], 0.1)
    assert state.duplicates == 1
    assert state.push(p[2], 0.2)[0] == []  # held, waiting for p[1]
    released, note = state.push(p[1], 0.3)
    assert note == "reordered" and [s.seq for s in released] == [4, 8]
    state.push(p[4], 0.4)
    state.push(p[5], 0.5)
    assert state.flush_stale(5.0) == []
    gap = state.flush_stale(11.0)
    assert gap[0].gap and gap[0].seq == 12 and state.gap_samples == 4
    assert state.push(p[3], 12.0)[1] == "late"


def _real(k: int, size: int = 16) -> Segment:
    return Segment(k * size, np.full(size, k, dtype=np.float32), np.ones(size, dtype=bool))


def _forged(seq: int, size: int = 16) -> Segment:
    return Segment(seq, np.full(size, -1.0, dtype=np.float32), np.ones(size, dtype=bool))


def _run(state: SequenceState, arrivals: list[tuple[float, Segment]]) -> list[Segment]:
    out: list[Segment] = []
    for now, seg in arrivals:
        out.extend(state.push(seg, now)[0])
        out.extend(state.flush_stale(now))
    return out


def test_a_forged_seq_far_ahead_is_neither_filled_nor_fatal() -> None:
    for jump in (2**31, 2**20, 16 * 60):  # beyond max_gap, and beyond what time allows
        state = SequenceState(fs=16.0)
        arrivals = [(k * 1.0, _real(k)) for k in range(3)]
        arrivals += [(2.5, _forged(3 * 16 + jump))]
        arrivals += [(k * 1.0, _real(k)) for k in range(3, 8)]
        out = _run(state, arrivals)
        assert state.gap_samples == 0 and state.late == 0 and state.out_of_window == 1
        data = np.concatenate([s.data for s in out])
        np.testing.assert_array_equal(data, np.repeat(np.arange(8), 16))


def test_a_restarted_device_is_followed_after_two_packets() -> None:
    state = SequenceState(fs=16.0)
    out = _run(state, [(k * 1.0, _real(k)) for k in range(100, 104)])
    out += _run(state, [(104.0 + k, _real(k)) for k in range(3)])  # counter back to 0
    assert state.resyncs == 1 and state.gap_samples == 0 and state.next_seq == 3 * 16
    assert [s.seq for s in out[-3:]] == [0, 16, 32]
    # a forged packet far behind is dropped the same way: the next real packet does not continue it
    out = _run(state, [(107.5, _forged(9000)), (108.0, _real(3))])
    assert state.resyncs == 1 and state.out_of_window == 1 and out[-1].seq == 48


def test_a_buffered_burst_ahead_of_the_clock_is_taken_after_two_packets() -> None:
    state = SequenceState(fs=16.0, window=4, max_wait_s=5.0)
    out = _run(state, [(0.01 * k, _real(k)) for k in range(30)])  # 30 s of data in 0.3 s
    data = np.concatenate([s.data for s in out])
    np.testing.assert_array_equal(data, np.repeat(np.arange(30), 16))
    assert state.resyncs == 0 and state.gap_samples == 0


def test_a_forged_duplicate_is_a_conflict_and_does_not_silence_the_device() -> None:
    state = SequenceState(fs=16.0)
    out = _run(state, [(0.0, _real(0)), (0.5, _forged(16))])  # the forgery wins seq 16 ...
    released, note = state.push(_real(1), 1.0)
    assert note == "conflict" and state.conflicts == 1 and released == []
    out += _run(state, [(k * 1.0, _real(k)) for k in range(2, 5)])  # ... and only seq 16
    assert state.push(_real(4), 5.0)[1] == "duplicate"  # an identical copy is a plain duplicate
    np.testing.assert_array_equal(np.concatenate([s.data for s in out])[32:], np.repeat(
        np.arange(2, 5), 16))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(-(2**40), 2**40)), max_size=6))
def test_forgeries_never_allocate_beyond_the_cap_and_the_device_recovers(
    forgeries: list[tuple[int, int]],
) -> None:
    state = SequenceState(fs=16.0)
    arrivals = [(k * 1.0, _real(k)) for k in range(80)]
    for pos, offset in sorted(forgeries, reverse=True):  # each alone, between real packets
        arrivals.insert(pos, (pos - 0.5, _forged(max(0, pos * 16 + offset))))
    out = _run(state, arrivals)
    assert all(s.data.shape[0] <= state.max_gap for s in out)
    assert state.gap_samples <= len(forgeries) * (state.horizon_slack_s + 1) * 16
    data = np.concatenate([s.data for s in out])[-8 * 16 :]
    seq = np.concatenate([np.arange(s.seq, s.end) for s in out])[-8 * 16 :]
    # the real device's packets well after the last forgery come through, in order
    np.testing.assert_array_equal(seq, np.arange(72 * 16, 80 * 16))
    np.testing.assert_array_equal(data, np.repeat(np.arange(72, 80), 16))


def test_a_full_window_releases_only_the_oldest_of_several_holes() -> None:
    """Holes at 1, 3 and 5 at once: when the window overflows only hole 1 becomes a gap; 3 and
    5 stay open, so their packets, arriving late but within the window, are taken as data."""
    packets = _packets(8, 1)
    state = SequenceState(window=2, max_wait_s=1e9)
    out: list[Segment] = []
    for k in (0, 2, 4, 6):
        released, _ = state.push(packets[k], now=0.0)
        out.extend(released)
    assert [(s.seq, s.gap) for s in out] == [(0, False), (1, True), (2, False)]
    for k in (3, 5):
        released, note = state.push(packets[k], now=0.0)
        assert note == "reordered" and released[0].seq == k and not released[0].gap
    assert state.gaps == 1 and state.gap_samples == 1 and state.late == 0
    assert state.next_seq == 7 and not state.pending


def _seg(seq: int, n: int, valid: list[bool] | None = None) -> Segment:
    mask = np.ones(n, dtype=bool) if valid is None else np.array(valid)
    return Segment(seq, np.arange(seq, seq + n, dtype=np.float32), mask)


@pytest.mark.parametrize(("ahead", "note"), [(100, None), (101, "out_of_window")])
def test_a_packet_at_most_max_gap_ahead_is_held(ahead: int, note: str | None) -> None:
    state = SequenceState(max_gap=100)
    state.push(_seg(0, 16), now=0.0)
    assert state.push(_seg(16 + ahead, 16), now=0.0) == ([], note)
    assert state.out_of_window == 0 and (16 + ahead in state.pending) == (note is None)


@pytest.mark.parametrize(("seq", "note"), [(170, None), (171, "out_of_window")])
def test_at_one_sample_per_second_the_horizon_is_the_slack(seq: int, note: str | None) -> None:
    """fs 1, 16-sample packets every 16 s: the horizon is 10 samples past the last packet."""
    state = SequenceState(fs=1.0)
    for k in range(10):
        state.push(_seg(k * 16, 16), now=k * 16.0)
    assert state.push(_seg(seq, 16), now=160.0) == ([], note)


@pytest.mark.parametrize(("seq", "note"), [(208, None), (209, "out_of_window")])
def test_the_horizon_keeps_its_earliest_anchor_when_packets_come_later(
    seq: int, note: str | None
) -> None:
    """fs 16: packets ending at 32 by t = 0, then one ending at 48 at t = 2 (delayed): the
    horizon stays anchored on the earlier lead, 32 + (2 + 10) * 16 = 224."""
    state = SequenceState(fs=16.0)
    state.push(_seg(0, 16), now=0.0)
    state.push(_seg(16, 16), now=0.0)
    state.push(_seg(32, 16), now=2.0)
    assert state.push(_seg(seq, 16), now=2.0) == ([], note)


def test_late_packets_and_a_duplicate_at_a_gap_s_end_are_counted_apart() -> None:
    p = _packets(6, 4)
    state = SequenceState(window=1)
    for k in (0, 2, 3):  # the window overflows: [4, 8) is released as a gap
        state.push(p[k], now=0.0)
    assert state.recent_gaps[-1] == (4, 8)
    assert state.push(p[1], now=0.1)[1] == "late"
    assert state.push(p[1], now=0.2)[1] == "late"
    assert state.push(p[2], now=0.3)[1] == "duplicate"  # seq 8: the gap's end, taken as data
    assert (state.late, state.duplicates) == (2, 1)


def test_every_conflict_is_counted() -> None:
    state = SequenceState()
    _run(state, [(0.0, _real(0)), (1.0, _real(1))])
    assert state.push(_forged(0), 1.5)[1] == "conflict"
    assert state.push(_forged(16), 1.6)[1] == "conflict"
    assert state.conflicts == 2 and state.duplicates == 0


def test_the_last_256_packets_are_remembered_for_conflicts() -> None:
    state = SequenceState()
    for k in range(257):
        state.push(_seg(k, 1), now=0.0)
    assert state.push(Segment(0, np.array([-1.0], np.float32), np.ones(1, bool)),
                      now=1.0)[1] == "duplicate"  # the 257th latest: forgotten
    assert state.push(Segment(1, np.array([-1.0], np.float32), np.ones(1, bool)),
                      now=1.0)[1] == "conflict"
    assert len(state.taken) == 256


def test_a_hole_is_released_once_max_wait_s_has_passed() -> None:
    state = SequenceState(window=8, max_wait_s=1.0)
    state.push(_seg(0, 1), now=100.0)
    state.push(_seg(2, 1), now=100.0)
    assert state.flush_stale(100.5) == [] and state.pending
    out = state.flush_stale(101.0)  # exactly max_wait_s later
    assert [(s.seq, s.gap) for s in out] == [(1, True), (2, False)] and not state.pending


def test_flush_releases_one_hole_at_a_time_as_float32_nan_gaps() -> None:
    state = SequenceState(window=8, max_wait_s=1.0)
    for k in (0, 2, 4):
        state.push(_seg(k, 1), now=0.0)
    first = state.flush_stale(2.0)
    assert [(s.seq, s.gap) for s in first] == [(1, True), (2, False)]
    assert set(state.pending) == {4}  # one hole per call; the next has waited as long
    second = state.flush_stale(2.0)
    assert [(s.seq, s.gap) for s in second] == [(3, True), (4, False)]
    for gap in (first[0], second[0]):
        assert gap.data.dtype == np.float32 and np.isnan(gap.data).all()
        assert not gap.valid.any()
    assert state.gaps == 2 and state.gap_samples == 2


def test_partial_overlaps_are_trimmed_with_their_validity() -> None:
    state = SequenceState()
    state.push(_seg(0, 16), now=0.0)
    mask = [True, False, True, True] * 4
    out, _ = state.push(_seg(15, 16, mask), now=0.1)  # overlaps 1 sample
    assert [(s.seq, len(s.data)) for s in out] == [(16, 15)]
    np.testing.assert_array_equal(out[0].data, np.arange(16, 31, dtype=np.float32))
    assert out[0].valid.tolist() == mask[1:] and not out[0].gap
    out, _ = state.push(_seg(28, 8), now=0.2)  # overlaps 3 samples
    assert [(s.seq, len(s.data)) for s in out] == [(31, 5)]
    assert state.overlap_samples == 4 and state.next_seq == 36


def test_a_held_packet_covered_by_a_longer_one_is_not_released_again() -> None:
    state = SequenceState()
    state.push(_seg(0, 16), now=0.0)
    state.push(_seg(32, 16), now=0.0)  # held
    out, note = state.push(_seg(16, 32), now=0.1)  # covers [16, 48), the held packet too
    assert note == "reordered" and [(s.seq, s.end) for s in out] == [(16, 48)]
    assert not state.pending and state.next_seq == 48
