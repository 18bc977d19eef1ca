"""``sleepstream run --cluster ADDRESS``: the configured beds sharded over a Ray cluster.

One shard worker per alive node, each running the single-process pipeline for its beds; the
coordinator (this process) pings them and moves a lost shard's beds to the survivors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import Any, TextIO

import ray

from sleepstream.cluster import coordinator as co
from sleepstream.cluster import station
from sleepstream.engine.config import Config

log = logging.getLogger(__name__)


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``local``: start one on this machine)."""
    ray.init(address=None if address == "local" else address, log_to_driver=False,
             configure_logging=False)


async def run_cluster(config: Config, address: str, seconds: float | None,
                      out: TextIO = sys.stderr) -> int:
    connect(address)  # in the main thread: Ray sets its signal handlers there
    try:
        return await serve(config, seconds, out)
    finally:
        ray.shutdown()


async def serve(config: Config, seconds: float | None, out: TextIO = sys.stderr, *,
                signals: bool = True) -> int:
    """The sharded run on the connected Ray cluster until ``seconds``, SIGINT or SIGTERM; with
    a store or web view configured, both here, fed by every shard (``cluster.station``)."""
    state = co.CoordinatorState(config, live=True, vnodes=config.cluster.vnodes)
    shared = station.prepare(config, out) if station.wanted(config) else None
    if shared is not None:  # one store and web view for every shard's beds
        state.outputs, state.wall_origin = shared.queue, shared.clock.wall_origin
    state.service = start_pooled(config)
    try:
        await asyncio.to_thread(co.start_shards, state)
        placed = {s: sorted(b for b, o in state.owner.items() if o == s) for s in state.shards}
        print(f"sleepstream run: {len(config.beds)} bed(s) over {len(state.shards)} shard(s): "
              + "; ".join(f"{s}: {len(b)}" for s, b in placed.items()), file=out)
        watch = asyncio.create_task(co.watch(
            state, heartbeat_s=config.cluster.heartbeat_s,
            dead_after_s=config.cluster.dead_after_s,
            on_move=lambda m: print(f"shard {m.shard} lost: {len(m.beds)} bed(s) moved",
                                    file=out)))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM) if signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, watch.cancel)
        await _until_stopped(state, shared, watch, seconds, out)
        failed = await asyncio.to_thread(_summary, state, out)
    finally:
        await asyncio.to_thread(co.stop_shards, state)
        if shared is not None:
            await station.close(shared)
        if state.service is not None:
            ray.kill(state.service)
    return 1 if failed else 0


def start_pooled(config: Config) -> Any | None:
    """The pooled inference service when ``[cluster] inference = "pooled"`` and a model is
    configured: KV room for every bed four times over (moves start new engines) plus spares."""
    if config.cluster.inference != "pooled" or config.model.checkpoint == "none":
        return None
    from sleepstream.cluster.serving import start_service
    from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR

    root = DEFAULT_MODEL_DIR if config.model.checkpoint == "default" else config.model.checkpoint
    return start_service(str(root), 4 * len(config.beds) + 64,
                         backend=config.cluster.service_backend, gpu=config.cluster.service_gpu)


async def _until_stopped(state: co.CoordinatorState, shared: station.ClusterOutputs | None,
                         watch: asyncio.Task[None], seconds: float | None, out: TextIO) -> None:
    async with contextlib.AsyncExitStack() as stack:
        if shared is not None:
            url = await stack.enter_async_context(station.running(state, shared, watch))
            if url is not None:
                print(f"web view on {url}/" + (" (bearer token required)"
                                               if shared.parts.token else ""), file=out)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(seconds):
                await watch
        watch.cancel()


def _summary(state: co.CoordinatorState, out: TextIO) -> bool:
    out.write("\n== cluster run summary ==\n")
    failed = False
    for handle in state.shards.values():
        for bed, s in sorted(ray.get(handle.summary.remote()).items()):
            failed |= bool(s["failed"])
            out.write(f"bed {bed} on {s['shard']}: {s['frames_in']} frames in, "
                      f"{s['frames_dropped']} dropped"
                      f"{', FAILED: ' + str(s['failed']) if s['failed'] else ''}\n")
    for move in state.moves:
        out.write(f"shard {move.shard} lost; moved: {sorted(move.beds)}\n")
    if state.service is not None:
        s = ray.get(state.service.stats.remote())
        out.write(f"pooled inference: {s['requests']} step requests in {s['calls']} backend "
                  f"calls, {s['slots_used']} of {s['capacity']} KV slots in use\n")
    return failed
