"""``sleepstream bench replay``: speed-up of replaying 1-h and 8-h nights at max speed.

The nights are made from a real 2-channel oximetry recording (SpO2 + HR, 1 Hz) when the shared
recordings are present, tiled to length, or from a generated 2-channel signal otherwise. Each
night runs twice in the same process: through a no-op consumer of the source's frames (the
baseline: reading and framing only) and through the full streaming path (ring buffers, quality,
resampling, alert and stage processors as configured). Printed: speed-up (x real time), cost per
1-s hop, the engine/baseline ratio, and the 8-h/1-h cost-per-hop ratio (1.0 = linear growth).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.drivers.edf import EdfSource, Recording, Signal, read_recording
from sleepstream.engine.app.compose import build_engine, replay_config
from sleepstream.engine.config import Config, ModelSection
from sleepstream.engine.report import print_figures
from sleepstream.engine.sinks import TallySink
from sleepstream.engine.types import ChannelSpec, Frame

GOAL_SPEEDUP_8H = 2000.0
DEFAULT_NIGHT = Path(__file__).resolve().parents[2].parent / "shared/data/oximetry-hugcdn/D2.edf"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", type=Path, default=None,
                   help="recording to tile into the test nights (default: a shared oximetry night)")
    p.add_argument("--hours", type=float, nargs="+", default=[1.0, 8.0])
    p.add_argument("--repeat", type=int, default=3, help="runs per case; the best is reported")
    p.add_argument("--no-model", action="store_true", help="streaming path without staging")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _source_recording(path: Path | None) -> Recording:
    path = path or DEFAULT_NIGHT
    if path.exists():
        return read_recording(path)
    rng = np.random.default_rng(0)
    n = 3600
    spo2 = (95 + np.cumsum(rng.normal(0, 0.05, n))).clip(80, 100).astype(np.float32)
    hr = (60 + 5 * np.sin(np.arange(n) / 300)).astype(np.float32)
    ones = np.ones(n, bool)
    sigs = (
        Signal("SpO2", ChannelSpec("SpO2", 1.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5), spo2, ones),
        Signal("HR", ChannelSpec("HR", 1.0, "hr", "bpm", 0.0, 250.0, 20.0, 250.0), hr, ones),
    )
    return Recording(Path("generated"), None, float(n), sigs, (), False)


def tile(rec: Recording, hours: float) -> Recording:
    """The recording repeated (or cut) to ``hours``, every signal at its own rate."""
    duration = hours * 3600.0
    sigs = []
    for s in rec.signals:
        n = round(duration * s.spec.fs)
        reps = int(np.ceil(n / s.data.shape[0]))
        sigs.append(replace(s, data=np.tile(s.data, reps)[:n], valid=np.tile(s.valid, reps)[:n]))
    return replace(rec, duration=duration, signals=tuple(sigs), annotations=())


async def _baseline(rec: Recording) -> int:
    n = 0
    source = EdfSource(rec.path, speed=None, chunk_s=30.0, recording=rec)
    async with source:
        async for item in source.frames():
            if isinstance(item, Frame):
                n += len(item)
    return n


def _engine_run(rec: Recording, no_model: bool) -> tuple[float, int, str]:
    base = Config()
    if no_model:
        base = replace(base, model=ModelSection(checkpoint="none"))
    config = replay_config(rec.path, base=base)
    source = EdfSource(rec.path, speed=None, chunk_s=30.0, recording=rec)
    sink = TallySink()
    engine, beds, model = build_engine(config, live=False, extra_sinks=[sink],
                                       drivers={"replay": [source]})
    t0 = time.perf_counter()
    asyncio.run(engine.run())
    wall = time.perf_counter() - t0
    if beds[0].failed:
        raise RuntimeError(f"bench night failed: {beds[0].failed}")
    return wall, sum(sink.types.values()), model.description


def _best(fn: Any, repeat: int) -> Any:
    results = [fn() for _ in range(repeat)]
    return min(results, key=lambda r: r[0])


def main(args: argparse.Namespace) -> int:
    src = _source_recording(args.path)
    chans = ", ".join(f"{s.label} {s.spec.fs:g} Hz" for s in src.signals)
    print(f"bench replay: nights tiled from {src.path.name} ({chans})")
    figures: dict[str, Any] = {"channels": len(src.signals)}
    per_hop: dict[float, float] = {}
    for hours in args.hours:
        rec = tile(src, hours)
        base_wall, _ = _best(lambda r=rec: _timed(lambda: asyncio.run(_baseline(r))), args.repeat)
        wall, events, desc = _best(lambda r=rec: _engine_run(r, args.no_model), args.repeat)
        hops = rec.duration
        per_hop[hours] = wall / hops
        speedup = rec.duration / wall
        key = f"{hours:g}h"
        figures[f"speedup_{key}"] = speedup
        figures[f"us_per_hop_{key}"] = per_hop[hours] * 1e6
        figures[f"ratio_to_baseline_{key}"] = wall / base_wall
        us = per_hop[hours] * 1e6
        print(f"{hours:>4g} h night: {speedup:9.0f}x real time  {us:7.1f} us/hop  "
              f"engine {wall:.3f} s vs baseline (read+frame) {base_wall:.3f} s "
              f"= {wall / base_wall:.1f}x  ({events} events)")
    print(f"model: {desc}")
    if len(per_hop) >= 2:
        lo, hi = min(per_hop), max(per_hop)
        figures["ratio"] = per_hop[hi] / per_hop[lo]
        print(f"cost per hop {hi:g} h / {lo:g} h = {figures['ratio']:.2f} (1.00 = linear growth)")
    if 8.0 in per_hop:
        figures["speedup"] = figures["speedup_8h"]
        figures["goal_speedup"] = GOAL_SPEEDUP_8H
    print_figures(figures, as_json=args.json)
    return 0


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out
