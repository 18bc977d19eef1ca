"""``sleepstream run --config`` on the shipped example, fed by the simulators, in a subprocess."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import aiomqtt
import pytest

from sleepstream.drivers.edf import read_recording
from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.simulators.replay import replay_to_lsl
from sleepstream.simulators.wearable import run_wearable
from tests.e2e.harness import EXAMPLE, NAP, ROOT
from tests.peers import Mosquitto


def _config(tmp_path: Path, port: int) -> tuple[Path, dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = {"site": f"site-{tag}", "psg": f"psg-{tag}", "sid": f"psg-{tag}-sid"}
    text = EXAMPLE.read_text()
    for old, new in (
        ("port = 1883", f"port = {port}"),
        ('name = "sleepstream-psg"', f'name = "{names["psg"]}"'),
        ('source_id = "sleepstream-psg-1"', f'source_id = "{names["sid"]}"'),
        ('site = "ward-a"', f'site = "{names["site"]}"'),
        ('path = "events.jsonl"', f'path = "{tmp_path / "events.jsonl"}"'),
        ('name = "sleepstream-events"', f'name = "events-{tag}"'),
        ('checkpoint = "default"', 'checkpoint = "none"'),
        ('client_id = "sleepstream-engine"', f'client_id = "engine-{tag}"'),
    ):
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "engine.toml"
    path.write_text(text)
    return path, names


async def test_run_command_on_the_example_config(tmp_path: Path, mosquitto: Mosquitto) -> None:
    if not NAP.exists():
        pytest.skip("the shared nap recording (../shared/data/nap-eeg) is not present")
    rec = read_recording(NAP)
    config, names = _config(tmp_path, mosquitto.port)
    status_topic = f"sleepstream/v1/{names['site']}/engine/engine-{names['site'][5:]}/status"
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as sub:
        await sub.subscribe(status_topic, qos=1)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sleepstream", "run", "--config", str(config), "--seconds", "9",
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        async with asyncio.timeout(15):
            first = await anext(aiter(sub.messages))
        assert json.loads(bytes(first.payload))["state"] == "online"
        broker = BrokerSettings(host=mosquitto.host, port=mosquitto.port)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(replay_to_lsl(rec, name=names["psg"], source_id=names["sid"],
                                         speed=10.0, duration_s=30.0, wait_for_consumer_s=10.0))
            tg.create_task(run_wearable(broker=broker, site=names["site"], bed="wearable-1",
                                        duration_s=40.0, speed=10.0))
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        async with asyncio.timeout(10):
            last = await anext(aiter(sub.messages))
        assert json.loads(bytes(last.payload))["state"] == "offline"
    text = out.decode()
    assert proc.returncode == 0, text
    assert "bed psg-1" in text and "bed wearable-1" in text
    counters = [ln.split() for ln in text.splitlines() if ln.strip().startswith("counter-")]
    assert len(counters) == 3 and all(int(c[3]) > 0 for c in counters)
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert {e["bed"] for e in events if e["type"] == "status"} == {"psg-1", "wearable-1"}
