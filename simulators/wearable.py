"""A wearable emulator: SpO2 and heart rate at 1 Hz and a 3-axis accelerometer at 25 Hz, sent as
1-s MQTT packets (``sleepstream simulate wearable``).

Values are plausible, not physiological truth: SpO2 around 96 % with a few 3-5 % desaturations,
heart rate around 62 bpm with slow variation, the accelerometer at rest (1 g on z) with short
movement bursts. The generator is seeded, so a run is reproducible.
"""

from __future__ import annotations

import numpy as np

from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.simulators.device import (
    BrokerControl,
    MqttDevice,
    PlayStats,
    SimSignal,
    play,
    rate_groups,
)
from sleepstream.simulators.faults import NO_FAULTS, FaultSchedule


def wearable_signals(duration_s: float, *, seed: int = 0) -> list[SimSignal]:
    rng = np.random.default_rng(seed)
    n1 = int(duration_s)
    t = np.arange(n1, dtype=np.float64)
    spo2 = 96.0 + 0.4 * rng.standard_normal(n1)
    for onset in rng.uniform(0, max(1.0, duration_s - 60), size=max(1, n1 // 600)):
        depth = rng.uniform(3.0, 5.0)
        spo2 -= depth * np.exp(-0.5 * ((t - onset - 20) / 8.0) ** 2)
    hr = 62 + 4 * np.sin(2 * np.pi * t / 300.0) + rng.standard_normal(n1)
    n25 = int(duration_s * 25)
    acc = 0.01 * rng.standard_normal((n25, 3))
    acc[:, 2] += 1.0
    for onset in rng.uniform(0, max(1.0, duration_s - 5), size=max(1, n1 // 900)):
        i = int(onset * 25)
        acc[i : i + 50] += 0.3 * rng.standard_normal((len(acc[i : i + 50]), 3))
    ones1, ones25 = np.ones(n1, dtype=bool), np.ones(n25, dtype=bool)
    out = [
        SimSignal("SpO2", 1.0, "%", np.round(spo2, 1).astype(np.float32), ones1),
        SimSignal("HR", 1.0, "bpm", np.round(hr).astype(np.float32), ones1),
    ]
    out += [SimSignal(f"acc_{a}", 25.0, "g", acc[:, i].astype(np.float32), ones25)
            for i, a in enumerate("xyz")]
    return out


async def run_wearable(
    *,
    broker: BrokerSettings,
    site: str,
    bed: str,
    duration_s: float,
    speed: float = 1.0,
    faults: FaultSchedule = NO_FAULTS,
    broker_control: BrokerControl | None = None,
    seed: int = 0,
) -> PlayStats:
    groups = rate_groups(wearable_signals(duration_s, seed=seed))
    async with MqttDevice(broker=broker, site=site, bed=bed, faults=faults) as device:
        await device.wait_connected()
        await play(groups, duration_s, device, speed=speed, packet_s=1.0, faults=faults,
                   broker_control=broker_control, stats=device.stats)
    return device.stats
