"""MQTT v5 source (one bed), on aiomqtt (the sink is ``drivers.mqtt_sink``).

Source: subscribes to ``sleepstream/v1/<site>/<bed>/data/+``; each topic is one declared channel
carrying msgpack packets (``drivers.codecs``). A rejected payload is counted by reason, logged
at most once per reason a minute whatever its topic, and dropped. Packets are put in order per
channel (``drivers.sequence``): gaps become invalid samples, duplicates are dropped and counted,
reordering inside a small window is undone. Reconnects (capped jittered backoff) keep every
channel's state, so the samples an outage swallowed come back as one accounted gap.

Queues: aiomqtt's incoming queue holds at most ``max_queued_messages`` (beyond, aiomqtt discards:
the samples lost come back here as an accounted ``packet_loss`` gap); frames wait in a bounded
outbox (``drivers.outbox``: newest frame dropped and counted).

Timestamps: sample ``seq`` of a channel lies at ``base + seq / fs`` on the engine clock, ``base``
fixed by the device clock (``t0``) and the arrival of the bed's first packet. A ``t0`` that
disagrees with the sample count by more than ``jump_s`` is a clock jump, reported and re-anchored.

Source events (``SourceEvent.code``), stamped on the sample timeline (the first sample concerned):
``stream_lost`` (no packet on a channel for ``lost_after_s``; ends at the next packet),
``broker_lost`` (connection down; ends on resubscribe), ``sensor_off`` (device-flagged NaN
samples), and the repeatable faults ``packet_loss`` (released gaps), ``duplicate_packets``,
``reordered_packets``, ``clock_jump``, ``conflicting_packets`` (a second publisher on a channel:
same seq, other samples) and ``sequence_jump`` (a packet out of the sequence window: held as a
restart candidate, never filled). A repeatable fault is one condition per channel while it
repeats (``drivers.held_faults``): it ends ``fault_hold_s`` after its last occurrence, so a flood
that loses thousands of packets is one ``packet_loss`` alarm, its samples all counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import numpy as np

from sleepstream.drivers.codecs import DEFAULT_LIMITS, CodecLimits, Packet, decode_packet
from sleepstream.drivers.held_faults import HeldFaultsState
from sleepstream.drivers.mqtt_common import (
    BrokerSettings,
    broker_from_config,
    channel_of,
    check_segment,
    data_topic,
    keep_connected,
    untrusted_log,
)
from sleepstream.drivers.outbox import Outbox
from sleepstream.drivers.runs import sensor_off_events
from sleepstream.drivers.sequence import Segment, SequenceState
from sleepstream.engine.channel_map import modality_of
from sleepstream.engine.clock import EngineClock, MonotonicClock
from sleepstream.engine.errors import PayloadError
from sleepstream.engine.protocols import ChannelsAnnounced, SourceEvent
from sleepstream.engine.types import MODALITIES, ChannelSpec, Frame


@dataclass(slots=True)
class ChannelState:
    spec: ChannelSpec
    order: SequenceState
    base: float | None = None  # engine time of sample 0
    t0_anchor: float = 0.0  # device time of sample seq_anchor
    seq_anchor: int = 0
    last_arrival: float | None = None  # monotonic seconds
    lost: bool = False
    sensor_off: bool = False

    def t_of(self, seq: int) -> float:
        return (self.base or 0.0) + seq / self.spec.fs


@dataclass(slots=True)
class MqttSourceStats:
    messages: int = 0
    accepted: int = 0
    samples: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    disconnects: int = 0
    clock_jumps: int = 0
    sequence_jumps: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())


class MqttSource:
    """One bed's channels over MQTT. ``async with`` starts the reader; ``frames()`` drains it."""

    def __init__(
        self,
        *,
        broker: BrokerSettings,
        site: str,
        bed: str,
        channels: Sequence[ChannelSpec],
        limits: CodecLimits = DEFAULT_LIMITS,
        clock: EngineClock | None = None,
        reorder_packets: int = 8,
        reorder_wait_s: float = 1.0,
        lost_after_s: float = 3.0,
        jump_s: float = 2.0,
        max_frames: int = 1024,
        max_queued_messages: int = 10_000,
        fault_hold_s: float = 5.0,
    ) -> None:
        if not channels:
            raise ValueError(f"bed {bed!r}: an MQTT source needs at least one declared channel")
        self.broker = broker
        self.site = check_segment(site, "site")
        self.bed = check_segment(bed, "bed")
        for spec in channels:
            check_segment(spec.name, "channel")
        self._specs = tuple(channels)
        self.limits = limits
        self.clock: EngineClock = clock or MonotonicClock()
        self.lost_after_s = lost_after_s
        self.jump_s = jump_s
        self.state = {
            s.name: ChannelState(
                s, SequenceState(window=reorder_packets, max_wait_s=reorder_wait_s, fs=s.fs)
            )
            for s in self._specs
        }
        self.stats = MqttSourceStats()
        self._prefix = data_topic(self.site, self.bed, "")
        self._offset: float | None = None  # engine - device clock, fixed at the first packet
        self._broker_down = False
        self._max_frames = max_frames
        self._max_queued = max_queued_messages
        self._outbox = Outbox(max_frames=max_frames)
        self._stack: contextlib.AsyncExitStack | None = None
        self._down_since: tuple[float, float] | None = None  # (event t, monotonic) of the outage
        self.faults = HeldFaultsState(self._event, hold_s=fault_hold_s)
        self.connected = asyncio.Event()

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        return self._specs

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    async def __aenter__(self) -> MqttSource:
        self._outbox = Outbox(max_frames=self._max_frames)
        stack = contextlib.AsyncExitStack()
        tg = await stack.enter_async_context(asyncio.TaskGroup())
        self._tasks = [
            tg.create_task(self._connection_loop(), name=f"mqtt-source-{self.bed}"),
            tg.create_task(self._watchdog(), name=f"mqtt-watchdog-{self.bed}"),
        ]
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self._tasks:
            task.cancel()
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
        self.faults.expire(time.monotonic(), force=True)
        self._outbox.close()

    def frames(self) -> AsyncIterator[Frame | SourceEvent | ChannelsAnnounced]:
        return self._outbox.items()

    # -- connection ---------------------------------------------------------------------------

    async def _connection_loop(self) -> None:
        await keep_connected(
            self.broker, self._session, identifier=f"sleepstream-{self.bed}-{uuid.uuid4().hex[:8]}",
            what=f"bed {self.bed}", max_queued_incoming=self._max_queued, on_down=self._down,
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        await client.subscribe(self._prefix + "+", qos=1)
        self.stats.connects += 1
        self._set_broker_down(False)
        self.connected.set()
        async for message in client.messages:
            self.handle(str(message.topic), message.payload)

    def _down(self, error: aiomqtt.MqttError | None) -> None:
        self.connected.clear()
        self._set_broker_down(True, str(error) if error is not None else "connection ended")

    def _set_broker_down(self, down: bool, why: str = "") -> None:
        if down == self._broker_down:
            return
        self._broker_down = down
        if down:
            self.stats.disconnects += 1
        started = [c for c in self.state.values() if c.base is not None]
        names = tuple(c.spec.name for c in started) or tuple(self.state)
        t = max((c.t_of(c.order.next_seq or 0) for c in started), default=self.clock.now())
        if down:
            self._down_since = (t, time.monotonic())
        elif self._down_since is not None:  # no samples came meanwhile: the end is the onset
            onset, since = self._down_since  # plus the outage's length
            t = max(t, onset + time.monotonic() - since)
            self._down_since = None
        msg = f"MQTT broker {self.broker.host}:{self.broker.port} " + (
            f"unreachable ({why})" if down else "reachable again"
        )
        self._event("broker_lost", names, t, down, msg)

    async def _watchdog(self) -> None:
        tick = max(0.02, min(self.lost_after_s, min(
            c.order.max_wait_s for c in self.state.values())) / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for ch in self.state.values():
                self._release(ch, ch.order.flush_stale(now))
                if (
                    not ch.lost
                    and ch.last_arrival is not None
                    and now - ch.last_arrival > self.lost_after_s
                ):
                    ch.lost = True
                    t = ch.t_of(ch.order.next_seq or 0)
                    msg = f"no data on {ch.spec.name} for {self.lost_after_s:g} s"
                    self._event("stream_lost", (ch.spec.name,), t, True, msg)
            self.faults.expire(now, progress=self._data_time)

    def _data_time(self, channels: tuple[str, ...]) -> float | None:
        """The sample time the channels have been released up to (the earliest of them)."""
        started = [self.state[c] for c in channels if c in self.state]
        if not started or any(c.base is None or c.order.next_seq is None for c in started):
            return None
        return min(c.t_of(c.order.next_seq or 0) for c in started)

    # -- one message --------------------------------------------------------------------------

    def handle(self, topic: str, payload: Any) -> None:
        """Account for one received message; never raises."""
        self.stats.messages += 1
        try:
            name = channel_of(topic, self._prefix)
            ch = self.state.get(name)
            if ch is None:
                raise PayloadError("unknown_channel", f"channel {name!r} is not declared")
            packet = decode_packet(payload, limits=self.limits)
            if abs(packet.fs - ch.spec.fs) > 1e-6 * ch.spec.fs:
                raise PayloadError(
                    "rate_mismatch", f"{name}: packet at {packet.fs} Hz, declared {ch.spec.fs} Hz"
                )
        except PayloadError as exc:
            self._reject(exc.reason, topic, str(exc))
            return
        except Exception as exc:  # a bug must not take the bed down: count it loudly
            untrusted_log.exception("bed %s: unexpected error decoding a payload", self.bed)
            self._reject("internal", topic, repr(exc))
            return
        self.stats.accepted += 1
        self._accept(ch, packet)

    def _reject(self, reason: str, topic: str, message: str) -> None:
        self.stats.rejected[reason] += 1
        # one line per reason a minute in the whole process, whatever the bed or topic (the
        # reasons are a fixed set): 10,000 distinct bad topics are one line, not 10,000
        untrusted_log.warning(f"rejected payload ({reason}): bed %s, topic %s: %s", self.bed,
                              topic[:200], message)

    def _accept(self, ch: ChannelState, p: Packet) -> None:
        now = time.monotonic()
        name = ch.spec.name
        n = len(p)
        rejected, expected_seq = ch.order.out_of_window, ch.order.next_seq
        released, note = ch.order.push(Segment(p.seq, p.samples, p.valid), now)
        if ch.order.out_of_window > rejected:
            self._sequence_notice(ch, p, "arrived after a packet out of the sequence window, "
                                  "which was dropped (a forgery?)")
        if note == "out_of_window":  # a forgery or a restart: neither a gap nor a sign of life
            return
        if self._offset is None:
            self._offset = self.clock.now() - (p.t0 + n / p.fs)
        if ch.base is None or note == "resync":
            if note == "resync":
                self._sequence_notice(ch, p, "continues a packet out of the sequence window: "
                                      "the device restarted; resynchronised")
            ch.base = self._offset + p.t0 - p.seq / ch.spec.fs
            ch.t0_anchor, ch.seq_anchor = p.t0, p.seq
        else:
            expected = ch.t0_anchor + (p.seq - ch.seq_anchor) / ch.spec.fs
            if abs(p.t0 - expected) > self.jump_s:
                self.stats.clock_jumps += 1
                t = ch.t_of(p.seq)
                msg = f"{name}: device clock jumped by {p.t0 - expected:+.3f} s"
                self.faults.hit("clock_jump", (name,), t, t, now, msg)
                ch.t0_anchor, ch.seq_anchor = p.t0, p.seq
        ch.last_arrival = now
        if ch.lost:
            ch.lost = False
            start = max(p.seq, expected_seq if expected_seq is not None else p.seq)
            self._event("stream_lost", (name,), ch.t_of(start), False, f"data on {name} again")
        if note in ("duplicate", "late", "reordered", "conflict"):
            code = {"duplicate": "duplicate_packets", "conflict": "conflicting_packets"}.get(
                note, "reordered_packets")
            t = ch.t_of(p.seq)
            msg = f"{name}: {note} packet seq {p.seq} ({n} samples)"
            if note == "conflict":
                msg += "; two publishers on one channel (check the broker's ACL)"
            self.faults.hit(code, (name,), t, t, now, msg, amount=1)
        self._release(ch, released)

    def _sequence_notice(self, ch: ChannelState, p: Packet, what: str) -> None:
        """A ``sequence_jump``: one condition (and one log line) while they repeat."""
        self.stats.sequence_jumps += 1
        t = ch.t_of(ch.order.next_seq or 0) if ch.base is not None else self.clock.now()
        msg = f"{ch.spec.name}: packet seq {p.seq} {what} (expected seq {ch.order.next_seq})"
        if ("sequence_jump", (ch.spec.name,)) not in self.faults.active:
            untrusted_log.warning("sequence jump: bed %s: %s", self.bed, msg)
        self.faults.hit("sequence_jump", (ch.spec.name,), t, t, time.monotonic(), msg, amount=1)

    def _release(self, ch: ChannelState, segments: list[Segment]) -> None:
        """Hand released segments over as frames. While a channel has two publishers
        (``conflicting_packets`` active) its samples go out invalid: neither is trusted, so a
        forger can blank a channel (a technical alarm) but not feed it false values."""
        name = ch.spec.name
        distrust = ("conflicting_packets", (name,)) in self.faults.active
        for seg in segments:
            n = seg.data.shape[0]
            if n == 0:
                continue
            t = ch.t_of(seg.seq) + np.arange(n, dtype=np.float64) / ch.spec.fs
            if seg.gap:
                msg = f"{name}: {n} samples never arrived (seq {seg.seq}..{seg.end - 1})"
                self.faults.hit("packet_loss", (name,), float(t[0]), ch.t_of(seg.end),
                                time.monotonic(), msg, amount=n)
            else:
                flag = [ch.sensor_off]
                for ev in sensor_off_events(flag, seg.valid.reshape(n, 1), t, (name,)):
                    self._outbox.put(ev)
                ch.sensor_off = flag[0]
            self.stats.samples += n
            self._outbox.put(
                Frame(
                    channels=(name,),
                    timestamps=t,
                    data=seg.data.reshape(n, 1),
                    valid=(np.zeros((n, 1), dtype=bool) if distrust
                           else seg.valid.reshape(n, 1)),
                    seq=seg.seq,
                )
            )

    def _event(self, code: str, channels: tuple[str, ...], t: float, active: bool,
               message: str) -> None:
        self._outbox.put(SourceEvent(code, channels, float(t), active, message))


def channel_from_table(item: Any, rules: Sequence[Any]) -> ChannelSpec:
    """``{name = "SpO2", fs = 1.0, unit = "%"}`` (modality from the rules or ``modality``)."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ValueError(f"an MQTT channel needs a table with name and fs, got {item!r}")
    rule = modality_of(item["name"], rules)
    modality = item.get("modality", rule.modality if rule else None)
    if modality == "none":
        modality = None
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"channel {item['name']!r}: modality {modality!r} is not one of "
                         f"{list(MODALITIES)} or 'none'")
    return ChannelSpec(item["name"], float(item["fs"]), modality, str(item.get("unit", "")))


def source_from_config(opts: Any, *, bed: Any, config: Any,
                       clock: EngineClock | None = None) -> MqttSource:
    """Build a source from a ``[[beds.sources]]`` table of kind ``mqtt``."""
    rules = tuple(getattr(bed, "channel_rules", ()))
    return MqttSource(
        broker=broker_from_config(config),
        site=str(getattr(bed, "site", "default")),
        bed=str(bed.id),
        channels=[channel_from_table(c, rules) for c in opts.get("channels", [])],
        clock=clock,
        lost_after_s=float(opts.get("lost_after_s", opts.get("timeout_s", 3.0))),
        reorder_packets=int(opts.get("reorder_packets", 8)),
        reorder_wait_s=float(opts.get("reorder_wait_s", 1.0)),
        fault_hold_s=float(opts.get("fault_hold_s", 5.0)),
    )
