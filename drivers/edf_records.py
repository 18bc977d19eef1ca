"""The data records of a checked EDF/EDF+ file, read on demand: never the whole file at once.

``EdfFile`` opens a file whose header passed ``edf_header.read_header``, scans its EDF+
annotation signals once (record onsets, annotations), and then reads any span of a signal's
samples by reading only the data records that hold it (``os.pread``: what the kernel caches is
not the process's memory, so replaying a 24-h night keeps a flat, small footprint).

Every allocation is capped (on top of the header's caps): a scan reads at most ``SCAN_BYTES`` of
records at a time; at most ``MAX_ANNOTATIONS`` annotations are kept (the rest are dropped and
counted); an EDF+D file has at most ``MAX_SEGMENTS`` runs of contiguous records, and the gaps
between them add up to at most ``MAX_GAP_FILL_S`` (they are read as invalid samples, never
allocated ahead); a read holds only the records its span covers (each at most
``edf_header.MAX_RECORD_BYTES``). Record onsets that go back in time or overlap are refused
(``RecordingError``): overlapping records would otherwise lose samples silently.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sleepstream.drivers.edf_header import EdfHeader, SignalHeader, read_header
from sleepstream.engine.errors import RecordingError
from sleepstream.engine.types import BoolArray, F32Array

log = logging.getLogger(__name__)

SCAN_BYTES = 8 * 2**20
MAX_ANNOTATIONS = 200_000
MAX_SEGMENTS = 10_000  # the per-rate segment start tables stay under 41 MB (512 rates)
MAX_GAP_FILL_S = 24 * 3600.0
# One timestamped annotation list (TAL): +onset[\x15duration]\x14text[\x14text...]\x14\x00
_TAL = re.compile(rb"([+-]\d+(?:\.?\d+)?)(?:\x15(\d+(?:\.?\d+)?))?\x14(.*?)\x14\x00", re.S)


@dataclass(frozen=True, slots=True)
class RawAnnotation:
    onset: float  # seconds from the first sample
    duration: float
    text: str


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of contiguous data records: records ``first`` to ``first + count`` from ``onset``
    seconds after the first sample."""

    first: int
    count: int
    onset: float


class _Scan:
    """What one pass over the annotation signals finds: segments and annotations."""

    def __init__(self, header: EdfHeader) -> None:
        self.header = header
        self.segments: list[Segment] = []
        self.annotations: list[RawAnnotation] = []
        self.dropped = 0
        self.t0: float | None = None
        self.fill = 0.0

    def record(self, k: int, tals: list[bytes]) -> None:
        """The TAL bytes of record ``k``, one entry per annotation signal."""
        found: list[list[tuple[bytes, bytes, bytes]]] = [_TAL.findall(raw) for raw in tals]
        if self.header.discontinuous or self.t0 is None:
            stamp = found[0][0][0] if found[0] else None
            if stamp is None and self.header.discontinuous:
                raise RecordingError(f"{self.header.path}: data record {k} has no readable "
                                     "timekeeping annotation; repair the EDF+ file")
            onset = float(stamp) if stamp is not None else float(k) * self.header.record_s
            if self.t0 is None:
                self.t0 = onset
            if self.header.discontinuous:
                self._place(k, onset - self.t0)
        for i, (raw, tal) in enumerate(zip(tals, found, strict=True)):
            if not tal and raw.strip(b"\x00"):
                self.dropped += 1
            for j, (onset_b, duration_b, texts) in enumerate(tal):
                self._keep(onset_b, duration_b, texts, skip_first=i == 0 and j == 0)

    def _keep(self, onset_b: bytes, duration_b: bytes, texts: bytes, *, skip_first: bool) -> None:
        parts = texts.split(b"\x14")[1 if skip_first else 0 :]
        for part in parts:
            if len(self.annotations) >= MAX_ANNOTATIONS:
                self.dropped += 1
                continue
            try:
                text = part.decode("utf-8").replace("\x00", "").strip()
            except UnicodeDecodeError:
                text = ""
            onset = float(onset_b) - (self.t0 or 0.0)
            duration = float(duration_b) if duration_b else 0.0
            if not text or not text.isprintable() or not (0 <= onset < 1e9 and duration < 1e9):
                self.dropped += 1
                continue
            self.annotations.append(RawAnnotation(onset, duration, text))

    def _place(self, k: int, onset: float) -> None:
        record_s, path = self.header.record_s, self.header.path
        tol = 1e-6 * max(1.0, record_s)
        if self.segments:
            last = self.segments[-1]
            end = last.onset + last.count * record_s
            if abs(onset - end) <= tol:
                self.segments[-1] = Segment(last.first, last.count + 1, last.onset)
                return
            if onset < end:
                what = "goes back in time" if onset < end - record_s else "overlaps the one before"
                raise RecordingError(f"{path}: data record {k} (onset {onset:g} s) {what}; "
                                     "repair the EDF+D file")
            self.fill += onset - end
            if self.fill > MAX_GAP_FILL_S:
                raise RecordingError(f"{path}: EDF+D gaps add up to {self.fill / 3600:.1f} h (at "
                                     f"most {MAX_GAP_FILL_S / 3600:g} h filled); repair the file")
            if len(self.segments) >= MAX_SEGMENTS:
                raise RecordingError(f"{path}: more than {MAX_SEGMENTS} EDF+D discontinuities")
        elif not math.isfinite(onset):
            raise RecordingError(f"{path}: a data record onset is not a finite number")
        self.segments.append(Segment(k, 1, onset))


