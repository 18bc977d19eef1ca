"""Plays signals as a live device over MQTT or LSL, on a drift-free schedule, with faults.

Signals are grouped by sampling rate; each group gets a sample-counter channel
(``counter-<fs>Hz``, value = the group's running sample index) so a receiver can prove that no
sample was lost or duplicated. Packets of ``packet_s`` seconds are released when their last
sample is due: ``start + t_end / speed`` on the monotonic clock, never by accumulated sleeps.

The device clock is the recording's time (0 at the first sample) plus every clock jump so far; for
LSL it is offset to ``pylsl.local_clock()`` at the start, as a device on this host would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiomqtt
import numpy as np

from sleepstream.drivers.codecs import encode_packet
from sleepstream.drivers.mqtt_common import BrokerSettings, data_topic, keep_connected, topic_safe
from sleepstream.engine.types import BoolArray, F32Array
from sleepstream.simulators.faults import NO_FAULTS, Fault, FaultSchedule

log = logging.getLogger(__name__)

BrokerControl = Callable[[bool], Awaitable[None]]  # False: stop the broker, True: start it


@dataclass(frozen=True, slots=True)
class SimSignal:
    label: str
    fs: float
    unit: str
    data: F32Array  # (n,) NaN where not valid
    valid: BoolArray


@dataclass(frozen=True, slots=True)
class Group:
    """Channels sharing one rate, counter last: ``data`` (N, C) float32."""

    fs: float
    labels: tuple[str, ...]
    units: tuple[str, ...]
    data: F32Array


def counter_label(fs: float) -> str:
    return f"counter-{fs:g}Hz"


def rate_groups(signals: Sequence[SimSignal]) -> list[Group]:
    by_fs: dict[float, list[SimSignal]] = {}
    for s in signals:
        by_fs.setdefault(s.fs, []).append(s)
    groups = []
    for fs, sigs in sorted(by_fs.items(), reverse=True):
        n = min(s.data.shape[0] for s in sigs)
        cols = [np.where(s.valid[:n], s.data[:n], np.nan) for s in sigs]
        cols.append(np.arange(n, dtype=np.float64))
        groups.append(Group(fs, (*(s.label for s in sigs), counter_label(fs)),
                            (*(s.unit for s in sigs), "count"),
                            np.stack(cols, axis=1).astype(np.float32)))
    return groups


@dataclass(slots=True)
class PlayStats:
    packets: int = 0
    samples: int = 0
    skipped_packets: int = 0  # not sent: loss faults, outages, or no connection
    duplicates: int = 0
    reordered: int = 0
    delayed: int = 0
    outages: int = 0
    fault_onsets: list[tuple[str, float]] = field(default_factory=list)


class Sender(Protocol):
    async def send(self, group: Group, seq: int, t0: float, data: F32Array, t_data: float
                   ) -> None: ...

    async def offline(self, down: bool) -> None: ...


async def play(
    groups: Sequence[Group],
    duration_s: float,
    sender: Sender,
    *,
    speed: float = 1.0,
    packet_s: float = 1.0,
    faults: FaultSchedule = NO_FAULTS,
    broker_control: BrokerControl | None = None,
    stats: PlayStats | None = None,
) -> PlayStats:
    """Release every packet of ``groups`` through ``sender`` on schedule, applying ``faults``."""
    stats = stats or PlayStats()
    start = time.monotonic()
    n_packets = math.ceil(duration_s / packet_s - 1e-9)
    current: Fault | None = None
    for k in range(n_packets):
        t_a, t_b = k * packet_s, min((k + 1) * packet_s, duration_s)
        delay = start + t_b / speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        outage = faults.outage(t_a)
        if outage is not current:
            await _switch_outage(current, outage, sender, broker_control, stats)
            current = outage
        if outage is not None:
            stats.skipped_packets += len(groups)
            continue
        for g in groups:
            i_a, i_b = round(t_a * g.fs), min(round(t_b * g.fs), g.data.shape[0])
            if i_b <= i_a:
                continue
            data = g.data[i_a:i_b].copy()
            t = np.arange(i_a, i_b, dtype=np.float64) / g.fs
            for c, label in enumerate(g.labels[:-1]):
                data[faults.sensor_off(label, t), c] = np.nan
            await sender.send(g, i_a, i_a / g.fs + faults.clock_offset(t_a), data, t_a)
            stats.packets += 1
            stats.samples += i_b - i_a
    if current is not None:
        await _switch_outage(current, None, sender, broker_control, stats)
    return stats


async def _switch_outage(old: Fault | None, new: Fault | None, sender: Sender,
                         broker_control: BrokerControl | None, stats: PlayStats) -> None:
    for fault, down in ((old, False), (new, True)):
        if fault is None:
            continue
        if down:
            stats.outages += 1
            stats.fault_onsets.append((fault.kind, fault.start_s))
        if fault.kind == "broker_outage":
            if broker_control is None:
                log.warning("broker_outage needs a broker this simulator controls; skipped")
            else:
                await broker_control(not down)
        else:
            await sender.offline(down)


class MqttDevice:
    """A device publishing one topic per channel (QoS 1) with packet faults applied.

    It keeps no backlog: a packet that cannot be published because the broker is away is
    dropped and counted, as a real device with a small buffer would.
    """

    def __init__(self, *, broker: BrokerSettings, site: str, bed: str,
                 faults: FaultSchedule = NO_FAULTS, qos: int = 1) -> None:
        self.broker = broker
        self.site, self.bed = site, bed
        self.faults = faults
        self.qos = qos
        self.stats = PlayStats()
        self._rng = faults.rng()
        self._held: dict[str, bytes] = {}
        self._client: aiomqtt.Client | None = None
        self._online = asyncio.Event()
        self._online.set()
        self._lost = asyncio.Event()
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> MqttDevice:
        self._tg = await self._stack.enter_async_context(asyncio.TaskGroup())
        self._conn = self._tg.create_task(self._connection(), name=f"device-{self.bed}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.sleep(0)
        for label, payload in list(self._held.items()):
            await self._publish(label, payload)
        self._conn.cancel()
        await self._stack.aclose()

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while self._client is None:
                await asyncio.sleep(0.01)

    async def _connection(self) -> None:
        async def ready() -> None:  # online again: a loss from now on ends the next session
            await self._online.wait()
            self._lost.clear()

        async def session(client: aiomqtt.Client) -> None:
            self._client = client
            await self._lost.wait()

        def down(_error: aiomqtt.MqttError | None) -> None:
            self._client = None

        await keep_connected(self.broker, session, what=f"device {self.bed}", ready=ready,
                             identifier=f"device-{self.bed}-{uuid.uuid4().hex[:6]}", on_down=down)

    async def offline(self, down: bool) -> None:
        if down:
            self._online.clear()
            self._lost.set()
            self._client = None
        else:
            self._online.set()

    async def _publish(self, label: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            self.stats.skipped_packets += 1
            return
        try:
            await client.publish(data_topic(self.site, self.bed, topic_safe(label)), payload,
                                 qos=self.qos, timeout=1.0)
        except (aiomqtt.MqttError, TimeoutError):
            self.stats.skipped_packets += 1
            self._client = None
            self._lost.set()

    async def _delayed(self, delay: float, label: str, payload: bytes) -> None:
        await asyncio.sleep(delay)
        await self._publish(label, payload)

    async def send(self, group: Group, seq: int, t0: float, data: F32Array, t_data: float
                   ) -> None:
        for c, label in enumerate(group.labels):
            payload = encode_packet(seq=seq, t0=t0, fs=group.fs, unit=group.units[c],
                                    samples=data[:, c])
            fault = self.faults.packet_fault(label, t_data)
            kind = fault.kind if fault is not None else None
            if kind == "packet_loss":
                self.stats.skipped_packets += 1
                continue
            if kind == "jitter" and fault is not None:
                self.stats.delayed += 1
                delay = self._rng.uniform(0.0, fault.max_delay_s)
                self._tg.create_task(self._delayed(delay, label, payload))
                continue
            if kind == "reorder" and label not in self._held:
                self._held[label] = payload
                continue
            await self._publish(label, payload)
            if kind == "duplicate":
                self.stats.duplicates += 1
                await self._publish(label, payload)
            held = self._held.pop(label, None)
            if held is not None:
                self.stats.reordered += 1
                await self._publish(label, held)


class LslDevice:
    """A device with one LSL outlet per rate group (labels, units and types in the description).

    ``offline(True)`` destroys the outlets (an outlet restart), ``offline(False)`` recreates them
    with the same source_id so receivers can find them again.
    """

    def __init__(self, *, name: str, source_id: str | None = None, stream_type: str = "EEG",
                 groups: Sequence[Group] = ()) -> None:
        import pylsl

        self._pylsl = pylsl
        self.name = name
        self.source_id = source_id or f"{name}-{uuid.uuid4().hex[:8]}"
        self.stream_type = stream_type
        self.groups = tuple(groups)
        self.origin = pylsl.local_clock()
        self._outlets: dict[float, object] = {}
        self._open()

    def stream_name(self, group: Group) -> str:
        return self.name if len(self.groups) == 1 else f"{self.name}-{group.fs:g}Hz"

    def stream_source_id(self, group: Group) -> str:
        return self.source_id if len(self.groups) == 1 else f"{self.source_id}-{group.fs:g}Hz"

    def _open(self) -> None:
        from sleepstream.drivers.lsl_channels import lsl_type
        from sleepstream.engine.channel_map import modality_of

        def _modality(label: str) -> str | None:
            rule = modality_of(label)
            return rule.modality if rule else None

        lsl = self._pylsl
        for g in self.groups:
            info = lsl.StreamInfo(self.stream_name(g), self.stream_type, len(g.labels), g.fs,
                                  lsl.cf_float32, self.stream_source_id(g))
            info.set_channel_labels(list(g.labels))
            info.set_channel_units(list(g.units))
            info.set_channel_types([lsl_type(_modality(label)) for label in g.labels])
            self._outlets[g.fs] = lsl.StreamOutlet(info, chunk_size=0, max_buffered=60)

    def restart_clock(self) -> None:
        """The device clock reads the recording's time 0 now."""
        self.origin = self._pylsl.local_clock()

    async def wait_for_consumers(self, timeout_s: float) -> bool:
        """Wait until every outlet has an inlet (so a test loses nothing at the start)."""
        deadline = time.monotonic() + timeout_s
        for outlet in list(self._outlets.values()):
            left = max(0.0, deadline - time.monotonic())
            if not await asyncio.to_thread(outlet.wait_for_consumers, left):  # type: ignore[attr-defined]
                return False
        return True

    async def offline(self, down: bool) -> None:
        if down:
            self._outlets.clear()
        else:
            self._open()

    async def send(self, group: Group, seq: int, t0: float, data: F32Array, t_data: float
                   ) -> None:
        outlet = self._outlets.get(group.fs)
        if outlet is None:
            return
        stamps = self.origin + t0 + np.arange(data.shape[0]) / group.fs
        outlet.push_chunk(data, timestamp=stamps.tolist())  # type: ignore[attr-defined]

    def close(self) -> None:
        self._outlets.clear()
