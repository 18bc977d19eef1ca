"""A shard worker: the single-process bed pipeline (``build_engine``) for the beds it owns.

The coordinator runs one per node as a Ray actor (``ray.remote(ShardWorker)``). Beds given at
start run in one engine; beds moved here from a lost shard start in a further engine on the same
event loop (the running beds are never restarted). A moved bed raises the technical alarm
``monitoring_interrupted`` at once, its onset the last time its old shard was heard from, and
ends it when its first data is processed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.app.monitor import live_info
from sleepstream.engine.clock import MonotonicClock
from sleepstream.engine.config import Config, SinkConfig
from sleepstream.engine.pipeline import BedRuntime, Engine
from sleepstream.engine.protocols import Event, Sink
from sleepstream.engine.types import Command

log = logging.getLogger(__name__)
INTERRUPTED = "monitoring_interrupted"


def shard_config(config: Config, beds: list[str], tag: str) -> Config:
    """``config`` restricted to ``beds``; file sinks get ``tag`` before their suffix so shards
    (and a shard's later engines) never write the same file."""
    chosen = tuple(b for b in config.beds if b.id in set(beds))
    sinks = tuple(_tagged(s, tag) for s in config.sinks)
    return replace(config, beds=chosen, sinks=sinks)


def _tagged(sink: SinkConfig, tag: str) -> SinkConfig:
    if "path" not in sink.options:
        return sink
    path = Path(sink.options["path"])
    return SinkConfig(sink.kind, {**sink.options,
                                  "path": str(path.with_name(f"{path.stem}.{tag}{path.suffix}"))})


def interrupted_event(bed: str, state: str, onset: float, end: float | None, now: float,
                      moved_from: str) -> Event:
    return {
        "type": "alert", "bed": bed, "id": f"{bed}/{INTERRUPTED}", "code": INTERRUPTED,
        "kind": "technical", "priority": "high", "state": state, "onset": round(onset, 3),
        "end": None if end is None else round(end, 3), "value": None,
        "message": f"monitoring was interrupted: shard {moved_from} was lost; the bed moved",
        "channels": [], "delay_s": 0.0, "latching": False, "t": round(now, 3),
    }


@dataclass(slots=True)
class _Generation:
    engine: Engine
    beds: list[BedRuntime]
    task: asyncio.Task[None]
    commands: asyncio.Queue[Command]  # operator commands routed here (web acknowledgements)


@dataclass(slots=True)
class ShardState:
    pending: dict[str, tuple[float, str]] = field(default_factory=dict)  # bed -> (onset, from)
    resumed_wall: dict[str, float] = field(default_factory=dict)
    generations: list[_Generation] = field(default_factory=list)


class ShardWorker:
    """One shard: ``assign`` beds, ``ping`` for health and counts, ``wait`` or ``stop``.

    ``outputs``: the coordinator's event queue (``cluster.outputs``), fed by a ``ForwardSink``
    in every engine here; ``wall_origin``: the coordinator's, so that live engine times agree
    on every shard; ``service``: the pooled inference service (``cluster.serving``), stepped
    instead of a local backend."""

    def __init__(self, config: Config, shard_id: str, *, live: bool = True,
                 outputs: Any | None = None, wall_origin: float | None = None,
                 service: Any | None = None) -> None:
        self.config, self.shard, self.live = config, shard_id, live
        self.outputs, self.wall_origin, self.service = outputs, wall_origin, service
        self.state = ShardState()
        self.forward: list[Sink] = []

    def _clock(self) -> MonotonicClock | None:
        if not self.live or self.wall_origin is None:
            return None
        return MonotonicClock(origin=time.monotonic() - (time.time() - self.wall_origin),
                              wall_origin=self.wall_origin)

    def beds(self) -> list[str]:
        return [b.state.bed for g in self.state.generations for b in g.beds]

    async def assign(self, beds: list[str], moved: dict[str, tuple[float, str]] | None = None
                     ) -> list[str]:
        """Start the beds in ``beds`` not yet running here; ``moved`` maps a bed moved from a
        lost shard to (wall time it was last heard from, that shard's id)."""
        new = [b for b in beds if b not in set(self.beds())]
        if not new:
            return []
        tag = f"{self.shard}.g{len(self.state.generations)}"
        sinks: list[Sink] = []
        if self.outputs is not None:
            from sleepstream.cluster.outputs import ForwardSink

            sinks.append(ForwardSink(self.outputs))
            self.forward += sinks
        commands: asyncio.Queue[Command] = asyncio.Queue(256)
        engine, runtimes, _ = build_engine(
            self._pooled(shard_config(self.config, new, tag), tag), live=self.live,
            on_progress=self._progress, extra_sinks=sinks, clock=self._clock(),
            extra_commands=[_queue_source(commands)])
        task = asyncio.create_task(engine.run(), name=f"shard-{tag}")
        self.state.generations.append(_Generation(engine, runtimes, task, commands))
        now_wall = time.time()
        for bed, (last_wall, source) in (moved or {}).items():
            if bed in new:
                self.state.pending[bed] = (last_wall, source)
                onset = engine.clock.now() - (now_wall - last_wall)
                engine.bus.publish_nowait(interrupted_event(bed, "active", onset, None,
                                                            engine.clock.now(), source))
        log.info("shard %s: started %d bed(s)%s", self.shard, len(new),
                 f", {len(moved)} moved here" if moved else "")
        return new

    def _pooled(self, config: Config, tag: str) -> Config:
        """With a pooled service: ``config`` stepping through it, the KV slots of this engine
        keyed by ``tag`` on the service (each engine here numbers its slots from 0)."""
        if self.service is None or config.model.checkpoint == "none":
            return config
        from sleepstream.cluster.serving import pooled_factory
        from sleepstream.engine.inference.backends import register_backend

        register_backend("pooled", pooled_factory(self.service, tag))
        return replace(config, model=replace(config.model, backend="pooled"))

    def _progress(self, bed: BedRuntime, t: float) -> None:
        pending = self.state.pending.pop(bed.state.bed, None)
        if pending is None:
            return
        self.state.resumed_wall[bed.state.bed] = time.time()
        for g in self.state.generations:
            if bed in g.beds:
                now = g.engine.clock.now()
                onset = now - (time.time() - pending[0])
                g.engine.bus.publish_nowait(interrupted_event(bed.state.bed, "ended", onset,
                                                              now, now, pending[1]))

    async def command(self, cmd: Command) -> bool:
        """An operator command (an acknowledgement from the coordinator's web view) into the
        engine that runs its bed; False when no bed of this shard has that id."""
        for g in self.state.generations:
            if any(b.state.bed == cmd.bed for b in g.beds):
                g.commands.put_nowait(cmd)
                return True
        return False

    async def live_figures(self) -> dict[str, dict[str, Any]]:
        """Per bed: newest data time, frames, connected, failed (the web view's live part)."""
        out: dict[str, dict[str, Any]] = {}
        for g in self.state.generations:
            out.update(live_info(g.beds, g.engine.clock))
        return out

    async def ping(self) -> dict[str, int]:
        """Samples received so far, per bed (a live shard answers at once)."""
        return {b.state.bed: sum(int(s["samples_in"]) for s in b.state.summary().values())
                for g in self.state.generations for b in g.beds}

    async def resumed(self) -> dict[str, float]:
        """Wall time at which each bed moved here processed its first data."""
        return dict(self.state.resumed_wall)

    async def summary(self) -> dict[str, dict[str, object]]:
        return {b.state.bed: {"frames_in": b.frames_in, "frames_dropped": b.frames_dropped,
                              "failed": b.failed, "shard": self.shard}
                for g in self.state.generations for b in g.beds}

    async def wait(self) -> float:
        """Wait for every engine to end (replay sources); returns this process's CPU seconds."""
        for g in self.state.generations:
            await g.task
        return time.process_time()

    async def stop(self) -> None:
        for g in self.state.generations:
            g.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await g.task
        for sink in self.forward:  # the engines closed their sinks; this is the last flush
            await sink.aclose()

    async def cpu_s(self) -> float:
        return time.process_time()


async def _queue_source(queue: asyncio.Queue[Command]) -> AsyncIterator[Command]:
    while True:
        yield await queue.get()
