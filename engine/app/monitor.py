"""What ``sleepstream run`` adds around the engine for integrators: the event store, the web
view, ``/metrics`` and health. Built in three steps around ``build_engine``:

1. ``prepare`` (before): opens the store (``[store] path``) and reads each bed's night so far,
   builds the view, the metrics and the web command source; their sinks and command sources go
   into ``build_engine``;
2. ``attach`` (after): the store publishes its technical alarm on the engine's bus; the shared
   inference backend is timed for the step-latency histogram;
3. ``serving`` (while the engine runs): the web server on ``listen`` (loopback by default).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sleepstream.engine.clock import EngineClock
from sleepstream.engine.config import Config
from sleepstream.engine.errors import SleepstreamError
from sleepstream.engine.pipeline import BedRuntime, Engine
from sleepstream.engine.protocols import Sink
from sleepstream.engine.types import Command
from sleepstream.store.history import count_line, read_night
from sleepstream.store.sqlite import SqliteStore


@dataclass(slots=True)
class MonitorParts:
    store: SqliteStore | None = None
    night: dict[str, Any] = field(default_factory=dict)
    view: Any | None = None  # web.view.ViewState
    metrics: Any | None = None  # web.metrics.EngineMetrics
    commands: Any | None = None  # web.view.WebCommands
    listen: str | None = None
    token: str | None = None
    sinks: list[Sink] = field(default_factory=list)
    command_sources: list[AsyncIterator[Command]] = field(default_factory=list)


def store_path(config: Config) -> Path | None:
    if config.store.path is None:
        return None
    path = Path(config.store.path)
    base = config.path.parent if config.path is not None else Path.cwd()
    return path if path.is_absolute() else base / path


def prepare(config: Config, clock: EngineClock, *, out: TextIO | None = None) -> MonitorParts:
    """Store, view, metrics and command source for ``config`` (``config.http.listen`` set:
    the web view is wanted)."""
    parts = MonitorParts(listen=config.http.listen, token=config.http.token)
    wall_origin = getattr(clock, "wall_origin", None)
    beds = [b.id for b in config.beds]
    if parts.listen is not None:
        _web().server.parse_listen(parts.listen)  # a bad address fails before anything starts
        parts.metrics = _web().metrics.EngineMetrics()
    path = store_path(config)
    if path is not None:
        on_write = parts.metrics.store_written if parts.metrics is not None else None
        parts.store = SqliteStore(path, beds=beds, clock=clock, wall_origin=wall_origin,
                                  batch_s=config.store.batch_s, on_write=on_write)
        run = parts.store.open(str(config.path) if config.path else None)
        since = (wall_origin or time.time()) - config.store.night_h * 3600.0
        parts.night = read_night(path, since_wall=since, current_run=run, beds=beds)
        if out is not None:
            print(f"store {path} (run {run}); night so far: {count_line(parts.night)}", file=out)
        parts.sinks.append(parts.store)
    if parts.listen is not None:
        web = _web()
        parts.view = web.view.ViewState([(b.id, b.site) for b in config.beds],
                                        wall_origin=wall_origin,
                                        run=parts.store.run if parts.store else None)
        parts.view.load_history(parts.night)
        parts.commands = web.view.WebCommands()
        parts.sinks += [web.view.ViewSink(parts.view), web.metrics.MetricsSink(parts.metrics)]
        parts.command_sources.append(parts.commands.commands())
    return parts


def attach(parts: MonitorParts, engine: Engine, shared: Any | None) -> None:
    """Wire what needs the built engine: the store's alarm, the backend step timer."""
    if parts.store is not None:
        parts.store.publish = engine.bus.publish_nowait
    if parts.metrics is not None and shared is not None:
        scheduler = getattr(shared, "scheduler", None)
        if scheduler is not None:
            scheduler.backend = _web().metrics.TimedBackend(
                scheduler.backend, parts.metrics.step_seconds.observe)


def live_info(beds: Sequence[BedRuntime], clock: EngineClock) -> dict[str, dict[str, Any]]:
    """Per bed: newest sample (engine and wall time), frames in, connected, failed."""
    wall_origin = getattr(clock, "wall_origin", None)
    now = clock.now()
    out = {}
    for bed in beds:
        ends = [c.end_time for c in bed.state.channels.values() if not math.isnan(c.t0)]
        last = max(ends) if ends else None
        out[bed.state.bed] = {
            "last_data_t": None if last is None else round(last, 3),
            "last_data_wall": None if last is None or wall_origin is None
            else round(wall_origin + last, 3),
            "connected": last is not None and now - last < 10.0,
            "frames_in": bed.frames_in, "frames_dropped": bed.frames_dropped,
            "failed": bed.failed,
        }
    return out


@contextlib.asynccontextmanager
async def serving(parts: MonitorParts, engine: Engine, beds: Sequence[BedRuntime],
                  task: Any) -> AsyncIterator[str | None]:
    """The web server while the block runs; yields its URL (None: no web view)."""
    if parts.listen is None or parts.metrics is None:
        yield None
        return
    web = _web()
    clock = engine.clock
    parts.metrics.registry.register(web.metrics.RuntimeCollector(
        beds, engine.bus, clock, store=parts.store, view=parts.view))

    def alive() -> tuple[bool, str]:
        if task.done():
            return False, "the engine has stopped"
        failed = [b.state.bed for b in beds if b.failed]
        return True, f"engine running, {len(beds) - len(failed)}/{len(beds)} beds monitored"

    def ready() -> tuple[bool, list[str]]:
        waiting = [f"bed {b.state.bed}: sources not open" for b in beds
                   if b.queue is None or not b.state.channels]
        if parts.store is not None and parts.store.stats.failing:
            waiting.append(f"store failing: {parts.store.stats.last_error}")
        if task.done():
            waiting.append("the engine has stopped")
        return not waiting, waiting

    ctx = web.app.WebContext(
        view=parts.view, metrics=parts.metrics, commands=parts.commands, clock=clock,
        live=lambda: live_info(beds, clock), alive=alive, ready=ready, token=parts.token)
    server = web.server.WebServer(web.app.create_app(ctx), parts.listen)
    async with server:
        yield server.url


@dataclass(frozen=True, slots=True)
class _WebModules:
    app: Any
    metrics: Any
    server: Any
    view: Any


def _web() -> _WebModules:
    """The web package, imported on demand (it needs the ``web`` extra)."""
    try:
        from sleepstream.web import app, metrics, server, view
    except ModuleNotFoundError as exc:
        raise SleepstreamError(
            f"the web view needs the web extra ({exc.name} is missing): "
            "pip install 'sleepstream[web]'") from exc
    return _WebModules(app, metrics, server, view)
