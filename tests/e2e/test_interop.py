"""The ecosystem's own clients around ``sleepstream run`` (a subprocess): mne-lsl's PlayerLSL
plays a real recording in, a plain paho-mqtt client and a pylsl inlet read what comes out, and
the engine killed with SIGKILL leaves every retained status offline."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pylsl
import pytest

from tests.e2e.harness import NAP, ROOT
from tests.peers import Mosquitto

PLAY_S = 75.0  # two 30-s epochs of the nap, then the player goes quiet


@dataclass
class MqttReader:
    """A plain paho-mqtt client keeping every message of a site (retained ones flagged)."""

    port: int
    site: str
    messages: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port)
        self.client.subscribe(f"sleepstream/v1/{self.site}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, json.loads(msg.payload), bool(msg.retain)))

    def payloads(self, leaf: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for t, p, _ in self.messages if t.endswith("/" + leaf)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _config(tmp_path: Path, port: int, site: str, sid: str, events: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(f"""
[model]
checkpoint = "default"
[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "engine-{site}"
[[beds]]
id = "psg-1"
site = "{site}"
  [[beds.sources]]
  kind = "lsl"
  source_id = "{sid}"
  timeout_s = 30.0
  lost_after_s = 1.0
[[sinks]]
kind = "mqtt"
site = "{site}"
[[sinks]]
kind = "lsl"
name = "{events}"
[[sinks]]
kind = "jsonl"
path = "{tmp_path / 'events.jsonl'}"
""")
    return path


def _is_stream_lost(alert: dict[str, Any]) -> bool:
    causes = alert.get("causes") or ()
    return alert.get("kind") == "technical" and "stream_lost" in (alert.get("code"), *causes)


async def _until(what: Any, timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):  # a hang guard, not a speed limit
        while not what():
            await asyncio.sleep(0.2)


async def test_player_lsl_into_run_read_by_paho_and_pylsl_then_killed(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    mne = pytest.importorskip("mne")
    player_lsl = pytest.importorskip("mne_lsl.player")
    if not NAP.exists():
        pytest.skip("the shared nap recording (../shared/data/nap-eeg) is not present")
    tag = uuid.uuid4().hex[:8]
    site, sid, events_name = f"site-{tag}", f"player-{tag}", f"events-{tag}"
    raw = mne.io.read_raw_edf(NAP, preload=True, verbose=False).crop(0, PLAY_S)
    raw.set_channel_types({c: c.split()[0].lower() for c in raw.ch_names if " " in c},
                          verbose=False)  # EEG / EOG / EMG as the labels say
    player = player_lsl.PlayerLSL(raw, chunk_size=32, n_repeat=1, name=sid, source_id=sid)
    reader = MqttReader(mosquitto.port, site)
    config = _config(tmp_path, mosquitto.port, site, sid, events_name)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sleepstream", "run", "--config", str(config), cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    markers: list[tuple[dict[str, Any], float]] = []
    try:
        found = await asyncio.to_thread(pylsl.resolve_byprop, "name", events_name, 1, 60.0)
        assert found, "the engine's marker outlet never appeared"
        inlet = pylsl.StreamInlet(found[0])
        await asyncio.to_thread(inlet.open_stream, 10.0)
        player.start()
        staged = lambda: any(p.get("stage") for p in reader.payloads("stage"))  # noqa: E731
        lost = lambda: any(_is_stream_lost(p) for p in reader.payloads("alert"))  # noqa: E731
        await _until(lambda: staged() and lost(), PLAY_S + 90.0)
        while True:
            sample, stamp = await asyncio.to_thread(inlet.pull_sample, 1.0)
            if sample is None:
                break
            markers.append((json.loads(sample[0]), stamp))
        proc.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(proc.wait(), 10) == -signal.SIGKILL
        statuses = {f"sleepstream/v1/{site}/psg-1/status",
                    f"sleepstream/v1/{site}/engine/engine-{site}/status"}

        def offline() -> bool:
            with reader.lock:
                last = {t: p.get("state") for t, p, _ in reader.messages if t in statuses}
            return last == dict.fromkeys(statuses, "offline")

        await _until(offline, 30.0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        with contextlib.suppress(RuntimeError):  # it stops by itself at the end of the data
            player.stop()
        reader.close()
    stages = [p for p in reader.payloads("stage") if p.get("stage")]
    assert {p["bed"] for p in stages} == {"psg-1"} and "eeg" in stages[0]["modalities"]
    # the same stages on the LSL marker outlet, stamped at their epoch's onset on the LSL clock
    lsl_stages = [(m, t) for m, t in markers if m.get("type") == "stage" and m.get("stage")]
    lsl_epochs = [m["epoch_start"] for m, _ in lsl_stages]
    assert lsl_epochs and lsl_epochs == [p["epoch_start"] for p in stages][:len(lsl_epochs)]
    assert all(t == pytest.approx(m["lsl_onset"], abs=1e-6) for m, t in lsl_stages)
    # the stream_lost alarm comes after the data the stages were made of
    alarm = next(p for p in reader.payloads("alert") if _is_stream_lost(p))
    assert alarm["onset"] >= stages[0]["epoch_start"] + stages[0]["epoch_s"]
