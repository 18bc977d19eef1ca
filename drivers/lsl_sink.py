"""Lab Streaming Layer marker sink: the engine's events as an irregular-rate string stream
(one JSON object per marker: stages, alerts, statuses) for recorders such as LabRecorder.

Markers are stamped on the LSL clock with the time they describe, not the time they were pushed
(a stage is decided when its epoch ends, about 30 s after its onset): a stage at its epoch's
onset, an alert transition at its onset (``active``, ``acknowledged``, ``escalated``) or its end
(``ended``), anything else at its ``t``. The JSON carries the same times on the LSL clock:
``lsl_onset`` and ``lsl_end`` (a stage's epoch, an alert's onset and end; null while open).
Engine times map onto the LSL clock by one offset taken when the sink is built (both clocks are
monotonic; live, the engine clock is ``time.monotonic`` from the engine's start).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pylsl

from sleepstream.engine.clock import EngineClock, MonotonicClock
from sleepstream.engine.protocols import Event


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class LslMarkerSink:
    """An irregular-rate string outlet: one JSON event per marker (stages, alerts, status)."""

    def __init__(self, *, name: str = "sleepstream-events", source_id: str = "",
                 stream_type: str = "Markers", clock: EngineClock | None = None) -> None:
        info = pylsl.StreamInfo(name, stream_type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                source_id or f"sleepstream-events-{name}")
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        self.info = info
        self.clock: EngineClock = clock or MonotonicClock()
        self.engine_to_lsl = pylsl.local_clock() - self.clock.now()  # LSL time - engine time
        self.pushed = 0

    def lsl_times(self, event: Event) -> tuple[float | None, float | None]:
        """The (onset, end) an event describes, on the LSL clock."""
        if event.get("type") == "stage":
            start, length = _num(event.get("epoch_start")), _num(event.get("epoch_s"))
            if start is None:
                return None, None
            end = start + length if length is not None else None
        else:
            start, end = _num(event.get("onset")), _num(event.get("end"))
        off = self.engine_to_lsl
        return (None if start is None else start + off), (None if end is None else end + off)

    async def emit(self, event: Event) -> None:
        if self._outlet is None:
            return
        onset, end = self.lsl_times(event)
        marked = dict(event)
        if onset is not None:
            marked["lsl_onset"], marked["lsl_end"] = onset, end
        at = end if event.get("state") == "ended" and end is not None else onset
        if at is None and (t := _num(event.get("t"))) is not None:
            at = t + self.engine_to_lsl
        sample = [json.dumps(marked, separators=(",", ":"), default=str)]
        if at is None:
            self._outlet.push_sample(sample)
        else:
            self._outlet.push_sample(sample, at)
        self.pushed += 1

    async def aclose(self) -> None:
        self._outlet = None


def sink_from_config(opts: Mapping[str, Any], *, config: Any,
                     clock: EngineClock | None = None) -> LslMarkerSink:
    return LslMarkerSink(name=str(opts.get("name", "sleepstream-events")), clock=clock)
