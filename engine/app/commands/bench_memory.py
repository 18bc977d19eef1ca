"""``sleepstream bench memory``: peak memory of replaying a long EDF night, against loading it.

A 14-channel night (the synthetic PSG's layout: 2 EEG, EOG, EMG at 100 Hz, ECG at 200 Hz,
pleth, airflow, thorax, abdomen, 3 accelerometer axes at 25 Hz, SpO2 and HR at 1 Hz; EDF+C
with a stage annotation every 30 s) is written to a temporary folder, ``--hours`` long. Each
case runs in a fresh child process, which reports its peak resident memory (``VmHWM``) and its
resident memory (``VmRSS``) after each replayed hour:

- ``source``: ``EdfSource`` alone, every frame drained as fast as it comes;
- ``replay``: the whole replay path (``sleepstream replay --max-speed``: ring buffers, quality,
  resampling, alerts; staging with ``--model``);
- ``load`` (the baseline): ``read_recording``, the night loaded whole into arrays.

Figures: peak RSS per case in MB, ``*_growth_mb`` = RSS after the last hour minus RSS after the
first (flat memory reads near 0), and ``ratio`` = replay peak / load peak.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.report import print_figures

GOAL_PEAK_MB = 400.0
# label, samples per 1-s record, unit, physical range
LAYOUT: tuple[tuple[str, int, str, float], ...] = (
    ("EEG Fpz-Cz", 100, "uV", 500.0), ("EEG Pz-Oz", 100, "uV", 500.0),
    ("EOG horizontal", 100, "uV", 1000.0), ("EMG chin", 100, "uV", 300.0),
    ("ECG", 200, "mV", 5.0), ("Pleth", 25, "a.u.", 4.0), ("HR", 1, "bpm", 250.0),
    ("Resp airflow", 25, "L/s", 3.0), ("Resp thorax", 25, "mL", 2000.0),
    ("Resp abdomen", 25, "mL", 2000.0), ("SpO2", 1, "%", 100.0),
    ("Acc X", 25, "g", 4.0), ("Acc Y", 25, "g", 4.0), ("Acc Z", 25, "g", 4.0),
)
TAL_SAMPLES = 32  # 64 bytes: the timekeeping TAL and one stage annotation


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hours", type=float, default=24.0, help="night length (default 24)")
    p.add_argument("--model", action="store_true", help="replay with the default model")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _field(value: object, width: int) -> bytes:
    return str(value).encode("ascii").ljust(width)[:width]


def write_night(path: Path, hours: float, seed: int = 0) -> Path:
    """Write a ``hours``-long 14-channel EDF+C night hour by hour (never whole in memory)."""
    seconds = round(hours * 3600)
    labels = [x[0] for x in LAYOUT] + ["EDF Annotations"]
    samples = [x[1] for x in LAYOUT] + [TAL_SAMPLES]
    ns = len(labels)
    cols: list[tuple[int, list[str]]] = [  # (width, one value per signal)
        (16, labels), (80, [""] * ns), (8, [x[2] for x in LAYOUT] + [""]),
        (8, [f"{-x[3]:g}" for x in LAYOUT] + ["-1"]), (8, [f"{x[3]:g}" for x in LAYOUT] + ["1"]),
        (8, ["-32768"] * ns), (8, ["32767"] * ns), (80, [""] * ns), (8, [str(n) for n in samples]),
        (32, [""] * ns),
    ]
    head = (_field(0, 8) + _field("X X X X", 80) + _field("Startdate 01-JAN-2020 X X X", 80)
            + _field("01.01.20", 8) + _field("22.00.00", 8) + _field(256 * (ns + 1), 8)
            + _field("EDF+C", 44) + _field(seconds, 8) + _field(1, 8) + _field(ns, 4))
    head += b"".join(_field(v, w) for w, values in cols for v in values)
    offsets = np.cumsum([0, *samples])
    rng = np.random.default_rng(seed)
    hour = np.zeros((3600, int(offsets[-1])), dtype="<i2")
    for i, n in enumerate(samples[:-1]):
        t = np.arange(3600 * n) / n
        x = 8000 * np.sin(2 * np.pi * 0.3 * t) + rng.normal(0, 2000, t.size)
        hour[:, offsets[i] : offsets[i + 1]] = x.reshape(3600, n).astype("<i2")
    with path.open("wb") as fh:
        fh.write(head)
        for h0 in range(0, seconds, 3600):
            block = hour[: min(3600, seconds - h0)].copy()
            tal = block[:, offsets[-2] :].view(np.uint8)
            for r in range(block.shape[0]):
                k = h0 + r
                text = f"+{k}\x14\x14\x00"
                if k % 30 == 0:
                    text += f"+{k}\x1530\x14Sleep stage {'W123R'[k // 30 % 5]}\x14\x00"
                raw = text.encode("ascii")
                tal[r, : len(raw)] = np.frombuffer(raw, np.uint8)
            fh.write(block.tobytes())
    return path


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


async def _drain_source(path: Path, hourly: list[float]) -> None:
    from sleepstream.drivers.edf import EdfSource
    from sleepstream.engine.types import Frame

    async with EdfSource(path, speed=None, chunk_s=30.0) as src:
        async for frame in src.frames():
            if isinstance(frame, Frame) and frame.timestamps[-1] + 1 >= 3600 * (len(hourly) + 1):
                hourly.append(_rss_mb("VmRSS"))


def _replay(path: Path, model: bool, hourly: list[float]) -> None:
    from sleepstream.engine.app.night_replay import prepare_replay
    from sleepstream.engine.config import Config, ModelSection

    base = Config() if model else Config(model=ModelSection(checkpoint="none"))

    def progress(_info: Any) -> Any:
        def hear(_bed: Any, t: float) -> None:
            if t >= 3600 * (len(hourly) + 1):
                hourly.append(_rss_mb("VmRSS"))
        return hear

    night = prepare_replay(path, base, progress=progress)
    asyncio.run(night.engine.run())


def measure(case: str, path: Path, model: bool = False) -> dict[str, Any]:
    """In this process: run one case and report its peak and hourly resident memory (MB)."""
    hourly: list[float] = []
    if case == "source":
        asyncio.run(_drain_source(path, hourly))
    elif case == "replay":
        _replay(path, model, hourly)
    else:
        from sleepstream.drivers.edf import read_recording

        rec = read_recording(path)
        hourly.append(_rss_mb("VmRSS"))
        del rec
    return {"peak_mb": _rss_mb("VmHWM"), "hourly_mb": hourly}


def _child(case: str, path: str, model: bool, out: Any) -> None:
    out.put(measure(case, Path(path), model))


def in_child(case: str, path: Path, model: bool = False) -> dict[str, Any]:
    """``measure`` in a fresh process, so each case's peak is its own."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(case, str(path), model, out))
    proc.start()
    try:
        result: dict[str, Any] = out.get(timeout=3600)
    finally:
        proc.join(60)
    if proc.exitcode != 0:
        raise RuntimeError(f"bench memory: the {case} case exited with {proc.exitcode}")
    return result


