"""Consistent hashing of bed ids onto shards.

Each shard owns ``vnodes`` points on a 64-bit ring (BLAKE2b of ``"<shard>#<i>"``); a bed belongs to
the first point at or after the hash of its id. Adding a shard moves only the beds that fall on
its new points (about 1/N of them); removing one moves only its own beds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sleepstream.engine.errors import ConfigError


def ring_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class HashRing:
    """An immutable ring; ``with_shard``/``without_shard`` return new rings."""

    shards: tuple[str, ...]
    vnodes: int = 64
    _points: np.ndarray = field(init=False, repr=False, compare=False)
    _owners: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.shards)) != len(self.shards):
            raise ConfigError([("cluster", f"shard ids must be unique: {list(self.shards)}")])
        pairs = sorted((ring_hash(f"{s}#{i}"), k) for k, s in enumerate(self.shards)
                       for i in range(self.vnodes))
        object.__setattr__(self, "_points", np.array([p for p, _ in pairs], dtype=np.uint64))
        object.__setattr__(self, "_owners", np.array([k for _, k in pairs], dtype=np.int64))

    def owner(self, bed: str) -> str:
        return self.assign([bed])[bed]

    def assign(self, beds: Sequence[str]) -> dict[str, str]:
        """Every bed id to its shard id."""
        if not self.shards:
            raise ConfigError([("cluster", "no shard is alive to take beds")])
        keys = np.array([ring_hash(b) for b in beds], dtype=np.uint64)
        idx = np.searchsorted(self._points, keys, side="left") % len(self._points)
        return {b: self.shards[int(k)] for b, k in zip(beds, self._owners[idx], strict=True)}

    def by_shard(self, beds: Iterable[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {s: [] for s in self.shards}
        for bed, shard in self.assign(list(beds)).items():
            out[shard].append(bed)
        return out

    def with_shard(self, shard: str) -> HashRing:
        return HashRing((*self.shards, shard), self.vnodes)

    def without_shard(self, shard: str) -> HashRing:
        return HashRing(tuple(s for s in self.shards if s != shard), self.vnodes)
