"""Unlabelled real nights for pretraining, tokenized once and cached.

``find_nights`` lists every EDF/EDF+ recording under a folder (labels or not) that carries at
least one of the wanted modalities; ``tokenized_nights`` turns each into a ``Tokenized`` with a
checkpoint's tokenizers and keeps the result in a cache folder, one ``.npz`` per night keyed by
the tokenizers' checksum and the file's size and modification time, so a second run reads codes
instead of EDF files. Codes are stored as ``uint8`` when the codebooks hold at most 256 codes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepstream.models.data import RecordingRef, find_recordings, load_night
from sleepstream.models.tokenizer import Tokenizer
from sleepstream.models.train import Tokenized, tokenize

log = logging.getLogger(__name__)

CARDIO_RESPIRATORY = ("spo2", "hr")


@dataclass(frozen=True, slots=True)
class NightFile:
    """One recording to pretrain on: its folder (the data set) and reference."""

    dataset: str
    ref: RecordingRef

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.ref.name}"


def find_nights(root: str | Path) -> list[NightFile]:
    """Every recording under ``root`` (recursively), labelled or not, named by its folder."""
    root = Path(root)
    out = []
    for ref in find_recordings(root):
        rel = ref.edf.parent.relative_to(root) if root.is_dir() else Path(".")
        out.append(NightFile(rel.as_posix() if rel.parts else root.name, ref))
    return out


def tokenizer_digest(tokenizers: dict[str, Tokenizer]) -> str:
    """SHA-256 over the tokenizers' configs and weights (the cache key of their codes)."""
    h = hashlib.sha256()
    for m in sorted(tokenizers):
        tok = tokenizers[m]
        h.update(repr(tok.cfg).encode())
        for name, t in sorted(tok.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _cache_path(cache: Path, digest: str, night: NightFile) -> Path:
    st = night.ref.edf.stat()
    tag = hashlib.sha256(
        f"{night.key}|{st.st_size}|{st.st_mtime_ns}|{night.ref.labels}".encode()
    ).hexdigest()[:16]
    safe = night.key.replace("/", "__")
    return cache / digest[:16] / f"{safe}-{tag}.npz"


def _compact(t: Tokenized, codes: int) -> Tokenized:
    dtype = np.uint8 if codes <= 256 else np.int64
    return Tokenized(t.name, t.codes.astype(dtype), t.presence, t.stages)


def _read(path: Path, name: str) -> Tokenized:
    with np.load(path, allow_pickle=False) as z:
        return Tokenized(name, z["codes"], z["presence"], z["stages"])


def tokenize_night(
    night: NightFile,
    tokenizers: dict[str, Tokenizer],
    modalities: Sequence[str],
    levels: int,
    cache: Path | None,
    digest: str,
) -> Tokenized | None:
    """One night's codes (from the cache when there); None when it has none of the modalities
    the tokenizers cover."""
    path = _cache_path(cache, digest, night) if cache is not None else None
    if path is not None and path.exists():
        return _read(path, night.key)
    wanted = tuple(m for m in modalities if m in tokenizers)
    n = load_night(night.ref, wanted)
    if not n.signals:
        return None
    codes = next(iter(tokenizers.values())).cfg.codes
    t = _compact(tokenize(tokenizers, n, modalities, levels), codes)
    t = Tokenized(night.key, t.codes, t.presence, t.stages)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, codes=t.codes, presence=t.presence, stages=t.stages)
        tmp.replace(path)
    return t


def tokenized_nights(
    nights: Sequence[NightFile],
    tokenizers: dict[str, Tokenizer],
    modalities: Sequence[str],
    levels: int,
    cache: Path | None = None,
    use: Sequence[str] = CARDIO_RESPIRATORY,
) -> list[Tokenized]:
    """The nights that carry any modality of ``use`` (and that the tokenizers cover), with
    presence limited to those modalities."""
    digest = tokenizer_digest(tokenizers)
    keep = np.array([m in use for m in modalities])
    out = []
    for night in nights:
        t = tokenize_night(night, tokenizers, modalities, levels, cache, digest)
        if t is None or not (t.presence & keep[None]).any():
            log.info("%s: none of %s; not used", night.key, ", ".join(use))
            continue
        out.append(Tokenized(t.name, t.codes, t.presence & keep[None], t.stages))
    return out


def hours(data: Sequence[Tokenized]) -> dict[str, float]:
    """Hours of nights per data set (the name's folder part) and in all."""
    per: dict[str, float] = {}
    for d in data:
        ds = d.name.rsplit("/", 1)[0]
        per[ds] = per.get(ds, 0.0) + d.codes.shape[0] / 3600
    per["all"] = sum(v for k, v in per.items())
    return {k: round(v, 1) for k, v in per.items()}
