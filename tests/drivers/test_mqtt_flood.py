"""A flood of packets: every lost sample counted, one technical alarm per fault, few log lines."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid

import aiomqtt
import numpy as np
import paho.mqtt.client as paho
import pytest

from sleepstream.drivers.codecs import encode_packet
from sleepstream.drivers.mqtt import MqttSource
from sleepstream.drivers.mqtt_common import BrokerSettings, data_topic
from sleepstream.engine.protocols import SourceEvent
from sleepstream.engine.types import ChannelSpec, Frame
from tests.peers import Mosquitto

FS, N = 256.0, 8  # samples per second, samples per packet
SPEC = ChannelSpec("ECG", FS, "ecg", "uV")


def _payload(k: int) -> bytes:
    return encode_packet(seq=k * N, t0=k * N / FS, fs=FS, unit="uV", samples=[1.0] * N)


def _payloads(n: int) -> list[bytes]:
    return [_payload(k) for k in range(n)]


def _onsets(events: list[SourceEvent]) -> dict[str, int]:
    """How many conditions the source announced, by code (each is at most one alarm)."""
    out: dict[str, int] = {}
    for ev in events:
        if ev.active:
            out[ev.code] = out.get(ev.code, 0) + 1
    return out


def test_half_of_twenty_thousand_packets_lost_is_one_packet_loss_alarm() -> None:
    source = MqttSource(broker=BrokerSettings(), site="t", bed="b1", channels=[SPEC],
                        max_frames=100_000)
    topic = data_topic("t", "b1", SPEC.name)
    rng = random.Random(7)
    payloads = _payloads(20_000)
    # the first and the last ten arrive (the device goes on), 47 % of the rest are lost
    kept = [p for k, p in enumerate(payloads) if k == 0 or k >= 19_990 or rng.random() > 0.47]
    for payload in kept:
        source.handle(topic, payload)
    source.faults.expire(0.0, force=True)
    items = list(source.outbox._items)
    frames = [f for f in items if isinstance(f, Frame)]
    events = [e for e in items if isinstance(e, SourceEvent)]
    order = source.state[SPEC.name].order
    valid = sum(int(f.valid.sum()) for f in frames)
    assert not order.pending and valid == len(kept) * N
    assert order.gap_samples == (len(payloads) - len(kept)) * N
    assert order.gaps > 5000  # thousands of holes ...
    assert _onsets(events) == {"packet_loss": 1}  # ... are one condition
    assert [e.active for e in events] == [True, False]
    end = next(e for e in events if e.code == "packet_loss" and not e.active)
    assert f"{order.gaps} occurrences" in end.message


def _blast(port: int, payloads: list[bytes], topic: str) -> float:
    """Publish as fast as paho can (QoS 0), from a thread; the seconds it took."""
    import time

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.monotonic()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=0)
        client.publish(topic + "-end", b"", qos=1).wait_for_publish(30)  # all before it sent
        return time.monotonic() - start
    finally:
        client.disconnect()
        client.loop_stop()


async def test_a_flood_of_fifty_thousand_packets_is_counted_and_alarmed_once(
        mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    bed = f"flood-{uuid.uuid4().hex[:6]}"
    topic = data_topic("t", bed, SPEC.name)
    broker = BrokerSettings(host=mosquitto.host, port=mosquitto.port)
    # held longer than the flood's 1,562 s of data: however the losses fall (a loaded machine
    # accepts long runs between them), the whole flood is one packet_loss condition
    source = MqttSource(broker=broker, site="t", bed=bed, channels=[SPEC], fault_hold_s=3600.0,
                        lost_after_s=30.0, max_queued_messages=500, max_frames=200_000)
    flood = 50_000
    items: list[Frame | SourceEvent] = []
    stop = asyncio.Event()

    async def device_goes_on() -> None:  # after the flood, one packet every 10 ms
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as device:
            k = flood
            while not stop.is_set():
                await device.publish(topic, _payload(k), qos=1)
                k += 1
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.WARNING, logger="sleepstream.drivers.mqtt_client"):
        async with source:
            await asyncio.wait_for(source.connected.wait(), 5)
            blast_s = await asyncio.to_thread(_blast, mosquitto.port, _payloads(flood), topic)
            async with asyncio.timeout(120), asyncio.TaskGroup() as tg:
                tg.create_task(device_goes_on())
                async for item in source.frames():
                    items.append(item)  # type: ignore[arg-type]
                    if isinstance(item, Frame) and item.seq >= (flood + 20) * N:
                        stop.set()
                        break
        items += [item async for item in source.frames()]  # type: ignore[misc]
    frames = [f for f in items if isinstance(f, Frame)]
    events = [e for e in items if isinstance(e, SourceEvent)]
    order = source.state[SPEC.name].order
    seq = np.concatenate([f.seq + np.arange(len(f)) for f in frames])
    valid = np.concatenate([f.valid[:, 0] for f in frames])
    np.testing.assert_array_equal(seq, np.arange(order.next_seq))  # every sample accounted:
    assert int((~valid).sum()) == order.gap_samples  # received, or counted as lost
    assert int(valid.sum()) == (source.stats.accepted - len(order.pending)) * N
    onsets = _onsets(events)
    assert onsets.get("packet_loss", 0) == (1 if order.gaps else 0)  # one alarm, not thousands
    assert set(onsets) <= {"packet_loss"}
    discards = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(discards) <= 1  # not one line per discarded message
    print(f"flood: {flood} packets in {blast_s:.2f} s, {source.stats.accepted} accepted, "
          f"{order.gaps} gaps, "
          f"{order.gap_samples} samples lost and counted, {onsets.get('packet_loss', 0)} "
          f"packet_loss condition(s), {len(discards)} queue-full log line(s)")
