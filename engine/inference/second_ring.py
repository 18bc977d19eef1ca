"""Model-rate samples of one bed's modality between tokenizer pushes (``staging``): written as
blocks arrive, taken second by second when the token path steps."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sleepstream.engine.types import F32Array

RING_S = 16  # seconds of model-rate samples buffered per modality (grown for longer blocks)


class SecondRing:
    """Model-rate samples of one modality by absolute sample index, at least ``RING_S`` seconds
    deep and always a block plus the 2-s wait for the slowest modality deeper than the longest
    block written (a replay hands 30-s blocks)."""

    def __init__(self, fs: int) -> None:
        self.fs = fs
        self.data = np.zeros(RING_S * fs, np.float32)
        self.valid = np.zeros(RING_S * fs, bool)
        self.end = 0  # absolute index one past the last sample written

    def write(self, t0: float, data: F32Array, valid: npt.NDArray[np.bool_]) -> None:
        start = round(t0 * self.fs)
        if len(data) + 4 * self.fs > len(self.data):
            self._grow(2 * len(data) + 4 * self.fs)
        idx = (start + np.arange(len(data))) % len(self.data)
        self.data[idx] = data
        self.valid[idx] = valid & np.isfinite(data)
        self.end = max(self.end, start + len(data))

    def _grow(self, size: int) -> None:
        """Re-lay the samples held (by absolute index) into a deeper ring."""
        held = np.arange(max(0, self.end - len(self.data)), self.end)
        old = held % len(self.data)
        data, valid = np.zeros(size, np.float32), np.zeros(size, bool)
        data[held % size], valid[held % size] = self.data[old], self.valid[old]
        self.data, self.valid = data, valid

    def take(self, first_s: int, n: int) -> tuple[F32Array, npt.NDArray[np.bool_]]:
        """Seconds [first_s, first_s + n) and clear them (unwritten samples read as invalid)."""
        idx = (first_s * self.fs + np.arange(n * self.fs)) % len(self.data)
        d, v = self.data[idx].copy(), self.valid[idx].copy()
        self.valid[idx] = False
        return d, v
