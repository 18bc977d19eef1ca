"""Per-channel packet ordering: gaps, duplicates and reordering of sequence-numbered packets.

Each packet carries ``seq``, the device's running index of its first sample. ``SequenceState``
releases samples strictly in order, exactly once:

- a packet that starts where the last one ended is released at once;
- a packet from the future is held (reordering window) until the missing samples arrive, or until
  ``window`` packets are held, or the oldest has waited ``max_wait_s``; then the hole is released as
  a gap segment (NaN, valid False) and counted;
- a packet entirely in the past is dropped: ``late`` if it falls in a hole already released as a
  gap, ``duplicates`` otherwise; a partial overlap is trimmed (``overlap_samples``). A duplicate
  whose samples differ from the packet already taken at that ``seq`` is a ``conflict``: two
  publishers on one channel (a forgery or a misconfigured second device); counted and reported.

Sequence numbers are a hint, never a size. Every gap filled is at most ``max_gap`` samples, and
never reaches past what the device can have sampled by the packet's arrival (``fs`` given: the
seq of the first packet plus the elapsed arrival time, with ``horizon_slack_s`` of slack). A packet
beyond that, or more than ``max_behind`` samples (``max_behind_s`` seconds) in the past, is out of
window: it is not allocated
nor filled. It is kept aside as a resync candidate; when the next packet continues it exactly, the
device restarted (or jumped): the channel resynchronises on it (``resyncs``, note ``"resync"``).
Otherwise it is dropped (``out_of_window``), and the real device's packets flow on untouched.
"""

from __future__ import annotations

import zlib
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from sleepstream.engine.types import BoolArray, F32Array


@dataclass(frozen=True, slots=True)
class Segment:
    """Samples ``[seq, seq + n)`` in order; ``gap`` True when they were never received."""

    seq: int
    data: F32Array
    valid: BoolArray
    gap: bool = False

    @property
    def end(self) -> int:
        return self.seq + int(self.data.shape[0])


MAX_GAP_SAMPLES = 1 << 18  # cap of one filled gap (1 MiB of float32) whatever the rate
MAX_BEHIND_SAMPLES = 1 << 12  # further in the past than this: a restart candidate


