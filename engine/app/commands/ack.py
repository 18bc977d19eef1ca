"""``sleepstream ack``: acknowledge an alarm on a running engine, over MQTT."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from sleepstream.drivers.mqtt_commands import publish_ack
from sleepstream.drivers.mqtt_common import broker_from_config
from sleepstream.engine.config import Config, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bed", required=True, help="bed id")
    p.add_argument("--id", dest="alert_id", default=None,
                   help="alert id to acknowledge (default: every announced alarm of the bed)")
    p.add_argument("--by", default="cli", help="who acknowledges (recorded in the event)")
    p.add_argument("--config", type=Path, help="engine TOML: broker from [mqtt], site of the bed")
    p.add_argument("--site", default=None, help="site of the bed (default: from the config)")
    p.add_argument("--host", default=None, help="MQTT broker host (overrides the config)")
    p.add_argument("--port", type=int, default=None, help="MQTT broker port")


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else Config()
    broker = broker_from_config(config)
    if args.host or args.port:
        from dataclasses import replace

        broker = replace(broker, host=args.host or broker.host, port=args.port or broker.port)
    site = args.site or next((b.site for b in config.beds if b.id == args.bed), "default")
    asyncio.run(publish_ack(broker, site=site, bed=args.bed, alert_id=args.alert_id, by=args.by))
    print(f"acknowledgement sent for bed {args.bed} ({args.alert_id or 'all alarms'})")
    return 0
