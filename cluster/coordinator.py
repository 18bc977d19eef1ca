"""Placement and failover of shard workers on a Ray cluster.

One shard per alive node (pinned there with a node-affinity strategy), beds spread by the
consistent hash ring. ``watch`` pings every shard each ``heartbeat_s``; a shard that fails its
ping (its node is gone) or does not answer for ``dead_after_s`` is dropped from the ring and only
its beds are handed to the survivors, each as a moved bed (``shard.ShardWorker.assign``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sleepstream.cluster.hashring import HashRing
from sleepstream.cluster.shard import ShardWorker
from sleepstream.engine.config import Config

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Move:
    """Beds handed from a lost shard to survivors."""

    shard: str
    detected_wall: float
    beds: dict[str, str]  # bed -> new shard


@dataclass(slots=True)
class CoordinatorState:
    config: Config
    live: bool
    vnodes: int = 64
    shards: dict[str, Any] = field(default_factory=dict)  # shard id -> actor handle
    owner: dict[str, str] = field(default_factory=dict)  # bed -> shard id
    last_seen: dict[str, float] = field(default_factory=dict)  # shard -> wall time
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # shard -> bed -> samples
    moves: list[Move] = field(default_factory=list)
    outputs: Any | None = None  # the queue of forwarded events (cluster.outputs), if wanted
    wall_origin: float | None = None  # the coordinator's engine-clock origin, for every shard
    service: Any | None = None  # the pooled inference service (cluster.serving), if any

    @property
    def ring(self) -> HashRing:
        return HashRing(tuple(self.shards), self.vnodes)


def alive_nodes() -> list[str]:
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))


def create_shards(state: CoordinatorState, nodes: list[str] | None = None) -> None:
    """One shard actor per node (alive nodes by default), pinned there."""
    remote = ray.remote(ShardWorker)
    for node in nodes or alive_nodes():
        shard_id = shard_name(node)
        strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        state.shards[shard_id] = remote.options(
            num_cpus=0, max_restarts=0, scheduling_strategy=strategy,
        ).remote(state.config, shard_id, live=state.live, outputs=state.outputs,
                 wall_origin=state.wall_origin, service=state.service)
        state.last_seen[shard_id] = time.time()


def place_beds(state: CoordinatorState) -> None:
    """Every configured bed to its shard on the ring, started there."""
    placed = state.ring.by_shard(b.id for b in state.config.beds)
    ray.get([state.shards[s].assign.remote(beds) for s, beds in placed.items()])
    state.owner = {b: s for s, beds in placed.items() for b in beds}


def start_shards(state: CoordinatorState, nodes: list[str] | None = None) -> None:
    create_shards(state, nodes)
    place_beds(state)


def shard_name(node_id: str) -> str:
    return f"shard-{node_id[:8]}"


async def heartbeat(state: CoordinatorState, timeout_s: float) -> list[str]:
    """Ping every shard once; the ids of those that failed or did not answer in time."""
    ids = list(state.shards)
    refs = [state.shards[s].ping.remote() for s in ids]
    done, _ = await asyncio.to_thread(ray.wait, refs, num_returns=len(refs), timeout=timeout_s)
    lost = []
    now = time.time()
    for shard, ref in zip(ids, refs, strict=True):
        if ref not in done:
            if now - state.last_seen[shard] > timeout_s:
                lost.append(shard)
            continue
        try:
            state.counts[shard] = await asyncio.to_thread(ray.get, ref)
            state.last_seen[shard] = now
        except ray.exceptions.RayError:
            lost.append(shard)
    return lost


async def fail_over(state: CoordinatorState, lost: str) -> Move:
    """Drop ``lost`` from the ring; its beds (only those) go to their new owners as moved."""
    dead = state.shards.pop(lost)
    ray.kill(dead, no_restart=True)
    beds = [b for b, s in state.owner.items() if s == lost]
    placed = state.ring.by_shard(beds)
    moved_at = state.last_seen.pop(lost)
    if state.service is not None:  # the lost shard's KV slots go back to the pool
        await asyncio.to_thread(ray.get, state.service.forget.remote(lost))
    refs = [state.shards[s].assign.remote(bs, {b: (moved_at, lost) for b in bs})
            for s, bs in placed.items() if bs]
    await asyncio.to_thread(ray.get, refs)
    move = Move(lost, time.time(), {b: s for s, bs in placed.items() for b in bs})
    state.owner.update(move.beds)
    state.moves.append(move)
    log.warning("shard %s lost: %d bed(s) moved to %s", lost, len(beds),
                sorted(set(move.beds.values())))
    return move


async def watch(state: CoordinatorState, *, heartbeat_s: float, dead_after_s: float,
                on_move: Callable[[Move], None] | None = None) -> None:
    """Heartbeats and failover until cancelled."""
    while True:
        for shard in await heartbeat(state, dead_after_s):
            if len(state.shards) > 1:
                move = await fail_over(state, shard)
                if on_move is not None:
                    on_move(move)
            else:
                log.error("shard %s lost and no shard survives to take its beds", shard)
        await asyncio.sleep(heartbeat_s)


def stop_shards(state: CoordinatorState) -> None:
    for handle in state.shards.values():
        try:
            ray.get(handle.stop.remote(), timeout=10)
        except ray.exceptions.RayError as exc:
            log.warning("a shard did not stop cleanly: %s", exc)