@dataclass(slots=True)
class SequenceState:
    window: int = 8
    max_wait_s: float = 1.0
    fs: float = 0.0  # samples per second; 0: no arrival-time horizon
    max_gap: int = MAX_GAP_SAMPLES
    max_behind: int = MAX_BEHIND_SAMPLES
    horizon_slack_s: float = 10.0
    max_behind_s: float = 5.0  # with fs: further back than this (or max_behind) is a candidate
    next_seq: int | None = None
    pending: dict[int, Segment] = field(default_factory=dict)
    held_since: float | None = None
    recent_gaps: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=64))
    taken: dict[int, tuple[int, int]] = field(default_factory=dict)  # seq -> (n, crc32), recent
    candidate: Segment | None = None
    lead: float | None = None  # max of (packet end - arrival * fs): the horizon's anchor
    packets: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    gaps: int = 0
    gap_samples: int = 0
    overlap_samples: int = 0
    conflicts: int = 0
    out_of_window: int = 0
    resyncs: int = 0

    def push(self, seg: Segment, now: float) -> tuple[list[Segment], str | None]:
        """Add one received packet; return the segments now releasable and what happened to it
        (None, ``"duplicate"``, ``"late"``, ``"reordered"``, ``"conflict"``,
        ``"out_of_window"`` or ``"resync"``)."""
        self.packets += 1
        if self.next_seq is None:
            self.next_seq = seg.seq
        candidate, self.candidate = self.candidate, None
        if candidate is not None and seg.seq == candidate.end:
            return self._resync(candidate, seg, now)
        if self._out_of_window(seg, now):
            if candidate is not None:
                self.out_of_window += 1
            self.candidate = seg
            return [], "out_of_window"
        if candidate is not None:
            self.out_of_window += 1
        if seg.end <= self.next_seq or seg.seq in self.pending:
            return [], self._past(seg)
        self._note_lead(seg, now)
        note = None
        if seg.seq > self.next_seq:
            self.pending[seg.seq] = seg
            if self.held_since is None:
                self.held_since = now
            out = self._drain(force=len(self.pending) > self.window)
            return out, None
        if self.pending:
            self.reordered += 1
            note = "reordered"
        out = [self._take(seg)]
        out.extend(self._drain(force=False))
        return out, note

    def _out_of_window(self, seg: Segment, now: float) -> bool:
        assert self.next_seq is not None
        behind = self.max_behind if self.fs <= 0 else min(
            self.max_behind, int(self.fs * self.max_behind_s))
        if seg.end < self.next_seq - behind or seg.seq - self.next_seq > self.max_gap:
            return True
        if self.fs <= 0 or self.lead is None or seg.end <= self.next_seq:
            return False
        return seg.end > self.lead + (now + self.horizon_slack_s) * self.fs

    def _note_lead(self, seg: Segment, now: float) -> None:
        if self.fs > 0:
            lead = seg.end - now * self.fs
            self.lead = lead if self.lead is None else max(self.lead, lead)

    def _past(self, seg: Segment) -> str:
        if any(a <= seg.seq < b for a, b in self.recent_gaps):
            self.late += 1
            return "late"
        seen = self.taken.get(seg.seq)
        if seen is not None and seen != _digest(seg):
            self.conflicts += 1
            return "conflict"
        self.duplicates += 1
        return "duplicate"

    def _resync(self, first: Segment, second: Segment, now: float
                ) -> tuple[list[Segment], str | None]:
        """Two packets in a row beyond the window: a burst of buffered data that reaches past
        ``next_seq`` and starts within ``max_gap`` is taken as usual (trimmed where it overlaps,
        also when it starts exactly at ``next_seq``); anything else starts over at ``first``
        (the device restarted or jumped its counter)."""
        assert self.next_seq is not None
        if first.end > self.next_seq and first.seq - self.next_seq <= self.max_gap:
            self.lead = None
            self._note_lead(second, now)
            self.pending[first.seq] = first
            self.pending[second.seq] = second
            self.held_since = self.held_since if self.held_since is not None else now
            return self._drain(force=True), None
        self.resyncs += 1
        self.pending.clear()
        self.recent_gaps.clear()
        self.taken.clear()
        self.held_since = None
        self.next_seq = first.seq
        self.lead = None
        self._note_lead(second, now)
        return [self._take(first), self._take(second)], "resync"

    def _take(self, seg: Segment) -> Segment:
        """Release ``seg`` (trimmed to start at ``next_seq``) and advance."""
        out = self._trim(seg)
        if seg.end > (self.next_seq or seg.seq):
            self.next_seq = seg.end
        if len(self.taken) >= 256:
            del self.taken[next(iter(self.taken))]
        self.taken[seg.seq] = _digest(seg)
        return out

    def flush_stale(self, now: float) -> list[Segment]:
        """Release held packets whose hole has waited longer than ``max_wait_s``."""
        if self.held_since is None or now - self.held_since < self.max_wait_s:
            return []
        return self._drain(force=True, once=True)

    def _trim(self, seg: Segment) -> Segment:
        assert self.next_seq is not None
        skip = self.next_seq - seg.seq
        if skip <= 0:
            return seg
        self.overlap_samples += skip
        return Segment(self.next_seq, seg.data[skip:], seg.valid[skip:], seg.gap)

    def _drain(self, *, force: bool, once: bool = False) -> list[Segment]:
        out: list[Segment] = []
        while self.pending:
            assert self.next_seq is not None
            first = min(self.pending)
            if first > self.next_seq:
                if not force:
                    break
                n = first - self.next_seq
                out.append(
                    Segment(
                        self.next_seq,
                        np.full(n, np.nan, dtype=np.float32),
                        np.zeros(n, dtype=bool),
                        gap=True,
                    )
                )
                self.recent_gaps.append((self.next_seq, first))
                self.gaps += 1
                self.gap_samples += n
                self.next_seq = first
                # more holes only while more than `window` packets stay held after this one
                force = force and not once and len(self.pending) - 1 > self.window
            seg = self.pending.pop(first)
            if seg.end > self.next_seq:
                out.append(self._take(seg))
        self.held_since = None if not self.pending else self.held_since
        return out


def _digest(seg: Segment) -> tuple[int, int]:
    return int(seg.data.shape[0]), zlib.crc32(seg.data.tobytes())
