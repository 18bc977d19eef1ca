"""``sleepstream bench io``: sustained ingest rate of each live driver against a no-op baseline.

For each device count, devices in a child process send as fast as the transport takes them
(4 channels x 256-sample packets over MQTT through a private Mosquitto; 8-channel 256-sample chunks
over LSL), and this process runs one driver per device and counts the samples that come out of
``frames()`` over a measuring window after a warm-up. The baseline is the no-op driver: the same
frames handed over through the same bounded outbox with no transport, measured in the same run;
``mqtt_inproc`` feeds the MQTT source's payload path (validate, order, frame) without a broker, so
the cost of the transport itself shows. Figures: samples/s (samples x channels) per driver and
device count, and ``ratio`` = driver / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import time
import uuid
from typing import Any

import numpy as np

from sleepstream.engine.report import print_figures
from sleepstream.engine.types import ChannelSpec, Frame

PACKET = 256
MQTT_CHANNELS = 4
LSL_CHANNELS = 8
FS = 256.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=3.0, help="measuring window (default 3)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    p.add_argument("--devices", default="1,8", help="device counts, comma-separated")
    p.add_argument("--port", type=int, help="use this running broker instead of a private one")
    p.add_argument("--json", action="store_true", help="end with one JSON line")


async def _count(drivers: list[Any], warmup: float, seconds: float) -> float:
    """Samples/s out of ``frames()`` of all drivers over a window that opens ``warmup`` seconds
    after the first frame arrived."""
    counts = [0]
    window = {"on": False}
    first = asyncio.Event()

    async def drain(d: Any) -> None:
        async for item in d.frames():
            if isinstance(item, Frame):
                first.set()
                if window["on"]:
                    counts[0] += item.data.size

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(drain(d)) for d in drivers]
        async with asyncio.timeout(60):
            await first.wait()
        await asyncio.sleep(warmup)
        window["on"] = True
        t0 = time.perf_counter()
        await asyncio.sleep(seconds)
        window["on"] = False
        elapsed = time.perf_counter() - t0
        for t in tasks:
            t.cancel()
    return counts[0] / elapsed


async def bench_noop(seconds: float) -> float:
    """The no-op driver: pre-built frames through the outbox, as fast as they are taken."""
    from sleepstream.drivers.outbox import Outbox

    frame = Frame(("x",), np.arange(PACKET, dtype=np.float64),
                  np.zeros((PACKET, 1), np.float32), np.ones((PACKET, 1), bool))
    box = Outbox(max_frames=1024)

    class Noop:
        def frames(self) -> Any:
            return box.items()

    async def produce() -> None:
        while True:
            for _ in range(64):
                box.put(frame)
            await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        producer = tg.create_task(produce())
        rate = await _count([Noop()], 0.2, seconds)
        producer.cancel()
    return rate


async def bench_mqtt_inproc(seconds: float) -> float:
    """The MQTT source's own work (validate, order, frame) fed in-process, no broker."""
    from sleepstream.drivers.codecs import encode_packet
    from sleepstream.drivers.mqtt import MqttSource
    from sleepstream.drivers.mqtt_common import BrokerSettings, data_topic

    spec = ChannelSpec("ch0", FS, None, "uV")
    source = MqttSource(broker=BrokerSettings(), site="bench", bed="inproc", channels=[spec])
    topic = data_topic("bench", "inproc", "ch0")
    x = np.zeros(PACKET, np.float32)
    payloads = [encode_packet(seq=k * PACKET, t0=k, fs=FS, unit="uV", samples=x)
                for k in range(20_000)]

    async def produce() -> None:
        for i, p in enumerate(payloads):
            source.handle(topic, p)
            if i % 32 == 0:
                await asyncio.sleep(0)

    async with asyncio.TaskGroup() as tg:
        producer = tg.create_task(produce())
        rate = await _count([source], 0.1, min(seconds, 0.5))
        producer.cancel()
    return rate


def _mqtt_devices(port: int, site: str, beds: list[str], seconds: float) -> None:
    """Child process: every bed publishes 4 channels of 256-sample packets as fast as it can."""
    import aiomqtt

    from sleepstream.drivers.codecs import encode_packet
    from sleepstream.drivers.mqtt_common import data_topic

    async def device(bed: str) -> None:
        x = np.random.default_rng(0).standard_normal(PACKET).astype(np.float32)
        topics = [data_topic(site, bed, f"ch{c}") for c in range(MQTT_CHANNELS)]
        async with aiomqtt.Client("127.0.0.1", port, max_queued_outgoing_messages=0) as client:
            k, deadline = 0, time.monotonic() + seconds
            while time.monotonic() < deadline:
                payload = encode_packet(seq=k * PACKET, t0=k, fs=FS, unit="uV", samples=x)
                for topic in topics:
                    await client.publish(topic, payload, qos=0)
                k += 1
                if k % 8 == 0:
                    await asyncio.sleep(0)

    async def main() -> None:
        async with asyncio.TaskGroup() as tg:
            for bed in beds:
                tg.create_task(device(bed))

    asyncio.run(main())


