"""MQTT sink: the engine's stages, alerts and statuses on ``sleepstream/v1/<site>/<bed>/...``.

Events wait in a bounded queue so ``emit`` never blocks the pipeline; one publisher task sends
them over a connection kept by ``keep_connected`` (``drivers.mqtt_common``), and an event whose
publish failed goes first after the reconnect. The engine's liveness is a retained status topic
with a last will.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import aiomqtt

from sleepstream.drivers.mqtt_common import (
    BrokerSettings,
    bed_topic,
    broker_from_config,
    check_segment,
    keep_connected,
)
from sleepstream.engine.protocols import Event


class MqttSink:
    """Publishes engine events: ``<bed>/stage`` and ``<bed>/alert`` at QoS 1, ``<bed>/status``
    retained. The engine's own liveness is ``sleepstream/v1/<site>/engine/<engine_id>/status``
    (retained, ``online`` on connect, ``offline`` on clean close, and the broker's last will
    publishes ``offline`` when the engine dies).

    ``emit`` never blocks the pipeline: events wait in a bounded queue (``max_pending``); when it
    is full the oldest event is dropped and counted (``dropped``). A publisher task sends them,
    reconnecting with capped jittered backoff; events queued during an outage go out afterwards.
    """

    def __init__(
        self,
        *,
        broker: BrokerSettings,
        site: str,
        engine_id: str = "engine",
        qos: int = 1,
        max_pending: int = 10_000,
    ) -> None:
        self.broker = broker
        self.site = check_segment(site, "site")
        self.engine_id = check_segment(engine_id, "engine id")
        self.qos = qos
        self.status_topic = bed_topic(self.site, "engine", f"{self.engine_id}/status")
        self._pending: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue(max_pending)
        self.dropped = 0
        self.published = 0
        self._task: asyncio.Task[None] | None = None
        self._item: tuple[str, bytes, bool] | None = None  # taken from the queue, not yet sent
        self.connected = asyncio.Event()

    async def __aenter__(self) -> MqttSink:
        self._start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._publisher(), name=f"mqtt-sink-{self.engine_id}"
            )

    async def emit(self, event: Event) -> None:
        self._start()
        kind = str(event.get("type", "event"))
        bed = str(event.get("bed", "engine"))
        leaf = kind if kind in ("stage", "alert", "status") else "event"
        try:
            topic = bed_topic(self.site, check_segment(bed, "bed"), leaf)
        except ValueError:
            topic = bed_topic(self.site, "engine", leaf)
        payload = json.dumps(event, separators=(",", ":"), default=str).encode()
        item = (topic, payload, leaf == "status")
        if self._pending.full():
            self._pending.get_nowait()
            self.dropped += 1
        self._pending.put_nowait(item)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued event was handed to the broker."""
        async with asyncio.timeout(timeout_s):
            await self._pending.join()

    async def aclose(self) -> None:
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout_s=2.0)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _publisher(self) -> None:
        will = aiomqtt.Will(self.status_topic, b'{"state":"offline"}', qos=1, retain=True)
        await keep_connected(
            self.broker, self._publish_pending, what="MQTT sink", will=will,
            identifier=f"sleepstream-sink-{self.engine_id}-{uuid.uuid4().hex[:6]}",
            on_down=lambda _error: self.connected.clear(),
        )

    async def _publish_pending(self, client: aiomqtt.Client) -> None:
        """Announce the engine online, then publish queued events in order; an event whose
        publish failed is kept (``_item``) and goes first after the reconnect."""
        await client.publish(self.status_topic, b'{"state":"online"}', qos=1, retain=True)
        self.connected.set()
        try:
            while True:
                if self._item is None:
                    self._item = await self._pending.get()
                topic, payload, retain = self._item
                await client.publish(topic, payload, qos=self.qos, retain=retain)
                self.published += 1
                self._item = None
                self._pending.task_done()
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await client.publish(self.status_topic, b'{"state":"offline"}', qos=1,
                                         retain=True)
            raise


def sink_from_config(opts: Any, *, config: Any) -> MqttSink:
    return MqttSink(
        broker=broker_from_config(config),
        site=str(opts.get("site", "default")),
        engine_id=str(opts.get("engine_id", config.mqtt.client_id or "engine")),
    )
