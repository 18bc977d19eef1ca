"""Checks of an EDF/EDF+ header before any of its numbers size an allocation.

A file is untrusted input: every count, rate and duration its header declares is checked against
the documented caps below and against the size of the file itself, and a file that fails is
refused with one line saying what is wrong (``RecordingError``). Nothing here reads the data
records except their size.

Caps: at most ``MAX_SIGNALS`` signals; a data record lasts ``MIN_RECORD_S`` to ``MAX_RECORD_S``
seconds; a signal runs at most ``MAX_FS`` samples per second; the header's byte count must match
its signal count; digital minimum < digital maximum (an inverted range would flip the values: HR
190 read for 60). A file shorter than its declared records is truncated: reported (``truncated``)
and replayed up to its last whole record. For EDF+D the gaps between records are capped by
``MAX_GAP_FILL_S`` (``check_onsets``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepstream.engine.errors import RecordingError

MAX_SIGNALS = 512
MIN_RECORD_S = 1e-3
MAX_RECORD_S = 3600.0
MAX_FS = 100_000.0
MAX_GAP_FILL_S = 24 * 3600.0  # EDF+D: at most this much invalid fill between records, in all
_FIELDS = ((16, "label"), (80, "transducer"), (8, "unit"), (8, "physical_min"),
           (8, "physical_max"), (8, "digital_min"), (8, "digital_max"), (80, "prefilter"),
           (8, "samples"), (32, "reserved"))


@dataclass(frozen=True, slots=True)
class HeaderCheck:
    """What the header declares and what the file holds."""

    signals: int
    record_s: float
    declared_records: int  # -1: unknown
    whole_records: int  # data records actually in the file
    truncated: bool


def _number(raw: bytes, what: str, path: Path) -> float:
    try:
        value = float(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise RecordingError(f"{path}: header field {what} is not a number ({raw[:16]!r}); "
                             "not a valid EDF file") from None
    if not math.isfinite(value):
        raise RecordingError(f"{path}: header field {what} is {value}; not a valid EDF file")
    return value


def check_header(path: str | Path) -> HeaderCheck:
    """Refuse (``RecordingError``) a header whose numbers are out of range or disagree with the
    file's size."""
    path = Path(path)
    try:
        size = os.path.getsize(path)
        with path.open("rb") as fh:
            fixed = fh.read(256)
            ns = int(_number(fixed[252:256], "number of signals", path)) if len(fixed) == 256 \
                else 0
            if len(fixed) < 256 or not 1 <= ns <= MAX_SIGNALS:
                raise RecordingError(f"{path}: header declares {ns} signals (1 to {MAX_SIGNALS} "
                                     "allowed) or is cut short; not a valid EDF file")
            table = fh.read(256 * ns)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise RecordingError(f"{path}: is a directory, not an EDF file") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(table) < 256 * ns:
        raise RecordingError(f"{path}: the signal header is cut short; not a valid EDF file")
    header_bytes = _number(fixed[184:192], "header bytes", path)
    if header_bytes != 256 * (ns + 1):
        raise RecordingError(f"{path}: header bytes {header_bytes:g} disagree with {ns} signals "
                             f"({256 * (ns + 1)} expected)")
    record_s = _number(fixed[244:252], "record duration", path)
    declared = int(_number(fixed[236:244], "number of data records", path))
    fields = _signal_fields(table, ns)
    samples = [_number(v, f"samples per record of signal {i}", path)
               for i, v in enumerate(fields["samples"])]
    annotations = [lab.strip().startswith(b"EDF Annotations") for lab in fields["label"]]
    if not (MIN_RECORD_S <= record_s <= MAX_RECORD_S) and not (record_s == 0 and all(
            annotations)):
        raise RecordingError(f"{path}: data record duration {record_s:g} s is outside "
                             f"{MIN_RECORD_S:g} to {MAX_RECORD_S:g} s")
    record_bytes = 0
    for i, n in enumerate(samples):
        label = fields["label"][i].decode("latin-1").strip()
        if n != int(n) or n < 1 or (record_s > 0 and not annotations[i]
                                         and n / record_s > MAX_FS):
            raise RecordingError(f"{path}: signal {label!r} has {n:g} samples per record "
                                 f"(1 to {MAX_FS:g} per second allowed)")
        d_lo = _number(fields["digital_min"][i], f"digital minimum of {label!r}", path)
        d_hi = _number(fields["digital_max"][i], f"digital maximum of {label!r}", path)
        _number(fields["physical_min"][i], f"physical minimum of {label!r}", path)
        _number(fields["physical_max"][i], f"physical maximum of {label!r}", path)
        if not d_lo < d_hi:
            raise RecordingError(f"{path}: signal {label!r} has digital minimum {d_lo:g} >= "
                                 f"maximum {d_hi:g}; its values cannot be scaled")
        record_bytes += 2 * int(n)
    whole = (size - 256 * (ns + 1)) // record_bytes
    if whole < 1:
        raise RecordingError(f"{path}: holds no complete data record ({record_bytes} bytes "
                             "each); the file is empty or cut short")
    if declared != -1 and declared < 0:
        raise RecordingError(f"{path}: header declares {declared} data records")
    truncated = declared not in (-1, whole) and whole < declared
    return HeaderCheck(ns, record_s, declared, int(whole), truncated)


def _signal_fields(table: bytes, ns: int) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    pos = 0
    for width, name in _FIELDS:
        out[name] = [table[pos + i * width : pos + (i + 1) * width] for i in range(ns)]
        pos += width * ns
    return out


def check_onsets(onsets: np.ndarray, record_s: float, path: Path) -> None:
    """EDF+D record onsets: finite, in order, not overlapping, gaps within ``MAX_GAP_FILL_S``."""
    if not np.isfinite(onsets).all():
        raise RecordingError(f"{path}: a data record onset is not a finite number")
    step = np.diff(onsets)
    tol = 1e-6 * max(1.0, record_s)
    bad = np.flatnonzero(step < record_s - tol)
    if bad.size:
        i = int(bad[0])
        what = "goes back in time" if step[i] < 0 else "overlaps the one before"
        raise RecordingError(f"{path}: data record {i + 1} (onset {onsets[i + 1]:g} s) {what}; "
                             "repair the EDF+D file")
    fill = float(onsets[-1] - onsets[0] + record_s - onsets.size * record_s) if onsets.size else 0
    if fill > MAX_GAP_FILL_S:
        raise RecordingError(f"{path}: EDF+D gaps add up to {fill / 3600:.1f} h (at most "
                             f"{MAX_GAP_FILL_S / 3600:g} h filled); repair the file")
