"""``sleepstream simulate replay PATH.edf --to lsl|mqtt``: a recorded night as a live device.

Signals sharing a rate travel together with a sample-counter channel ``counter-<fs>Hz``; packets
leave on a drift-free schedule (``--speed`` times real time); ``--faults FILE`` injects a TOML
fault schedule. Prints what was sent when done (``--json``: one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.engine.report import print_figures
from sleepstream.simulators.faults import NO_FAULTS, load_faults
from sleepstream.simulators.replay import load, replay_to_lsl, replay_to_mqtt


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="EDF/EDF+ recording to replay")
    parser.add_argument("--to", choices=("lsl", "mqtt"), required=True, help="transport")
    parser.add_argument("--speed", type=float, default=1.0, help="times real time (default 1)")
    parser.add_argument("--faults", help="TOML fault schedule ([[fault]] tables)")
    parser.add_argument("--packet-s", type=float, default=1.0, help="packet length in seconds")
    parser.add_argument("--seconds", type=float, help="replay only the first N seconds")
    parser.add_argument("--channels", nargs="*", default=(), help="labels to send (default all)")
    parser.add_argument("--name", default="sleepstream-replay", help="LSL stream name")
    parser.add_argument("--source-id", help="LSL source_id (default: name plus a random suffix)")
    parser.add_argument("--wait-for-consumer", type=float, default=0.0, metavar="S",
                        help="LSL: hold the first packet until an inlet connects (at most S s)")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port")
    parser.add_argument("--site", default="default", help="MQTT site segment")
    parser.add_argument("--bed", default="replay", help="MQTT bed segment")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")


def main(args: argparse.Namespace) -> int:
    if not args.speed > 0:
        raise SystemExit("--speed must be > 0")
    faults = load_faults(args.faults) if args.faults else NO_FAULTS
    rec = load(args.path)
    started = time.monotonic()
    if args.to == "lsl":
        stats = asyncio.run(replay_to_lsl(
            rec, name=args.name, source_id=args.source_id, speed=args.speed,
            packet_s=args.packet_s, faults=faults, labels=args.channels,
            duration_s=args.seconds, wait_for_consumer_s=args.wait_for_consumer))
    else:
        broker = BrokerSettings(host=args.host, port=args.port)
        stats = asyncio.run(replay_to_mqtt(
            rec, broker=broker, site=args.site, bed=args.bed, speed=args.speed,
            packet_s=args.packet_s, faults=faults, labels=args.channels,
            duration_s=args.seconds))
    wall = time.monotonic() - started
    figures = {
        "transport": args.to, "seconds": args.seconds or rec.duration, "speed": args.speed,
        "wall_s": wall, "packets": stats.packets, "samples": stats.samples,
        "skipped_packets": stats.skipped_packets, "duplicates": stats.duplicates,
        "reordered": stats.reordered, "delayed": stats.delayed, "outages": stats.outages,
    }
    if not args.json:
        print(f"sent {stats.samples} samples in {stats.packets} packets over {args.to} "
              f"in {wall:.1f} s ({stats.skipped_packets} packets withheld by faults/outages)")
    print_figures(figures, as_json=args.json)
    return 0
