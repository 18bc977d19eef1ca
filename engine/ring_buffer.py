"""Per-channel ring buffers at the native sampling rate.

A ring holds the last ``capacity`` samples of one channel with their engine timestamps and
valid flags. Storage is preallocated once; ``push`` costs O(chunk) whatever the ring size and
never allocates; windowed reads return copies so callers never see later overwrites.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sleepstream.engine.types import BoolArray, F32Array, FloatArray


@dataclass(slots=True)
class RingBufferState:
    """Ring storage for one channel. ``written`` counts every sample ever pushed, so the sample
    with running index ``i`` lives at slot ``i % capacity`` while ``i >= written - capacity``."""

    data: F32Array
    timestamps: FloatArray
    valid: BoolArray
    written: int = 0

    @property
    def capacity(self) -> int:
        return int(self.data.shape[0])

    @property
    def size(self) -> int:
        return min(self.written, self.capacity)

    @property
    def overwritten(self) -> int:
        """Samples pushed out of the ring by newer ones."""
        return max(0, self.written - self.capacity)


def new_ring(capacity: int) -> RingBufferState:
    if capacity <= 0:
        raise ValueError(f"ring capacity must be > 0, got {capacity}")
    return RingBufferState(
        data=np.zeros(capacity, dtype=np.float32),
        timestamps=np.zeros(capacity, dtype=np.float64),
        valid=np.zeros(capacity, dtype=bool),
    )


def push(ring: RingBufferState, timestamps: FloatArray, data: F32Array, valid: BoolArray) -> None:
    """Append a chunk. A chunk longer than the ring keeps only its last ``capacity`` samples."""
    n = int(timestamps.shape[0])
    if n == 0:
        return
    cap = ring.capacity
    skip = max(0, n - cap)
    start = (ring.written + skip) % cap
    m = n - skip
    first = min(m, cap - start)
    ring.data[start : start + first] = data[skip : skip + first]
    ring.timestamps[start : start + first] = timestamps[skip : skip + first]
    ring.valid[start : start + first] = valid[skip : skip + first]
    rest = m - first
    if rest:
        ring.data[:rest] = data[skip + first :]
        ring.timestamps[:rest] = timestamps[skip + first :]
        ring.valid[:rest] = valid[skip + first :]
    ring.written += n


def read_index(
    ring: RingBufferState, start: int, stop: int
) -> tuple[FloatArray, F32Array, BoolArray]:
    """Copies of samples with running indices ``[start, stop)``; they must still be in the ring."""
    oldest = ring.written - ring.size
    if start < oldest or stop > ring.written or start > stop:
        raise IndexError(
            f"samples [{start}, {stop}) are not in the ring (holds [{oldest}, {ring.written}))"
        )
    cap = ring.capacity
    idx = np.arange(start, stop) % cap
    return ring.timestamps[idx], ring.data[idx], ring.valid[idx]


def latest(ring: RingBufferState, n: int) -> tuple[FloatArray, F32Array, BoolArray]:
    """The last ``n`` samples (fewer if the ring holds fewer)."""
    n = min(n, ring.size)
    return read_index(ring, ring.written - n, ring.written)


def window(
    ring: RingBufferState, t_start: float, t_end: float
) -> tuple[FloatArray, F32Array, BoolArray]:
    """Samples with ``t_start <= t < t_end`` still held by the ring, oldest first.

    Timestamps within a ring are non-decreasing (the pipeline rejects samples older than the
    newest one), so both bounds are found by binary search on the two contiguous segments.
    """
    size = ring.size
    if size == 0:
        empty = np.zeros(0)
        return empty, empty.astype(np.float32), empty.astype(bool)
    oldest = ring.written - size
    lo = oldest + _count_before(ring, oldest, size, t_start)
    hi = oldest + _count_before(ring, oldest, size, t_end)
    return read_index(ring, lo, hi)


def _count_before(ring: RingBufferState, oldest: int, size: int, t: float) -> int:
    """How many held samples have timestamps < t."""
    cap = ring.capacity
    head = oldest % cap
    first = ring.timestamps[head : min(head + size, cap)]
    n_first = int(np.searchsorted(first, t, side="left"))
    if n_first < first.shape[0] or first.shape[0] == size:
        return n_first
    second = ring.timestamps[: size - first.shape[0]]
    return first.shape[0] + int(np.searchsorted(second, t, side="left"))
