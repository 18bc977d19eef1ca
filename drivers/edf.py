"""Read EDF/EDF+ recordings and replay them as a ``Driver``, streaming from the file.

Each signal keeps its own sampling rate. In EDF+D files the data records are placed at their
timekeeping onsets and the gaps between them become invalid samples (NaN data, valid False),
never zeros. Labels map to modalities through ``engine.channel_map``. Headers are checked
(``drivers.edf_header``) before any of their numbers size an allocation, and the data records
are read on demand (``drivers.edf_records``); a hostile or broken file is refused with one line
(``RecordingError``). ``read_recording`` loads whole arrays for analysis; ``EdfSource`` replays
without ever holding more than a chunk of samples.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepstream.drivers.edf_records import EdfFile
from sleepstream.engine.channel_map import ChannelRule, modality_of
from sleepstream.engine.errors import RecordingError
from sleepstream.engine.protocols import SourceEvent
from sleepstream.engine.types import BoolArray, ChannelSpec, F32Array, Frame

log = logging.getLogger(__name__)

FRAME_SAMPLES = 4_000_000  # at most this many samples (all channels) in one replayed frame
MAX_LOADED_SAMPLES = 500_000_000  # read_recording: 2 GB of float32 at most
LOAD_BLOCK_S = 600.0  # read_recording reads this much of the file at a time

# Plausible physiological ranges per modality, used by the out-of-range detector.
VALID_RANGES: dict[str, tuple[float | None, float | None]] = {
    "spo2": (50.0, 100.5),
    "hr": (20.0, 250.0),
}

_STAGE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(sleep stage )?(w|wake)$"), "W"),
    (re.compile(r"^(sleep stage )?(1|n1|s1)$"), "N1"),
    (re.compile(r"^(sleep stage )?(2|n2|s2)$"), "N2"),
    (re.compile(r"^(sleep stage )?(3|4|n3|s3|s4|n4)$"), "N3"),
    (re.compile(r"^(sleep stage )?(r|rem)$"), "REM"),
)


_NSRR_CODES = {"0": "W", "1": "N1", "2": "N2", "3": "N3", "4": "N3", "5": "REM"}


def parse_stage(text: str) -> str | None:
    """The AASM stage (W, N1, N2, N3, REM) named by a hypnogram annotation, or None.

    Accepts R&K and AASM spellings used by Sleep-EDF ("Sleep stage 4"), SHHS/NSRR ("Stage 2
    sleep|2" is handled by the trailing digit) and plain codes ("N2", "R").
    """
    key = text.strip().lower()
    if "|" in key:  # NSRR XML-derived "Stage 2 sleep|2", "Wake|0", "REM sleep|5"
        return _NSRR_CODES.get(key.rsplit("|", 1)[1].strip())
    key = key.replace("stage ", "sleep stage ") if key.startswith("stage ") else key
    for pattern, stage in _STAGE_PATTERNS:
        if pattern.match(key):
            return stage
    return None


@dataclass(frozen=True, slots=True)
class Annotation:
    onset: float
    duration: float
    text: str


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal of a recording on a regular grid from t=0; ``data`` is NaN where not ``valid``."""

    label: str
    spec: ChannelSpec
    data: F32Array
    valid: BoolArray


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    start: dt.datetime | None
    duration: float
    signals: tuple[Signal, ...]
    annotations: tuple[Annotation, ...]
    discontinuous: bool
    dropped_annotations: int = 0

    def signal(self, label: str) -> Signal:
        for s in self.signals:
            if s.label == label:
                return s
        raise KeyError(f"{self.path.name} has no signal {label!r}")

    def stages(self, epoch_s: float = 30.0) -> list[tuple[float, str]]:
        """(epoch onset, stage) for every scored epoch, expanding long annotations."""
        out: list[tuple[float, str]] = []
        for a in self.annotations:
            stage = parse_stage(a.text)
            if stage is None:
                continue
            n = max(1, round(a.duration / epoch_s))
            out.extend((a.onset + i * epoch_s, stage) for i in range(n))
        return sorted(out)


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    """What a recording holds, without its samples: enough to plan a replay."""

    path: Path
    start: dt.datetime | None
    duration: float
    channels: tuple[ChannelSpec, ...]
    annotations: tuple[Annotation, ...]
    discontinuous: bool
    dropped_annotations: int = 0


def open_edf(path: str | Path, *, report: bool = True) -> EdfFile:
    """The checked file, open for reading spans; ``report``: log what is wrong with it (a
    truncation, dropped annotations)."""
    edf = EdfFile(path)
    h = edf.header
    if not report:
        return edf
    if h.truncated:
        log.warning("%s: truncated: the header declares %d data records, the file holds %d; "
                    "replaying those", edf.path.name, h.declared_records, h.records)
    if edf.dropped_annotations:
        log.info("%s: dropped %d unreadable annotations", edf.path.name, edf.dropped_annotations)
    return edf


def describe(edf: EdfFile, rules: Sequence[ChannelRule] = ()) -> RecordingInfo:
    """The recording of an open file, without its samples."""
    start = edf.header.start
    if start is not None and edf.t0:
        start += dt.timedelta(seconds=edf.t0)
    return RecordingInfo(
        path=edf.path,
        start=start,
        duration=edf.duration,
        channels=tuple(_spec(edf, i, rules) for i in edf.data_signals),
        annotations=tuple(Annotation(a.onset, a.duration, a.text) for a in edf.annotations),
        discontinuous=edf.header.discontinuous,
        dropped_annotations=edf.dropped_annotations,
    )


def read_info(path: str | Path, rules: Sequence[ChannelRule] = ()) -> RecordingInfo:
    """The recording's channels, duration and annotations; its samples are not read."""
    with open_edf(path) as edf:
        return describe(edf, rules)


def read_recording(path: str | Path, rules: Sequence[ChannelRule] = ()) -> Recording:
    """Read an EDF/EDF+ file into regular per-signal arrays, gaps as invalid samples (for
    analysis; a replay streams from the file instead, ``EdfSource``). A recording whose arrays
    would exceed ``MAX_LOADED_SAMPLES`` is refused."""
    with open_edf(path) as edf:
        info = describe(edf, rules)
        total = sum(edf.samples(i) for i in edf.data_signals)
        if total > MAX_LOADED_SAMPLES:
            raise RecordingError(f"{edf.path}: {total} samples are too many to load at once "
                                 f"(at most {MAX_LOADED_SAMPLES}); replay it instead")
        arrays = [(np.full(edf.samples(i), np.nan, np.float32), np.zeros(edf.samples(i), bool))
                  for i in edf.data_signals]
        step = max(edf.header.record_s, LOAD_BLOCK_S)
        for k in range(math.ceil(info.duration / step)):  # block by block: records read once
            for (data, valid), i in zip(arrays, edf.data_signals, strict=True):
                fs = edf.fs(i)  # block k ends where block k + 1 starts: the same expression
                a = round(k * step * fs)
                b = data.size if (k + 1) * step >= info.duration else round((k + 1) * step * fs)
                if b > a:
                    data[a:b, None], valid[a:b, None] = edf.read([i], a, b)
        signals = tuple(Signal(spec.name, spec, _scaled(data, spec.name, rules), valid)
                        for spec, (data, valid) in zip(info.channels, arrays, strict=True))
    return Recording(info.path, info.start, info.duration, signals, info.annotations,
                     info.discontinuous, info.dropped_annotations)


def _scaled(values: F32Array, label: str, rules: Sequence[ChannelRule]) -> F32Array:
    rule = modality_of(label, rules)
    if rule is not None and rule.scale != 1.0:
        return values * np.float32(rule.scale)
    return values


def _spec(edf: EdfFile, i: int, rules: Sequence[ChannelRule]) -> ChannelSpec:
    h = edf.header.signals[i]
    rule = modality_of(h.label, rules)
    modality = rule.modality if rule is not None else None
    lo, hi = VALID_RANGES.get(modality or "", (None, None))
    return ChannelSpec(
        name=h.label,
        fs=edf.fs(i),
        modality=modality,
        unit=h.unit,
        physical_min=h.physical_min,
        physical_max=h.physical_max,
        valid_min=lo,
        valid_max=hi,
    )


Reader = Callable[[int, int], tuple[F32Array, BoolArray]]


@dataclass(frozen=True, slots=True)
class _Group:
    """The signals of one rate, read together into one frame per chunk."""

    labels: tuple[str, ...]
    fs: float
    samples: int
    read: Reader


class EdfSource:
    """Replays a recording as a live device: frames of ``chunk_s`` seconds per rate group.

    The samples are read from the file chunk by chunk (only the data records a chunk needs), so
    memory stays flat whatever the file's length; a ``recording`` already in memory is replayed
    from its arrays instead. A chunk is shortened where a frame would hold more than
    ``FRAME_SAMPLES`` samples. ``speed`` None replays as fast as the consumer takes it;
    otherwise frames are released on a drift-free schedule (target time = start + data time /
    speed, never accumulated sleeps). Engine time 0 is the recording's first sample.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float | None = 1.0,
        chunk_s: float = 1.0,
        rules: Sequence[ChannelRule] = (),
        recording: Recording | None = None,
        info: RecordingInfo | None = None,
    ) -> None:
        """``info``: what ``read_info`` already said of the file (not reported again)."""
        if speed is not None and not speed > 0:
            raise ValueError("speed must be > 0 (or None for as fast as possible)")
        if not chunk_s > 0:
            raise ValueError("chunk_s must be > 0")
        self.path = Path(path)
        self.speed = speed
        self.chunk_s = chunk_s
        self._rules = tuple(rules)
        self.recording = recording
        self.info: RecordingInfo | None = None if recording is None else RecordingInfo(
            recording.path, recording.start, recording.duration,
            tuple(s.spec for s in recording.signals), recording.annotations,
            recording.discontinuous, recording.dropped_annotations)
        self._reported = info is not None
        self._file: EdfFile | None = None

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        if self.info is None:
            raise RuntimeError("enter the source (async with) before asking for its channels")
        return self.info.channels

    async def __aenter__(self) -> EdfSource:
        if self.recording is None and self._file is None:
            self._file = await asyncio.to_thread(open_edf, self.path, report=not self._reported)
            self.info = describe(self._file, self._rules)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _groups(self) -> list[_Group]:
        if self.recording is not None:
            by_fs: dict[float, list[Signal]] = {}
            for s in self.recording.signals:
                by_fs.setdefault(s.spec.fs, []).append(s)
            return [_memory_group(sigs) for sigs in by_fs.values()]
        edf = self._file
        if edf is None:
            raise RuntimeError("enter the source (async with) before reading frames")
        by_n: dict[int, list[int]] = {}
        for i in edf.data_signals:
            by_n.setdefault(edf.header.signals[i].samples, []).append(i)
        return [_file_group(edf, idx, self._rules) for idx in by_n.values()]

    async def frames(self) -> AsyncIterator[Frame | SourceEvent]:
        groups = self._groups()
        duration = self.info.duration if self.info is not None else 0.0
        rate = sum(g.fs * len(g.labels) for g in groups)
        step = min(self.chunk_s, max(FRAME_SAMPLES / max(rate, 1e-9), 1e-3))
        in_thread = self.recording is None
        start = time.monotonic()
        for k in range(math.ceil(duration / step)):
            t_a, t_b = k * step, min((k + 1) * step, duration)
            if self.speed is not None:
                delay = start + t_b / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif k % 8 == 0:
                await asyncio.sleep(0)
            if in_thread:
                frames = await asyncio.to_thread(_chunk, groups, t_a, t_b)
            else:
                frames = _chunk(groups, t_a, t_b)
            for frame in frames:
                yield frame


def _chunk(groups: Sequence[_Group], t_a: float, t_b: float) -> list[Frame]:
    frames = []
    for g in groups:
        i_a, i_b = round(t_a * g.fs), min(round(t_b * g.fs), g.samples)
        if i_b <= i_a:
            continue
        data, valid = g.read(i_a, i_b)
        frames.append(Frame(channels=g.labels,
                            timestamps=np.arange(i_a, i_b, dtype=np.float64) / g.fs,
                            data=data, valid=valid, seq=i_a))
    return frames


def _memory_group(sigs: Sequence[Signal]) -> _Group:
    data = np.stack([s.data for s in sigs], axis=1)
    valid = np.stack([s.valid for s in sigs], axis=1)

    def read(a: int, b: int) -> tuple[F32Array, BoolArray]:
        return data[a:b].copy(), valid[a:b].copy()

    return _Group(tuple(s.label for s in sigs), sigs[0].spec.fs, data.shape[0], read)


def _file_group(edf: EdfFile, idx: Sequence[int], rules: Sequence[ChannelRule]) -> _Group:
    labels = tuple(edf.header.signals[i].label for i in idx)
    rules_of = [modality_of(label, rules) for label in labels]
    scale = np.array([r.scale if r is not None else 1.0 for r in rules_of], np.float32)

    def read(a: int, b: int) -> tuple[F32Array, BoolArray]:
        data, valid = edf.read(idx, a, b)
        if (scale != 1.0).any():
            data *= scale
        return data, valid

    return _Group(labels, edf.fs(idx[0]), edf.samples(idx[0]), read)
