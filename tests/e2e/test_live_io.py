"""Simulators -> engine (example config, real pipeline) -> sinks, over a real Mosquitto and real
LSL outlets/inlets, at high replay speed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import aiomqtt
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sleepstream.drivers.edf import read_recording
from sleepstream.drivers.mqtt_common import BrokerSettings, data_topic
from sleepstream.simulators.faults import parse_faults
from sleepstream.simulators.replay import replay_to_lsl
from sleepstream.simulators.wearable import run_wearable
from tests.e2e.harness import NAP, LiveRun, Tap, example_config, run_live, wait_subscribed
from tests.peers import Mosquitto

SOURCE_CODES = {"stream_lost", "broker_lost", "packet_loss", "sensor_off", "duplicate_packets",
                "reordered_packets", "clock_jump"}


def _nap():
    if not NAP.exists():
        pytest.skip("the shared nap recording (../shared/data/nap-eeg) is not present")
    return read_recording(NAP)


def _broker(m: Mosquitto) -> BrokerSettings:
    return BrokerSettings(host=m.host, port=m.port, backoff_initial_s=0.05, backoff_max_s=0.5)


def _assert_counter_complete(tap: Tap, name: str, n: int) -> np.ndarray:
    values, valid, t = tap.counters[name].arrays()
    assert valid.all(), f"{name}: {int((~valid).sum())} samples missing"
    np.testing.assert_array_equal(values, np.arange(n))  # none lost, none duplicated, in order
    return t


async def test_clean_run_loses_and_duplicates_nothing(tmp_path: Path, mosquitto: Mosquitto
                                                      ) -> None:
    rec = _nap()
    config, names = example_config(tmp_path, port=mosquitto.port)
    psg_s, wear_s = 40.0, 60.0

    async def body(run: LiveRun) -> None:
        await wait_subscribed(run.taps["wearable-1"])
        async with asyncio.TaskGroup() as tg:
            tg.create_task(replay_to_lsl(rec, name=names["psg_name"],
                                         source_id=names["psg_sid"], speed=10.0,
                                         duration_s=psg_s, wait_for_consumer_s=20.0))
            tg.create_task(run_wearable(broker=_broker(mosquitto), site=names["site"],
                                        bed="wearable-1", duration_s=wear_s, speed=20.0))

    run = await run_live(config, body, settle_s=0.5)
    fs = rec.signals[0].spec.fs
    psg, wear = run.taps["psg-1"], run.taps["wearable-1"]
    _assert_counter_complete(psg, f"counter-{fs:g}Hz", int(psg_s * fs))
    _assert_counter_complete(wear, "counter-1Hz", int(wear_s))
    _assert_counter_complete(wear, "counter-25Hz", int(wear_s * 25))
    for bed in run.beds.values():
        assert bed.failed is None and bed.frames_dropped == 0
        for name, s in bed.state.summary().items():
            if name.startswith("counter-"):
                assert s["dropped_overlap"] == 0 and s["filled"] == 0, (name, s)
    assert not [e for e in run.collect.events if e.get("type") == "alert"
                and set(e.get("causes", ())) & (SOURCE_CODES - {"stream_lost"})
                and e.get("state") == "active"]
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert any(json.loads(x)["type"] == "status" for x in lines)


def _onsets(run: LiveRun, code: str) -> list[tuple[float, tuple[str, ...]]]:
    return [(float(e["onset"]), tuple(e["channels"])) for e in run.collect.technical(code)]


def _no_counter_alarms(run: LiveRun) -> bool:
    """Sample-counter channels carry no signal: no alarm ever names one."""
    return not [e for e in run.collect.events if e.get("type") == "alert"
                and any(c.startswith("counter-") for c in e.get("channels", []))]


def _has_onset(run: LiveRun, code: str, t: float, *, channel: str | None = None,
               tol: float = 0.02, late: float = 0.0) -> bool:
    return any(
        t - tol <= onset <= t + tol + late and (channel is None or channel in chans)
        for onset, chans in _onsets(run, code)
    )


WEARABLE_FAULTS = {
    "seed": 3,
    "fault": [
        {"kind": "sensor_off", "start_s": 10.0, "duration_s": 8.0, "channels": ["SpO2"]},
        {"kind": "packet_loss", "start_s": 25.0, "duration_s": 3.0},
        {"kind": "duplicate", "start_s": 40.0, "duration_s": 2.0},
        {"kind": "reorder", "start_s": 50.0, "duration_s": 1.0},
        {"kind": "jitter", "start_s": 60.0, "duration_s": 2.0, "max_delay_s": 0.4},
        {"kind": "clock_jump", "start_s": 75.0, "offset_s": 30.0},
    ],
}


async def test_every_mqtt_fault_is_a_technical_alarm_at_its_onset(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config, names = example_config(tmp_path, port=mosquitto.port)
    faults = parse_faults(WEARABLE_FAULTS)

    async def body(run: LiveRun) -> None:
        await wait_subscribed(run.taps["wearable-1"])
        await run_wearable(broker=_broker(mosquitto), site=names["site"], bed="wearable-1",
                           duration_s=90.0, speed=20.0, faults=faults)

    run = await run_live(config, body, settle_s=1.5, beds=("wearable-1",))
    tap = run.taps["wearable-1"]
    values, valid, t = tap.counters["counter-1Hz"].arrays()
    base = float(t[0])
    np.testing.assert_array_equal(values[valid], np.flatnonzero(valid))  # nothing out of place
    assert np.flatnonzero(~valid).tolist() == [25, 26, 27]  # exactly the lost packets
    assert _has_onset(run, "sensor_off", base + 10.0, channel="SpO2")
    ended = [e for e in run.collect.technical("sensor_off", "ended") if "SpO2" in e["channels"]]
    assert ended and abs(ended[0]["end"] - (base + 18.0)) < 0.02
    for ch in ("SpO2", "HR", "acc_x"):
        assert _has_onset(run, "packet_loss", base + 25.0, channel=ch), ch
    assert _no_counter_alarms(run)
    assert _has_onset(run, "duplicate_packets", base + 40.0, late=2.0)
    assert _has_onset(run, "reordered_packets", base + 50.0, late=1.0)
    assert _has_onset(run, "reordered_packets", base + 60.0, late=2.0)  # the jitter
    assert _has_onset(run, "clock_jump", base + 75.0)
    assert run.beds["wearable-1"].failed is None


async def test_lsl_faults_and_outlet_restart_survived_with_bed_state_kept(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    rec = _nap()
    config, names = example_config(tmp_path, port=mosquitto.port)
    label = rec.signals[0].label
    faults = parse_faults({"fault": [
        {"kind": "sensor_off", "start_s": 10.0, "duration_s": 5.0, "channels": [label]},
        {"kind": "clock_jump", "start_s": 25.0, "offset_s": 20.0},
        {"kind": "outlet_restart", "start_s": 35.0, "duration_s": 7.0},
    ]})
    t0_before: list[float] = []

    async def body(run: LiveRun) -> None:
        async def watch() -> None:  # the bed's channel grid origin, seen before the restart
            while not t0_before:
                ch = run.beds["psg-1"].state.channels.get(label)
                if ch is not None and ch.counters.samples_in > 0:
                    t0_before.append(ch.t0)
                await asyncio.sleep(0.05)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(watch())
            tg.create_task(replay_to_lsl(rec, name=names["psg_name"], source_id=names["psg_sid"],
                                         speed=10.0, duration_s=60.0, faults=faults,
                                         wait_for_consumer_s=20.0))

    run = await run_live(config, body, settle_s=0.5, beds=("psg-1",))
    fs = rec.signals[0].spec.fs
    tap = run.taps["psg-1"]
    values, valid, t = tap.counters[f"counter-{fs:g}Hz"].arrays()
    assert valid.all()
    base = float(t[0])
    seqs = np.concatenate([s + np.arange(len(v)) for s, v in
                           zip(tap.counters[f"counter-{fs:g}Hz"].seq,
                               tap.counters[f"counter-{fs:g}Hz"].values, strict=True)])
    np.testing.assert_array_equal(values, seqs)  # seq accounts for every sample, even lost ones
    np.testing.assert_allclose(t - base, seqs / fs, atol=1e-4)  # one timeline across it all
    assert values[-1] == 60 * fs - 1 and np.all(np.diff(values) > 0)
    missing = int(60 * fs - len(values))
    assert 7 * fs <= missing < 12 * fs
    assert _has_onset(run, "sensor_off", base + 10.0, channel=label)
    assert _has_onset(run, "clock_jump", base + 25.0)
    assert _has_onset(run, "stream_lost", base + 35.0)
    back = [e for e in run.collect.technical("stream_lost", "ended") if e["end"] < base + 59]
    assert back and base + 42.0 - 0.01 <= back[0]["end"] < base + 47.0
    bed = run.beds["psg-1"]
    ch = bed.state.channels[label]
    assert bed.failed is None and ch.t0 == t0_before[0]  # the bed kept its state
    assert ch.counters.filled == missing and ch.counters.dropped_overlap == 0


async def test_broker_restart_is_survived_with_bed_state_kept(
    tmp_path: Path, private_mosquitto: Mosquitto
) -> None:
    broker = private_mosquitto
    config, names = example_config(tmp_path, port=broker.port)
    faults = parse_faults({"fault": [
        {"kind": "broker_outage", "start_s": 15.0, "duration_s": 8.0}]})

    async def control(up: bool) -> None:
        await asyncio.to_thread(broker.start if up else broker.stop)

    async def body(run: LiveRun) -> None:
        await wait_subscribed(run.taps["wearable-1"])
        await run_wearable(broker=_broker(broker), site=names["site"], bed="wearable-1",
                           duration_s=50.0, speed=10.0, faults=faults, broker_control=control)

    run = await run_live(config, body, settle_s=1.0, beds=("wearable-1",))
    source = run.taps["wearable-1"].inner
    values, valid, t = run.taps["wearable-1"].counters["counter-1Hz"].arrays()
    base = float(t[0])
    assert len(values) == 50 and values[-1] == 49  # reached the end, one timeline
    np.testing.assert_array_equal(values[valid], np.flatnonzero(valid))
    lost = np.flatnonzero(~valid)
    # the outage spans 15-23 s; both ends reconnect with backoff (0.1 s wall = 1 s of data here)
    assert lost.min() >= 14 and lost.max() <= 32 and {15, 22} <= set(lost.tolist())
    assert np.all(np.diff(lost) == 1)  # one gap, accounted for as one
    np.testing.assert_allclose(t - base, np.arange(50), atol=1e-6)
    assert _has_onset(run, "broker_lost", float(base + lost.min()), tol=0.02)
    assert run.collect.technical("broker_lost", "ended")
    assert _has_onset(run, "packet_loss", float(base + lost.min()), channel="SpO2")
    assert _no_counter_alarms(run)
    assert source.stats.connects == 2  # type: ignore[attr-defined]
    ch = run.beds["wearable-1"].state.channels["counter-1Hz"]
    assert ch.t0 == pytest.approx(base) and ch.counters.samples_in == 50
    assert run.beds["wearable-1"].failed is None


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True), st.text(max_size=12), st.binary(max_size=48),
)
_value = _leaf | st.lists(_leaf, max_size=4) | st.dictionaries(st.text(max_size=6), _leaf,
                                                              max_size=4)
_odd = st.sampled_from([None, True, "1", 1.5, [], {}, b"x", [[1.0]], 2**63])
_packet_like = st.fixed_dictionaries(
    {
        "v": st.sampled_from([1, 1, 1, 2, 0, "1", None]),
        "seq": st.integers(min_value=-5, max_value=2**62) | _odd,
        "t0": st.floats() | _odd,
        "fs": st.sampled_from([1.0, 25.0, 0.0, -1.0, 1e9, float("nan")]) | _odd,
        "unit": st.sampled_from(["%", "bpm", "g", "x" * 40, "\x00"]) | _odd,
        "samples": st.binary(max_size=64) | st.lists(st.floats(width=32), max_size=16) | _odd,
    },
    optional={"extra": _odd},
)
_payload = st.one_of(
    st.binary(max_size=96),
    _value.map(msgpack.packb),
    _packet_like.map(msgpack.packb),
)
_oversized = st.tuples(st.integers(65_537, 70_000), st.binary(min_size=1, max_size=8)).map(
    lambda nb: (nb[1] * nb[0])[: nb[0]])  # over the 64 KiB cap
_channel = st.sampled_from(["SpO2", "HR", "acc_x", "counter-1Hz", "unknown", "x y", "%%"])


def _hostile_batch(n: int) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []

    @settings(max_examples=max(1, n // 100), database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(_channel, _payload), min_size=99, max_size=99),
           st.tuples(_channel, _oversized))
    def collect(batch: list[tuple[str, bytes]], big: tuple[str, bytes]) -> None:
        out.extend([*batch, big])

    while len(out) < n:
        collect()
    return out[:n]


async def test_ten_thousand_hostile_payloads_are_counted_and_harm_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config, names = example_config(tmp_path, port=mosquitto.port)
    wear = next(b for b in config.beds if b.id == "wearable-1")
    config = dataclasses.replace(config, beds=(wear, dataclasses.replace(wear, id="hostile-1")))
    payloads = _hostile_batch(10_000)

    async def attack() -> None:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port,
                                  max_inflight_messages=200) as client:
            for i in range(0, len(payloads), 200):
                await asyncio.gather(*(
                    client.publish(data_topic(names["site"], "hostile-1", ch), p, qos=1)
                    for ch, p in payloads[i : i + 200]))

    async def body(run: LiveRun) -> None:
        await wait_subscribed(run.taps["wearable-1"])
        await wait_subscribed(run.taps["hostile-1"])
        async with asyncio.TaskGroup() as tg:
            tg.create_task(attack())
            tg.create_task(run_wearable(broker=_broker(mosquitto), site=names["site"],
                                        bed="wearable-1", duration_s=40.0, speed=10.0))
        stats = run.taps["hostile-1"].inner.stats  # type: ignore[attr-defined]
        async with asyncio.timeout(30):
            while stats.messages < len(payloads):
                await asyncio.sleep(0.05)

    run = await run_live(config, body, settle_s=0.5, beds=("wearable-1", "hostile-1"))
    stats = run.taps["hostile-1"].inner.stats  # type: ignore[attr-defined]
    assert stats.messages == 10_000
    assert stats.accepted + stats.rejected_total == stats.messages  # every one accounted
    assert stats.rejected_total >= 9_000 and stats.rejected["too_large"] > 0
    assert {"not_msgpack", "bad_topic", "unknown_channel"} <= set(stats.rejected)
    assert "internal" not in stats.rejected
    _assert_counter_complete(run.taps["wearable-1"], "counter-1Hz", 40)
    _assert_counter_complete(run.taps["wearable-1"], "counter-25Hz", 1000)
    assert all(b.failed is None for b in run.beds.values())
