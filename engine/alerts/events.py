"""Scored physiological events: what a scorer would mark on the night, not alarms.

Desaturations, apneas, confirmed hypopneas and AF episodes are detected with the same condition
state machine as alarms (``condition.step_condition``: criterion, minimum duration), but they are
never announced to a person. Each one is emitted once, when it is complete, as

``{"type": "event", "bed", "id", "code", "onset", "end", "value", "channels", "t",
"detected_at"}``

(``t`` the engine time it was emitted, ``detected_at`` the engine time at which the detector saw
it last its minimum duration, ``value`` the worst value during the event: the SpO2
nadir for a desaturation, the lowest airflow ratio for an apnea or hypopnea, the highest RR
irregularity score for AF). Reports and the running indices (ODI, AHI) count them.
"""

from __future__ import annotations

from typing import Any

from sleepstream.engine.types import Alert, AlertState

Event = dict[str, Any]


def scored(alert: Alert, code: str | None = None) -> Event | None:
    """The event of a detector's ENDED transition (None for any other transition)."""
    if alert.state != AlertState.ENDED or alert.end is None:
        return None
    event: Event = {
        "type": "event",
        "bed": alert.bed,
        "id": alert.id,
        "code": code or alert.code,
        "onset": round(alert.onset, 3),
        "end": round(alert.end, 3),
        "value": None if alert.value is None else round(float(alert.value), 3),
        "channels": list(alert.channels),
        "t": round(alert.emitted_at, 3),
        "detected_at": round(float(alert.extra.get("announced_at", alert.emitted_at)), 3),
    }
    if alert.extra.get("ended_by"):
        event["ended_by"] = alert.extra["ended_by"]
    return event


def scored_all(alerts: list[Alert]) -> list[Event]:
    return [e for e in (scored(a) for a in alerts) if e is not None]
