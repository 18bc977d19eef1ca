"""Checkpoints that load without pickle: an ``.npz`` of plain arrays plus a JSON header.

The header (stored as a uint8 array ``__header__``) carries the format version, the kind of
checkpoint, its config and a SHA-256 over the header's other fields and every array's name,
dtype, shape and bytes. ``load`` refuses files whose checksum does not match and never
unpickles anything (``allow_pickle=False``), so checkpoints from untrusted places are safe to
open.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "sleepstream-checkpoint"
VERSION = 1
_HEADER = "__header__"


class CheckpointError(Exception):
    """A checkpoint is unreadable, of another format or version, or fails its checksum."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    kind: str
    config: dict[str, Any]
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    sha256: str


def _digest(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save(
    path: str | Path,
    kind: str,
    config: dict[str, Any],
    arrays: Mapping[str, np.ndarray],
    meta: dict[str, Any] | None = None,
    *,
    half: bool = False,
) -> str:
    """Write a checkpoint; returns its SHA-256. ``half`` stores float32 arrays as float16
    (read back as float32), halving the file."""
    if any(a.dtype == object for a in arrays.values()):
        raise CheckpointError("object arrays cannot be stored without pickle")
    halved = sorted(k for k, a in arrays.items() if half and a.dtype == np.float32)
    arrays = {k: a.astype(np.float16) if k in halved else a for k, a in arrays.items()}
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "config": config,
        "meta": meta or {},
        "float16": halved,
    }
    digest = _digest(header, arrays)
    blob = json.dumps({**header, "sha256": digest}).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, **{_HEADER: np.frombuffer(blob, dtype=np.uint8)}, **arrays)
    return digest


def load(path: str | Path, *, kind: str | None = None) -> Checkpoint:
    """Read and verify a checkpoint; raises ``CheckpointError`` on any mismatch."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
    if _HEADER not in arrays:
        raise CheckpointError(f"{path}: no header; not a sleepstream checkpoint")
    header = json.loads(arrays.pop(_HEADER).tobytes().decode())
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: format {header.get('format')!r}, expected {FORMAT!r}")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{path}: version {header.get('version')}, this code reads {VERSION}")
    stored = header.pop("sha256", None)
    digest = _digest(header, arrays)
    if stored != digest:
        raise CheckpointError(
            f"{path}: checksum mismatch (file corrupted or altered); re-download it"
        )
    for k in header.get("float16", []):
        arrays[k] = arrays[k].astype(np.float32)
    if kind is not None and header["kind"] != kind:
        raise CheckpointError(f"{path}: holds a {header['kind']!r} checkpoint, expected {kind!r}")
    return Checkpoint(header["kind"], header["config"], arrays, header["meta"], digest)


def state_to_arrays(state: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    """A torch ``state_dict`` as float32/int64 numpy arrays (torch tensors have ``.numpy``)."""
    return {prefix + k: v.detach().cpu().numpy() for k, v in state.items()}


def arrays_to_state(arrays: Mapping[str, np.ndarray], prefix: str = "") -> dict[str, Any]:
    import torch

    n = len(prefix)
    return {k[n:]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith(prefix)}
