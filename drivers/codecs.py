"""The msgpack payload of one MQTT data packet, and its strict validation.

A packet carries the samples of one channel of one device::

    {"v": 1, "seq": 4096, "t0": 12.5, "fs": 256.0, "unit": "uV", "samples": <bin or array>}

``seq`` is the device's running sample index of the first sample (so the receiver knows exactly
how many samples a gap swallowed), ``t0`` the device-clock time of the first sample in seconds,
``fs`` the sampling rate in Hz, ``unit`` a short physical unit, ``samples`` either little-endian
float32 bytes (the compact form) or an array of numbers. NaN marks a sample the device knows is not
real (sensor off); what happens to it is the decoder's ``nan_policy``.

Everything that comes off the network is hostile until proven otherwise: ``decode_packet`` checks
the size before unpacking, bounds msgpack's own allocations, checks every field's type and range,
and raises ``PayloadError(reason, message)`` with a stable ``reason`` that callers count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import msgpack
import numpy as np

from sleepstream.engine.errors import PayloadError
from sleepstream.engine.types import BoolArray, F32Array

SCHEMA_VERSION = 1

NanPolicy = Literal["invalid", "reject"]

# Stable reasons a payload is rejected (keys of the per-reason counters).
REASONS: tuple[str, ...] = (
    "too_large",
    "not_msgpack",
    "not_a_map",
    "version",
    "missing_field",
    "unknown_field",
    "bad_type",
    "bad_seq",
    "bad_t0",
    "bad_rate",
    "bad_unit",
    "empty",
    "too_many_samples",
    "bad_samples",
    "non_finite",
    "nan",
    "rate_mismatch",
    "unknown_channel",
    "bad_topic",
)

_FIELDS = frozenset({"v", "seq", "t0", "fs", "unit", "samples"})
_MAX_SEQ = 2**62


@dataclass(frozen=True, slots=True)
class CodecLimits:
    """What a payload may be. Defaults fit 1-s packets of a 1 kHz channel with room to spare."""

    max_bytes: int = 65_536
    max_samples: int = 8_192
    min_fs: float = 0.01
    max_fs: float = 8_192.0
    max_unit_len: int = 16
    nan_policy: NanPolicy = "invalid"


DEFAULT_LIMITS = CodecLimits()


@dataclass(frozen=True, slots=True)
class Packet:
    """A decoded, validated packet. ``valid`` is False where the device sent NaN."""

    seq: int
    t0: float
    fs: float
    unit: str
    samples: F32Array
    valid: BoolArray

    def __len__(self) -> int:
        return int(self.samples.shape[0])


def encode_packet(
    *,
    seq: int,
    t0: float,
    fs: float,
    unit: str,
    samples: Any,
    as_list: bool = False,
    version: int = SCHEMA_VERSION,
) -> bytes:
    """Pack one packet. ``samples`` is anything numpy turns into a 1-D float32 array."""
    arr = np.ascontiguousarray(np.asarray(samples, dtype="<f4").reshape(-1))
    body: Any = [float(x) for x in arr] if as_list else arr.tobytes()
    return bytes(
        msgpack.packb(
            {"v": version, "seq": int(seq), "t0": float(t0), "fs": float(fs), "unit": unit,
             "samples": body},
            use_bin_type=True,
        )
    )


def _reject_ext(code: int, data: bytes) -> Any:
    raise PayloadError("bad_type", f"msgpack extension type {code} is not allowed")


def decode_packet(payload: bytes, *, limits: CodecLimits = DEFAULT_LIMITS) -> Packet:
    """Validate and decode one payload; raise ``PayloadError`` with a stable reason if bad."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise PayloadError("bad_type", f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > limits.max_bytes:
        raise PayloadError(
            "too_large", f"payload of {len(payload)} bytes exceeds the {limits.max_bytes} cap"
        )
    cap = limits.max_bytes
    try:
        obj = msgpack.unpackb(
            payload,
            raw=False,
            strict_map_key=True,
            ext_hook=_reject_ext,
            max_str_len=cap,
            max_bin_len=cap,
            max_array_len=limits.max_samples,
            max_map_len=32,
            max_ext_len=0,
        )
    except PayloadError:
        raise
    except Exception as exc:  # msgpack raises many types (ExtraData, ValueError, ...)
        raise PayloadError("not_msgpack", f"payload is not valid msgpack ({exc!r:.80})") from exc
    if not isinstance(obj, dict):
        raise PayloadError("not_a_map", f"payload must be a map, got {type(obj).__name__}")
    return _validate(obj, limits)


def _field(obj: dict[Any, Any], key: str) -> Any:
    if key not in obj:
        raise PayloadError("missing_field", f"payload lacks the {key!r} field")
    return obj[key]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(obj: dict[Any, Any], limits: CodecLimits) -> Packet:
    version = _field(obj, "v")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise PayloadError("version", f"schema version {version!r:.20} is not {SCHEMA_VERSION}")
    extra = set(obj) - _FIELDS
    if extra:
        raise PayloadError("unknown_field", f"unknown fields {sorted(map(str, extra))!r:.80}")
    seq, t0, fs, unit = (_field(obj, k) for k in ("seq", "t0", "fs", "unit"))
    if type(seq) is not int or not 0 <= seq < _MAX_SEQ:
        raise PayloadError("bad_seq", f"seq must be an integer in [0, 2**62), got {seq!r:.30}")
    if not _number(t0) or not math.isfinite(t0) or abs(t0) > 1e12:
        raise PayloadError("bad_t0", f"t0 must be a finite number of seconds, got {t0!r:.30}")
    if not _number(fs) or not limits.min_fs <= fs <= limits.max_fs:
        raise PayloadError(
            "bad_rate", f"fs must be in [{limits.min_fs}, {limits.max_fs}] Hz, got {fs!r:.30}"
        )
    if not isinstance(unit, str) or len(unit) > limits.max_unit_len or not unit.isprintable():
        raise PayloadError("bad_unit", f"unit must be a short printable string, got {unit!r:.30}")
    samples = _samples(_field(obj, "samples"), limits)
    nan = np.isnan(samples)
    if np.isinf(samples).any():
        raise PayloadError("non_finite", "samples contain +-inf")
    if limits.nan_policy == "reject" and nan.any():
        raise PayloadError("nan", "samples contain NaN and the NaN policy is 'reject'")
    return Packet(
        seq=seq, t0=float(t0), fs=float(fs), unit=unit, samples=samples, valid=~nan
    )


def _samples(raw: Any, limits: CodecLimits) -> F32Array:
    if isinstance(raw, bytes):
        if len(raw) % 4:
            raise PayloadError("bad_samples", f"{len(raw)} sample bytes is not a multiple of 4")
        n = len(raw) // 4
        arr = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif isinstance(raw, list):
        n = len(raw)
        if not all(_number(x) for x in raw):
            raise PayloadError("bad_samples", "sample array holds non-numbers")
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (OverflowError, ValueError) as exc:
            raise PayloadError("bad_samples", "sample values do not fit a float") from exc
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(np.float32)
    else:
        kind = type(raw).__name__
        raise PayloadError("bad_type", f"samples must be bytes or an array, got {kind}")
    if n == 0:
        raise PayloadError("empty", "packet holds no samples")
    if n > limits.max_samples:
        cap = limits.max_samples
        raise PayloadError("too_many_samples", f"{n} samples exceed the cap of {cap}")
    return arr

