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
