"""The header of an EDF/EDF+ file, read and checked before any of its numbers size an allocation.

A file is untrusted input: every count, rate and duration its header declares is checked against
the documented caps below and against the size of the file itself, and a file that fails is
refused with one line saying what is wrong (``RecordingError``). Nothing here reads the data
records except their size.

Caps: at most ``MAX_SIGNALS`` signals; a data record lasts ``MIN_RECORD_S`` to ``MAX_RECORD_S``
seconds (0 only in an annotation-only file) and holds at most ``MAX_RECORD_BYTES``; a signal
runs at most ``MAX_FS`` samples per second; at most ``MAX_RECORDS`` data records; the header's
byte count must match its signal count; digital minimum < digital maximum (an inverted range
would flip the values: HR 190 read for 60) and physical minimum != maximum. A file shorter than
its declared records is truncated: reported (``truncated``) and replayed up to its last whole
record.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sleepstream.engine.errors import RecordingError

MAX_SIGNALS = 512
MIN_RECORD_S = 1e-3
MAX_RECORD_S = 3600.0
MAX_FS = 100_000.0
MAX_RECORD_BYTES = 64 * 2**20  # one data record is read whole: at most 64 MiB
MAX_RECORDS = 10_000_000  # 115 days of 1-s records; the record scan is linear in this
ANNOTATION_LABEL = "EDF Annotations"
_FIELDS = ((16, "label"), (80, "transducer"), (8, "unit"), (8, "physical_min"),
           (8, "physical_max"), (8, "digital_min"), (8, "digital_max"), (80, "prefilter"),
           (8, "samples"), (32, "reserved"))
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_EDFPLUS_DATE = re.compile(r"^Startdate (\d{2})-([A-Z]{3})-(\d{4})\b")


@dataclass(frozen=True, slots=True)
class SignalHeader:
    """One signal's header fields; ``offset`` is where its samples start in a data record."""

    label: str
    unit: str
    samples: int  # per data record
    offset: int  # in samples (int16) from the start of a record
    physical_min: float
    physical_max: float
    digital_min: float
    digital_max: float

    @property
    def annotation(self) -> bool:
        return self.label == ANNOTATION_LABEL

    @property
    def gain(self) -> float:
        return (self.physical_max - self.physical_min) / (self.digital_max - self.digital_min)

    @property
    def bias(self) -> float:
        """physical = (digital + bias) * gain, as edfio and EDFbrowser calibrate."""
        return self.physical_max / self.gain - self.digital_max


@dataclass(frozen=True, slots=True)
class EdfHeader:
    """What the header declares, checked, and what the file holds."""

    path: Path
    signals: tuple[SignalHeader, ...]
    record_s: float
    declared_records: int  # -1: unknown
    records: int  # whole data records actually in the file
    header_bytes: int
    reserved: str  # "EDF+C", "EDF+D" or "" (plain EDF)
    start: dt.datetime | None  # from the header fields; None when anonymised or unreadable

    @property
    def truncated(self) -> bool:
        return self.declared_records not in (-1, self.records) and \
            self.records < self.declared_records

    @property
    def record_samples(self) -> int:
        return sum(s.samples for s in self.signals)

    @property
    def discontinuous(self) -> bool:
        return self.reserved == "EDF+D"


