"""A live engine with the event store and the web view, as ``sleepstream run --http`` builds it
(``engine.app.monitor``), fed by the MQTT device simulator replaying a slice of the shipped
oximetry night on a real Mosquitto."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from sleepstream.drivers.edf import Recording, read_recording
from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.engine.app import monitor
from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.clock import MonotonicClock
from sleepstream.engine.config import parse_config
from sleepstream.engine.pipeline import BedRuntime, Engine
from sleepstream.engine.sinks import MemorySink
from sleepstream.simulators.replay import replay_to_mqtt

ROOT = Path(__file__).resolve().parents[2]
NIGHT = ROOT / "simulators" / "recordings" / "hugcdn-D2.edf"
START_S, LENGTH_S, SPEED = 8400, 600, 30.0  # hypoxemia (SpO2 < 90 %) from 8504 s
TOKEN = "test-token-" + uuid.uuid4().hex[:8]
BED = "bed-1"


def night_slice() -> Recording:
    rec = read_recording(NIGHT)
    a, b = START_S, START_S + LENGTH_S
    signals = tuple(replace(s, data=s.data[a:b], valid=s.valid[a:b]) for s in rec.signals)
    return replace(rec, duration=float(LENGTH_S), signals=signals, annotations=())


@dataclass
class Station:
    url: str
    engine: Engine
    beds: list[BedRuntime]
    parts: monitor.MonitorParts
    events: MemorySink
    simulator: asyncio.Task[object]


def config(tmp_path: Path, broker, site: str):
    return parse_config({
        "engine": {"live_grace_s": 0.5},
        "mqtt": {"host": broker.host, "port": broker.port},
        "store": {"path": str(tmp_path / "night.sqlite"), "batch_s": 0.2, "trend_s": 30.0},
        "http": {"listen": "127.0.0.1:0", "token": TOKEN},
        "alerts": {"hypoxemia90": {"delay_s": 10.0}},
        "beds": [{"id": BED, "site": site, "sources": [{"kind": "mqtt", "timeout_s": 3.0,
                  "channels": [{"name": "SpO2", "fs": 1.0, "unit": "%"},
                               {"name": "HR", "fs": 1.0, "unit": "bpm"},
                               {"name": "counter-1Hz", "fs": 1.0, "unit": "count",
                                "modality": "none"}]}]}],
    }, path=tmp_path / "engine.toml")


@contextlib.asynccontextmanager
async def station(tmp_path: Path, broker) -> AsyncIterator[Station]:
    site = f"site-{uuid.uuid4().hex[:8]}"
    cfg = config(tmp_path, broker, site)
    clock = MonotonicClock()
    events = MemorySink()
    parts = monitor.prepare(cfg, clock)
    engine, beds, model = build_engine(cfg, live=True, extra_sinks=[events, *parts.sinks],
                                       clock=clock, extra_commands=parts.command_sources)
    monitor.attach(parts, engine, model.shared)
    task = asyncio.create_task(engine.run(), name="engine")
    sim: asyncio.Task[object] | None = None
    try:
        async with monitor.serving(parts, engine, beds, task) as url:
            assert url is not None
            await wait_until(lambda: beds[0].queue is not None, 10)
            await asyncio.sleep(0.5)  # the source subscribes
            sim = asyncio.create_task(replay_to_mqtt(
                night_slice(), broker=BrokerSettings(broker.host, broker.port), site=site,
                bed=BED, speed=SPEED), name="simulator")
            yield Station(url, engine, beds, parts, events, sim)
    finally:
        if sim is not None:
            sim.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sim
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_until(predicate, timeout_s: float, every_s: float = 0.05):
    async with asyncio.timeout(timeout_s):
        while not (value := predicate()):
            await asyncio.sleep(every_s)
    return value


def get(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    return _request(urllib.request.Request(url), token)


def post(url: str, body: bytes, token: str | None = TOKEN) -> tuple[int, str]:
    return _request(urllib.request.Request(url, data=body, method="POST",
                                           headers={"Content-Type": "application/json"}), token)


def _request(req: urllib.request.Request, token: str | None) -> tuple[int, str]:
    """Status and body of one request (with the bearer token when given), errors included."""
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