async def bench_mqtt(devices: int, port: int, warmup: float, seconds: float) -> float:
    from sleepstream.drivers.mqtt import MqttSource
    from sleepstream.drivers.mqtt_common import BrokerSettings

    site = f"bench{uuid.uuid4().hex[:6]}"
    beds = [f"b{i}" for i in range(devices)]
    specs = [ChannelSpec(f"ch{c}", FS, None, "uV") for c in range(MQTT_CHANNELS)]
    sources = [MqttSource(broker=BrokerSettings(port=port), site=site, bed=b, channels=specs,
                          lost_after_s=60.0) for b in beds]
    async with contextlib.AsyncExitStack() as stack:
        for s in sources:
            await stack.enter_async_context(s)
        await asyncio.gather(*(asyncio.wait_for(s.connected.wait(), 10) for s in sources))
        proc = mp.get_context("spawn").Process(
            target=_mqtt_devices, args=(port, site, beds, warmup + seconds + 30.0), daemon=True)
        proc.start()
        stack.push_async_callback(_stop, proc)
        return await _count(sources, warmup, seconds)


async def _stop(proc: Any) -> None:
    """End a device process (it would stop by itself at its deadline)."""
    proc.terminate()
    await asyncio.to_thread(proc.join, 10)


def _lsl_devices(ids: list[str], seconds: float, ready: Any) -> None:
    """Child process: every device pushes 8-channel 256-sample chunks as fast as it can."""
    import pylsl

    outlets = []
    for sid in ids:
        info = pylsl.StreamInfo(sid, "EEG", LSL_CHANNELS, FS, pylsl.cf_float32, sid)
        outlets.append(pylsl.StreamOutlet(info, max_buffered=30))
    ready.set()
    for o in outlets:
        o.wait_for_consumers(20.0)
    x = np.random.default_rng(0).standard_normal((PACKET, LSL_CHANNELS)).astype(np.float32)
    deadline = time.monotonic() + seconds
    k = 0
    while time.monotonic() < deadline:
        stamp = k * PACKET / FS
        for o in outlets:
            o.push_chunk(x, timestamp=stamp)
        k += 1
        if k % 16 == 0:
            time.sleep(0)


async def bench_lsl(devices: int, warmup: float, seconds: float) -> float:
    from sleepstream.drivers.lsl import LslSource

    ids = [f"bench-{uuid.uuid4().hex[:8]}" for _ in range(devices)]
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_lsl_devices, args=(ids, warmup + seconds + 30.0, ready),
                       daemon=True)
    proc.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(_stop, proc)
        await asyncio.to_thread(ready.wait, 30)
        sources = [LslSource(source_id=i, timeout_s=20.0, lost_after_s=60.0, max_chunk=4096)
                   for i in ids]
        for s in sources:
            await stack.enter_async_context(s)
        return await _count(sources, warmup, seconds)


def main(args: argparse.Namespace) -> int:
    from sleepstream.simulators.broker import local_mosquitto

    counts = [int(x) for x in str(args.devices).split(",") if x.strip()]
    figures: dict[str, Any] = {"seconds": args.seconds, "devices": counts}
    baseline = asyncio.run(bench_noop(args.seconds))
    figures["baseline_samples_per_s"] = baseline
    inproc = asyncio.run(bench_mqtt_inproc(args.seconds))
    figures["mqtt_inproc_samples_per_s"] = inproc
    figures["mqtt_inproc_ratio"] = inproc / baseline
    with contextlib.ExitStack() as stack:
        port = args.port or stack.enter_context(local_mosquitto())
        for n in counts:
            rate = asyncio.run(bench_mqtt(n, port, args.warmup, args.seconds))
            figures[f"mqtt_{n}_samples_per_s"] = rate
            figures[f"mqtt_{n}_ratio"] = rate / baseline
    for n in counts:
        rate = asyncio.run(bench_lsl(n, args.warmup, args.seconds))
        figures[f"lsl_{n}_samples_per_s"] = rate
        figures[f"lsl_{n}_ratio"] = rate / baseline
    if not args.json:
        print(f"no-op baseline       {baseline:14,.0f} samples/s")
        print(f"mqtt in-process      {inproc:14,.0f} samples/s   {inproc / baseline:6.3f} x "
              "baseline (validate + order + frame, no broker)")
        for n in counts:
            for kind in ("mqtt", "lsl"):
                r = figures[f"{kind}_{n}_samples_per_s"]
                print(f"{kind:<5} {n:>3} device(s)   {r:14,.0f} samples/s   "
                      f"{r / baseline:6.3f} x baseline")
    print_figures(figures, as_json=args.json)
    return 0
