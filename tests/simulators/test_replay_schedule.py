"""The replay device: drift-free schedule, counter channels, faults applied per packet, and the
``simulate replay`` command against a real broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from sleepstream.drivers.codecs import decode_packet
from sleepstream.engine.app.cli import main as cli_main
from sleepstream.engine.types import F32Array
from sleepstream.simulators.device import Group, SimSignal, counter_label, play, rate_groups
from sleepstream.simulators.faults import parse_faults
from tests.peers import Mosquitto


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, float, int, float, F32Array]] = []
        self.offline_calls: list[bool] = []

    async def send(self, group: Group, seq: int, t0: float, data: F32Array, t_data: float
                   ) -> None:
        self.sent.append((time.monotonic(), group.fs, seq, t0, data))

    async def offline(self, down: bool) -> None:
        self.offline_calls.append(down)


def _signals(seconds: int) -> list[SimSignal]:
    return [
        SimSignal("EEG", 64.0, "uV", np.ones(64 * seconds, np.float32),
                  np.ones(64 * seconds, bool)),
        SimSignal("SpO2", 1.0, "%", np.full(seconds, 97, np.float32), np.ones(seconds, bool)),
    ]


def test_rate_groups_carry_a_counter() -> None:
    groups = rate_groups(_signals(3))
    assert [g.labels for g in groups] == [("EEG", counter_label(64.0)),
                                          ("SpO2", counter_label(1.0))]
    np.testing.assert_array_equal(groups[0].data[:, -1], np.arange(192))


async def test_drift_free_schedule_and_faults() -> None:
    faults = parse_faults({"fault": [
        {"kind": "sensor_off", "start_s": 2, "duration_s": 1, "channels": ["SpO2"]},
        {"kind": "clock_jump", "start_s": 5, "offset_s": 100},
        {"kind": "outlet_restart", "start_s": 7, "duration_s": 2},
    ]})
    rec = Recorder()
    speed, seconds = 40.0, 20
    start = time.monotonic()
    stats = await play(rate_groups(_signals(seconds)), seconds, rec, speed=speed, faults=faults)
    eeg = [s for s in rec.sent if s[1] == 64.0]
    assert [s[2] // 64 for s in eeg] == [k for k in range(seconds) if k not in (7, 8)]
    due = np.array([start + (s[2] / 64 + 1) / speed for s in eeg])
    late = np.array([s[0] for s in eeg]) - due
    assert late.min() >= -1e-3  # never released before it is due (how late is the bench's matter)
    spo2 = {s[2]: s[4][:, 0] for s in rec.sent if s[1] == 1.0}
    assert np.isnan(spo2[2]).all() and not np.isnan(spo2[3]).any()
    assert {s[2] // 64: s[3] for s in eeg}[6] == pytest.approx(106.0)
    assert rec.offline_calls == [True, False] and stats.outages == 1


def test_simulate_replay_command_publishes_counted_packets(
    tmp_path: Path, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    import edfio

    path = tmp_path / "night.edf"
    sig = edfio.EdfSignal(np.sin(np.arange(32 * 6) / 5.0), sampling_frequency=32,
                          label="EEG Fpz-Cz", physical_dimension="uV")
    edfio.Edf([sig]).write(path)
    bed = f"b{uuid.uuid4().hex[:6]}"
    got: list[tuple[str, bytes]] = []

    async def listen(ready: asyncio.Event) -> None:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as sub:
            await sub.subscribe(f"sleepstream/v1/default/{bed}/data/+", qos=1)
            ready.set()
            async with asyncio.timeout(20):
                async for m in sub.messages:
                    got.append((str(m.topic), bytes(m.payload)))
                    if len(got) == 12:
                        return

    async def scenario() -> None:
        ready = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(listen(ready))
            await ready.wait()
            code = await asyncio.to_thread(cli_main, [
                "simulate", "replay", str(path), "--to", "mqtt", "--speed", "20",
                "--port", str(mosquitto.port), "--bed", bed, "--json"])
            assert code == 0

    asyncio.run(scenario())
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["packets"] == 6 and figures["samples"] == 32 * 6
    topics = sorted({t.rsplit("/", 1)[1] for t, _ in got})
    assert topics == ["EEG_Fpz-Cz", "counter-32Hz"]
    counter = sorted((decode_packet(p) for t, p in got if t.endswith("counter-32Hz")),
                     key=lambda p: p.seq)
    np.testing.assert_array_equal(np.concatenate([p.samples for p in counter]), np.arange(192))
