"""Resynchronisation: a device that restarts or jumps its counter starts a new stream, and
nothing from before the jump (held packets, released holes, taken digests) leaks into it; a
buffered burst ahead of the arrival horizon but within ``max_gap`` is taken as data."""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.drivers.sequence import Segment, SequenceState

N = 16


def _seg(seq: int, value: float | None = None) -> Segment:
    data = (np.arange(seq, seq + N) if value is None else np.full(N, value)).astype(np.float32)
    return Segment(seq, data, np.ones(N, bool))


def _jumped() -> SequenceState:
    """Packets 0..9 with packet 2 lost (a released hole [32, 48)) and packet 11 held, then the
    counter jumps to 5000 (beyond max_gap): out of window, then continued: a resync."""
    state = SequenceState(window=1, max_gap=1000, max_behind=1 << 20)
    for k in (0, 1, 3, 4, 5, 6, 7, 8, 9):
        state.push(_seg(k * N), now=0.0)
    assert state.gaps == 1 and (32, 48) in state.recent_gaps
    state.push(_seg(11 * N), now=0.0)  # held: 10 is missing
    assert 11 * N in state.pending
    out, note = state.push(_seg(5000), now=1.0)
    assert (out, note) == ([], "out_of_window")
    out, note = state.push(_seg(5016), now=1.0)
    assert note == "resync" and [s.seq for s in out] == [5000, 5016]
    assert not any(s.gap for s in out)
    return state


def test_a_resync_starts_a_new_stream() -> None:
    state = _jumped()
    assert state.resyncs == 1 and state.out_of_window == 0
    assert state.next_seq == 5032 and not state.pending and state.held_since is None
    assert not state.recent_gaps and state.candidate is None
    assert set(state.taken) == {5000, 5016}
    out, note = state.push(_seg(5032), now=1.1)
    assert note is None and [s.seq for s in out] == [5032]


def test_after_a_resync_old_packets_are_duplicates_not_late_fills_or_conflicts() -> None:
    state = _jumped()
    assert state.push(_seg(32), now=2.0) == ([], "duplicate")  # its hole was forgotten
    assert state.push(_seg(0, value=7.0), now=2.0) == ([], "duplicate")  # digest forgotten
    assert (state.late, state.conflicts, state.duplicates) == (0, 0, 2)


def test_a_burst_ahead_of_the_horizon_within_max_gap_is_data() -> None:
    """fs 16: packet 0 at t = 0, then packets at 3200 and 3216 at t = 1 (200 s of samples
    ahead of the clock, past the 10-s slack): held as a candidate, then taken with one gap."""
    state = SequenceState(fs=16.0)
    state.push(_seg(0), now=0.0)
    assert state.push(_seg(3200), now=1.0) == ([], "out_of_window")
    out, note = state.push(_seg(3216), now=1.0)
    assert note is None and state.resyncs == 0
    assert [(s.seq, s.gap) for s in out] == [(16, True), (3200, False), (3216, False)]
    assert state.gaps == 1 and state.gap_samples == 3200 - 16
    assert state.next_seq == 3232 and not state.pending and state.held_since is None
    assert state.lead == 3232 - 1.0 * 16.0  # re-anchored on the burst's second packet


def test_a_candidate_not_continued_is_dropped_and_the_stream_flows_on() -> None:
    state = SequenceState(window=2, max_gap=1000)
    state.push(_seg(0), now=0.0)
    assert state.push(_seg(9000), now=0.1) == ([], "out_of_window")
    out, note = state.push(_seg(16), now=0.2)
    assert note is None and [s.seq for s in out] == [16]
    assert state.out_of_window == 1 and state.resyncs == 0 and state.candidate is None


def test_counters_count_every_event() -> None:
    state = SequenceState(window=4, max_gap=1000)
    state.push(_seg(0), now=0.0)
    for far in (9000, 9500):  # two candidates, neither continued
        assert state.push(_seg(far), now=0.1) == ([], "out_of_window")
    state.push(_seg(16), now=0.2)
    assert state.out_of_window == 2
    for k in (3, 5):  # two holes, then both filled out of order
        state.push(_seg(k * N), now=0.3)
    for k in (2, 4):
        _, note = state.push(_seg(k * N), now=0.4)
        assert note == "reordered"
    assert state.reordered == 2 and state.next_seq == 6 * N
    _, note = state.push(_seg(6 * N), now=0.5)
    assert note is None and state.reordered == 2


@pytest.mark.parametrize(("behind", "note"), [(80, "duplicate"), (81, "out_of_window")])
def test_with_a_rate_the_past_window_is_max_behind_s(behind: int, note: str) -> None:
    """fs 16 and max_behind_s 5: a packet ending 80 samples before the next expected one is
    still in the window (a duplicate), one ending 81 before is a restart candidate."""
    state = SequenceState(fs=16.0)
    for k in range(10):
        state.push(_seg(k * N), now=k * 1.0)
    end = state.next_seq - behind
    assert state.push(_seg(end - N), now=10.0)[1] == note


