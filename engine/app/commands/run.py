"""``sleepstream run --config engine.toml``: the engine on live sources with every sink.

Runs until SIGINT/SIGTERM (or ``--seconds``), then stops cleanly: sources are closed, sinks are
flushed and closed (the MQTT sink publishes its ``offline`` status), and a summary per bed is
printed (samples in, gaps filled, frames dropped, technical alarms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TextIO

from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.config import load_config
from sleepstream.engine.pipeline import BedRuntime
from sleepstream.engine.sinks import TallySink


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="engine TOML file")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")


async def run(config_path: Path, seconds: float | None) -> list[BedRuntime]:
    config = load_config(config_path)
    tally = TallySink()
    engine, beds, model = build_engine(config, live=True, extra_sinks=[tally])
    print(f"sleepstream run: {len(beds)} bed(s), {len(config.sinks)} sink(s); "
          f"{model.description}", file=sys.stderr)
    task = asyncio.create_task(engine.run(), name="engine")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        async with asyncio.timeout(seconds):
            await task
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    print_summary(beds, tally, sys.stdout)
    return beds


def print_summary(beds: list[BedRuntime], tally: TallySink, out: TextIO) -> None:
    out.write("\n== run summary ==\n")
    for bed in beds:
        out.write(f"bed {bed.state.bed}: {bed.frames_in} frames in, {bed.frames_dropped} "
                  f"dropped{', FAILED: ' + bed.failed if bed.failed else ''}\n")
        for name, s in bed.state.summary().items():
            out.write(f"  {name[:24]:<24} {s['fs']:>7g} Hz  {s['samples_in']:>10} in  "
                      f"{s['filled']:>8} gap-filled  {s['invalid']:>8} invalid\n")
        alarms = {k[1:]: v for k, v in tally.onsets.items() if k[0] == bed.state.bed}
        text = ", ".join(f"{code} ({kind}) x{n}" for (kind, code), n in sorted(alarms.items()))
        out.write(f"  alarms: {text or 'none'}\n")


def main(args: argparse.Namespace) -> int:
    beds = asyncio.run(run(args.config, args.seconds))
    return 1 if any(b.failed for b in beds) else 0
