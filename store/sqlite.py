"""``SqliteStore``: the event store as a ``Sink``, written off the event loop in batches.

``emit`` only puts the event on a bounded queue (full: the oldest event is dropped and counted);
one writer thread owns the SQLite connection and writes what has queued every ``batch_s`` in one
transaction. A write that fails (disk full, a file locked by another program, a vanished
directory) keeps its rows and is retried every ``retry_s``; the first failure raises one
technical alarm per bed (``store_failed``, medium priority) through ``publish``, and the first
write that succeeds again ends it. Monitoring never waits for the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleepstream.engine.clock import EngineClock
from sleepstream.engine.errors import SinkError
from sleepstream.engine.protocols import Event
from sleepstream.store.schema import ensure_schema

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(slots=True)
class StoreStats:
    rows: int = 0  # rows written
    batches: int = 0
    failures: int = 0  # failed batch writes (each retried)
    dropped: int = 0  # events dropped: queue full, or rows over capacity while failing
    failing: bool = False
    last_error: str = ""


def _json(x: Any) -> str:
    return json.dumps(x, separators=(",", ":"), default=str)


class SqliteStore:
    """The SQLite event store of one engine run (see ``store.schema`` for the tables).

    ``open()`` (at start-up, raises ``SinkError``) creates or migrates the file and registers the
    run; ``publish`` is set by the composition root to the engine's non-blocking publish;
    ``on_write(seconds, rows)`` is told the duration of every successful batch.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        beds: Sequence[str],
        clock: EngineClock,
        wall_origin: float | None,
        batch_s: float = 0.5,
        retry_s: float = 1.0,
        capacity: int = 65536,
        busy_timeout_s: float = 0.2,
        on_write: Callable[[float, int], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.beds = tuple(beds)
        self.clock = clock
        self.wall_origin = wall_origin
        self.batch_s, self.retry_s, self.capacity = batch_s, retry_s, capacity
        self.busy_timeout_s = busy_timeout_s
        self.on_write = on_write
        self.publish: Callable[[Event], None] | None = None
        self.stats = StoreStats()
        self.run: int | None = None
        self.previous_version = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alarm_n = 0
        self._alarm_onset = 0.0

    # ---- lifetime ----------------------------------------------------------------------------

    def open(self, config_text: str | None = None) -> int:
        """Create or migrate the file and register this run; returns the run number."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(self.path, timeout=5.0) as db:
                db.execute("PRAGMA journal_mode=WAL")
                self.previous_version = ensure_schema(db)
                cur = db.execute("INSERT INTO runs (started_wall, config) VALUES (?, ?)",
                                 (self.wall_origin, config_text))
                self.run = int(cur.lastrowid or 0)
            db.close()
        except (sqlite3.Error, OSError) as exc:
            raise SinkError(f"cannot open the event store {self.path}: {exc}; check the "
                            "[store] path and that the file is writable") from exc
        return self.run

    async def emit(self, event: Event) -> None:
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._drop_oldest(event)

    def _drop_oldest(self, event: Event) -> None:
        with contextlib.suppress(queue.Empty):
            self._queue.get_nowait()
        self.stats.dropped += 1
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.stats.dropped += 1

    async def aclose(self) -> None:
        if self._thread is None:
            return
        await asyncio.to_thread(self._queue.put, _STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    def _start(self) -> None:
        if self.run is None:
            self.open()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._writer, name="sleepstream-store",
                                        daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    # ---- the writer thread -------------------------------------------------------------------

    def _writer(self) -> None:
        db: sqlite3.Connection | None = None
        pending: list[Event] = []
        deadline = time.monotonic() + self.batch_s
        stopping = False
        while not stopping:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    pending.append(item)
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            if pending and (stopping or time.monotonic() >= deadline):
                db = self._flush(db, pending)
                deadline = time.monotonic() + (self.retry_s if pending else self.batch_s)
            elif time.monotonic() >= deadline:
                deadline = time.monotonic() + self.batch_s
        if db is not None:
            db.close()

    def _flush(self, db: sqlite3.Connection | None, pending: list[Event]
               ) -> sqlite3.Connection | None:
        """Write ``pending`` in one transaction; on success empty it, on failure keep it."""
        started = time.perf_counter()
        try:
            if db is None:
                db = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            rows = self._write(db, pending)
        except (sqlite3.InterfaceError, sqlite3.ProgrammingError) as exc:  # rows it cannot take
            log.error("event store %s: %d events refused (%s); dropped", self.path,
                      len(pending), exc)
            self.stats.dropped += len(pending)
            pending.clear()
            return db
        except (sqlite3.Error, OSError) as exc:
            self._failed(exc, len(pending))
            if db is not None:
                db.close()
            over = len(pending) - self.capacity
            if over > 0:
                del pending[:over]
                self.stats.dropped += over
            return None
        took = time.perf_counter() - started
        pending.clear()
        self.stats.rows += rows
        self.stats.batches += 1
        if self.on_write is not None:
            self.on_write(took, rows)
        if self.stats.failing:
            self.stats.failing = False
            log.warning("event store %s writable again", self.path)
            self._announce(active=False, message="the event store is writable again")
        return db

    def _write(self, db: sqlite3.Connection, events: list[Event]) -> int:
        tables: dict[str, list[tuple[Any, ...]]] = {}
        for ev in events:
            table, row = self._row(ev)
            tables.setdefault(table, []).append(row)
        with db:
            for table, rows in tables.items():
                marks = ",".join("?" * len(rows[0]))
                db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        return len(events)

    def _failed(self, exc: BaseException, n: int) -> None:
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        if self.stats.failures in (1, 10, 100, 1000):
            log.error("event store %s: write of %d events failed (%s); retrying, monitoring "
                      "goes on", self.path, n, exc)
        if not self.stats.failing:
            self.stats.failing = True
            self._announce(active=True, message=f"events are not being stored ({exc}); "
                                                "monitoring goes on, writes are retried")

    # ---- rows --------------------------------------------------------------------------------

    def _wall(self, t: Any) -> float | None:
        if self.wall_origin is None or not isinstance(t, int | float):
            return None
        return round(self.wall_origin + float(t), 3)

    def _row(self, ev: Event) -> tuple[str, tuple[Any, ...]]:
        kind, bed, run = ev.get("type"), ev.get("bed"), self.run
        if kind == "stage":
            t = ev.get("epoch_start")
            return "stages", (run, bed, t, ev.get("epoch_s"), self._wall(t), ev.get("stage"),
                              ev.get("confidence"), _json(ev.get("probs")),
                              _json(ev.get("modalities")), _json(ev.get("missing")),
                              int(bool(ev.get("revision"))))
        if kind == "alert":
            t = ev.get("t")
            return "alarms", (run, bed, ev.get("id"), ev.get("code"), ev.get("kind"),
                              ev.get("priority"), ev.get("state"), ev.get("onset"),
                              ev.get("end"), t, self._wall(t), ev.get("value"),
                              ev.get("message"), _json(ev.get("channels")), _json(ev))
        if kind == "trend":
            t = ev.get("t")
            return "trends", (run, bed, ev.get("start"), t, self._wall(t), ev.get("spo2"),
                              ev.get("hr"), ev.get("rr"), ev.get("quality"),
                              _json(ev.get("channels")))
        if kind == "status" and ev.get("command") == "ack":
            t = ev.get("t")
            return "acks", (run, bed, ev.get("alert_id"), ev.get("by"), t, self._wall(t),
                            int(bool(ev.get("matched"))))
        t = ev.get("t")
        return "events", (run, bed, str(kind), t, self._wall(t), _json(ev))

    # ---- the technical alarm -----------------------------------------------------------------

    def _announce(self, *, active: bool, message: str) -> None:
        """One ``store_failed`` transition per bed, published on the event loop."""
        if self._loop is None or self.publish is None:
            return
        t = round(self.clock.now(), 3)
        if active:
            self._alarm_n += 1
            self._alarm_onset = t
        events: list[Event] = [{
            "type": "alert", "bed": bed, "id": f"{bed}/store_failed/{self._alarm_n}",
            "code": "store_failed", "kind": "technical", "priority": "medium",
            "state": "active" if active else "ended", "onset": self._alarm_onset,
            "end": None if active else t, "value": None, "message": message, "channels": [],
            "delay_s": 0.0, "latching": False, "t": t,
        } for bed in self.beds]
        publish = self.publish
        with contextlib.suppress(RuntimeError):  # RuntimeError: the loop has closed (shutdown)
            for ev in events:
                self._loop.call_soon_threadsafe(publish, ev)
