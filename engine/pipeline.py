"""The asyncio pipeline: sources -> beds -> sinks.

One ``asyncio.TaskGroup`` per lifetime owner: the engine owns the sink fan-out and the beds;
each bed owns its source tasks and its processing task. Every queue is bounded:

- a bed's frame queue: replayed files wait when it is full (nothing is lost); live sources drop
  the oldest frame and count it (``frames_dropped``), since a live device cannot be paused;
- a sink's event queue: in replay the engine waits for the sink; live, the oldest event is
  dropped and counted (``events_dropped``), so a slow sink never stalls the beds.

A bed that fails (a bug, or input nothing else caught) is reported with a ``status`` event and
a technical alarm and stops alone; the other beds go on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleepstream.engine.alerts.condition import new_condition, raise_condition
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.bed import BedState
from sleepstream.engine.clock import EngineClock
from sleepstream.engine.errors import SleepstreamError
from sleepstream.engine.protocols import (
    ChannelsAnnounced,
    DeferredProcessor,
    Driver,
    Event,
    Sink,
    SourceEvent,
)
from sleepstream.engine.types import AlertKind, Command, Frame, Priority

log = logging.getLogger(__name__)
# Commands come from operators' clients (MQTT acks): untrusted, so their lines go to the logger
# whose rate limit (one line per template a minute, process-wide) the MQTT drivers install.
untrusted_log = logging.getLogger("sleepstream.drivers.untrusted")


class _Signal:
    """Queue item without data: every source of the bed has ended, or deferred events wait."""


_END, _WAKE = _Signal(), _Signal()
BedItem = Frame | SourceEvent | Command | ChannelsAnnounced | _Signal


@dataclass(slots=True)
class SinkChannel:
    sink: Sink
    queue: asyncio.Queue[Any]
    dropped: int = 0
    failed: int = 0


class EventBus:
    """Fans events out to every sink through one bounded queue per sink."""

    def __init__(self, sinks: Sequence[Sink], *, size: int, lossless: bool) -> None:
        self.channels = [SinkChannel(s, asyncio.Queue(maxsize=size)) for s in sinks]
        self.lossless = lossless
        self.published = 0

    async def publish(self, event: Event) -> None:
        if not self.lossless:
            self.publish_nowait(event)
            return
        self.published += 1
        for ch in self.channels:
            await ch.queue.put(event)

    def publish_nowait(self, event: Event) -> None:
        """Publish from a callback that cannot wait: a full queue drops its oldest event and
        counts it (``dropped``), in replay as well as live."""
        self.published += 1
        for ch in self.channels:
            if ch.queue.full():
                ch.queue.get_nowait()
                ch.dropped += 1
            ch.queue.put_nowait(event)

    async def drain(self, ch: SinkChannel) -> None:
        """Feed one sink until the bus closes; the sink is closed however the task ends."""
        try:
            while True:
                event = await ch.queue.get()
                if event is _END:
                    break
                try:
                    await ch.sink.emit(event)
                except Exception as exc:
                    ch.failed += 1
                    if ch.failed in (1, 10, 100, 1000):  # a SinkError in one line, a bug in full
                        log.error("sink %s failed (%d failures): %s", type(ch.sink).__name__,
                                  ch.failed, exc, exc_info=not isinstance(exc, SleepstreamError))
        finally:
            await _close(ch.sink)

    async def close(self) -> None:
        for ch in self.channels:
            await ch.queue.put(_END)


async def _close(sink: Sink) -> None:
    try:
        await sink.aclose()
    except Exception as exc:
        log.error("closing sink %s failed: %s", type(sink).__name__, exc,
                  exc_info=not isinstance(exc, SleepstreamError))


@dataclass(slots=True)
class BedRuntime:
    """A bed as the pipeline runs it: its sources, its state, its counters."""

    state: BedState
    drivers: Sequence[Driver]
    site: str = "default"
    frames_in: int = 0
    frames_dropped: int = 0
    failed: str | None = None
    extra_status: dict[str, Any] = field(default_factory=dict)
    queue: asyncio.Queue[BedItem] | None = None  # everything the bed's task handles, in order
    deferred: collections.deque[Event] = field(default_factory=collections.deque)


@dataclass(slots=True)
class EngineSettings:
    frame_queue: int = 256
    event_queue: int = 4096
    live: bool = False
    live_grace_s: float = 2.0
    hop_s: float = 1.0


class Engine:
    """Runs beds until their sources end (replay) or until cancelled (live)."""

    def __init__(
        self,
        beds: Sequence[BedRuntime],
        sinks: Sequence[Sink],
        *,
        clock: EngineClock,
        settings: EngineSettings,
        on_progress: Callable[[BedRuntime, float], None] | None = None,
        start_events: Sequence[Event] = (),
        commands: Sequence[AsyncIterator[Command]] = (),
        resources: Sequence[contextlib.AbstractAsyncContextManager[Any]] = (),
    ) -> None:
        self.beds = list(beds)
        self.clock = clock
        self.settings = settings
        self.bus = EventBus(sinks, size=settings.event_queue, lossless=not settings.live)
        self.on_progress = on_progress
        self.start_events = list(start_events)
        self.commands = list(commands)
        self.commands_unroutable = 0
        self.resources = list(resources)  # entered for the run, before the beds (a scheduler)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for i, ch in enumerate(self.bus.channels):
                tg.create_task(self.bus.drain(ch), name=f"sink-{i}-{type(ch.sink).__name__}")
            for event in self.start_events:
                await self.bus.publish(event)
            routers = [tg.create_task(self._route(c), name=f"commands-{i}")
                       for i, c in enumerate(self.commands)]
            try:
                async with contextlib.AsyncExitStack() as stack:
                    for res in self.resources:
                        await stack.enter_async_context(res)
                    async with asyncio.TaskGroup() as beds:
                        for bed in self.beds:
                            beds.create_task(self._run_bed(bed), name=f"bed-{bed.state.bed}")
            finally:
                for task in routers:
                    task.cancel()
                await self.bus.close()

    async def _route(self, commands: AsyncIterator[Command]) -> None:
        """Deliver operator commands to their bed, in order with its frames."""
        by_id = {b.state.bed: b for b in self.beds}
        async for cmd in commands:
            bed = by_id.get(cmd.bed)
            if bed is None or bed.queue is None:
                self.commands_unroutable += 1
                untrusted_log.warning("command %s for unknown or stopped bed %r dropped",
                                      cmd.kind, cmd.bed)
                continue
            await bed.queue.put(cmd)

    async def _run_bed(self, bed: BedRuntime) -> None:
        try:
            await self._bed_tasks(bed)
        except Exception as exc:  # one bed's failure never stops the others
            while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            if isinstance(exc, SleepstreamError):  # what a device, file or config did: one line
                log.error("bed %s failed: %s", bed.state.bed, exc)
            else:  # a bug: the traceback is what a developer needs
                log.exception("bed %s failed", bed.state.bed)
            bed.failed = f"{type(exc).__name__}: {exc}"
            name = bed.state.bed
            cond = new_condition(name, "bed_failed", RuleConfig(0.0, 0.0, Priority.HIGH),
                                 message=f"monitoring of this bed stopped: {bed.failed}",
                                 kind=AlertKind.TECHNICAL)
            for alert in raise_condition(cond, self.clock.now(), alert_id=f"{name}/bed_failed"):
                await self.bus.publish(alert.to_event())

    async def _bed_tasks(self, bed: BedRuntime) -> None:
        queue: asyncio.Queue[BedItem] = asyncio.Queue(maxsize=self.settings.frame_queue)
        bed.queue = queue
        for p in bed.state.processors:
            if isinstance(p, DeferredProcessor):
                p.bind(lambda event: self._defer(bed, queue, event))
        async with asyncio.TaskGroup() as tg:
            remaining = len(bed.drivers)

            async def source(driver: Driver) -> None:
                nonlocal remaining
                try:
                    await self._pump(bed, driver, queue)
                finally:
                    remaining -= 1
                    if remaining == 0:
                        await queue.put(_END)

            for i, driver in enumerate(bed.drivers):
                tg.create_task(source(driver), name=f"bed-{bed.state.bed}-source-{i}")
            tg.create_task(self._process(bed, queue), name=f"bed-{bed.state.bed}-process")

    async def _pump(self, bed: BedRuntime, driver: Driver, queue: asyncio.Queue[BedItem]
                    ) -> None:
        async with driver:
            await queue.put(ChannelsAnnounced(driver.channels))
            async for item in driver.frames():
                if self.settings.live and queue.full():
                    dropped = queue.get_nowait()
                    if isinstance(dropped, Command):  # commands are never the ones dropped
                        queue.put_nowait(dropped)
                    elif dropped is not _WAKE:  # a wake-up loses nothing
                        bed.frames_dropped += 1
                await queue.put(item)

    @staticmethod
    def _defer(bed: BedRuntime, queue: asyncio.Queue[BedItem], event: Event) -> None:
        """A deferred event waits for the bed's task (never dropped); an idle task is woken
        (a busy one, with a full queue, takes it with its next item)."""
        bed.deferred.append(event)
        if not queue.full():
            queue.put_nowait(_WAKE)

    async def _process(self, bed: BedRuntime, queue: asyncio.Queue[BedItem]) -> None:
        state = bed.state
        timeout = self.settings.hop_s if self.settings.live else None
        while True:
            try:
                async with asyncio.timeout(timeout):
                    item = await queue.get()
            except TimeoutError:
                item = None
            if item is _END:
                break
            events: list[Event] = []
            while bed.deferred:
                events.append(bed.deferred.popleft())
            if isinstance(item, Frame):
                bed.frames_in += 1
                events.extend(state.push(item))
            elif isinstance(item, SourceEvent):
                events.extend(state.source_event(item))
            elif isinstance(item, Command):
                events.extend(state.command(item))
            elif isinstance(item, ChannelsAnnounced):
                state.add_channels(item.channels)
            if self.settings.live:
                events.extend(state.advance(self.clock.now(), self.settings.live_grace_s))
            for event in events:
                await self.bus.publish(event)
            if self.on_progress is not None and not math.isnan(state.t_done):
                self.on_progress(bed, state.t_done)
        for event in [*bed.deferred, *state.finish()]:
            await self.bus.publish(event)
        with contextlib.suppress(Exception):
            if self.on_progress is not None:
                self.on_progress(bed, state.t_done)
