"""The JSONL sink: every event is on disk as soon as it is emitted; a write that fails raises."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from sleepstream.engine.errors import SinkError
from sleepstream.engine.sinks import JsonlSink


def test_events_are_on_disk_before_the_sink_closes(tmp_path: Path) -> None:
    async def main() -> None:
        sink = JsonlSink(tmp_path / "live" / "events.jsonl")
        await sink.emit({"type": "stage", "bed": "b1", "stage": "N2"})
        lines = (tmp_path / "live" / "events.jsonl").read_text().splitlines()
        assert [json.loads(x)["stage"] for x in lines] == ["N2"]
        await sink.aclose()
    asyncio.run(main())


def test_a_sink_that_cannot_write_raises_a_sink_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    sink = JsonlSink(tmp_path / "a-file" / "events.jsonl")
    with pytest.raises(SinkError, match="cannot write"):
        asyncio.run(sink.emit({"type": "stage"}))


def test_a_full_disk_is_reported_once_and_every_write_still_raises() -> None:
    heard: list[str] = []
    sink = JsonlSink("/dev/full")  # every write: ENOSPC
    sink.on_failure = heard.append

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(SinkError, match="No space left"):
                await sink.emit({"type": "stage", "bed": "b1", "stage": "N2"})
        with pytest.raises(SinkError, match="No space left"):  # what is left cannot be flushed
            await sink.aclose()
    asyncio.run(main())
    assert len(heard) == 1 and sink.failed == heard[0] and "/dev/full" in heard[0]
