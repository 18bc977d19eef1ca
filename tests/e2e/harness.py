"""Runs the real engine (composition root, pipeline, sinks) on live sources for a test.

``Tap`` wraps a configured driver and keeps the counter channels' samples as they leave the
driver, so a test can account for every sample; ``Collect`` is a sink that keeps every event.
"""

from __future__ import annotations

import asyncio
import contextlib
import tomllib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.app.compose import build_engine, make_driver
from sleepstream.engine.config import Config, parse_config
from sleepstream.engine.pipeline import BedRuntime, Engine
from sleepstream.engine.protocols import Driver, Event, SourceEvent
from sleepstream.engine.types import ChannelSpec, Frame

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "engine.toml"
NAP = ROOT.parent / "shared" / "data" / "nap-eeg" / "nap-eeg.edf"


@dataclass
class CounterLog:
    seq: list[int] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    valid: list[np.ndarray] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.concatenate(self.values), np.concatenate(self.valid), np.concatenate(self.t))


class Tap:
    """A Driver passing everything through, noting counter channels and source events."""

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.counters: dict[str, CounterLog] = {}
        self.source_events: list[SourceEvent] = []

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        return self.inner.channels

    async def __aenter__(self) -> Tap:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.inner.__aexit__(*exc_info)

    async def frames(self) -> AsyncIterator[Frame | SourceEvent]:
        async for item in self.inner.frames():
            if isinstance(item, Frame):
                for c, name in enumerate(item.channels):
                    if name.startswith("counter-"):
                        log = self.counters.setdefault(name, CounterLog())
                        log.seq.append(item.seq)
                        log.values.append(item.data[:, c].copy())
                        log.valid.append(item.valid[:, c].copy())
                        log.t.append(item.timestamps.copy())
            else:
                self.source_events.append(item)
            yield item


class Collect:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    async def aclose(self) -> None:
        return None

    def technical(self, code: str, state: str = "active") -> list[Event]:
        """Technical alarms of ``code``, or source-fault alarms with ``code`` among their causes."""
        return [e for e in self.events if e.get("type") == "alert" and e.get("kind") == "technical"
                and code in (e.get("code"), *e.get("causes", ())) and e.get("state") == state]


def example_config(tmp_path: Path, *, port: int) -> tuple[Config, dict[str, str]]:
    """The shipped example with unique names, this broker, files in ``tmp_path``, no model."""
    raw: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
    tag = uuid.uuid4().hex[:8]
    names = {"site": f"site-{tag}", "psg_name": f"psg-{tag}", "psg_sid": f"psg-{tag}-sid",
             "events": f"events-{tag}"}
    raw["mqtt"]["port"] = port
    raw["mqtt"]["client_id"] = f"engine-{tag}"
    raw["model"]["checkpoint"] = "none"
    for bed in raw["beds"]:
        bed["site"] = names["site"]
        for src in bed["sources"]:
            if src["kind"] == "lsl":
                src["name"], src["source_id"] = names["psg_name"], names["psg_sid"]
    sinks = []
    for sink in raw["sinks"]:
        if sink["kind"] == "jsonl":
            sink["path"] = str(tmp_path / "events.jsonl")
        if sink["kind"] == "mqtt":
            sink["site"] = names["site"]
        if sink["kind"] == "lsl":
            sink["name"] = names["events"]
        if sink["kind"] != "console":
            sinks.append(sink)
    raw["sinks"] = sinks
    return parse_config(raw, path=tmp_path / "engine.toml"), names


@dataclass
class LiveRun:
    engine: Engine
    beds: dict[str, BedRuntime]
    taps: dict[str, Tap]
    collect: Collect


async def run_live(
    config: Config, body: Callable[[LiveRun], Awaitable[None]], *, settle_s: float = 1.0,
    beds: tuple[str, ...] | None = None,
) -> LiveRun:
    """Start the engine on the configured sources (tapped), run ``body``, stop the engine."""
    chosen = [b for b in config.beds if beds is None or b.id in beds]
    config = Config(config.engine, config.model, config.mqtt, tuple(chosen), config.sinks,
                    config.alerts, config.path)
    taps = {b.id: Tap(make_driver(b.sources[0], b, config, live=True)) for b in chosen}
    collect = Collect()
    engine, runtimes, _ = build_engine(config, live=True, extra_sinks=[collect],
                                       drivers={k: [v] for k, v in taps.items()})
    run = LiveRun(engine, {r.state.bed: r for r in runtimes}, taps, collect)
    task = asyncio.create_task(engine.run(), name="engine")
    try:
        await body(run)
        await asyncio.sleep(settle_s)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        for ch in engine.bus.channels:
            with contextlib.suppress(Exception):
                await ch.sink.aclose()
    return run


async def wait_subscribed(tap: Tap, timeout_s: float = 10.0) -> None:
    connected = getattr(tap.inner, "connected", None)
    if connected is not None:
        async with asyncio.timeout(timeout_s):
            await connected.wait()
