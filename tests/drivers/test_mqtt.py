"""MQTT source and sink against a real Mosquitto broker (unique topics per test)."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiomqtt
import numpy as np

from sleepstream.drivers.codecs import encode_packet
from sleepstream.drivers.mqtt import MqttSource
from sleepstream.drivers.mqtt_common import BrokerSettings, data_topic
from sleepstream.drivers.mqtt_sink import MqttSink
from sleepstream.engine.protocols import SourceEvent
from sleepstream.engine.types import ChannelSpec, Frame
from tests.peers import Mosquitto

FS = 16.0


def _settings(broker: Mosquitto) -> BrokerSettings:
    return BrokerSettings(host=broker.host, port=broker.port, backoff_initial_s=0.05,
                          backoff_max_s=0.5)


def _packet(k: int, *, fs: float = FS, t_shift: float = 0.0) -> bytes:
    n = int(fs)
    return encode_packet(seq=k * n, t0=100.0 + k + t_shift, fs=fs, unit="count",
                         samples=np.arange(k * n, (k + 1) * n))


async def _collect(source: MqttSource, until: int, timeout_s: float = 10.0,
                   ) -> tuple[list[Frame], list[SourceEvent]]:
    frames: list[Frame] = []
    events: list[SourceEvent] = []
    async with asyncio.timeout(timeout_s):
        async for item in source.frames():
            if isinstance(item, Frame):
                frames.append(item)
                if frames[-1].seq + len(frames[-1]) >= until:
                    break
            else:
                events.append(item)
    return frames, events


async def _rest(source: MqttSource) -> list[SourceEvent]:
    """The events a closed source still held (the held faults it ended on closing)."""
    return [item async for item in source.frames() if isinstance(item, SourceEvent)]


async def test_ordered_accounted_stream_with_faults(mosquitto: Mosquitto) -> None:
    bed = f"bed-{uuid.uuid4().hex[:8]}"
    specs = [ChannelSpec("counter", FS, None, "count")]
    order = [0, 1, 1, 3, 2, 4, 6, 7, 8, 9, 10, 11, 12, 13]  # dup 1, swap 2/3, lose 5
    source = MqttSource(broker=_settings(mosquitto), site="t", bed=bed, channels=specs,
                        reorder_packets=4, reorder_wait_s=0.3)
    async with source, aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
        await asyncio.wait_for(source.connected.wait(), 5)
        for k in order:
            await pub.publish(data_topic("t", bed, "counter"), _packet(k), qos=1)
        frames, events = await _collect(source, until=14 * int(FS))
    events += await _rest(source)
    seq = np.concatenate([f.seq + np.arange(len(f)) for f in frames])
    data = np.concatenate([f.data[:, 0] for f in frames])
    valid = np.concatenate([f.valid[:, 0] for f in frames])
    np.testing.assert_array_equal(seq, np.arange(14 * FS))
    np.testing.assert_array_equal(data[valid], seq[valid])
    assert (~valid).sum() == FS and not valid[5 * 16 : 6 * 16].any()
    ts = np.concatenate([f.timestamps for f in frames])
    np.testing.assert_allclose(np.diff(ts), 1 / FS, atol=1e-9)
    codes = {(e.code, e.active) for e in events}
    assert {("duplicate_packets", True), ("reordered_packets", True), ("packet_loss", True),
            ("packet_loss", False)} <= codes
    loss = next(e for e in events if e.code == "packet_loss" and e.active)
    assert abs(loss.t - ts[5 * 16]) < 1e-9
    st = source.state["counter"].order
    assert (st.duplicates, st.reordered, st.gaps) == (1, 1, 1)


async def test_clock_jump_sensor_off_and_stream_lost(mosquitto: Mosquitto) -> None:
    bed = f"bed-{uuid.uuid4().hex[:8]}"
    specs = [ChannelSpec("spo2", 1.0, "spo2", "%")]
    source = MqttSource(broker=_settings(mosquitto), site="t", bed=bed, channels=specs,
                        lost_after_s=0.4)
    topic = data_topic("t", bed, "spo2")
    async with source, aiomqtt.Client(mosquitto.host, mosquitto.port) as pub:
        await asyncio.wait_for(source.connected.wait(), 5)
        for k in range(6):
            x = [np.nan] * 4 if k == 2 else [97.0] * 4
            payload = encode_packet(seq=4 * k, t0=4 * k + (30.0 if k >= 4 else 0.0), fs=1.0,
                                    unit="%", samples=x)
            await pub.publish(topic, payload, qos=1)
        await asyncio.sleep(0.8)  # silence: stream lost
        await pub.publish(topic, encode_packet(seq=24, t0=54.0, fs=1.0, unit="%",
                                               samples=[97.0] * 4), qos=1)
        frames, events = await _collect(source, until=28)
    t_of = {int(f.seq): float(f.timestamps[0]) for f in frames}
    got = [(e.code, e.active, round(e.t - t_of[0], 6)) for e in events]
    assert ("sensor_off", True, 8.0) in got and ("sensor_off", False, 12.0) in got
    assert ("clock_jump", True, 16.0) in got
    assert ("stream_lost", True, 24.0) in got and ("stream_lost", False, 24.0) in got


async def test_sink_topics_retained_status_and_last_will(mosquitto: Mosquitto) -> None:
    site = f"s{uuid.uuid4().hex[:8]}"
    sink = MqttSink(broker=_settings(mosquitto), site=site, engine_id="e1")
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as sub:
        await sub.subscribe(f"sleepstream/v1/{site}/#", qos=1)
        async with sink:
            await sink.emit({"type": "stage", "bed": "b1", "stage": "N2"})
            await sink.emit({"type": "alert", "bed": "b1", "code": "stream_lost"})
            await sink.emit({"type": "status", "bed": "b1", "state": "running"})
            await sink.flush()
        got: dict[str, list[dict[str, object]]] = {}
        async with asyncio.timeout(5):
            async for m in sub.messages:
                got.setdefault(str(m.topic), []).append(json.loads(bytes(m.payload)))
                if len(got.get(f"sleepstream/v1/{site}/engine/e1/status", [])) == 2:
                    break
    assert got[f"sleepstream/v1/{site}/b1/stage"][0]["stage"] == "N2"
    assert got[f"sleepstream/v1/{site}/b1/alert"][0]["code"] == "stream_lost"
    assert [s["state"] for s in got[f"sleepstream/v1/{site}/engine/e1/status"]] == [
        "online", "offline"]
    # retained: a late subscriber sees the bed status, offline since the engine closed
    assert [s["state"] for s in got[f"sleepstream/v1/{site}/b1/status"]] == [
        "running", "offline"]
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as late:
        await late.subscribe(f"sleepstream/v1/{site}/b1/status")
        async with asyncio.timeout(5):
            msg = await anext(aiter(late.messages))
        assert msg.retain and json.loads(bytes(msg.payload))["state"] == "offline"


async def test_last_wills_mark_a_killed_engine_and_its_beds_offline(mosquitto: Mosquitto
                                                                    ) -> None:
    site = f"s{uuid.uuid4().hex[:8]}"
    script = (
        "import asyncio, os\n"
        "from sleepstream.drivers.mqtt_common import BrokerSettings\n"
        "from sleepstream.drivers.mqtt_sink import MqttSink\n"
        "async def main():\n"
        f"    sink = MqttSink(broker=BrokerSettings(port={mosquitto.port}), site='{site}',"
        " engine_id='e9')\n"
        "    async with sink:\n"
        "        await sink.emit({'type': 'status', 'bed': 'b1', 'state': 'running'})\n"
        "        await sink.emit({'type': 'status', 'bed': 'b2', 'state': 'running'})\n"
        "        await sink.flush()\n"
        "        while sink.wills_held != {'b1', 'b2'}:\n"
        "            await asyncio.sleep(0.01)\n"
        "        os.kill(os.getpid(), 9)\n"
        "asyncio.run(main())\n"
    )
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=root)
    assert await asyncio.wait_for(proc.wait(), 20) == -9
    states: dict[str, str] = {}
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as sub:
        await sub.subscribe(f"sleepstream/v1/{site}/+/status")
        await sub.subscribe(f"sleepstream/v1/{site}/engine/e9/status")
        async with asyncio.timeout(10):
            async for msg in sub.messages:
                assert msg.retain
                states[str(msg.topic).split("/")[3]] = json.loads(bytes(msg.payload))["state"]
                if len(states) == 3:
                    break
    assert states == {"engine": "offline", "b1": "offline", "b2": "offline"}


async def test_forged_packets_from_another_client_do_not_kill_the_channel(
        mosquitto: Mosquitto) -> None:
    bed = f"bed-{uuid.uuid4().hex[:8]}"
    specs = [ChannelSpec("hr", FS, "hr", "bpm")]
    source = MqttSource(broker=_settings(mosquitto), site="t", bed=bed, channels=specs,
                        reorder_wait_s=0.2)
    topic = data_topic("t", bed, "hr")
    async with (source, aiomqtt.Client(mosquitto.host, mosquitto.port) as device,
                aiomqtt.Client(mosquitto.host, mosquitto.port) as attacker):
        await asyncio.wait_for(source.connected.wait(), 5)
        await device.publish(topic, _packet(0), qos=1)
        await asyncio.sleep(0.1)
        for seq in (2**31, 2**20):  # 40-byte packets far ahead: no 8 GiB of NaN, no dead channel
            await attacker.publish(topic, encode_packet(seq=seq, t0=100.0, fs=FS, unit="bpm",
                                                        samples=[25.0]), qos=1)
            await asyncio.sleep(0.1)
        await attacker.publish(topic, encode_packet(seq=16, t0=101.0, fs=FS, unit="bpm",
                                                    samples=[25.0] * 16), qos=1)
        await asyncio.sleep(0.1)
        for k in range(1, 6):
            await device.publish(topic, _packet(k), qos=1)
        frames, events = await _collect(source, until=6 * int(FS))
    order = source.state["hr"].order
    assert order.gap_samples == 0 and order.late == 0 and order.out_of_window >= 1
    assert order.conflicts == 1  # the real seq 16 lost to the forgery, and said so
    data = np.concatenate([f.data[:, 0] for f in frames])
    np.testing.assert_array_equal(data[32:], np.arange(32, 96))  # the device goes on
    events += await _rest(source)
    codes = {e.code for e in events}
    assert {"sequence_jump", "conflicting_packets"} <= codes
    # two forgeries in a row are one sequence_jump condition, so one technical alarm
    assert [e.active for e in events if e.code == "sequence_jump"] == [True, False]
