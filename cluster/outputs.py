"""The cluster's shared outputs: every shard's events reach the coordinator's store and web view.

A sharded run keeps what a single process gives an integrator: one SQLite store and one web view
for every bed. Each shard adds a ``ForwardSink`` to its engines; it hands the events, in batches,
to a Ray queue the coordinator owns. The coordinator drains the queue into the sinks that
``engine.app.monitor.prepare`` built (the store, the view, the metrics), exactly as a single
process would feed them. Acknowledgements from the page go the other way: the coordinator routes
each to the shard that owns its bed (``ShardWorker.command``), where it takes the engine's own
command route. Every shard's engine clock shares the coordinator's wall origin, so event times
mean the same on every shard and across a bed's move.

Bounds: a shard holds at most ``limit`` events waiting to be forwarded (beyond it events are
dropped for the store and view only, counted in ``ForwardSink.dropped``; the shard's own sinks
still get them); the Ray queue holds at most ``QUEUE_BATCHES`` batches (a full queue makes the
shard wait, not lose).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from ray.util.queue import Queue

from sleepstream.engine.protocols import Event, Sink

log = logging.getLogger(__name__)
QUEUE_BATCHES = 1024


def new_queue() -> Queue:
    """The coordinator's queue of event batches (a Ray actor, on the coordinator's node)."""
    return Queue(maxsize=QUEUE_BATCHES, actor_options={"num_cpus": 0})


class ForwardSink:
    """On a shard: every event to the coordinator's queue, in batches every ``batch_s``."""

    def __init__(self, queue: Queue, *, batch_s: float = 0.2, limit: int = 50_000) -> None:
        self.queue, self.batch_s, self.limit = queue, batch_s, limit
        self.pending: list[Event] = []
        self.dropped = 0
        self._task: asyncio.Task[None] | None = None

    async def emit(self, event: Event) -> None:
        if len(self.pending) >= self.limit:
            self.dropped += 1
            return
        self.pending.append(event)
        if self._task is None:
            self._task = asyncio.create_task(self._every_batch(), name="forward-events")

    async def _every_batch(self) -> None:
        while True:
            await asyncio.sleep(self.batch_s)
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            await self.queue.put_async(batch)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


async def drain(queue: Queue, sinks: Sequence[Sink]) -> None:
    """Until cancelled: every forwarded event into ``sinks`` (store, view, metrics), in order
    of arrival; a sink that fails on one event is logged and the others still get it."""
    while True:
        batch = await queue.get_async()
        await deliver(batch, sinks)


async def deliver(batch: Sequence[Event], sinks: Sequence[Sink]) -> None:
    for event in batch:
        for sink in sinks:
            try:
                await sink.emit(event)
            except Exception as exc:  # one sink's trouble must not starve the others
                log.warning("cluster output %s failed on an event: %s",
                            type(sink).__name__, exc)


async def drain_rest(queue: Queue, sinks: Sequence[Sink]) -> None:
    """What is still queued at the end of a run (after the shards flushed)."""
    while not await asyncio.to_thread(queue.empty):
        await deliver(await queue.get_async(), sinks)


async def route_commands(commands: Any, owner: dict[str, str], shards: dict[str, Any]) -> None:
    """Until cancelled: each command of the web view (an acknowledgement) to its bed's shard."""
    async for cmd in commands:
        shard = shards.get(owner.get(cmd.bed, ""))
        if shard is None:
            log.warning("command for bed %s dropped: no shard owns it", cmd.bed)
            continue
        await shard.command.remote(cmd)
