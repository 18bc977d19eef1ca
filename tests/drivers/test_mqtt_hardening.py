"""MQTT secure defaults and hostile traffic, against real Mosquitto brokers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from sleepstream.drivers.mqtt import MqttSource
from sleepstream.drivers.mqtt_common import BrokerSettings, keep_connected
from sleepstream.engine.errors import SourceError
from sleepstream.engine.types import ChannelSpec
from sleepstream.simulators.broker import free_port
from tests.peers import Mosquitto, refusing_broker


def test_tls_without_a_ca_file_verifies_with_the_system_store() -> None:
    import ssl

    ctx = BrokerSettings(tls=True).tls_context()
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert BrokerSettings().tls_context() is None


async def test_tls_never_falls_back_to_clear_text(mosquitto: Mosquitto) -> None:
    broker = BrokerSettings(host=mosquitto.host, port=mosquitto.port, tls=True, timeout_s=2.0)
    with pytest.raises(aiomqtt.MqttError):
        async with broker.client(identifier="tls-probe"):
            pass


async def test_refused_credentials_end_after_a_bounded_number_of_tries(tmp_path: Path) -> None:
    proc, port = refusing_broker(tmp_path)
    try:
        broker = BrokerSettings(port=port, username="device", password="wrong",
                                backoff_initial_s=0.01, backoff_max_s=0.05)

        async def session(client: aiomqtt.Client) -> None:
            await asyncio.sleep(10)

        with pytest.raises(SourceError, match="refused the credentials 3 times"):
            async with asyncio.timeout(10):
                await keep_connected(broker, session, identifier="x", what="bed b1")
    finally:
        proc.terminate()
        proc.wait(5)


def test_untrusted_input_is_logged_once_a_minute_in_all(caplog: pytest.LogCaptureFixture) -> None:
    from sleepstream.drivers.mqtt_commands import MqttCommandSource
    from sleepstream.drivers.mqtt_common import untrusted_log_limiter

    untrusted_log_limiter.reset()
    sources = [MqttSource(broker=BrokerSettings(), site="t", bed=f"b{b}",
                          channels=[ChannelSpec("hr", 1.0, "hr", "bpm")]) for b in range(10)]
    commands = MqttCommandSource(broker=BrokerSettings(), site="t")
    with caplog.at_level(logging.WARNING, logger="sleepstream.drivers.untrusted"):
        for i in range(10_000):  # 10,000 distinct unknown topics spread over 10 beds
            source = sources[i % 10]
            source.handle(f"sleepstream/v1/t/{source.bed}/data/x{i}", b"\x80")
            commands._decode(f"sleepstream/v1/t/b{i % 10}/ack", b"not json")
    assert sum(s.stats.rejected["unknown_channel"] for s in sources) == 10_000
    assert sum(commands.rejected.values()) == 10_000
    assert len(caplog.records) == 2  # one line per kind of rejection, not per topic or bed


async def test_broker_lost_ends_after_its_onset(private_mosquitto: Mosquitto) -> None:
    broker = BrokerSettings(host=private_mosquitto.host, port=private_mosquitto.port,
                            backoff_initial_s=0.05, backoff_max_s=0.2)
    source = MqttSource(broker=broker, site="t", bed=f"b-{uuid.uuid4().hex[:6]}",
                        channels=[ChannelSpec("hr", 1.0, "hr", "bpm")])
    async with source:
        await asyncio.wait_for(source.connected.wait(), 5)
        private_mosquitto.stop()
        await asyncio.sleep(8.0)  # the outage of the issue: 8 s
        private_mosquitto.start()
        events = []
        async with asyncio.timeout(20):
            async for item in source.frames():
                events.append(item)
                if len([e for e in events if getattr(e, "code", "") == "broker_lost"]) == 2:
                    break
    onset, end = [e for e in events if getattr(e, "code", "") == "broker_lost"]
    assert onset.active and not end.active and end.t - onset.t >= 7.9
    print(f"broker_lost: onset {onset.t:.3f}, end {end.t:.3f}, {end.t - onset.t:.3f} s")


def _secured_broker(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    passwd = shutil.which("mosquitto_passwd")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if passwd is None or not Path(binary).exists():
        pytest.skip("mosquitto and mosquitto_passwd are needed (apt-get install -y mosquitto)")
    pw = tmp_path / "pw"
    for i, (user, secret) in enumerate((("sleepstream", "engine-pw"), ("bed-1", "d1"),
                                        ("bed-2", "d2"))):
        subprocess.run([passwd, "-b", *(["-c"] if i == 0 else []), str(pw), user, secret],
                       check=True)
    acl = Path(__file__).resolve().parents[2] / "examples" / "mosquitto-acl.conf"
    port = free_port()
    (tmp_path / "m.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
        f"acl_file {acl}\nlog_dest none\nuser root\n")
    proc = subprocess.Popen([binary, "-c", str(tmp_path / "m.conf")])
    _wait_listening(port)
    return proc, port


def _wait_listening(port: int) -> None:
    import socket
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not listen on {port}")


async def test_the_example_acl_lets_a_device_publish_only_into_its_own_bed(
        tmp_path: Path) -> None:
    from sleepstream.drivers.codecs import encode_packet
    from sleepstream.drivers.mqtt_common import data_topic

    proc, port = _secured_broker(tmp_path)
    try:
        engine = BrokerSettings(port=port, username="sleepstream", password="engine-pw")
        sources = {b: MqttSource(broker=engine, site="ward-a", bed=b,
                                 channels=[ChannelSpec("hr", 1.0, "hr", "bpm")])
                   for b in ("bed-1", "bed-2")}
        async with sources["bed-1"], sources["bed-2"], aiomqtt.Client(
                "127.0.0.1", port, username="bed-1", password="d1",
                protocol=aiomqtt.ProtocolVersion.V5) as device, aiomqtt.Client(
                "127.0.0.1", port, username="sleepstream", password="engine-pw") as station:
            await station.subscribe("sleepstream/v1/ward-a/+/alert", qos=1)
            for s in sources.values():
                await asyncio.wait_for(s.connected.wait(), 5)
            with contextlib.suppress(aiomqtt.MqttError):  # a forged alarm for the station
                await device.publish("sleepstream/v1/ward-a/bed-1/alert", b'{"code":"x"}',
                                     qos=1)
            # a marker the engine may publish, to know the forged alarm had its chance
            await station.publish("sleepstream/v1/ward-a/engine/alert", b"marker", qos=1)
            async with asyncio.timeout(5):
                first = await anext(aiter(station.messages))
            assert bytes(first.payload) == b"marker"  # the forgery never reached it
            for bed, hr in (("bed-1", 60.0), ("bed-2", 25.0)):  # its own bed, then a forgery
                for k in range(3):
                    payload = encode_packet(seq=k, t0=float(k), fs=1.0, unit="bpm",
                                            samples=[hr])
                    with contextlib.suppress(aiomqtt.MqttError):  # v5: refused publishes
                        await device.publish(data_topic("ward-a", bed, "hr"), payload, qos=1)
            await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(5)
    assert sources["bed-1"].stats.accepted == 3
    assert sources["bed-2"].stats.messages == 0  # the broker kept bed-1's device out of bed-2


async def test_a_sink_refused_by_the_broker_fails_its_emits_with_the_reason(
        tmp_path: Path) -> None:
    from sleepstream.drivers.mqtt_sink import MqttSink
    from sleepstream.engine.errors import SinkError

    proc, port = _secured_broker(tmp_path)
    try:
        broker = BrokerSettings(port=port, username="sleepstream", password="wrong",
                                backoff_initial_s=0.01, backoff_max_s=0.05, auth_tries=2)
        sink = MqttSink(broker=broker, site="ward-a")
        async with sink:
            await sink.emit({"type": "status", "bed": "bed-1", "state": "online"})
            async with asyncio.timeout(10):  # a hang guard: two refusals take milliseconds
                while sink.error is None:
                    await asyncio.sleep(0.02)
            with pytest.raises(SinkError, match="refused the credentials 2 times"):
                await sink.emit({"type": "stage", "bed": "bed-1", "stage": "N2"})
    finally:
        proc.terminate()
        proc.wait(5)


def test_the_secure_example_config_verifies_tls_with_the_system_store() -> None:
    import ssl

    from sleepstream.drivers.mqtt_common import broker_from_config
    from sleepstream.engine.config import load_config

    root = Path(__file__).resolve().parents[2]
    broker = broker_from_config(load_config(root / "examples" / "secure.toml"))
    ctx = broker.tls_context()
    assert broker.tls_ca is None and ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED
    assert (broker.username, broker.port, broker.auth_tries) == ("sleepstream", 8883, 3)


def _handled(source: MqttSource, packets: list[bytes]) -> tuple[list[Any], list[Any]]:
    """Feed packets through ``handle`` (no broker) and take what the source released."""
    from sleepstream.engine.protocols import SourceEvent as Ev
    from sleepstream.engine.types import Frame

    topic = f"sleepstream/v1/t/{source.bed}/data/HR"
    for payload in packets:
        source.handle(topic, payload)
    items = list(source.outbox._items)
    source.outbox._items.clear()
    return [i for i in items if isinstance(i, Frame)], [i for i in items if isinstance(i, Ev)]


def _hr(k: int, value: float) -> bytes:
    from sleepstream.drivers.codecs import encode_packet

    return encode_packet(seq=k * 4, t0=k * 4.0, fs=1.0, unit="bpm", samples=[value] * 4)


def test_a_restarted_device_is_resynchronised_with_one_sequence_jump_condition() -> None:
    import numpy as np

    source = MqttSource(broker=BrokerSettings(), site="t", bed="b1",
                        channels=[ChannelSpec("HR", 1.0, "hr", "bpm")], max_frames=10_000)
    _handled(source, [_hr(k, 60.0) for k in range(100, 110)])
    frames, events = _handled(source, [_hr(k, 61.0) for k in range(10)])  # counter back to 0
    source.faults.expire(0.0, force=True)
    events += _handled(source, [])[1]
    assert source.state["HR"].order.resyncs == 1 and source.state["HR"].order.gap_samples == 0
    np.testing.assert_array_equal(np.concatenate([f.data[:, 0] for f in frames]), 61.0)
    assert all(f.valid.all() for f in frames) and frames[0].seq == 0
    assert [(e.code, e.active) for e in events] == [("sequence_jump", True),
                                                    ("sequence_jump", False)]


def test_a_forger_racing_the_device_blanks_the_channel_but_cannot_feed_it() -> None:
    import time

    import numpy as np

    source = MqttSource(broker=BrokerSettings(), site="t", bed="b1", fault_hold_s=0.0,
                        channels=[ChannelSpec("HR", 1.0, "hr", "bpm")], max_frames=10_000)
    _handled(source, [_hr(k, 60.0) for k in range(5)])
    race = [p for k in range(5, 30) for p in (_hr(k, 25.0), _hr(k, 60.0))]  # forgery first
    frames, events = _handled(source, race)
    valid = np.concatenate([f.valid[:, 0] for f in frames])
    data = np.concatenate([f.data[:, 0] for f in frames])
    assert not valid[4:].any()  # after the first conflict, nothing of either is trusted
    assert not (valid & (data == 25.0))[4:].any()
    assert source.state["HR"].order.conflicts == 25
    assert [e.code for e in events if e.active] == ["conflicting_packets"]
    source.faults.expire(time.monotonic())  # the forger stopped: the condition ends ...
    frames, _ = _handled(source, [_hr(k, 60.0) for k in range(30, 35)])
    assert all(f.valid.all() for f in frames) and len(frames) == 5  # ... and the device is back
