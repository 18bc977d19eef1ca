"""``sleepstream simulate wearable``: SpO2 + HR + accelerometer in 1-s MQTT packets."""

from __future__ import annotations

import argparse
import asyncio

from sleepstream.drivers.mqtt_common import BrokerSettings
from sleepstream.engine.report import print_figures
from sleepstream.simulators.faults import NO_FAULTS, load_faults
from sleepstream.simulators.wearable import run_wearable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=600.0, help="how long (default 600)")
    parser.add_argument("--speed", type=float, default=1.0, help="times real time (default 1)")
    parser.add_argument("--faults", help="TOML fault schedule ([[fault]] tables)")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port")
    parser.add_argument("--site", default="default", help="MQTT site segment")
    parser.add_argument("--bed", default="wearable", help="MQTT bed segment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")


def main(args: argparse.Namespace) -> int:
    faults = load_faults(args.faults) if args.faults else NO_FAULTS
    stats = asyncio.run(run_wearable(
        broker=BrokerSettings(host=args.host, port=args.port), site=args.site, bed=args.bed,
        duration_s=args.seconds, speed=args.speed, faults=faults, seed=args.seed))
    if not args.json:
        print(f"sent {stats.samples} samples in {stats.packets} packets")
    print_figures({"packets": stats.packets, "samples": stats.samples,
                   "skipped_packets": stats.skipped_packets}, as_json=args.json)
    return 0
