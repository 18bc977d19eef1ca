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
from typing import TextIO

import ray

from sleepstream.cluster import coordinator as co
from sleepstream.engine.config import Config

log = logging.getLogger(__name__)


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (``local``: start one on this machine)."""
    ray.init(address=None if address == "local" else address, log_to_driver=False,
             configure_logging=False)


async def run_cluster(config: Config, address: str, seconds: float | None,
                      out: TextIO = sys.stderr) -> int:
    connect(address)  # in the main thread: Ray sets its signal handlers there
    state = co.CoordinatorState(config, live=True, vnodes=config.cluster.vnodes)
    try:
        await asyncio.to_thread(co.start_shards, state)
        placed = {s: sorted(b for b, o in state.owner.items() if o == s) for s in state.shards}
        print(f"sleepstream run: {len(config.beds)} bed(s) over {len(state.shards)} shard(s) on "
              f"{address}: " + "; ".join(f"{s}: {len(b)}" for s, b in placed.items()), file=out)
        watch = asyncio.create_task(co.watch(
            state, heartbeat_s=config.cluster.heartbeat_s,
            dead_after_s=config.cluster.dead_after_s,
            on_move=lambda m: print(f"shard {m.shard} lost: {len(m.beds)} bed(s) moved",
                                    file=out)))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, watch.cancel)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            async with asyncio.timeout(seconds):
                await watch
        watch.cancel()
        failed = await asyncio.to_thread(_summary, state, out)
    finally:
        await asyncio.to_thread(co.stop_shards, state)
        ray.shutdown()
    return 1 if failed else 0


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
    return failed
