"""Read EDF/EDF+ recordings with edfio and replay them as a ``Driver``.

Each signal keeps its own sampling rate. In EDF+D files the data records are placed at their
timekeeping onsets and the gaps between them become invalid samples (NaN data, valid False),
never zeros. Labels map to modalities through ``engine.channel_map``. Headers are checked
(``drivers.edf_header``) before any of their numbers size an allocation; a hostile or broken file
is refused with one line (``RecordingError``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import edfio
import numpy as np

from sleepstream.drivers.edf_header import check_header, check_onsets
from sleepstream.engine.channel_map import ChannelRule, modality_of
from sleepstream.engine.errors import RecordingError
from sleepstream.engine.protocols import SourceEvent
from sleepstream.engine.types import BoolArray, ChannelSpec, F32Array, Frame

log = logging.getLogger(__name__)

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


def _record_onsets(edf: edfio.Edf) -> np.ndarray | None:
    """Onset of every data record from the EDF+ timekeeping annotations, or None if absent."""
    try:
        signal = edf._timekeeping_signal
    except StopIteration:
        return None
    raw = signal.digital.tobytes()
    per_record = signal._bytes_per_data_record
    onsets = np.empty(edf.num_data_records, dtype=np.float64)
    for i in range(edf.num_data_records):
        rec = raw[i * per_record : (i + 1) * per_record]
        end = rec.find(b"\x14")
        try:
            onsets[i] = float(rec[:end].decode("ascii"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordingError(
                f"data record {i} has no valid timekeeping annotation; repair the EDF+ file"
            ) from exc
    return onsets


def _clean_text(text: str) -> str | None:
    cleaned = text.replace("\x00", "").strip()
    if not cleaned or not cleaned.isprintable():
        return None
    return cleaned


def read_recording(path: str | Path, rules: Sequence[ChannelRule] = ()) -> Recording:
    """Read an EDF/EDF+ file into regular per-signal arrays, gaps as invalid samples."""
    path = Path(path)
    header = check_header(path)
    if header.truncated:
        log.warning("%s: truncated: the header declares %d data records, the file holds %d; "
                    "replaying those", path.name, header.declared_records, header.whole_records)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the truncation is reported above, once
            edf = edfio.read_edf(path)
        discontinuous = edf.reserved.strip() == "EDF+D"
        record_s = float(edf.data_record_duration)
        onsets = _record_onsets(edf) if discontinuous else None
        raw_annotations = list(edf.annotations)
    except RecordingError:
        raise
    except Exception as exc:  # edfio raises ValueError and friends on malformed files
        raise RecordingError(f"{path}: not a readable EDF/EDF+ file ({exc})") from None
    if onsets is not None and onsets.size:
        check_onsets(onsets, record_s, path)
        onsets = onsets - onsets[0]
        duration = float(onsets[-1] + record_s)
    else:
        duration = float(edf.duration)
    signals = tuple(_read_signal(s, record_s, onsets, duration, rules) for s in edf.signals)
    annotations: list[Annotation] = []
    dropped = 0
    for a in raw_annotations:
        text = _clean_text(a.text)
        if text is None or not 0 <= a.onset < 1e9 or not 0 <= (a.duration or 0.0) < 1e9:
            dropped += 1
            continue
        annotations.append(Annotation(float(a.onset), float(a.duration or 0.0), text))
    if dropped:
        log.info("%s: dropped %d unreadable annotations", path.name, dropped)
    return Recording(
        path=path,
        start=_start_of(edf),
        duration=duration,
        signals=signals,
        annotations=tuple(annotations),
        discontinuous=discontinuous,
        dropped_annotations=dropped,
    )


def _start_of(edf: edfio.Edf) -> dt.datetime | None:
    try:
        return dt.datetime.combine(edf.startdate, edf.starttime)
    except Exception:  # anonymized start dates are common
        return None


def _read_signal(
    sig: edfio.EdfSignal,
    record_s: float,
    onsets: np.ndarray | None,
    duration: float,
    rules: Sequence[ChannelRule],
) -> Signal:
    fs = float(sig.sampling_frequency)
    values = np.asarray(sig.data, dtype=np.float32)
    rule = modality_of(sig.label, rules)
    if rule is not None and rule.scale != 1.0:
        values = values * np.float32(rule.scale)
    data: F32Array
    valid: BoolArray
    if onsets is None:
        data, valid = values, np.ones(values.shape, dtype=bool)
    else:
        per = round(fs * record_s)
        n = round(duration * fs)
        data = np.full(n, np.nan, dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        starts = np.round(onsets * fs).astype(np.int64)
        idx = (starts[:, None] + np.arange(per)[None, :]).ravel()
        keep = idx < n
        data[idx[keep]] = values[: idx.size][keep]
        valid[idx[keep]] = True
    modality = rule.modality if rule is not None else None
    lo, hi = VALID_RANGES.get(modality or "", (None, None))
    spec = ChannelSpec(
        name=sig.label,
        fs=fs,
        modality=modality,
        unit=sig.physical_dimension,
        physical_min=float(sig.physical_min),
        physical_max=float(sig.physical_max),
        valid_min=lo,
        valid_max=hi,
    )
    return Signal(sig.label, spec, data, valid)


class EdfSource:
    """Replays a recording as a live device: frames of ``chunk_s`` seconds per rate group.

    ``speed`` None replays as fast as the consumer takes it; otherwise frames are released on a
    drift-free schedule (target time = start + data time / speed, never accumulated sleeps).
    Engine time 0 is the recording's first sample.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float | None = 1.0,
        chunk_s: float = 1.0,
        rules: Sequence[ChannelRule] = (),
        recording: Recording | None = None,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError("speed must be > 0 (or None for as fast as possible)")
        self.path = Path(path)
        self.speed = speed
        self.chunk_s = chunk_s
        self._rules = tuple(rules)
        self.recording = recording

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        if self.recording is None:
            raise RuntimeError("enter the source (async with) before asking for its channels")
        return tuple(s.spec for s in self.recording.signals)

    async def __aenter__(self) -> EdfSource:
        if self.recording is None:
            self.recording = await asyncio.to_thread(read_recording, self.path, self._rules)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def frames(self) -> AsyncIterator[Frame | SourceEvent]:
        rec = self.recording
        if rec is None:
            raise RuntimeError("enter the source (async with) before reading frames")
        groups: dict[float, list[Signal]] = {}
        for s in rec.signals:
            groups.setdefault(s.spec.fs, []).append(s)
        stacked = {
            fs: (
                tuple(s.label for s in sigs),
                np.stack([s.data for s in sigs], axis=1),
                np.stack([s.valid for s in sigs], axis=1),
            )
            for fs, sigs in groups.items()
        }
        n_chunks = int(np.ceil(rec.duration / self.chunk_s))
        start = time.monotonic()
        for k in range(n_chunks):
            t_a, t_b = k * self.chunk_s, min((k + 1) * self.chunk_s, rec.duration)
            if self.speed is not None:
                delay = start + t_b / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif k % 8 == 0:
                await asyncio.sleep(0)
            for fs, (labels, data, valid) in stacked.items():
                i_a, i_b = round(t_a * fs), min(round(t_b * fs), data.shape[0])
                if i_b <= i_a:
                    continue
                yield Frame(
                    channels=labels,
                    timestamps=np.arange(i_a, i_b, dtype=np.float64) / fs,
                    data=data[i_a:i_b].copy(),
                    valid=valid[i_a:i_b].copy(),
                    seq=i_a,
                )