def _number(raw: bytes, what: str, path: Path) -> float:
    try:
        value = float(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise RecordingError(f"{path}: header field {what} is not a number ({raw[:16]!r}); "
                             "not a valid EDF file") from None
    if not math.isfinite(value):
        raise RecordingError(f"{path}: header field {what} is {value}; not a valid EDF file")
    return value


def _read_fixed(path: Path) -> tuple[int, bytes, bytes]:
    """The file's size, its 256-byte fixed header and its signal header table."""
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
    return size, fixed, table


def read_header(path: str | Path) -> EdfHeader:
    """The checked header of ``path``; ``RecordingError`` (one line) for a file whose numbers are
    out of range or disagree with the file's size."""
    path = Path(path)
    size, fixed, table = _read_fixed(path)
    ns = len(table) // 256
    header_bytes = _number(fixed[184:192], "header bytes", path)
    if header_bytes != 256 * (ns + 1):
        raise RecordingError(f"{path}: header bytes {header_bytes:g} disagree with {ns} signals "
                             f"({256 * (ns + 1)} expected)")
    record_s = _number(fixed[244:252], "record duration", path)
    declared = int(_number(fixed[236:244], "number of data records", path))
    fields = _signal_fields(table, ns)
    labels = [v.decode("latin-1").strip() for v in fields["label"]]
    only_annotations = all(lab == ANNOTATION_LABEL for lab in labels)
    if not MIN_RECORD_S <= record_s <= MAX_RECORD_S and not (record_s == 0 and only_annotations):
        raise RecordingError(f"{path}: data record duration {record_s:g} s is outside "
                             f"{MIN_RECORD_S:g} to {MAX_RECORD_S:g} s")
    signals = []
    offset = 0
    for i, label in enumerate(labels):
        sig = _signal(fields, i, label, offset, record_s, path)
        signals.append(sig)
        offset += sig.samples
    if 2 * offset > MAX_RECORD_BYTES:
        raise RecordingError(f"{path}: a data record of {2 * offset} bytes (at most "
                             f"{MAX_RECORD_BYTES} allowed)")
    whole = (size - 256 * (ns + 1)) // (2 * offset)
    if whole < 1:
        raise RecordingError(f"{path}: holds no complete data record ({2 * offset} bytes "
                             "each); the file is empty or cut short")
    if declared != -1 and declared < 0:
        raise RecordingError(f"{path}: header declares {declared} data records")
    records = int(whole if declared == -1 else min(whole, declared))
    if records > MAX_RECORDS:
        raise RecordingError(f"{path}: {records} data records (at most {MAX_RECORDS} allowed)")
    reserved = fixed[192:236].decode("latin-1").strip()
    return EdfHeader(path, tuple(signals), record_s, declared, records, int(header_bytes),
                     reserved if reserved in ("EDF+C", "EDF+D") else "", _start(fixed))


def _signal(fields: dict[str, list[bytes]], i: int, label: str, offset: int, record_s: float,
            path: Path) -> SignalHeader:
    n = _number(fields["samples"][i], f"samples per record of signal {i}", path)
    annotation = label == ANNOTATION_LABEL
    if n != int(n) or n < 1 or (not annotation and n / record_s > MAX_FS):
        raise RecordingError(f"{path}: signal {label!r} has {n:g} samples per record "
                             f"(1 to {MAX_FS:g} per second allowed)")
    d_lo = _number(fields["digital_min"][i], f"digital minimum of {label!r}", path)
    d_hi = _number(fields["digital_max"][i], f"digital maximum of {label!r}", path)
    p_lo = _number(fields["physical_min"][i], f"physical minimum of {label!r}", path)
    p_hi = _number(fields["physical_max"][i], f"physical maximum of {label!r}", path)
    if not annotation and not d_lo < d_hi:
        raise RecordingError(f"{path}: signal {label!r} has digital minimum {d_lo:g} >= "
                             f"maximum {d_hi:g}; its values cannot be scaled")
    if not annotation and p_lo == p_hi:
        raise RecordingError(f"{path}: signal {label!r} has physical minimum = maximum "
                             f"({p_lo:g}); its values cannot be scaled")
    unit = fields["unit"][i].decode("latin-1").strip()
    return SignalHeader(label, unit, int(n), offset, p_lo, p_hi, d_lo, d_hi)


def _signal_fields(table: bytes, ns: int) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    pos = 0
    for width, name in _FIELDS:
        out[name] = [table[pos + i * width : pos + (i + 1) * width] for i in range(ns)]
        pos += width * ns
    return out


def _start(fixed: bytes) -> dt.datetime | None:
    """Start date and time: the EDF+ recording field's date where it has one, else the legacy
    dd.mm.yy field (1985-2084); None when anonymised (``Startdate X``) or unreadable."""
    text = fixed[8:256].decode("latin-1")
    recording, date, time = text[80:160], text[160:168], text[168:176]
    try:
        hh, mi, ss = (int(x) for x in time.strip().split("."))
        clock = dt.time(hh, mi, ss)
        plus = _EDFPLUS_DATE.match(recording)
        if plus is not None:
            day = dt.date(int(plus[3]), _MONTHS.index(plus[2]) + 1, int(plus[1]))
        elif recording.startswith("Startdate "):  # EDF+ with "Startdate X": anonymised
            return None
        else:
            d, m, y = (int(x) for x in date.strip().split("."))
            day = dt.date(y + (1900 if y >= 85 else 2000), m, d)
    except ValueError:
        return None
    return dt.datetime.combine(day, clock)
