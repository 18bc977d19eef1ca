"""Measured cluster scenarios, shared by ``sleepstream bench cluster`` and the tests.

``failover``: wearables (``simulators.wearable``) publish over a real broker to beds sharded on a
Ray cluster; one node is removed mid-run; the moved beds' time to resume and samples lost are
measured. ``throughput``: the same EDF beds replayed by one process and by N shards in the same
run, compared by CPU seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from sleepstream.cluster import coordinator as co
from sleepstream.cluster.hashring import HashRing
from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.config import Config, parse_config
from sleepstream.engine.protocols import Event
from sleepstream.simulators.wearable import run_wearable

WEARABLE_CHANNELS: list[dict[str, Any]] = [  # what simulators.wearable sends
    {"name": "SpO2", "fs": 1.0, "unit": "%"}, {"name": "HR", "fs": 1.0, "unit": "bpm"},
    *({"name": f"acc_{a}", "fs": 25.0, "unit": "g"} for a in "xyz"),
]


def pick_beds(shards: list[str], n: int, prefix: str = "bed") -> list[str]:
    """``n`` bed ids such that every shard owns at least one (so any node loss moves beds)."""
    ring, beds, i = HashRing(tuple(shards)), list[str](), 0
    while len(beds) < n or set(ring.assign(beds).values()) != set(shards):
        beds.append(f"{prefix}-{i:03d}")
        i += 1
        if i > 10_000:
            raise RuntimeError("could not spread beds over every shard")
    return beds


def wearable_config(folder: Path, port: int, beds: list[str], site: str, *,
                    checkpoint: str = "none") -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    raw = {
        "mqtt": {"port": port, "client_id": f"engine-{site}"},
        "model": {"checkpoint": checkpoint},
        "beds": [{"id": b, "site": site, "sources": [
            {"kind": "mqtt", "lost_after_s": 30.0, "channels": WEARABLE_CHANNELS}]}
            for b in beds],
        "sinks": [{"kind": "jsonl", "path": str(folder / "events.jsonl")}],
    }
    return parse_config(raw, path=folder / "engine.toml")


def edf_config(folder: Path, files: list[Path], copies: int) -> Config:
    folder.mkdir(parents=True, exist_ok=True)
    raw = {
        "model": {"checkpoint": "none"},
        "beds": [{"id": f"{f.stem}-{k}", "sources": [{"kind": "edf", "path": str(f)}]}
                 for k in range(copies) for f in files],
        "sinks": [{"kind": "jsonl", "path": str(folder / "events.jsonl")}],
    }
    return parse_config(raw, path=folder / "engine.toml")


def read_events(folder: Path) -> list[Event]:
    return [json.loads(line) for p in sorted(folder.glob("events*.jsonl"))
            for line in p.read_text(encoding="utf-8").splitlines()]


@dataclass(frozen=True, slots=True)
class FailoverResult:
    beds: list[str]
    victim: str
    moved: dict[str, str]  # bed -> shard it moved to
    resume_s: dict[str, float]  # node removed -> first data processed on the new shard
    detect_s: float  # node removed -> failover decided
    sent: dict[str, int]
    lost: dict[str, int]  # published while no shard had the bed
    events: list[Event]


async def failover(cluster: Any, port: int, folder: Path, *, n_beds: int = 6,
                   duration_s: float = 40.0, speed: float = 4.0, kill_after_s: float = 3.0,
                   heartbeat_s: float = 0.25, dead_after_s: float = 2.0,
                   checkpoint: str = "none") -> FailoverResult:
    """Add a node to ``cluster`` (a ``ray.cluster_utils.Cluster``), shard wearable beds over
    all alive nodes, remove that node mid-run, and measure the moved beds (``checkpoint``: the
    model the beds stage with, none by default)."""
    node = cluster.add_node(num_cpus=1)  # Ray sets signal handlers: main thread only
    cluster.wait_for_nodes()
    nodes = co.alive_nodes()
    victim = co.shard_name(node.node_id)
    site = f"site-{uuid.uuid4().hex[:8]}"
    beds = pick_beds([co.shard_name(n) for n in nodes], n_beds, prefix=site)
    state = co.CoordinatorState(wearable_config(folder, port, beds, site,
                                                checkpoint=checkpoint), live=True)
    await asyncio.to_thread(co.start_shards, state, nodes)
    moves: list[tuple[float, co.Move]] = []
    watch = asyncio.create_task(co.watch(state, heartbeat_s=heartbeat_s,
                                         dead_after_s=dead_after_s,
                                         on_move=lambda m: moves.append((time.time(), m))))
    try:
        await asyncio.sleep(1.5)  # the shards' sources subscribe
        broker = BrokerSettings(host="127.0.0.1", port=port)
        sims = [asyncio.create_task(run_wearable(broker=broker, site=site, bed=b,
                                                 duration_s=duration_s, speed=speed, seed=i))
                for i, b in enumerate(beds)]
        await asyncio.sleep(kill_after_s)
        victim_ping = state.shards[victim].ping.remote()
        snapshot: dict[str, int] = await asyncio.to_thread(ray.get, victim_ping)
        t_kill = time.time()
        cluster.remove_node(node)
        await asyncio.gather(*sims)
        await asyncio.sleep(1.0)
        handles = list(state.shards.values())
        resumed: dict[str, float] = {}
        counts: dict[str, int] = {}
        for h in handles:
            resumed.update(await asyncio.to_thread(ray.get, h.resumed.remote()))
            counts.update(await asyncio.to_thread(ray.get, h.ping.remote()))
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
        await asyncio.to_thread(co.stop_shards, state)
    moved = {b: s for _, m in moves for b, s in m.beds.items()}
    per_bed = round(duration_s * sum(float(c["fs"]) for c in WEARABLE_CHANNELS))  # no faults
    sent = dict.fromkeys(beds, per_bed)
    return FailoverResult(
        beds=beds, victim=victim, moved=moved,
        resume_s={b: resumed[b] - t_kill for b in moved if b in resumed},
        detect_s=(moves[0][0] - t_kill) if moves else float("nan"),
        sent=sent,
        lost={b: sent[b] - snapshot.get(b, 0) - counts.get(b, 0) for b in moved},
        events=read_events(folder))


@dataclass(frozen=True, slots=True)
class ThroughputResult:
    beds: int
    data_s: float  # bed-seconds of recording processed, summed over beds
    single_cpu_s: float
    single_wall_s: float
    shards: int
    shard_cpu_s: float  # summed over the shard processes
    shard_wall_s: float
    events: int  # events the single process wrote (what a store would write)


async def single_process(config: Config) -> tuple[float, float, float]:
    """(CPU s, wall s, bed-seconds of data) of one in-process replay of ``config``."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    engine, runtimes, _ = build_engine(config, live=False)
    await engine.run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    data_s = sum(max(s["samples_in"] / s["fs"] for s in r.state.summary().values())
                 for r in runtimes)
    return cpu, wall, data_s


def sharded(config: Config, nodes: list[str] | None = None) -> tuple[float, float, int]:
    """(CPU s summed over shards, wall s, shards) of the same replay sharded over the nodes."""
    state = co.CoordinatorState(config, live=False)
    co.create_shards(state, nodes)
    handles = list(state.shards.values())
    cpu0 = sum(ray.get([h.cpu_s.remote() for h in handles]))
    wall0 = time.perf_counter()
    co.place_beds(state)
    cpu1 = sum(ray.get([h.wait.remote() for h in handles]))
    wall = time.perf_counter() - wall0
    co.stop_shards(state)
    for h in handles:
        ray.kill(h)
    return cpu1 - cpu0, wall, len(handles)


async def throughput(folder: Path, files: list[Path], copies: int) -> ThroughputResult:
    one, many = folder / "single", folder / "sharded"
    cpu, wall, data_s = await single_process(edf_config(one, files, copies))
    shard_cpu, shard_wall, n = await asyncio.to_thread(sharded, edf_config(many, files, copies))
    return ThroughputResult(len(files) * copies, data_s, cpu, wall, n, shard_cpu, shard_wall,
                            len(read_events(one)))
