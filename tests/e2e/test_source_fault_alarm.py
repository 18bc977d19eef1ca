"""One alarm per condition, live: a 5-s packet loss on the wearable simulator (real Mosquitto, the
example config's MQTT source and pipeline, real time) is ONE technical alarm naming the signal
channels it hit, never a sample counter, and it is acknowledged like a physiological alarm."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.engine.types import Command
from sleepstream.simulators.faults import parse_faults
from sleepstream.simulators.wearable import run_wearable
from tests.e2e.harness import LiveRun, example_config, run_live, wait_subscribed
from tests.peers import Mosquitto

LOSS = {"seed": 1, "fault": [{"kind": "packet_loss", "start_s": 8.0, "duration_s": 5.0}]}
SIGNALS = ["SpO2", "HR", "acc_x", "acc_y", "acc_z"]


async def _wait_for(run: LiveRun, predicate, timeout_s: float = 30.0):  # hang guard only
    async with asyncio.timeout(timeout_s):
        while True:
            hits = [e for e in run.collect.events if predicate(e)]
            if hits:
                return hits[0]
            await asyncio.sleep(0.05)


async def test_packet_loss_is_one_technical_alarm_naming_the_channels_and_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config, names = example_config(tmp_path, port=mosquitto.port)
    broker = BrokerSettings(host=mosquitto.host, port=mosquitto.port,
                            backoff_initial_s=0.05, backoff_max_s=0.5)

    async def body(run: LiveRun) -> None:
        await wait_subscribed(run.taps["wearable-1"])
        device = asyncio.create_task(run_wearable(
            broker=broker, site=names["site"], bed="wearable-1", duration_s=22.0, speed=1.0,
            faults=parse_faults(LOSS)))
        # real time: the loss outlasts the source's lost_after_s (3 s), so the stream is lost
        # too, and the alarm's priority rises to high
        high = await _wait_for(run, lambda e: e.get("code") == "source_fault"
                               and e.get("state") == "active" and e.get("priority") == "high")
        queue = run.beds["wearable-1"].queue
        assert queue is not None
        await queue.put(Command("wearable-1", "ack", run.engine.clock.now(), high["id"], "n"))
        await _wait_for(run, lambda e: e.get("type") == "status" and e.get("command") == "ack")
        await device
        await _wait_for(run, lambda e: e.get("code") == "source_fault"
                        and e.get("state") == "ended")

    run = await run_live(config, body, settle_s=0.5, beds=("wearable-1",))
    tech = [e for e in run.collect.events if e.get("type") == "alert"
            and e.get("kind") == "technical"]
    assert {e["id"] for e in tech} == {tech[0]["id"]}, [(e["code"], e["channels"]) for e in tech]
    assert {e["code"] for e in tech} == {"source_fault"}
    assert [e["state"] for e in tech if not e.get("update")] == [
        "active", "acknowledged", "ended"], [(e["state"], e.get("update")) for e in tech]
    [ack] = [e for e in run.collect.events if e.get("type") == "status"
             and e.get("command") == "ack"]
    assert ack["matched"] is True and ack["acknowledged"] == [tech[0]["id"]]
    ended = tech[-1]
    assert sorted(ended["channels"]) == sorted(SIGNALS)  # every signal, no counter
    assert {"packet_loss", "signal_gap", "stream_lost"} <= set(ended["causes"])
