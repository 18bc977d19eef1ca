"""Packet ordering: every sample released once, in order, whatever the arrival order."""

from __future__ import annotations

import numpy as np
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
