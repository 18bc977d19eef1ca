"""Alarm burden of replayed nights: alarms per bed-hour, and whether sustained hypoxemia got one.

A sustained hypoxemia episode is a run of valid SpO2 readings below ``limit`` (90 %) that lasts
``min_s`` (30) valid seconds or more; invalid seconds (probe off, gaps) neither count nor break
the run, a valid reading at or above the limit ends it. The episode's onset is its first reading
below the limit, its end the first valid reading at or above it (or the end of the recording).

An episode is alarmed when a physiological alarm of priority medium or high was announced before
the episode ended and was still announced at or after its onset (an alarm raised by an earlier
episode and still standing counts, with a delay of 0); the delay is the announcement minus the
onset, floored at 0. An alarm's announcement is its ``criterion_t`` where it has one: the data
time at which its condition delay was met, which is when a live engine (1-s frames) emits it; a
replay in longer frames emits it at the end of the frame.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sleepstream.engine.types import FloatArray


@dataclass(frozen=True, slots=True)
class Episode:
    onset: float
    end: float
    valid_s: int
    nadir: float


@dataclass(frozen=True, slots=True)
class AlarmSpan:
    id: str
    code: str
    kind: str
    priority: str
    announced: float
    ended: float  # inf while still announced at the end of the night


def episodes(spo2: FloatArray, *, limit: float = 90.0, min_s: float = 30.0) -> list[Episode]:
    """Sustained hypoxemia episodes of a per-second SpO2 series (NaN invalid), second i at t=i."""
    idx = np.flatnonzero(~np.isnan(spo2))
    x = spo2[idx]
    m = np.concatenate([[False], x < limit, [False]])
    d = np.diff(m.astype(np.int8))
    out: list[Episode] = []
    for a, b in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True):
        if b - a >= min_s:
            end = float(idx[b]) if b < idx.size else float(spo2.size)
            out.append(Episode(float(idx[a]), end, int(b - a), float(x[a:b].min())))
    return out


def alarm_spans(events: Sequence[dict[str, Any]]) -> list[AlarmSpan]:
    """One span per alarm id: its first announcement and the engine time it ended."""
    first: dict[str, dict[str, Any]] = {}
    ended: dict[str, float] = {}
    for e in events:
        if e.get("type") != "alert":
            continue
        first.setdefault(e["id"], e)
        if e["state"] == "ended":
            ended.setdefault(e["id"], float(e["t"]))
    return [AlarmSpan(i, e["code"], e["kind"], e["priority"],
                      float(e.get("criterion_t", e["t"])), ended.get(i, float("inf")))
            for i, e in first.items()]


def coverage(eps: Sequence[Episode], spans: Sequence[AlarmSpan]) -> list[float | None]:
    """Per episode, the alarm delay from its onset (None: no medium/high alarm before it ended)."""
    urgent = [s for s in spans if s.kind == "physiological" and s.priority in ("medium", "high")]
    out: list[float | None] = []
    for ep in eps:
        hits = [max(s.announced - ep.onset, 0.0) for s in urgent
                if s.announced <= ep.end and s.ended >= ep.onset]
        out.append(min(hits) if hits else None)
    return out


def burden(spans: Sequence[AlarmSpan], hours: float) -> dict[str, Any]:
    """Alarms per bed-hour: physiological by code and priority, technical by code."""
    phys = [s for s in spans if s.kind == "physiological"]
    tech = [s for s in spans if s.kind == "technical"]
    per_h = max(hours, 1e-9)
    return {
        "physiological_per_bed_hour": len(phys) / per_h,
        "physiological_by_code_per_bed_hour": {
            k: v / per_h for k, v in sorted(Counter(s.code for s in phys).items())},
        "physiological_by_priority_per_bed_hour": {
            k: v / per_h for k, v in sorted(Counter(s.priority for s in phys).items())},
        "technical_per_bed_hour": len(tech) / per_h,
        "technical_by_code_per_bed_hour": {
            k: v / per_h for k, v in sorted(Counter(s.code for s in tech).items())},
    }
