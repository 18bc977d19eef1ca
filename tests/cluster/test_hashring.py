"""Consistent hashing of bed ids: balanced, stable, and adding or removing a shard moves only
that shard's share."""

from __future__ import annotations

import pytest

from sleepstream.cluster.hashring import HashRing
from sleepstream.engine.errors import ConfigError

BEDS = [f"bed-{i:04d}" for i in range(3000)]


def test_adding_a_shard_moves_only_its_share() -> None:
    before = HashRing(("a", "b", "c")).assign(BEDS)
    after = HashRing(("a", "b", "c", "d")).assign(BEDS)
    moved = [b for b in BEDS if before[b] != after[b]]
    assert all(after[b] == "d" for b in moved)  # beds only move onto the new shard
    assert 0.15 * len(BEDS) < len(moved) < 0.35 * len(BEDS)  # about 1/4 of them


def test_removing_a_shard_moves_only_its_beds() -> None:
    ring = HashRing(("a", "b", "c"))
    before = ring.assign(BEDS)
    after = ring.without_shard("b").assign(BEDS)
    assert {b for b in BEDS if before[b] != after[b]} == {b for b in BEDS if before[b] == "b"}


def test_balanced_and_order_independent() -> None:
    counts = {s: len(v) for s, v in HashRing(("a", "b", "c")).by_shard(BEDS).items()}
    assert min(counts.values()) > 0.6 * len(BEDS) / 3, counts
    assert HashRing(("c", "a", "b")).assign(BEDS) == HashRing(("a", "b", "c")).assign(BEDS)
    assert HashRing(("a",)).with_shard("b").assign(BEDS) == HashRing(("a", "b")).assign(BEDS)


def test_no_shard_or_duplicate_ids_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no shard"):
        HashRing(()).owner("bed-1")
    with pytest.raises(ConfigError, match="unique"):
        HashRing(("a", "a"))
