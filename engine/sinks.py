"""Event sinks that need no network: JSON lines to a file, and a human-readable console.

Network sinks (MQTT topics, LSL markers) live in ``drivers``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sleepstream.engine.errors import SinkError
from sleepstream.engine.protocols import Event


def _clock(t: float | None) -> str:
    if t is None:
        return "--:--:--"
    s = int(t)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_event(event: Event) -> str:
    """One line for a person reading the console."""
    kind = event.get("type")
    bed = event.get("bed", "-")
    if kind == "stage":
        mods = ",".join(event.get("modalities", [])) or "none"
        missing = event.get("missing") or []
        note = f"  missing {','.join(missing)}" if missing else ""
        t = event["epoch_start"] + event["epoch_s"]
        stage = event["stage"] or "--"
        return (f"[{_clock(t)}] {bed} stage {stage:<3} "
                f"conf {event['confidence']:.2f}  from {mods}{note}")
    if kind == "alert":  # stamped when emitted, so lines are in time order
        return (f"[{_clock(event.get('t'))}] {bed} {event['kind'][:4]}/{event['priority']:<6} "
                f"{event['state'].upper():<8} {event['code']}: {event['message']}")
    if kind == "event":
        value = event.get("value")
        dur = float(event.get("end") or 0.0) - float(event.get("onset") or 0.0)
        return (f"[{_clock(event.get('t'))}] {bed} scored {event['code']} from "
                f"{_clock(event.get('onset'))}, {dur:.0f} s"
                + ("" if value is None else f", value {value:g}"))
    if kind == "status":
        return f"[{_clock(event.get('t'))}] {bed} status: {event.get('message', event)}"
    if kind == "apnea_minute":
        return (f"[{_clock(event.get('t'))}] {bed} apnea minute {event.get('minute')} "
                f"p={event.get('prob') or 0:.2f} ({event.get('model')})")
    if kind == "index":
        parts = [f"{k.upper()} {v:.1f}/h" for k, v in event.items()
                 if k in ("odi3", "odi4", "ahi") and v is not None]
        per_hour = event.get("apnea_minutes_per_hour")
        if per_hour is not None:
            parts.append(f"apnea minutes {per_hour:.1f}/h")
        return f"[{_clock(event.get('t'))}] {bed} running indices: {', '.join(parts) or 'n/a'}"
    if kind == "trend":
        vals = [f"{k.upper()} {event[k]:g}" for k in ("spo2", "hr", "rr")
                if event.get(k) is not None]
        q = event.get("quality")
        vals.append(f"quality {q:.0%}" if q is not None else "no data")
        return f"[{_clock(event.get('t'))}] {bed} trend: {', '.join(vals)}"
    return json.dumps(event)


def worth_showing(event: Event) -> bool:
    """The console shows apnea minutes only when positive, and running indices every 10 min."""
    kind = event.get("type")
    if kind == "apnea_minute":
        return bool(event.get("apnea"))
    if kind == "index":
        return float(event.get("t") or 0.0) % 600.0 < 1e-6
    return True


class SinkFailure:
    """How a file sink reports that it cannot write: ``failed`` holds the first error (the run
    exits non-zero when a sink has one), and ``on_failure`` (set by the composition root) hears
    it once, to raise a technical alarm. Every failed write still raises ``SinkError``, so the
    engine counts it."""

    failed: str | None = None
    on_failure: Callable[[str], None] | None = None

    def _fail(self, exc: OSError | SinkError, what: str) -> SinkError:
        error = SinkError(f"{what}: {exc}")
        if self.failed is None:
            self.failed = str(error)
            if self.on_failure is not None:
                self.on_failure(self.failed)
        return error


class JsonlSink(SinkFailure):
    """Appends one JSON object per line, each line on disk as soon as it is written (the file is
    line-buffered, so a live run's file can be followed and survives a kill); the file is opened
    on the first event. A write that fails raises ``SinkError`` (see ``SinkFailure``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: TextIO | None = None
        self.written = 0

    async def emit(self, event: Event) -> None:
        try:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("w", encoding="utf-8", buffering=1)
            self._fh.write(json.dumps(event, separators=(",", ":")) + "\n")
        except OSError as exc:
            raise self._fail(exc, f"cannot write events to {self.path}") from exc
        self.written += 1
        if self.written % 256 == 0:
            await asyncio.sleep(0)

    async def aclose(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError as exc:
                raise self._fail(exc, f"cannot write events to {self.path}") from exc


class ConsoleSink:
    """Prints events as readable lines (stages, alerts, status)."""

    def __init__(self, *, stream: TextIO | None = None, alerts_only: bool = False,
                 write: Callable[[str], None] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.alerts_only = alerts_only
        self.write = write  # instead of printing: e.g. around a progress bar
        self.written = 0

    async def emit(self, event: Event) -> None:
        if (self.alerts_only and event.get("type") != "alert") or not worth_showing(event):
            return
        if self.write is not None:
            self.write(format_event(event))
        else:
            print(format_event(event), file=self.stream, flush=False)
        self.written += 1

    async def aclose(self) -> None:
        self.stream.flush()


def counts_text(counter: Counter[str]) -> str:
    """``a x2, b x1`` in name order, or ``none``: one summary line's counts."""
    return ", ".join(f"{k} x{v}" for k, v in sorted(counter.items())) or "none"


class TallySink:
    """Counts events by type, alarms by (bed, kind, code) (each alarm id once), scored events
    by (bed, code), stage events by (bed, stage; "abstained" where the decoder abstained) and
    apnea minutes by (bed, outcome: "apnea", "no apnea", "not scored"), for run summaries."""

    def __init__(self) -> None:
        self.types: Counter[str] = Counter()
        self.onsets: Counter[tuple[str, str, str]] = Counter()
        self.scored: Counter[tuple[str, str]] = Counter()
        self.staged: Counter[tuple[str, str]] = Counter()
        self.apnea: Counter[tuple[str, str]] = Counter()
        self._ids: set[str] = set()

    async def emit(self, event: Event) -> None:
        self.types[str(event.get("type", "?"))] += 1
        if event.get("type") == "alert" and event.get("id") not in self._ids:
            self._ids.add(str(event.get("id")))
            self.onsets[(str(event.get("bed")), str(event.get("kind")), str(event["code"]))] += 1
        elif event.get("type") == "event":
            self.scored[(str(event.get("bed")), str(event.get("code")))] += 1
        elif event.get("type") == "stage":
            self.staged[(str(event.get("bed")), str(event.get("stage") or "abstained"))] += 1
        elif event.get("type") == "apnea_minute":
            flag = event.get("apnea")
            outcome = "not scored" if flag is None else "apnea" if flag else "no apnea"
            self.apnea[(str(event.get("bed")), outcome)] += 1

    def stages(self, bed: str) -> Counter[str]:
        """Stage events per stage of one bed ("abstained": no stage claimed)."""
        return _of_bed(self.staged, bed)

    def minutes(self, bed: str) -> Counter[str]:
        """Apnea minutes per outcome of one bed ("not scored": no usable signal or no backing
        figure)."""
        return _of_bed(self.apnea, bed)

    def events(self, bed: str) -> Counter[str]:
        """Scored events per code of one bed."""
        return _of_bed(self.scored, bed)

    def alarms(self, bed: str, kind: str) -> Counter[str]:
        """Onsets per code of one bed and kind (technical or physiological)."""
        return Counter({c: n for (b, k, c), n in self.onsets.items() if b == bed and k == kind})

    async def aclose(self) -> None:
        return None


def _of_bed(counter: Counter[tuple[str, str]], bed: str) -> Counter[str]:
    """One bed's part of a counter keyed by (bed, name)."""
    return Counter({name: n for (b, name), n in counter.items() if b == bed})


class MemorySink:
    """Keeps every event in a list (tests, benchmarks, embedding in other programs)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def emit(self, event: Event) -> None:
        self.events.append(event)

    async def aclose(self) -> None:
        return None
