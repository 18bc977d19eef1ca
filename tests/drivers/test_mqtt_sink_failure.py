"""An MQTT sink that loses events is a failed sink: the first event dropped while the broker is
unreachable (its bounded queue full) reports once, as a file sink that cannot write does, so the
engine raises one ``sink_failed`` alarm and the run exits non-zero."""

from __future__ import annotations

from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.drivers.mqtt_sink import MqttSink
from sleepstream.engine.app.compose import build_engine, sink_failures
from sleepstream.engine.config import parse_config
from sleepstream.simulators.broker import free_port


async def test_events_dropped_for_an_unreachable_broker_fail_the_sink_once() -> None:
    heard: list[str] = []
    sink = MqttSink(broker=BrokerSettings(host="127.0.0.1", port=free_port()), site="ward",
                    max_pending=3)
    sink.on_failure = heard.append
    try:
        for i in range(3):
            await sink.emit({"type": "stage", "bed": "b1", "epoch_start": 30.0 * i})
        assert sink.failed is None and not heard  # queued, nothing lost yet
        for i in range(3, 6):
            await sink.emit({"type": "stage", "bed": "b1", "epoch_start": 30.0 * i})
    finally:
        await sink.aclose()
    assert sink.dropped >= 3
    assert len(heard) == 1 and "the oldest dropped" in heard[0]
    assert sink.failed == heard[0]


async def test_a_failed_mqtt_sink_raises_one_alarm_per_bed_and_is_reported(tmp_path) -> None:
    max_pending = 2
    config = parse_config({
        "mqtt": {"host": "127.0.0.1", "port": free_port()},
        "model": {"checkpoint": "none"},
        "beds": [{"id": b, "site": "ward", "sources": [
            {"kind": "mqtt", "channels": [{"name": "HR", "fs": 1.0, "unit": "bpm"}]}]}
            for b in ("b1", "b2")],
        "sinks": [{"kind": "mqtt", "site": "ward"}],
    }, path=tmp_path / "engine.toml")
    engine, _, _ = build_engine(config, live=True)
    sink = engine.bus.channels[0].sink
    assert isinstance(sink, MqttSink)
    sink._pending = type(sink._pending)(max_pending)  # a small queue: the loss comes soon
    published: list[dict] = []
    engine.bus.publish_nowait = published.append  # type: ignore[method-assign]
    try:
        for i in range(max_pending + 1):
            await sink.emit({"type": "stage", "bed": "b1", "epoch_start": 30.0 * i})
    finally:
        await sink.aclose()
    alarms = [e for e in published if e.get("code") == "sink_failed"]
    assert sorted(e["bed"] for e in alarms) == ["b1", "b2"]
    assert all(e["kind"] == "technical" and e["state"] == "active" for e in alarms)
    assert sink_failures(engine) == [sink.failed]
