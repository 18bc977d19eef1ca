"""One bed's streaming state: channels, ring buffers, quality, resampling, block processors.

``BedState`` is synchronous and owns no tasks: the pipeline feeds it frames and source events,
and it returns the events to emit. Blocks are processed when every channel of the bed has data
up to a hop boundary (replay), or when the engine clock passes a hop boundary plus a grace
period (live; channels without data by then are filled with invalid samples).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sleepstream.engine import quality, resample
from sleepstream.engine import ring_buffer as rb
from sleepstream.engine.alerts import source_fault as sf
from sleepstream.engine.alerts.condition import (
    ConditionState,
    acknowledge_condition,
    tick_condition,
)
from sleepstream.engine.protocols import Block, BlockProcessor, ChannelBlock, Event, SourceEvent
from sleepstream.engine.types import (
    MODEL_RATES,
    Alert,
    ChannelSpec,
    Command,
    Frame,
    StageEstimate,
)

log = logging.getLogger(__name__)

@dataclass(slots=True)
class ChannelCounters:
    samples_in: int = 0  # real samples received from the source
    filled: int = 0  # invalid samples inserted for timestamp gaps
    dropped_overlap: int = 0  # samples older than the channel's next expected sample
    overrun: int = 0  # samples overwritten in the ring before they were processed
    processed: int = 0  # samples that went through quality (real + filled)
    invalid: int = 0  # processed samples marked invalid by quality


@dataclass(slots=True)
class ChannelState:
    spec: ChannelSpec
    ring: rb.RingBufferState
    quality: quality.ChannelQualityState
    resampler: resample.ResamplerState | None
    t0: float = math.nan  # engine time of sample 0 of this channel's grid
    counters: ChannelCounters = field(default_factory=ChannelCounters)

    @property
    def end_time(self) -> float:
        """Engine time just past the newest sample."""
        return self.t0 + self.ring.written / self.spec.fs


@dataclass(slots=True)
class BedState:
    bed: str
    hop_s: float
    ring_s: float
    processors: tuple[BlockProcessor, ...] = ()
    channels: dict[str, ChannelState] = field(default_factory=dict)
    t_done: float = math.nan  # blocks are processed up to here
    escalate_after_s: float = 60.0  # an unacknowledged high-priority technical alarm escalates
    rejected_frames: int = 0  # frames naming channels the source never declared
    source_faults: sf.SourceFaultState = field(init=False)  # the bed's one source-fault alarm

    def __post_init__(self) -> None:
        self.source_faults = sf.new_state(self.bed, escalate_after_s=self.escalate_after_s)

    def add_channels(self, specs: Sequence[ChannelSpec]) -> None:
        for spec in specs:
            if spec.name in self.channels:
                continue
            capacity = max(16, math.ceil(self.ring_s * spec.fs))
            model_fs = MODEL_RATES.get(spec.modality or "")
            rs = resample.new_state(resample.design(spec.fs, model_fs)) if model_fs else None
            self.channels[spec.name] = ChannelState(
                spec, rb.new_ring(capacity), quality.new_state(spec, self.bed), rs
            )

    # ---- input -------------------------------------------------------------------------

    def push(self, frame: Frame) -> list[Event]:
        """Take one frame; return the events of every block it completes."""
        if any(name not in self.channels for name in frame.channels) or len(frame) == 0:
            self.rejected_frames += 1
            if self.rejected_frames in (1, 10, 100, 1000):
                log.warning("bed %s: rejected %d frames with undeclared channels or no rows",
                            self.bed, self.rejected_frames)
            return []
        for c, name in enumerate(frame.channels):
            ch = self.channels[name]
            self._push_channel(ch, frame.timestamps, frame.data[:, c], frame.valid[:, c])
        return self._process_ready(self._watermark())

    def _push_channel(self, ch: ChannelState, ts: Any, data: Any, valid: Any) -> None:
        fs = ch.spec.fs
        n = int(ts.shape[0])
        ch.counters.samples_in += n
        if math.isnan(ch.t0):
            ch.t0 = float(ts[0])
            if math.isnan(self.t_done):
                self.t_done = math.floor(ch.t0 / self.hop_s) * self.hop_s
        expected = ch.end_time
        lead = float(ts[0]) - expected
        if lead < -1.5 / fs:  # overlaps what we have: keep only the newer samples
            keep = ts >= expected - 0.5 / fs
            ch.counters.dropped_overlap += int(n - keep.sum())
            ts, data, valid = ts[keep], data[keep], valid[keep]
            if ts.shape[0] == 0:
                return
        elif lead > 1.5 / fs:  # samples missing: fill the grid with invalid samples
            self._fill(ch, round(lead * fs))
        self._ring_push(ch, data.astype(np.float32, copy=False), valid.astype(bool, copy=False))

    def _fill(self, ch: ChannelState, n: int) -> None:
        ch.counters.filled += n
        self._ring_push(ch, np.full(n, np.nan, np.float32), np.zeros(n, bool))

    def _ring_push(self, ch: ChannelState, data: Any, valid: Any) -> None:
        n = data.shape[0]
        grid = ch.t0 + (ch.ring.written + np.arange(n)) / ch.spec.fs
        unprocessed = ch.ring.written - ch.counters.processed - ch.counters.overrun
        over = unprocessed + n - ch.ring.capacity
        if over > 0:
            ch.counters.overrun += over
            log.warning("bed %s: %s ring overrun, %d samples lost", self.bed, ch.spec.name, over)
        rb.push(ch.ring, grid, data, valid)

    def source_event(self, ev: SourceEvent) -> list[Event]:
        """A condition of the source itself (stream lost, packet loss, clock jump): a symptom of
        the bed's one source-fault alarm (``alerts.source_fault``), announced at the next tick.
        Only channels that carry a signal count: a fault on sample counters alone raises
        nothing; a fault naming no channel concerns every signal channel of the bed."""
        signal = tuple(c for c in ev.channels
                       if c not in self.channels or self.channels[c].spec.modality is not None)
        if ev.channels and not signal:
            return []
        if not ev.channels:
            signal = tuple(n for n, c in self.channels.items() if c.spec.modality is not None)
        sf.symptom(self.source_faults, ev.code, signal, ev.t, ev.active, ev.message)
        return []

    def technical_conditions(self) -> list[ConditionState]:
        """Every technical alarm machine of the bed: the sensor conditions of each channel, then
        the source fault (the data-missing quality conditions are its symptoms, not alarms)."""
        out = [c for ch in self.channels.values() for code, c in ch.quality.conditions.items()
               if code not in sf.QUALITY_CAUSES]
        return [*out, self.source_faults.condition]

    def tick(self, t: float) -> list[Event]:
        """Announce, end or escalate the technical alarms at engine time ``t``."""
        events = [a.to_event() for a in sf.tick(self.source_faults, t)]
        for cond in self.technical_conditions()[:-1]:
            if cond.current is not None:
                events.extend(a.to_event() for a in tick_condition(cond, t))
        return events

    def command(self, cmd: Command) -> list[Event]:
        """An operator command: "ack" acknowledges the bed's technical alarms and goes to every
        processor that can acknowledge alarms; the receipt says whether anything matched."""
        events: list[Event] = []
        if cmd.kind == "ack":
            for cond in self.technical_conditions():
                if cond.current is not None and cmd.alert_id in (None, cond.current.id):
                    events.extend(a.to_event() for a in acknowledge_condition(cond, cmd.t))
            for p in self.processors:
                acknowledge = getattr(p, "acknowledge", None)
                if acknowledge is not None:
                    events.extend(_as_event(a) for a in acknowledge(cmd.alert_id, cmd.t))
        matched = bool(events)
        events.append({
            "type": "status", "bed": self.bed, "t": cmd.t, "command": cmd.kind,
            "alert_id": cmd.alert_id, "by": cmd.by, "matched": matched,
            "acknowledged": [e["id"] for e in events],
            "message": f"{cmd.kind} {cmd.alert_id or 'all'} by {cmd.by or 'unknown'}: "
                       + ("done" if matched else "no announced alarm matched"),
        })
        return events

    def advance(self, t_now: float, grace_s: float) -> list[Event]:
        """Live: close hops up to ``t_now - grace_s``; channels without data there get gaps."""
        t_close = t_now - grace_s
        for ch in self.channels.values():
            if not math.isnan(ch.t0) and ch.end_time < t_close:
                self._fill(ch, math.floor((t_close - ch.end_time) * ch.spec.fs))
        events = self._process_ready(t_close)
        if math.isnan(self.t_done) or t_close > self.t_done:  # no block closed up to now
            events += self.tick(t_close)
        return events

    def finish(self) -> list[Event]:
        """The source ended: process what is left (a last partial hop) and close everything."""
        started = [c for c in self.channels.values() if not math.isnan(c.t0)]
        if not started:
            return []
        t_end = max(c.end_time for c in started)
        events = self._process_block(self.t_done, t_end) if t_end > self.t_done else []
        for ch in started:
            events.extend(self._quality_events(quality.finish(ch.quality, self.bed, t_end)))
        for p in self.processors:
            events.extend(_as_event(x) for x in p.finish(t_end))
        events.extend(a.to_event() for a in sf.finish(self.source_faults, t_end))
        self.t_done = t_end
        return events

    # ---- processing --------------------------------------------------------------------

    def _watermark(self) -> float:
        ends = [c.end_time for c in self.channels.values() if not math.isnan(c.t0)]
        return min(ends) if ends else math.nan

    def _process_ready(self, t_ready: float) -> list[Event]:
        if math.isnan(t_ready) or math.isnan(self.t_done):
            return []
        t_end = math.floor(t_ready / self.hop_s + 1e-9) * self.hop_s
        if t_end <= self.t_done:
            return []
        return self._process_block(self.t_done, t_end)

    def _process_block(self, t_start: float, t_end: float) -> list[Event]:
        native: dict[str, ChannelBlock] = {}
        model: dict[str, ChannelBlock] = {}
        events: list[Event] = []
        for name, ch in self.channels.items():
            if math.isnan(ch.t0):
                continue
            blocks = self._channel_block(ch, t_end, events)
            if blocks is not None:
                native[name], model_block = blocks
                if model_block is not None:
                    model[name] = model_block
        technical = frozenset(
            name for name, ch in self.channels.items() if ch.quality.active
        ) | self.source_faults.faulted
        block = Block(self.bed, t_start, t_end, native, model, technical)
        events.extend(self.tick(t_end))
        for p in self.processors:
            events.extend(_as_event(x) for x in p.process(block))
        self.t_done = t_end
        events.sort(key=event_time)  # stable: one alarm's transitions keep their order
        return events

    def _channel_block(
        self, ch: ChannelState, t_end: float, events: list[Event]
    ) -> tuple[ChannelBlock, ChannelBlock | None] | None:
        fs = ch.spec.fs
        c = ch.counters
        start = c.processed + c.overrun
        stop = min(ch.ring.written, math.ceil((t_end - ch.t0) * fs - 1e-6))
        if stop <= start:
            return None
        _, data, valid = rb.read_index(ch.ring, start, stop)
        t0 = ch.t0 + start / fs
        q = quality.step(ch.quality, self.bed, t0, data, valid)
        events.extend(self._quality_events(q.alerts))
        c.processed += stop - start
        c.invalid += int((~q.valid).sum())
        data = np.where(q.valid, data, np.float32(np.nan))
        native = ChannelBlock(ch.spec.name, ch.spec.modality, fs, t0, data, q.valid)
        if ch.resampler is None:
            return native, None
        before = ch.resampler.aligned_out
        y, y_valid = resample.step(ch.resampler, data, q.valid)
        spec = ch.resampler.spec
        y = np.where(y_valid, y, np.float32(np.nan))
        model = ChannelBlock(
            ch.spec.name, ch.spec.modality, spec.fs_out, ch.t0 + before / spec.fs_out, y, y_valid
        )
        return native, model

    def _quality_events(self, alerts: Sequence[Alert]) -> list[Event]:
        """Sensor conditions are alarms of their own; data-missing ones feed the source fault."""
        out: list[Event] = []
        for a in alerts:
            if a.code in sf.QUALITY_CAUSES:
                sf.symptom_of(self.source_faults, a)
            else:
                out.append(a.to_event())
        return out

    def summary(self) -> dict[str, Any]:
        return {
            name: {
                "fs": ch.spec.fs,
                "modality": ch.spec.modality,
                "samples_in": ch.counters.samples_in,
                "filled": ch.counters.filled,
                "dropped_overlap": ch.counters.dropped_overlap,
                "overrun": ch.counters.overrun,
                "processed": ch.counters.processed,
                "invalid": ch.counters.invalid,
                "invalid_by_reason": dict(ch.quality.bad_samples),
            }
            for name, ch in self.channels.items()
        }


def event_time(event: Event) -> float:
    """The engine time an event speaks at: a stage at its epoch's end, the rest at ``t``."""
    if event.get("type") == "stage":
        return float(event["epoch_start"]) + float(event["epoch_s"])
    t = event.get("t")
    return math.inf if t is None else float(t)


def _as_event(x: Alert | StageEstimate | Event) -> Event:
    if isinstance(x, Alert | StageEstimate):
        return x.to_event()
    return x
