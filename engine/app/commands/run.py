"""``sleepstream run --config engine.toml``: the engine on live sources with every sink.

Runs until SIGINT/SIGTERM (or ``--seconds``), or until every bed has stopped, then stops
cleanly: sources are closed, sinks are flushed and closed (the MQTT sink publishes its
``offline`` status), and a summary per bed is printed (samples in, gaps filled, frames dropped,
technical alarms). Exit status: 0; 2 when a bed stopped because of what its device, file or the
configuration did (the broker refused the credentials, a file is unreadable: one line each on
stderr); 1 when a bed failed by a bug or a sink could not write (a technical alarm was raised).

With ``[store] path`` every event is kept in SQLite and each bed's night so far is read back at
start; ``--http HOST:PORT`` (or ``[http] listen``) serves the web view, ``/metrics``, ``/healthz``
and ``/readyz`` (``engine.app.monitor``), token-protected with ``--http-token``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from sleepstream.engine.app import monitor
from sleepstream.engine.app.compose import build_engine, sink_failures
from sleepstream.engine.clock import MonotonicClock
from sleepstream.engine.config import Config, load_config
from sleepstream.engine.errors import SleepstreamError, known_failure
from sleepstream.engine.pipeline import BedRuntime
from sleepstream.engine.sinks import TallySink, counts_text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="engine TOML file")
    p.add_argument("--seconds", type=_seconds, help="stop after this many seconds (> 0)")
    p.add_argument("--http", metavar="HOST:PORT", default=None,
                   help="serve the web view, /metrics and health here (e.g. 127.0.0.1:8080)")
    p.add_argument("--http-token", metavar="TOKEN", default=None,
                   help="require this bearer token on every web request")
    p.add_argument("--store", metavar="FILE", default=None,
                   help="SQLite event store (overrides [store] path)")
    p.add_argument("--cluster", metavar="ADDRESS", default=None,
                   help="shard the beds over the Ray cluster here ('local': start one); "
                        "overrides [cluster] address; needs the 'cluster' extra")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0:  # NaN too: it would end the run at once, silently
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


async def run(config_path: Path, seconds: float | None, *, http: str | None = None,
              token: str | None = None, store: str | None = None
              ) -> tuple[list[BedRuntime], list[str]]:
    """Run until stopped; the beds as they ended and what each sink that failed said."""
    config = with_overrides(load_config(config_path), http=http, token=token, store=store)
    tally = TallySink()
    clock = MonotonicClock()
    parts = monitor.prepare(config, clock, out=sys.stderr)
    engine, beds, model = build_engine(config, live=True, extra_sinks=[tally, *parts.sinks],
                                       clock=clock, extra_commands=parts.command_sources)
    monitor.attach(parts, engine, model.shared)
    task = asyncio.create_task(engine.run(), name="engine")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    print(f"sleepstream run: {len(beds)} bed(s), {len(config.sinks)} sink(s); "  # stoppable now
          f"{model.description}", file=sys.stderr)
    async with monitor.serving(parts, engine, beds, task) as url:
        if url is not None:
            print(f"web view on {url}/" + (" (bearer token required)" if parts.token else ""),
                  file=sys.stderr)
        error = await _until_stopped(task, seconds)
    print_summary(beds, tally, sys.stdout)
    if error is not None:  # the run could not go on: one line (exit 2), after the summary
        raise error
    return beds, sink_failures(engine)


async def _until_stopped(task: asyncio.Task[None], seconds: float | None
                         ) -> SleepstreamError | None:
    """Wait for the engine until ``seconds``, a signal or its end. An engine stopped by what a
    device, a broker or the configuration did (the command subscriber refused its credentials)
    gives that error back; a bug propagates with its traceback."""
    try:
        async with asyncio.timeout(seconds):
            await task
    except (TimeoutError, asyncio.CancelledError):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except ExceptionGroup as group:
        leaves = _leaves(group)
        if not all(isinstance(e, SleepstreamError) for e in leaves):
            raise
        return leaves[0]  # type: ignore[return-value]
    return None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


def with_overrides(config: Config, *, http: str | None, token: str | None,
                   store: str | None) -> Config:
    """The command line's ``--http``, ``--http-token`` and ``--store`` over the file's."""
    return replace(
        config,
        http=replace(config.http, listen=http or config.http.listen,
                     token=token or config.http.token),
        store=replace(config.store,
                      path=str(Path(store).resolve()) if store else config.store.path))


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
        out.write(f"  stages: {counts_text(tally.stages(bed.state.bed))}\n")
        out.write(f"  apnea minutes: {counts_text(tally.minutes(bed.state.bed))}\n")


def main(args: argparse.Namespace) -> int:
    address = args.cluster or load_config(args.config).cluster.address
    if address:  # the same beds, sharded (sleepstream.cluster); store and web on this process
        try:
            from sleepstream.cluster.runner import run_cluster
        except ImportError as exc:
            print(f"sleepstream run --cluster: {exc}; pip install 'sleepstream[cluster]'",
                  file=sys.stderr)
            return 2
        config = with_overrides(load_config(args.config), http=args.http,
                                token=args.http_token, store=args.store)
        return asyncio.run(run_cluster(config, address, args.seconds))
    beds, sinks_failed = asyncio.run(run(args.config, args.seconds, http=args.http,
                                         token=args.http_token, store=args.store))
    return exit_status(beds, sinks_failed, sys.stderr)


def exit_status(beds: list[BedRuntime], sinks_failed: list[str], err: TextIO) -> int:
    """The run's exit status; what went wrong, one line each (the same line once)."""
    lines = [f"bed {b.state.bed}: {b.failed}" for b in beds if b.failed]
    lines += [f"sink failed: {text}" for text in sinks_failed]
    for line in dict.fromkeys(lines):
        err.write(f"sleepstream run: {line}\n")
    failed = [b.failed for b in beds if b.failed]
    if failed and all(known_failure(f) for f in failed):
        return 2
    return 1 if lines else 0
