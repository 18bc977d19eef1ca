"""Onset and end of device-flagged invalid runs (NaN samples: sensor off) as source events."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sleepstream.engine.protocols import SourceEvent
from sleepstream.engine.types import BoolArray, FloatArray


def sensor_off_events(
    off: list[bool], valid: BoolArray, t: FloatArray, channels: Sequence[str]
) -> list[SourceEvent]:
    """Transitions of each channel's "sensor off" state over one chunk.

    ``off[c]`` is the state before the chunk and is updated in place; ``valid`` is (n, C).
    """
    events: list[SourceEvent] = []
    if valid.all() and not any(off):
        return events
    for c, name in enumerate(channels):
        col = valid[:, c]
        flags = np.concatenate(([not off[c]], col))
        for i in np.flatnonzero(flags[1:] != flags[:-1]):
            off[c] = not bool(col[i])
            what = "sends no valid samples" if off[c] else "valid again"
            events.append(
                SourceEvent("sensor_off", (name,), float(t[i]), off[c], f"{name}: sensor {what}")
            )
    return events
