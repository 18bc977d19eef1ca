"""``sleepstream replay PATH.edf``: a recorded night through the engine, live output on screen."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from sleepstream.drivers.edf import RecordingInfo
from sleepstream.drivers.edf_annotations import EdfAnnotationSink
from sleepstream.engine.app.compose import sink_failures
from sleepstream.engine.app.night_replay import prepare_replay
from sleepstream.engine.config import Config, ModelSection, load_config
from sleepstream.engine.pipeline import BedRuntime
from sleepstream.engine.sinks import ConsoleSink, TallySink, counts_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="EDF or EDF+ recording")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0,
                      help="replay speed as a multiple of real time (default 1)")
    pace.add_argument("--max-speed", action="store_true", help="replay as fast as possible")
    p.add_argument("--out", type=Path, help="also write every event to this JSONL file")
    p.add_argument("--edf-annotations", type=Path, metavar="OUT.edf",
                   help="also write stages, events and alarms as EDF+ annotations")
    p.add_argument("--config", type=Path, help="engine TOML (channel map, alerts, model)")
    p.add_argument("--no-model", action="store_true", help="run without sleep staging")
    p.add_argument("--quiet", action="store_true", help="no events on the console")
    p.add_argument("--alerts-only", action="store_true", help="console shows alerts only")
    p.add_argument("--bed", default="replay", help="bed id in events (default: replay)")


class Progress:
    """The replay's progress: a tqdm bar on stderr while that is a terminal (nothing otherwise).
    Console lines go through ``write``, which lifts the bar off its line first, so an event
    never shares a line with it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.bar: tqdm[Any] | None = None

    def start(self, recording: RecordingInfo) -> Progress:
        self.bar = tqdm(total=round(recording.duration), unit="s", desc="replay",
                        file=self.stream, disable=not self.stream.isatty(), dynamic_ncols=True)
        return self

    def __call__(self, bed: BedRuntime, t: float) -> None:
        if self.bar is not None and self.bar.total:
            self.bar.update(max(0, min(round(t), self.bar.total) - self.bar.n))

    def write(self, line: str) -> None:
        tqdm.write(line, file=sys.stdout)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def main(args: argparse.Namespace) -> int:
    base = load_config(args.config) if args.config else Config()
    if args.no_model:
        base = replace(base, model=ModelSection(checkpoint="none", backend=base.model.backend))
    tally = TallySink()
    progress = Progress()
    extra: list[Any] = [tally]
    if not args.quiet:
        extra.append(ConsoleSink(alerts_only=args.alerts_only, write=progress.write))
    if args.edf_annotations is not None:
        extra.append(EdfAnnotationSink(args.edf_annotations, like=args.path))
    night = prepare_replay(args.path, base, bed=args.bed,
                           speed=None if args.max_speed else args.speed, jsonl=args.out,
                           extra_sinks=extra, progress=progress.start)
    engine, beds, model, recording = night.engine, [night.bed], night.model, night.info
    print(f"sleepstream replay {args.path.name}: {recording.duration / 3600:.2f} h, "
          f"{len(recording.channels)} channels; {model.description}", file=sys.stderr)
    wall0 = time.perf_counter()
    try:
        asyncio.run(engine.run())
    finally:
        progress.close()
    wall = time.perf_counter() - wall0
    print_summary(recording.duration, wall, beds[0], tally, sys.stdout)
    failed = sink_failures(engine)
    for text in failed:  # the events were not all written: say so, and exit 1
        print(f"sleepstream replay: sink failed: {text}", file=sys.stderr)
    return 1 if beds[0].failed or failed else 0


def print_summary(
    duration: float, wall: float, bed: BedRuntime, tally: TallySink, out: TextIO
) -> None:
    w = out.write
    w("\n== replay summary ==\n")
    w(f"time replayed   {duration:.0f} s ({duration / 3600:.2f} h) in {wall:.2f} s wall, "
      f"speed-up {duration / max(wall, 1e-9):.0f}x real time\n")
    w(f"frames          {bed.frames_in} in, {bed.frames_dropped} dropped\n")
    w("channel                 rate   samples in  gap-filled  invalid  invalid by reason\n")
    for name, s in bed.state.summary().items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["invalid_by_reason"].items())) or "-"
        w(f"{name[:22]:<22} {s['fs']:>6g} {s['samples_in']:>12} {s['filled']:>11} "
          f"{s['invalid']:>8}  {reasons}\n")
    name = bed.state.bed
    tech = counts_text(tally.alarms(name, "technical"))
    phys = counts_text(tally.alarms(name, "physiological"))
    w(f"technical alarms      {tech}\n")
    w(f"physiological alarms  {phys}\n")
    w(f"scored events         {counts_text(tally.events(name))}\n")
    for label, kind, parts in (("stage events", "stage", tally.stages(name)),
                               ("apnea minutes", "apnea_minute", tally.minutes(name))):
        w(f"{label:<22}{tally.types.get(kind, 0)}"
          f"{': ' + counts_text(parts) if parts else ''}\n")
    others = {k: v for k, v in tally.types.items()
              if k not in ("alert", "event", "stage", "apnea_minute")}
    w(f"other events          {counts_text(Counter(others))}\n")
    if bed.failed:
        w(f"BED FAILED: {bed.failed}\n")
