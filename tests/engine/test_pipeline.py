"""The asyncio pipeline: bounded queues, counted drops, live gap filling, isolation of beds.

Drivers here are small in-test sources; a failing one is a fault injected on purpose.
"""

from __future__ import annotations

import asyncio
import logging

import numpy as np
import pytest

from sleepstream.engine.bed import BedState
from sleepstream.engine.clock import MonotonicClock, ReplayClockState
from sleepstream.engine.errors import SourceError
from sleepstream.engine.pipeline import BedRuntime, Engine, EngineSettings
from sleepstream.engine.sinks import MemorySink
from sleepstream.engine.types import ChannelSpec, Frame

SPO2 = ChannelSpec("SpO2", 1.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)
EEG = ChannelSpec("EEG C4-M1", 100.0, "eeg", "uV", -500.0, 500.0)


class ListSource:
    """Yields prepared frames; ``fail_after`` raises mid-stream (an injected device fault)."""

    def __init__(self, specs, frames, *, fail_after=None, delay=0.0, error=None):
        self._specs = tuple(specs)
        self._frames = frames
        self.fail_after = fail_after
        self.error = error or RuntimeError("device sent something nobody expected")
        self.delay = delay

    @property
    def channels(self):
        return self._specs

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def frames(self):
        for i, f in enumerate(self._frames):
            if self.fail_after is not None and i >= self.fail_after:
                raise self.error
            if self.delay:
                await asyncio.sleep(self.delay)
            yield f


def _frames(spec, seconds, *, start=0.0, value=None, per_frame_s=1.0):
    n = int(spec.fs * per_frame_s)
    out = []
    for k in range(int(seconds / per_frame_s)):
        i0 = round((start + k * per_frame_s) * spec.fs)
        ts = (i0 + np.arange(n)) / spec.fs
        x = (np.full(n, value, np.float32) if value is not None
             else np.random.default_rng(k).normal(0, 20, n).astype(np.float32))
        out.append(Frame((spec.name,), ts, x[:, None], np.ones((n, 1), bool), seq=i0))
    return out


def _bed(name, source):
    return BedRuntime(state=BedState(bed=name, hop_s=1.0, ring_s=60.0), drivers=[source])


def test_a_failing_bed_stops_alone_and_says_so():
    good = _bed("good", ListSource([SPO2], _frames(SPO2, 120, value=96.0)))
    bad = _bed("bad", ListSource([SPO2], _frames(SPO2, 120, value=96.0), fail_after=10))
    sink = MemorySink()
    engine = Engine([good, bad], [sink], clock=ReplayClockState(), settings=EngineSettings())
    asyncio.run(engine.run())
    assert good.failed is None and good.state.summary()["SpO2"]["processed"] == 120
    assert bad.failed is not None and "nobody expected" in bad.failed
    failed = [e for e in sink.events if e.get("code") == "bed_failed"]
    assert len(failed) == 1 and failed[0]["bed"] == "bad" and failed[0]["kind"] == "technical"


@pytest.mark.parametrize("known", [True, False])
def test_a_bed_failed_by_its_input_logs_one_line_a_bug_its_traceback(
    known: bool, caplog: pytest.LogCaptureFixture
) -> None:
    error = SourceError("the broker refused the credentials") if known else KeyError("bug")
    bad = _bed("bad", ListSource([SPO2], _frames(SPO2, 20, value=96.0), fail_after=5,
                                 error=error))
    engine = Engine([bad], [MemorySink()], clock=ReplayClockState(), settings=EngineSettings())
    with caplog.at_level(logging.ERROR, logger="sleepstream.engine.pipeline"):
        asyncio.run(engine.run())
    (record,) = [r for r in caplog.records if "bed bad failed" in r.getMessage()]
    assert (record.exc_info is None) == known
    assert bad.failed is not None and type(error).__name__ in bad.failed


def test_frames_with_undeclared_channels_are_counted_and_dropped():
    frames = _frames(SPO2, 30, value=96.0)
    stray = Frame(("Mystery",), np.zeros(1), np.zeros((1, 1), np.float32), np.ones((1, 1), bool))
    frames.insert(5, stray)
    bed = _bed("b", ListSource([SPO2], frames))
    engine = Engine([bed], [MemorySink()], clock=ReplayClockState(), settings=EngineSettings())
    asyncio.run(engine.run())
    assert bed.state.rejected_frames == 1
    assert bed.state.summary()["SpO2"]["processed"] == 30


def test_live_slow_sink_drops_oldest_events_and_counts_them():
    class SlowSink(MemorySink):
        async def emit(self, event):
            await asyncio.sleep(0.01)
            await super().emit(event)

    frames = _frames(SPO2, 40, value=0.0)  # probe off: alarms to emit
    beds = [_bed(f"b{i}", ListSource([SPO2], frames)) for i in range(30)]
    sink = SlowSink()
    settings = EngineSettings(live=True, event_queue=4, live_grace_s=1e9)
    engine = Engine(beds, [sink], clock=MonotonicClock(), settings=settings)
    asyncio.run(engine.run())
    channel = engine.bus.channels[0]
    assert engine.bus.published == len(sink.events) + channel.dropped
    assert channel.dropped > 0


def test_live_engine_fills_silent_channels_and_raises_a_gap_alarm():
    # EEG streams for 1.5 s then goes silent while the engine clock runs on
    frames = _frames(EEG, 1.5, per_frame_s=0.5)
    clock = MonotonicClock()
    source = ListSource([EEG], frames)

    class Hold(ListSource):
        async def frames(self):
            async for f in source.frames():
                # re-time the frame onto the live clock
                yield Frame(f.channels, f.timestamps + clock.now() - f.timestamps[0] * 0,
                            f.data, f.valid, f.seq)
            await asyncio.sleep(5.0)

    bed = _bed("live", Hold([EEG], []))
    sink = MemorySink()
    settings = EngineSettings(live=True, live_grace_s=0.5, hop_s=0.5)
    engine = Engine([bed], [sink], clock=clock, settings=settings)
    asyncio.run(engine.run())
    summary = bed.state.summary()["EEG C4-M1"]
    assert summary["filled"] > 200  # about 4 s of missing samples at 100 Hz
    gaps = [e for e in sink.events if "signal_gap" in e.get("causes", ())]
    assert gaps and gaps[0]["state"] == "active" and gaps[0]["kind"] == "technical"