def main(args: argparse.Namespace) -> int:
    figures: dict[str, Any] = {"hours": args.hours, "channels": len(LAYOUT),
                               "goal_peak_rss_mb": GOAL_PEAK_MB}
    with tempfile.TemporaryDirectory(prefix="sleepstream-bench-memory-") as folder:
        path = write_night(Path(folder) / "night.edf", args.hours)
        figures["file_mb"] = path.stat().st_size / 2**20
        for case in ("source", "replay", "load"):
            r = in_child(case, path, args.model and case == "replay")
            figures[f"{case}_peak_rss_mb"] = r["peak_mb"]
            hourly = r["hourly_mb"]
            if case != "load" and hourly:
                figures[f"{case}_rss_first_hour_mb"] = hourly[0]
                figures[f"{case}_growth_mb"] = hourly[-1] - hourly[0]
    figures["ratio"] = figures["replay_peak_rss_mb"] / figures["load_peak_rss_mb"]
    if not args.json:
        print(f"{args.hours:g}-h {len(LAYOUT)}-channel EDF+ night, {figures['file_mb']:.0f} MB")
        for case in ("source", "replay", "load"):
            growth = figures.get(f"{case}_growth_mb")
            print(f"{case:<7} peak RSS {figures[f'{case}_peak_rss_mb']:8.1f} MB"
                  + ("" if growth is None else f"   last hour - first hour {growth:+.1f} MB"))
        print(f"replay / load peak {figures['ratio']:.3f} (goal: replay peak <= "
              f"{GOAL_PEAK_MB:g} MB)")
    print_figures(figures, as_json=args.json)
    return 0
