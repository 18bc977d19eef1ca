"""``sleepstream bench replay``: speed-up of replaying 1-h and 8-h nights at max speed.

The default night is a synthetic polysomnography night (``simulators.synthetic``: EEG, EOG,
EMG, ECG, pleth, airflow and effort, SpO2, HR, accelerometer, 8 h, written as EDF+ and read
back), so every path of the shipped model runs: the EEG spectral stager and the token
transformer over all modalities. Shorter nights are its first hours. ``--path`` tiles a
recording (e.g. a real oximetry night) to each length instead.

Each night runs ``--repeat`` times, the cases alternating within each round so that load
drifts hit all alike: a no-op consumer of the source's frames (the baseline: reading and
framing only), the streaming path without the model (ring buffers, quality, resampling,
alerts) and with it (plus staging, on a worker thread beside the rest of the bed, as
``sleepstream replay`` runs a file at full speed: ``replay_offload``). With ``--vs yasa``
each round also times YASA's offline staging of the longest night's EEG/EOG/EMG. Printed,
as medians: speed-up (x real time), cost per 1-s hop, the engine/baseline ratio, the
longest/shortest cost-per-hop ratio (1.0 = linear growth), the model's share, and the
engine/YASA wall ratio (below 1 = the whole replay is faster than YASA's staging alone). CPU
seconds (all threads) are printed beside the walls: on a shared, loaded machine the wall grows
with the load, the CPU time much less.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.drivers.edf import EdfSource, Recording, read_recording
from sleepstream.engine.app.commands.bench_yasa import stage_with_yasa, warm_up
from sleepstream.engine.app.compose import build_engine, replay_config
from sleepstream.engine.app.replay_offload import offload_staging, staging_of
from sleepstream.engine.config import Config, ModelSection
from sleepstream.engine.protocols import Event
from sleepstream.engine.report import print_figures
from sleepstream.engine.types import Frame

GOAL_SPEEDUP_8H = 2000.0
GOAL_GROWTH = 1.1  # cost per hop, longest night / shortest
GOAL_VS_YASA = 1.0  # engine wall / YASA wall
PROFILE, SEED = "healthy", 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--path", type=Path, default=None,
                   help="recording to tile into the test nights (default: a synthetic PSG night)")
    p.add_argument("--hours", type=float, nargs="+", default=[1.0, 8.0])
    p.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    p.add_argument("--no-model", action="store_true", help="skip the runs with the model")
    p.add_argument("--vs", choices=["yasa"], default=None,
                   help="also time a peer's offline staging of the longest night")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def synthetic_recording(hours: float, folder: Path) -> Recording:
    """A synthetic PSG night of ``hours``, written as EDF+ into ``folder`` and read back."""
    from sleepstream.simulators.synthetic.night import simulate_night, write_night
    from sleepstream.simulators.synthetic.profiles import get_profile

    path = folder / f"{PROFILE}-{SEED}.edf"
    write_night(simulate_night(get_profile(PROFILE), hours, SEED), path)
    return read_recording(path)


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


@dataclass(slots=True)
class StageTally:
    """A sink counting stage events by the modalities and class set they were staged from."""

    stages: int = 0
    by_path: Counter[str] = field(default_factory=Counter)

    async def emit(self, event: Event) -> None:
        if event.get("type") != "stage":
            return
        self.stages += 1
        mods = event.get("modalities") or []
        path = "eeg" if "eeg" in mods else ("tokens" if mods else "abstain")
        self.by_path[path] += 1

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class EngineRun:
    wall_s: float
    cpu_s: float  # CPU time of the process (all threads) over the same span
    model: str
    steps: int  # token-transformer steps (seconds through the model)
    stages: int
    by_path: dict[str, int]


def engine_run(rec: Recording, with_model: bool) -> EngineRun:
    """One replay of ``rec`` through the whole engine, timed from the first frame to the end."""
    base = Config()
    if not with_model:
        base = replace(base, model=ModelSection(checkpoint="none"))
    config = replay_config(rec.path, base=base)
    source = EdfSource(rec.path, speed=None, chunk_s=30.0, recording=rec)
    tally = StageTally()
    engine, beds, model = build_engine(config, live=False, extra_sinks=[tally],
                                       drivers={"replay": [source]})
    offload_staging(beds[0])  # as ``sleepstream replay`` runs a file at full speed
    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(engine.run())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if beds[0].failed:
        raise RuntimeError(f"bench night failed: {beds[0].failed}")
    staging = staging_of(beds[0])
    steps = staging.steps_total if staging is not None else 0
    return EngineRun(wall, cpu, model.description, steps, tally.stages,
                     dict(tally.by_path))


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _night_figures(rec: Recording, hours: float, repeat: int, with_model: bool) -> dict[str, Any]:
    """Medians over ``repeat`` alternating rounds of baseline, no-model and model runs."""
    base, bare, full = [], [], []
    runs: list[EngineRun] = []
    cpu, bare_cpu = [], []
    for _ in range(repeat):
        base.append(_timed(lambda: asyncio.run(_baseline(rec))))
        plain = engine_run(rec, with_model=False)
        bare.append(plain.wall_s)
        bare_cpu.append(plain.cpu_s)
        if with_model:
            runs.append(engine_run(rec, with_model=True))
            full.append(runs[-1].wall_s)
            cpu.append(runs[-1].cpu_s)
    key, hops = f"{hours:g}h", rec.duration
    med_base, med_bare = statistics.median(base), statistics.median(bare)
    fig: dict[str, Any] = {
        f"baseline_s_{key}": med_base,
        f"speedup_nomodel_{key}": hops / med_bare,
        f"us_per_hop_nomodel_{key}": med_bare / hops * 1e6,
        f"cpu_s_nomodel_{key}": statistics.median(bare_cpu),
    }
    med = med_bare
    if with_model:
        med = statistics.median(full)
        last = runs[-1]
        fig.update({
            f"speedup_{key}": hops / med,
            f"us_per_hop_{key}": med / hops * 1e6,
            f"model_share_{key}": max(0.0, 1.0 - med_bare / med),
            f"cpu_s_{key}": statistics.median(cpu),
            f"speedup_cpu_{key}": hops / statistics.median(cpu),
            f"model_steps_{key}": last.steps,
            f"stages_{key}": last.stages,
            f"stages_by_path_{key}": last.by_path,
            "model": last.model,
        })
    fig[f"engine_s_{key}"] = med
    fig[f"ratio_to_baseline_{key}"] = med / med_base
    fig[f"runs_s_{key}"] = full or bare
    return fig


def _print_night(hours: float, fig: dict[str, Any]) -> None:
    key = f"{hours:g}h"
    line = (f"{hours:>4g} h night: no model {fig[f'speedup_nomodel_{key}']:7.0f}x "
            f"({fig[f'us_per_hop_nomodel_{key}']:6.1f} us/hop, CPU "
            f"{fig[f'cpu_s_nomodel_{key}']:.2f} s)")
    if f"speedup_{key}" in fig:
        line += (f"  with model {fig[f'speedup_{key}']:7.0f}x ({fig[f'us_per_hop_{key}']:6.1f}"
                 f" us/hop, CPU {fig[f'cpu_s_{key}']:.2f} s, {fig[f'model_steps_{key}']} steps,"
                 " stages by path "
                 f"{fig[f'stages_by_path_{key}']})")
    line += (f"  engine {fig[f'engine_s_{key}']:.3f} s vs baseline (read+frame) "
             f"{fig[f'baseline_s_{key}']:.3f} s")
    print(line)


def _peer(rec: Recording, repeat: int, engine_s: float) -> dict[str, Any]:
    warm_up(rec)
    c0 = time.process_time()
    walls = [stage_with_yasa(rec).wall_s for _ in range(repeat)]
    yasa_cpu = (time.process_time() - c0) / repeat
    yasa_s = statistics.median(walls)
    print(f"yasa: staged the {rec.duration / 3600:g} h night's EEG/EOG/EMG in {yasa_s:.3f} s "
          f"(median of {repeat}); sleepstream's whole replay / yasa = {engine_s / yasa_s:.2f}")
    return {"yasa_s": yasa_s, "yasa_runs_s": walls, "vs_yasa": engine_s / yasa_s,
            "yasa_cpu_s_mean": yasa_cpu,
            "goal_vs_yasa": GOAL_VS_YASA}


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        hours = sorted(args.hours)
        src = (read_recording(args.path) if args.path is not None
               else synthetic_recording(hours[-1], Path(tmp)))
        chans = ", ".join(f"{s.label} {s.spec.fs:g} Hz" for s in src.signals)
        print(f"bench replay: nights from {src.path.name} ({chans})")
        figures: dict[str, Any] = {"channels": len(src.signals), "repeat": args.repeat}
        per_hop: dict[float, float] = {}
        for h in hours:
            rec = tile(src, h)
            fig = _night_figures(rec, h, args.repeat, not args.no_model)
            figures.update(fig)
            per_hop[h] = fig[f"engine_s_{h:g}h"] / rec.duration
            _print_night(h, fig)
        if "model" in figures:
            print(f"model: {figures['model']}")
        if len(per_hop) >= 2:
            lo, hi = hours[0], hours[-1]
            figures["ratio"] = per_hop[hi] / per_hop[lo]
            figures["goal_ratio"] = GOAL_GROWTH
            if f"cpu_s_{hi:g}h" in figures:  # the same ratio in CPU seconds (less load-bound)
                cpu = {h: figures[f"cpu_s_{h:g}h"] / (h * 3600) for h in (lo, hi)}
                figures["ratio_cpu"] = cpu[hi] / cpu[lo]
            print(f"cost per hop {hi:g} h / {lo:g} h = {figures['ratio']:.2f} "
                  f"(CPU {figures.get('ratio_cpu', float('nan')):.2f}; 1.00 = linear growth)")
        top = f"{hours[-1]:g}h"
        if f"speedup_{top}" in figures:
            figures["speedup"] = figures[f"speedup_{top}"]
            figures["goal_speedup"] = GOAL_SPEEDUP_8H
        if args.vs == "yasa":
            figures.update(_peer(tile(src, hours[-1]), args.repeat, figures[f"engine_s_{top}"]))
    print_figures(figures, as_json=args.json)
    return 0
