"""Replay a recorded night as a live device over LSL or MQTT (``sleepstream simulate replay``).

Every signal keeps its rate; signals sharing a rate travel together (one LSL outlet, or one MQTT
topic per channel) with a sample-counter channel per rate. Faults come from a TOML schedule
(``simulators.faults``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from sleepstream.drivers.edf import Recording, read_recording
from sleepstream.drivers.mqtt_common import BrokerSettings, topic_safe
from sleepstream.simulators.device import (
    BrokerControl,
    LslDevice,
    MqttDevice,
    PlayStats,
    SimSignal,
    play,
    rate_groups,
)
from sleepstream.simulators.faults import NO_FAULTS, FaultSchedule


def signals_of(rec: Recording, *, labels: Sequence[str] = (), mqtt_names: bool = False
               ) -> list[SimSignal]:
    """The recording's signals (optionally a subset), labels made topic-safe for MQTT."""
    chosen = [s for s in rec.signals if not labels or s.label in labels]
    return [
        SimSignal(topic_safe(s.label) if mqtt_names else s.label, s.spec.fs, s.spec.unit,
                  s.data, s.valid)
        for s in chosen
    ]


async def replay_to_mqtt(
    rec: Recording,
    *,
    broker: BrokerSettings,
    site: str,
    bed: str,
    speed: float = 1.0,
    packet_s: float = 1.0,
    faults: FaultSchedule = NO_FAULTS,
    broker_control: BrokerControl | None = None,
    labels: Sequence[str] = (),
    duration_s: float | None = None,
) -> PlayStats:
    groups = rate_groups(signals_of(rec, labels=labels, mqtt_names=True))
    async with MqttDevice(broker=broker, site=site, bed=bed, faults=faults) as device:
        await device.wait_connected()
        await play(groups, duration_s or rec.duration, device, speed=speed, packet_s=packet_s,
                   faults=faults, broker_control=broker_control, stats=device.stats)
    return device.stats


async def replay_to_lsl(
    rec: Recording,
    *,
    name: str,
    source_id: str | None = None,
    speed: float = 1.0,
    packet_s: float = 1.0,
    faults: FaultSchedule = NO_FAULTS,
    labels: Sequence[str] = (),
    duration_s: float | None = None,
    wait_for_consumer_s: float = 0.0,
    linger_s: float = 1.0,
) -> PlayStats:
    """Replay over LSL; with ``wait_for_consumer_s`` the first packet waits (that long at most)
    until an inlet is connected, so a receiver started together with it misses nothing."""
    faults.check_transport("lsl")
    groups = rate_groups(signals_of(rec, labels=labels))
    device = LslDevice(name=name, source_id=source_id, groups=groups)
    try:
        if wait_for_consumer_s > 0:
            await device.wait_for_consumers(wait_for_consumer_s)
        device.restart_clock()
        stats = await play(groups, duration_s or rec.duration, device, speed=speed,
                           packet_s=packet_s, faults=faults)
        await asyncio.sleep(linger_s)  # an outlet that vanishes at once may take its last chunk
        return stats
    finally:
        device.close()


def load(path: str | Path) -> Recording:
    return read_recording(path)
