"""Per-channel ring buffers at the native sampling rate.

A ring holds the last ``capacity`` samples of one channel with their engine timestamps and
valid flags. Storage is preallocated once; ``push`` costs O(chunk) whatever the ring size and
never allocates; reads (by running sample index) return copies so callers never see later
overwrites.
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
