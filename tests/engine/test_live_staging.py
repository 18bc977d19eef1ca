"""Live engine with the shipped model: all beds step through one shared scheduler.

Beds are in-test oximeters on an engine clock running 10x faster than the wall clock, so two
30-s epochs pass in about six seconds. One bed's source stalls after 20 s of data.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
import pytest

from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.config import parse_config
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR
from sleepstream.engine.sinks import MemorySink
from sleepstream.engine.types import ChannelSpec, Frame

SPEED = 10.0
SPO2 = ChannelSpec("SpO2", 1.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)
HR = ChannelSpec("HR", 1.0, "hr", "bpm", 0.0, 250.0, 20.0, 250.0)

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "runtime.json").exists(), reason="the shipped model is not present"
)


@dataclass
class FastClock:
    origin: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return (time.monotonic() - self.origin) * SPEED


class Oximeter:
    """One SpO2 + HR sample per engine second; ``stall_after`` stops sending (a dead device)."""

    def __init__(self, clock: FastClock, seed: int, stall_after: int | None = None) -> None:
        self.clock, self.stall_after = clock, stall_after
        self.rng = np.random.default_rng(seed)

    @property
    def channels(self):
        return (SPO2, HR)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def frames(self):
        for i in range(70):
            if self.stall_after is not None and i >= self.stall_after:
                await asyncio.sleep(3600)
            await asyncio.sleep(max(0.0, (i - self.clock.now()) / SPEED))
            x = np.array([[96.0 + self.rng.normal(0, 0.5), 60.0 + self.rng.normal(0, 2)]],
                         np.float32)
            yield Frame(("SpO2", "HR"), np.array([float(i)]), x, np.ones((1, 2), bool), seq=i)


async def _run(n_beds: int):
    config = parse_config({
        "engine": {"live_grace_s": 2.0},
        # the token path's own confidences: sleepstream-v1 (v2 abstains without EEG)
        "model": {"checkpoint": str(DEFAULT_MODEL_DIR.parent / "sleepstream-v1")},
        "beds": [{"id": f"bed-{i}", "sources": [{"kind": "edf", "path": "-"}]}
                 for i in range(n_beds)],
    })
    clock = FastClock()
    sink = MemorySink()
    drivers = {f"bed-{i}": [Oximeter(clock, i, stall_after=20 if i == 0 else None)]
               for i in range(n_beds)}
    engine, _, model = build_engine(config, live=True, extra_sinks=[sink], clock=clock,
                                    drivers=drivers)
    assert model.shared is not None, model.description
    task = asyncio.create_task(engine.run())
    try:
        async with asyncio.timeout(180):  # a hang guard, not a speed limit
            while True:
                stages = [e for e in sink.events if e["type"] == "stage"]
                if all(sum(1 for e in stages if e["bed"] == f"bed-{i}") >= 2
                       for i in range(n_beds)):
                    break
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return sink.events, model.shared.scheduler.stats


def test_live_beds_share_one_scheduler_and_a_stalled_bed_stops_no_one():
    events, stats = asyncio.run(_run(6))
    stages = [e for e in events if e["type"] == "stage"]
    for i in range(1, 6):
        mine = sorted(e["epoch_start"] for e in stages if e["bed"] == f"bed-{i}")
        assert mine[:2] == [0, 30]  # one stage per epoch, in order, none repeated
        assert len(mine) == len(set(mine))
    # the stalled bed did not hold the others back; its own epochs go on from gap-filled
    # (invalid) samples, saying which modalities are missing and with lower confidence
    stalled = [e for e in stages if e["bed"] == "bed-0"]
    healthy = [e for e in stages if e["bed"] == "bed-1"]
    after = [e for e in stalled if e["epoch_start"] >= 30]
    assert after and set(after[0]["missing"]) == {"spo2", "hr"}
    assert after[0]["confidence"] < min(e["confidence"] for e in healthy)
    assert stats.calls > 0 and stats.batch_max > 1  # due steps of several beds in one call