class EdfFile:
    """An open, checked EDF/EDF+ file: its header, its record layout and its annotations, and
    ``read`` for any span of samples. Close it (or use ``with``) to release the file."""

    def __init__(self, path: str | Path) -> None:
        self.header = read_header(path)
        self.path = self.header.path
        try:
            self._fh: BinaryIO = self.path.open("rb")
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot be read ({exc.strerror})") from None
        self._cache: tuple[int, np.ndarray] = (0, np.empty((0, self.header.record_samples),
                                                          np.int16))
        self._starts: dict[int, np.ndarray] = {}
        try:
            scan = self._scan()
        except BaseException:
            self._fh.close()
            raise
        self.segments = tuple(scan.segments) or (Segment(0, self.header.records, 0.0),)
        self.annotations = tuple(sorted(scan.annotations, key=lambda a: (a.onset, a.text)))
        self.dropped_annotations = scan.dropped
        self.t0 = scan.t0 or 0.0  # the first record's onset (sub-second start offset)
        last = self.segments[-1]
        self.duration = last.onset + last.count * self.header.record_s

    def __enter__(self) -> EdfFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._fh.close()

    @property
    def data_signals(self) -> tuple[int, ...]:
        """Indices of the signals that carry samples (not EDF+ annotations)."""
        return tuple(i for i, s in enumerate(self.header.signals) if not s.annotation)

    def fs(self, i: int) -> float:
        return self.header.signals[i].samples / self.header.record_s

    def samples(self, i: int) -> int:
        """Samples of signal ``i`` on the timeline from the first sample (gaps included)."""
        return round(self.duration * self.fs(i))

    def records(self, a: int, b: int) -> np.ndarray:
        """Data records ``a`` to ``b`` as int16, shape (b - a, record samples)."""
        first, block = self._cache
        if first <= a and b <= first + block.shape[0]:
            return block[a - first : b - first]
        width = self.header.record_samples
        size = (b - a) * width * 2
        try:
            raw = os.pread(self._fh.fileno(), size, self.header.header_bytes + a * width * 2)
        except OSError as exc:
            raise RecordingError(f"{self.path}: read failed ({exc.strerror})") from None
        if len(raw) < size:
            raise RecordingError(f"{self.path}: the file shrank while it was read")
        block = np.frombuffer(raw, dtype="<i2").reshape(b - a, width)
        self._cache = (a, block)
        return block

    def _scan(self) -> _Scan:
        scan = _Scan(self.header)
        tals = [s for s in self.header.signals if s.annotation]
        if not tals:
            return scan
        per = max(1, SCAN_BYTES // (2 * self.header.record_samples))
        for a in range(0, self.header.records, per):
            block = self.records(a, min(a + per, self.header.records)).view(np.uint8)
            for r in range(block.shape[0]):
                row = block[r]
                scan.record(a + r, [row[2 * s.offset : 2 * (s.offset + s.samples)].tobytes()
                                    for s in tals])
        self._cache = (0, self._cache[1][:0])
        return scan

    def _segment_starts(self, n: int) -> np.ndarray:
        """Where each segment starts on the timeline of a signal with ``n`` samples a record."""
        if n not in self._starts:
            fs = n / self.header.record_s
            self._starts[n] = np.array([round(s.onset * fs) for s in self.segments], np.int64)
        return self._starts[n]

    def read(self, signals: Sequence[int], i_a: int, i_b: int) -> tuple[F32Array, BoolArray]:
        """Samples ``i_a`` to ``i_b`` of ``signals`` (all of one rate) in physical units, shape
        (i_b - i_a, len(signals)); NaN and not valid in EDF+D gaps and past the end."""
        heads = [self.header.signals[i] for i in signals]
        n = heads[0].samples
        out = np.full((i_b - i_a, len(heads)), np.nan, dtype=np.float32)
        valid = np.zeros(out.shape, dtype=bool)
        starts = self._segment_starts(n)
        first = max(0, int(np.searchsorted(starts, i_a, side="right")) - 1)
        last = int(np.searchsorted(starts, i_b, side="left"))
        for seg, start in zip(self.segments[first:last], starts[first:last].tolist(),
                              strict=True):
            lo, hi = max(i_a, start), min(i_b, start + seg.count * n)
            if hi <= lo:
                continue
            r_lo = (lo - start) // n
            r_hi = -(-(hi - start) // n)
            block = self.records(seg.first + r_lo, seg.first + r_hi)
            base = start + r_lo * n
            for j, h in enumerate(heads):
                digital = block[:, h.offset : h.offset + n].reshape(-1)[lo - base : hi - base]
                out[lo - i_a : hi - i_a, j] = _physical(h, digital)
                valid[lo - i_a : hi - i_a, j] = True
        return out, valid


def _physical(h: SignalHeader, digital: np.ndarray) -> np.ndarray:
    return ((digital.astype(np.float64) + h.bias) * h.gain).astype(np.float32)