def test_a_rate_of_one_sample_per_second_still_limits_the_past_window() -> None:
    state = SequenceState(fs=1.0, max_behind_s=5.0)
    for k in range(10):
        state.push(_seg(k * N), now=k * 16.0)
    assert state.push(_seg(state.next_seq - 6 - N), now=160.0)[1] == "out_of_window"


def _long(seq: int, n: int) -> Segment:
    return Segment(seq, np.arange(seq, seq + n, dtype=np.float32), np.ones(n, bool))


@pytest.mark.parametrize("start", [16, 8])
def test_a_long_packet_continuing_the_stream_is_not_a_restart(start: int) -> None:
    """fs 16: a 200-sample packet reaching past the 10-s horizon that starts exactly where the
    stream is (or overlaps its last 8 samples), then continued: buffered data, not a restart;
    the stream goes on without a resync, a gap or a sample released twice."""
    state = SequenceState(fs=16.0)
    out, _ = state.push(_seg(0), now=0.0)
    assert state.push(_long(start, 200), now=0.0) == ([], "out_of_window")
    released, note = state.push(_seg(start + 200), now=0.0)
    out += released
    assert note is None and state.resyncs == 0 and state.gaps == 0
    seq = np.concatenate([np.arange(s.seq, s.end) for s in out])
    np.testing.assert_array_equal(seq, np.arange(0, start + 216))
    np.testing.assert_array_equal(np.concatenate([s.data for s in out]), seq)
    assert state.overlap_samples == 16 - start and state.next_seq == start + 216


@pytest.mark.parametrize(("ahead", "note"), [(1000, None), (1001, "resync")])
def test_a_burst_at_most_max_gap_ahead_is_data(ahead: int, note: str | None) -> None:
    """A burst beyond the horizon starting ``max_gap`` samples ahead is taken with one gap of
    ``max_gap`` samples; one sample further it is a jump of the counter (a resync)."""
    state = SequenceState(fs=16.0, max_gap=1000)
    state.push(_seg(0), now=0.0)
    assert state.push(_seg(16 + ahead), now=1.0) == ([], "out_of_window")
    out, got = state.push(_seg(32 + ahead), now=1.0)
    assert got == note
    if note is None:
        assert [(s.seq, s.gap) for s in out] == [(16, True), (16 + ahead, False),
                                                  (32 + ahead, False)]
        assert state.gap_samples == 1000 and state.resyncs == 0
    else:
        assert [s.seq for s in out] == [16 + ahead, 32 + ahead] and state.resyncs == 1


def test_a_burst_behind_held_holes_releases_them_and_keeps_their_wait() -> None:
    """Window 2 with holes [16, 32) and [48, 64) held since t = 0, then a burst far ahead: the
    burst overfills the window, so both holes go out as gaps at once; the hole before the burst
    still counts its wait from t = 0 and is released when that wait is over."""
    state = SequenceState(fs=16.0, window=2, max_wait_s=1.0)
    for k in (0, 2, 4):
        state.push(_seg(k * N), now=0.0)
    assert state.push(_seg(3200), now=0.5) == ([], "out_of_window")
    out, note = state.push(_seg(3216), now=0.5)
    assert note is None and state.resyncs == 0
    assert [(s.seq, s.gap) for s in out] == [(16, True), (32, False), (48, True), (64, False)]
    assert set(state.pending) == {3200, 3216}
    assert state.flush_stale(0.9) == []
    out = state.flush_stale(1.0)
    assert [(s.seq, s.gap) for s in out] == [(80, True), (3200, False), (3216, False)]
    assert state.gaps == 3 and state.gap_samples == 16 + 16 + 3120


def test_every_resync_is_counted() -> None:
    state = _jumped()
    assert state.push(_seg(90000), now=2.0) == ([], "out_of_window")
    out, note = state.push(_seg(90016), now=2.0)
    assert note == "resync" and [s.seq for s in out] == [90000, 90016]
    assert state.resyncs == 2 and state.out_of_window == 0


def test_three_candidates_in_a_row_are_all_counted() -> None:
    state = SequenceState(window=4, max_gap=1000)
    state.push(_seg(0), now=0.0)
    for far in (9000, 9500, 9900):
        assert state.push(_seg(far), now=0.1) == ([], "out_of_window")
    assert state.out_of_window == 2  # the last one is still a candidate
    assert [s.seq for s in state.push(_seg(16), now=0.2)[0]] == [16]
    assert state.out_of_window == 3 and state.resyncs == 0
