"""Lab Streaming Layer marker sink: the engine's events as an irregular-rate string stream
(one JSON object per marker: stages, alerts, statuses) for recorders such as LabRecorder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pylsl

from sleepstream.engine.protocols import Event


class LslMarkerSink:
    """An irregular-rate string outlet: one JSON event per marker (stages, alerts, status)."""

    def __init__(self, *, name: str = "sleepstream-events", source_id: str = "",
                 stream_type: str = "Markers") -> None:
        info = pylsl.StreamInfo(name, stream_type, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                source_id or f"sleepstream-events-{name}")
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(info)
        self.info = info
        self.pushed = 0

    async def emit(self, event: Event) -> None:
        if self._outlet is None:
            return
        self._outlet.push_sample([json.dumps(event, separators=(",", ":"), default=str)])
        self.pushed += 1

    async def aclose(self) -> None:
        self._outlet = None


def sink_from_config(opts: Mapping[str, Any], *, config: Any) -> LslMarkerSink:
    return LslMarkerSink(name=str(opts.get("name", "sleepstream-events")))
