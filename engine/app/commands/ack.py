"""``sleepstream ack``: acknowledge an alarm on a running engine, over MQTT.

The command listens on the bed's status topic, publishes the acknowledgement, and reports what
the engine answered: the alarms it acknowledged (exit 0), or that no announced alarm matched
(exit 1). Without an answer within ``--wait-s`` (no engine with an MQTT sink for that site and
bed) it says so and exits 1: a sent acknowledgement is not an acknowledged alarm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiomqtt

from sleepstream.drivers.mqtt_commands import publish_ack
from sleepstream.drivers.mqtt_common import BrokerSettings, bed_topic, broker_from_config
from sleepstream.engine.config import Config, load_config
from sleepstream.engine.errors import SourceError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bed", required=True, help="bed id")
    p.add_argument("--id", dest="alert_id", default=None,
                   help="alert id to acknowledge (default: every announced alarm of the bed)")
    p.add_argument("--by", default="cli", help="who acknowledges (recorded in the event)")
    p.add_argument("--config", type=Path, help="engine TOML: broker from [mqtt], site of the bed")
    p.add_argument("--site", default=None, help="site of the bed (default: from the config)")
    p.add_argument("--host", default=None, help="MQTT broker host (overrides the config)")
    p.add_argument("--port", type=int, default=None, help="MQTT broker port")
    p.add_argument("--wait-s", type=float, default=5.0,
                   help="how long to wait for the engine's answer (default 5 s)")


def _is_receipt(msg: aiomqtt.Message, alert_id: str | None, by: str) -> dict[str, Any] | None:
    if msg.retain:  # an earlier receipt kept by the broker, not the answer to this one
        return None
    raw = msg.payload
    if not isinstance(raw, bytes | bytearray | str):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if (isinstance(body, dict) and body.get("command") == "ack" and body.get("by") == by
            and body.get("alert_id") == alert_id):
        return body
    return None


async def acknowledge(broker: BrokerSettings, *, site: str, bed: str, alert_id: str | None,
                      by: str, wait_s: float) -> dict[str, Any] | None:
    """Publish the acknowledgement and return the engine's receipt (None: no answer)."""
    status = bed_topic(site, bed, "status")
    try:
        async with broker.client(identifier=f"sleepstream-ackwait-{uuid.uuid4().hex[:8]}") as c:
            await c.subscribe(status, qos=1)
            await publish_ack(broker, site=site, bed=bed, alert_id=alert_id, by=by)
            try:
                async with asyncio.timeout(wait_s):
                    async for msg in c.messages:
                        receipt = _is_receipt(msg, alert_id, by)
                        if receipt is not None:
                            return receipt
            except TimeoutError:
                return None
    except aiomqtt.MqttError as exc:
        raise SourceError(f"cannot reach the MQTT broker {broker.host}:{broker.port} ({exc}); "
                          "check [mqtt] host/port or --host/--port") from exc
    return None


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else Config()
    broker = broker_from_config(config)
    if args.host or args.port:
        broker = replace(broker, host=args.host or broker.host, port=args.port or broker.port)
    site = args.site or next((b.site for b in config.beds if b.id == args.bed), "default")
    what = args.alert_id or "all alarms"
    receipt = asyncio.run(acknowledge(broker, site=site, bed=args.bed, alert_id=args.alert_id,
                                      by=args.by, wait_s=args.wait_s))
    if receipt is None:
        print(f"acknowledgement sent for bed {args.bed} ({what}), but no engine answered within "
              f"{args.wait_s:g} s")
        return 1
    if not receipt.get("matched"):
        print(f"bed {args.bed}: no announced alarm matched {what}; nothing acknowledged")
        return 1
    ids = ", ".join(receipt.get("acknowledged") or []) or what
    print(f"bed {args.bed}: acknowledged {ids}")
    return 0
