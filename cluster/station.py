"""The coordinator's store and web view in a sharded run (``run --cluster`` with ``--store`` or
``--http``): the same parts a single process builds (``engine.app.monitor.prepare``), fed by
every shard's forwarded events (``cluster.outputs``).

``ClusterOutputs`` owns, for the run: the event queue the shards forward to, the task draining it
into the store, view and metrics, the task routing the page's acknowledgements to the owning
shard, a poll of every shard's live figures (last data time, connected) for the view, and the
web server. The store's own technical alarm (``store_failed``) goes to the view and metrics like
any event (its own small task). Not in cluster mode: the engine-internal metrics of a process
(queue depths, step latency histogram): they stay with each shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TextIO

import ray

from sleepstream.cluster import coordinator as co
from sleepstream.cluster import outputs
from sleepstream.engine.app import monitor
from sleepstream.engine.clock import MonotonicClock
from sleepstream.engine.config import Config
from sleepstream.engine.protocols import Event

log = logging.getLogger(__name__)
LIVE_EVERY_S = 1.0


def wanted(config: Config) -> bool:
    return config.http.listen is not None or config.store.path is not None


@dataclass(slots=True)
class ClusterOutputs:
    parts: monitor.MonitorParts
    clock: MonotonicClock
    queue: Any
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    local: list[Event] = field(default_factory=list)  # the store's own alarms
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def prepare(config: Config, out: TextIO) -> ClusterOutputs:
    """Store (night so far read back), view, metrics and the shards' event queue."""
    clock = MonotonicClock()
    parts = monitor.prepare(config, clock, out=out)
    result = ClusterOutputs(parts, clock, outputs.new_queue())
    if parts.store is not None:
        parts.store.publish = result.local.append
    return result


async def _poll_live(state: co.CoordinatorState, result: ClusterOutputs) -> None:
    while True:
        handles = list(state.shards.values())
        refs = [h.live_figures.remote() for h in handles]
        done, _ = await asyncio.to_thread(ray.wait, refs, num_returns=len(refs), timeout=2.0)
        for ref in done:
            with contextlib.suppress(ray.exceptions.RayError):
                result.live.update(await asyncio.to_thread(ray.get, ref))
        await asyncio.sleep(LIVE_EVERY_S)


async def _deliver_local(result: ClusterOutputs) -> None:
    """What the coordinator's own store publishes (its alarms) goes to the sinks too."""
    while True:
        if result.local:
            batch, result.local[:] = list(result.local), []
            await outputs.deliver(batch, result.parts.sinks)
        await asyncio.sleep(LIVE_EVERY_S)


@contextlib.asynccontextmanager
async def running(state: co.CoordinatorState, result: ClusterOutputs, watch: asyncio.Task[None]
                  ) -> AsyncIterator[str | None]:
    """Drain, routing, live poll and the web server while the block runs; yields the URL.
    At the end the shards' last events are drained and the store and view are closed."""
    parts = result.parts
    result.tasks.append(asyncio.create_task(outputs.drain(result.queue, parts.sinks),
                                            name="cluster-drain"))
    result.tasks.append(asyncio.create_task(_poll_live(state, result), name="cluster-live"))
    result.tasks.append(asyncio.create_task(_deliver_local(result), name="cluster-local"))
    if parts.commands is not None:
        result.tasks.append(asyncio.create_task(
            outputs.route_commands(parts.commands.commands(), state.owner, state.shards),
            name="cluster-commands"))
    try:
        async with _web(state, result, watch) as url:
            yield url
    finally:
        for task in result.tasks:
            task.cancel()
        for task in result.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def close(result: ClusterOutputs) -> None:
    """After the shards stopped (and flushed): what is still queued, then close the sinks."""
    await outputs.drain_rest(result.queue, result.parts.sinks)
    await outputs.deliver(result.local, result.parts.sinks)
    for sink in result.parts.sinks:
        try:
            await sink.aclose()
        except Exception as exc:
            log.warning("closing %s: %s", type(sink).__name__, exc)
    result.queue.shutdown()


@contextlib.asynccontextmanager
async def _web(state: co.CoordinatorState, result: ClusterOutputs, watch: asyncio.Task[None]
               ) -> AsyncIterator[str | None]:
    parts = result.parts
    if (parts.listen is None or parts.metrics is None or parts.view is None
            or parts.commands is None):
        yield None
        return
    from sleepstream.web import app, server

    beds = [b.id for b in state.config.beds]

    def alive() -> tuple[bool, str]:
        if watch.done():
            return False, "the coordinator has stopped"
        return True, f"cluster running: {len(beds)} beds over {len(state.shards)} shard(s)"

    def ready() -> tuple[bool, list[str]]:
        waiting = [f"bed {b}: no data yet" for b in beds if b not in result.live]
        if parts.store is not None and parts.store.stats.failing:
            waiting.append(f"store failing: {parts.store.stats.last_error}")
        return not waiting, waiting

    ctx = app.WebContext(view=parts.view, metrics=parts.metrics, commands=parts.commands,
                         clock=result.clock, live=lambda: dict(result.live), alive=alive,
                         ready=ready, token=parts.token)
    web = server.WebServer(app.create_app(ctx), parts.listen)
    async with web:
        yield web.url
