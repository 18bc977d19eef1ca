"""Per-channel packet ordering: gaps, duplicates and reordering of sequence-numbered packets.

Each packet carries ``seq``, the device's running index of its first sample. ``SequenceState``
releases samples strictly in order, exactly once:

- a packet that starts where the last one ended is released at once;
- a packet from the future is held (reordering window) until the missing samples arrive, or until
  ``window`` packets are held, or the oldest has waited ``max_wait_s``; then the hole is released as
  a gap segment (NaN, valid False) and counted;
- a packet entirely in the past is dropped: ``late`` if it falls in a hole already released as a
  gap, ``duplicates`` otherwise; a partial overlap is trimmed (``overlap_samples``).
"""

from __future__ import annotations

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


@dataclass(slots=True)
class SequenceState:
    window: int = 8
    max_wait_s: float = 1.0
    next_seq: int | None = None
    pending: dict[int, Segment] = field(default_factory=dict)
    held_since: float | None = None
    recent_gaps: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=64))
    packets: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    gaps: int = 0
    gap_samples: int = 0
    overlap_samples: int = 0

    def push(self, seg: Segment, now: float) -> tuple[list[Segment], str | None]:
        """Add one received packet; return the segments now releasable and what happened to it
        (None, ``"duplicate"``, ``"late"`` or ``"reordered"``)."""
        self.packets += 1
        if self.next_seq is None:
            self.next_seq = seg.seq
        if seg.end <= self.next_seq or seg.seq in self.pending:
            if any(a <= seg.seq < b for a, b in self.recent_gaps):
                self.late += 1
                return [], "late"
            self.duplicates += 1
            return [], "duplicate"
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
        out = [self._trim(seg)]
        assert self.next_seq is not None
        self.next_seq = seg.end
        out.extend(self._drain(force=False))
        return out, note

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
                force = force and not once and len(self.pending) > self.window
            seg = self.pending.pop(first)
            if seg.end > self.next_seq:
                out.append(self._trim(seg))
                self.next_seq = seg.end
        self.held_since = None if not self.pending else self.held_since
        return out
