"""Alarm acknowledgement end to end: a live engine with an MQTT sink takes an ``ack`` published
by ``sleepstream ack`` on a real Mosquitto; an unacknowledged high-priority alarm escalates."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sleepstream.drivers.mqtt_commands import decode_ack
from sleepstream.engine.app.cli import main as cli_main
from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.clock import MonotonicClock
from sleepstream.engine.config import parse_config
from sleepstream.engine.errors import PayloadError
from sleepstream.engine.sinks import MemorySink
from sleepstream.engine.types import ChannelSpec, Frame

SPO2 = ChannelSpec("SpO2", 1.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)


class LowSpO2:
    """A live oximeter reading 84 % once a second on the engine clock (hypoxemia < 88 %)."""

    def __init__(self, clock: MonotonicClock) -> None:
        self.clock = clock

    @property
    def channels(self):
        return (SPO2,)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def frames(self):
        t0 = self.clock.now()
        for i in range(120):
            await asyncio.sleep(max(0.0, t0 + i - self.clock.now()))
            yield Frame(("SpO2",), np.array([t0 + i]), np.array([[84.0]], np.float32),
                        np.ones((1, 1), bool), seq=i)


def _config(broker):
    return parse_config({
        "engine": {"live_grace_s": 0.5},
        "model": {"checkpoint": "none"},
        "mqtt": {"host": broker.host, "port": broker.port},
        "alerts": {"hypoxemia88": {"delay_s": 2.0}, "hypoxemia90": {"enabled": False},
                   "escalate_after_s": 2.0},
        "beds": [{"id": "bed-ack", "site": "ward", "sources": [{"kind": "edf", "path": "-"}]}],
        "sinks": [{"kind": "mqtt", "site": "ward"}],
    })


async def _wait_for(sink, predicate, timeout_s):
    async with asyncio.timeout(timeout_s):
        while True:
            hits = [e for e in sink.events if predicate(e)]
            if hits:
                return hits[0]
            await asyncio.sleep(0.05)


async def _scenario(broker):
    config = _config(broker)
    clock = MonotonicClock()
    sink = MemorySink()
    engine, beds, _ = build_engine(config, live=True, extra_sinks=[sink], clock=clock,
                                   drivers={"bed-ack": [LowSpO2(clock)]})
    task = asyncio.create_task(engine.run())
    try:
        def is_hyp(state):
            return lambda e: e.get("code") == "hypoxemia88" and e.get("state") == state

        active = await _wait_for(sink, is_hyp("active"), 20)
        assert active["kind"] == "physiological" and active["priority"] == "high"
        escalated = await _wait_for(sink, is_hyp("escalated"), 10)
        assert escalated["id"] == active["id"]
        code = await asyncio.to_thread(
            cli_main, ["ack", "--bed", "bed-ack", "--site", "ward", "--id", active["id"],
                       "--by", "nurse-7", "--host", broker.host, "--port", str(broker.port)])
        assert code == 0
        acked = await _wait_for(sink, is_hyp("acknowledged"), 10)
        assert acked["id"] == active["id"]
        receipt = await _wait_for(sink, lambda e: e.get("command") == "ack", 5)
        assert receipt["by"] == "nurse-7" and receipt["matched"] is True
        code = await asyncio.to_thread(
            cli_main, ["ack", "--bed", "bed-ack", "--site", "ward", "--id", "bed-ack/nope/1",
                       "--host", broker.host, "--port", str(broker.port)])
        assert code == 1  # nothing matched: the command says so
        await asyncio.sleep(3.0)  # acknowledged: no second escalation
        assert sum(1 for e in sink.events if is_hyp("escalated")(e)) == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    return beds


def test_ack_over_mqtt_acknowledges_the_alarm_and_stops_escalation(mosquitto):
    beds = asyncio.run(_scenario(mosquitto))
    assert beds[0].failed is None


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [("sleepstream/v1/ward/bed/ack", b"{", "json"),
     ("sleepstream/v1/ward/bed/ack", b"[1]", "type"),
     ("sleepstream/v1/ward/bed/ack", b'{"id": 5}', "id"),
     ("sleepstream/v1/ward/bed/ack", b"x" * 5000, "size"),
     ("sleepstream/v1/ward/bed/stage", b"{}", "topic")],
)
def test_bad_ack_payloads_are_refused_with_a_reason(topic, payload, reason):
    with pytest.raises(PayloadError) as err:
        decode_ack(topic, payload, 0.0)
    assert err.value.reason == reason


def test_ack_with_no_id_means_every_alarm_of_the_bed():
    cmd = decode_ack("sleepstream/v1/ward/bed-3/ack", b'{"by": "dr"}', 12.5)
    assert (cmd.bed, cmd.alert_id, cmd.by, cmd.t) == ("bed-3", None, "dr", 12.5)
