"""What the web view shows, kept live: ``ViewState`` per engine, fed by ``ViewSink`` on the bus.

Per bed: the latest stage and the hypnogram so far, trend rows (SpO2, heart rate, respiratory
rate, quality), every alarm's latest transition (with who acknowledged it and when), the latest
running indices (ODI-3, ODI-4, AHI, apnea minutes per hour; null until ten minutes of signal)
and the last status. It starts from the store's night so far (``store.history``) and then follows
the events.
Each event is also handed to every event-stream subscriber through a bounded queue (full: the
oldest message is dropped and counted in ``stream_dropped``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleepstream.engine.protocols import Event
from sleepstream.engine.types import Command

PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
OPEN_STATES = ("active", "escalated", "acknowledged")
MAX_ROWS = 4000  # per bed and list: more than a night of epochs (960) and trend minutes
INDICES = ("t", "odi3", "odi4", "ahi", "apnea_minutes_per_hour")  # of the engine's index events


@dataclass(slots=True)
class BedViewState:
    bed: str
    site: str
    stage: dict[str, Any] | None = None
    hypnogram: list[dict[str, Any]] = field(default_factory=list)
    trends: list[dict[str, Any]] = field(default_factory=list)
    alarms: dict[str, dict[str, Any]] = field(default_factory=dict)
    indices: dict[str, Any] | None = None
    status: dict[str, Any] | None = None


def alarm_key(alarm: Mapping[str, Any]) -> str:
    """Alarm ids restart with each engine run; the run number keeps them apart."""
    return f"{alarm.get('run', 0)}:{alarm['id']}"


class ViewState:
    """The live view of every bed (see the module docstring)."""

    def __init__(self, beds: Sequence[tuple[str, str]], *, wall_origin: float | None,
                 run: int | None = None, stream_queue: int = 512) -> None:
        self.beds = {b: BedViewState(b, site) for b, site in beds}
        self.wall_origin = wall_origin
        self.run = run or 0
        self.stream_queue = stream_queue
        self.subscribers: set[asyncio.Queue[tuple[str, str]]] = set()
        self.stream_dropped = 0
        self.events_seen = 0

    def wall(self, t: Any) -> float | None:
        if self.wall_origin is None or not isinstance(t, int | float):
            return None
        return round(self.wall_origin + float(t), 3)

    # ---- history -----------------------------------------------------------------------------

    def load_history(self, night: Mapping[str, Mapping[str, Any]]) -> None:
        """The store's night so far (``store.history.read_night``), before live events."""
        for bed, n in night.items():
            st = self.beds.get(bed)
            if st is None:
                continue
            st.hypnogram = [_epoch(r["epoch_start"], r["epoch_s"], r["wall"], r["stage"],
                                   r["confidence"]) for r in n["stages"]][-MAX_ROWS:]
            st.stage = st.hypnogram[-1] if st.hypnogram else None
            st.trends = [_trend(r, r["wall"]) for r in n["trends"]][-MAX_ROWS:]
            for a in n["alarms"]:
                st.alarms[alarm_key(a)] = dict(a)

    # ---- live events -------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        self.events_seen += 1
        st = self.beds.get(str(event.get("bed")))
        if st is None:
            return
        kind = event.get("type")
        if kind == "stage":
            t = event["epoch_start"]
            row = _epoch(t, event["epoch_s"], self.wall(t), event.get("stage"),
                         event.get("confidence"))
            st.stage = row
            st.hypnogram.append(row)
            del st.hypnogram[:-MAX_ROWS]
            self._broadcast("stage", {"bed": st.bed, "epoch": row})
        elif kind == "trend":
            row = _trend(event, self.wall(event.get("t")))
            st.trends.append(row)
            del st.trends[:-MAX_ROWS]
            self._broadcast("trend", {"bed": st.bed, "trend": row})
        elif kind == "alert":
            alarm = {**event, "run": self.run, "wall": self.wall(event.get("onset")),
                     "previous_run": False}
            old = st.alarms.get(alarm_key(alarm))
            if old is not None and "acked_by" in old:
                alarm["acked_by"], alarm["acked_wall"] = old["acked_by"], old["acked_wall"]
            st.alarms[alarm_key(alarm)] = alarm
            self._broadcast("alarm", {"bed": st.bed, "alarm": alarm})
        elif kind == "index":
            st.indices = {k: event.get(k) for k in INDICES}
            self._broadcast("index", {"bed": st.bed, "indices": st.indices})
        elif kind == "status":
            st.status = dict(event)
            if event.get("command") == "ack" and event.get("matched"):
                self._note_ack(st, event)
            self._broadcast("status", {"bed": st.bed, "status": event})

    def _note_ack(self, st: BedViewState, receipt: Event) -> None:
        """The receipt follows the transitions it caused: name who acknowledged them."""
        t = receipt.get("t")
        for key, a in st.alarms.items():
            if a.get("run") == self.run and a.get("acknowledged_at") == t and "acked_by" not in a:
                a["acked_by"], a["acked_wall"] = receipt.get("by"), self.wall(t)
                self._broadcast("alarm", {"bed": st.bed, "alarm": st.alarms[key]})

    # ---- the event stream --------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[tuple[str, str]]:
        q: asyncio.Queue[tuple[str, str]] = asyncio.Queue(maxsize=self.stream_queue)
        self.subscribers.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[tuple[str, str]]) -> None:
        self.subscribers.discard(q)

    def _broadcast(self, name: str, payload: Mapping[str, Any]) -> None:
        if not self.subscribers:
            return
        msg = (name, json.dumps(payload, separators=(",", ":"), default=str))
        for q in self.subscribers:
            if q.full():
                q.get_nowait()
                self.stream_dropped += 1
            q.put_nowait(msg)

    # ---- reading -----------------------------------------------------------------------------

    def bed_view(self, bed: str, live: Mapping[str, Any] | None = None) -> dict[str, Any]:
        st = self.beds[bed]
        alarms = sorted(st.alarms.values(), key=_alarm_order)
        active = [a for a in alarms if a["state"] in OPEN_STATES and not a.get("previous_run")]
        technical = [a["code"] for a in active if a.get("kind") == "technical"]
        last_q = next((r["quality"] for r in reversed(st.trends) if r["quality"] is not None),
                      None)
        return {
            "bed": st.bed, "site": st.site, "stage": st.stage, "hypnogram": st.hypnogram,
            "trends": st.trends, "alarms": alarms, "active": active, "indices": st.indices,
            "quality": {"technical": technical, "valid_fraction": last_q,
                        "state": "sensor trouble" if technical else "ok"},
            "live": dict(live or {}),
        }

    def snapshot(self, live: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        live = live or {}
        return {"run": self.run, "wall_origin": self.wall_origin,
                "beds": [self.bed_view(b, live.get(b)) for b in self.beds]}

    def active_counts(self) -> dict[tuple[str, str], int]:
        """Open alarms of the current run by (bed, priority)."""
        out: dict[tuple[str, str], int] = {}
        for st in self.beds.values():
            for a in st.alarms.values():
                if a["state"] in OPEN_STATES and not a.get("previous_run"):
                    key = (st.bed, str(a.get("priority")))
                    out[key] = out.get(key, 0) + 1
        return out


def _alarm_order(a: Mapping[str, Any]) -> tuple[int, int, float]:
    open_first = 0 if a["state"] in OPEN_STATES and not a.get("previous_run") else 1
    return (open_first, PRIORITY_RANK.get(str(a.get("priority")), 3),
            -float(a.get("wall") or a.get("onset") or 0.0))


def _epoch(t: float, epoch_s: float, wall: float | None, stage: str | None,
           confidence: float | None) -> dict[str, Any]:
    return {"t": t, "epoch_s": epoch_s, "wall": wall, "stage": stage, "confidence": confidence}


def _trend(row: Mapping[str, Any], wall: float | None) -> dict[str, Any]:
    return {"t": row.get("t"), "wall": wall, "spo2": row.get("spo2"), "hr": row.get("hr"),
            "rr": row.get("rr"), "quality": row.get("quality")}


class ViewSink:
    """The ``Sink`` that keeps a ``ViewState`` up to date."""

    def __init__(self, view: ViewState) -> None:
        self.view = view

    async def emit(self, event: Event) -> None:
        self.view.apply(event)

    async def aclose(self) -> None:
        return None


class WebCommands:
    """Acknowledgements from the page, as a command source of the engine: they take the same
    route as MQTT and CLI acknowledgements (``Engine`` routes them into the bed's queue)."""

    def __init__(self, size: int = 256) -> None:
        self.queue: asyncio.Queue[Command] = asyncio.Queue(maxsize=size)

    def submit(self, cmd: Command) -> bool:
        """Queue ``cmd``; False when the queue is full (the request is refused, not dropped)."""
        try:
            self.queue.put_nowait(cmd)
        except asyncio.QueueFull:
            return False
        return True

    async def commands(self) -> AsyncIterator[Command]:
        while True:
            yield await self.queue.get()
