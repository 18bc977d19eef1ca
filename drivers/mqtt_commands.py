"""Operator commands over MQTT: alarm acknowledgement.

Topic ``sleepstream/v1/<site>/<bed>/ack``, payload a small JSON object
``{"id": "<alert id>", "by": "<who>"}`` (``id`` omitted or null acknowledges every announced
alarm of the bed). Invalid payloads are counted by reason and dropped. ``publish_ack`` is what
``sleepstream ack`` uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt

from sleepstream.drivers.mqtt_common import (
    BrokerSettings,
    bed_topic,
    check_segment,
    keep_connected,
    untrusted_log,
)
from sleepstream.engine.clock import EngineClock, MonotonicClock
from sleepstream.engine.errors import PayloadError, SourceError
from sleepstream.engine.types import Command

MAX_PAYLOAD = 1024
ACK_LEAF = "ack"


def decode_ack(topic: str, payload: Any, t: float) -> Command:
    """A Command from one ack message; PayloadError says why it was refused."""
    parts = topic.split("/")
    if len(parts) != 5 or parts[:2] != ["sleepstream", "v1"] or parts[4] != ACK_LEAF:
        raise PayloadError("topic", f"not an ack topic: {topic!r}")
    if not isinstance(payload, bytes | bytearray) or len(payload) > MAX_PAYLOAD:
        raise PayloadError("size", f"ack payload must be bytes of at most {MAX_PAYLOAD}")
    try:
        body = json.loads(payload.decode("utf-8")) if payload else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError("json", f"ack payload is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise PayloadError("type", "ack payload must be a JSON object")
    alert_id, by = body.get("id"), body.get("by", "")
    if alert_id is not None and (not isinstance(alert_id, str) or len(alert_id) > 200):
        raise PayloadError("id", "ack 'id' must be a string of at most 200 characters or null")
    if not isinstance(by, str) or len(by) > 100:
        raise PayloadError("by", "ack 'by' must be a string of at most 100 characters")
    return Command(bed=parts[3], kind="ack", t=t, alert_id=alert_id, by=by)


class MqttCommandSource:
    """Yields acknowledgement commands for the beds of ``site``; reconnects with backoff."""

    def __init__(
        self, *, broker: BrokerSettings, site: str, clock: EngineClock | None = None
    ) -> None:
        self.broker = broker
        self.site = check_segment(site, "site")
        self.clock = clock or MonotonicClock()
        self.rejected: Counter[str] = Counter()
        self.accepted = 0
        self.connected = asyncio.Event()

    async def commands(self) -> AsyncIterator[Command]:
        """Acknowledgements as they arrive, across reconnects (the subscriber runs as a task)."""
        inbox: asyncio.Queue[Command] = asyncio.Queue()

        async def session(client: aiomqtt.Client) -> None:
            await client.subscribe(f"sleepstream/v1/{self.site}/+/{ACK_LEAF}", qos=1)
            self.connected.set()
            async for message in client.messages:
                cmd = self._decode(str(message.topic), message.payload)
                if cmd is not None:
                    inbox.put_nowait(cmd)

        task = asyncio.get_running_loop().create_task(keep_connected(
            self.broker, session, identifier=f"sleepstream-commands-{uuid.uuid4().hex[:8]}",
            what="command subscriber", max_queued_incoming=1000,
            on_down=lambda _error: self.connected.clear(),
        ))
        try:
            while True:
                yield await inbox.get()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _decode(self, topic: str, payload: Any) -> Command | None:
        try:
            cmd = decode_ack(topic, payload, self.clock.now())
        except PayloadError as exc:
            self.rejected[exc.reason] += 1
            untrusted_log.warning(f"ack rejected ({exc.reason}): %s", exc)
            return None
        self.accepted += 1
        return cmd


async def publish_ack(
    broker: BrokerSettings, *, site: str, bed: str, alert_id: str | None, by: str
) -> None:
    """Publish one acknowledgement (QoS 1) and wait until the broker has it."""
    topic = bed_topic(check_segment(site, "site"), check_segment(bed, "bed"), ACK_LEAF)
    body = json.dumps({"id": alert_id, "by": by}).encode()
    try:
        async with broker.client(identifier=f"sleepstream-ack-{uuid.uuid4().hex[:8]}") as c:
            await c.publish(topic, body, qos=1)
    except aiomqtt.MqttError as exc:
        raise SourceError(
            f"cannot reach the MQTT broker {broker.host}:{broker.port} ({exc}); "
            "check [mqtt] host/port or --host/--port"
        ) from exc
