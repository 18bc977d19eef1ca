"""MQTT sink: the engine's stages, alerts and statuses on ``sleepstream/v1/<site>/<bed>/...``.

Events wait in a bounded queue so ``emit`` never blocks the pipeline; one publisher task sends
them over a connection kept by ``keep_connected`` (``drivers.mqtt_common``), and an event whose
publish failed goes first after the reconnect.

Liveness: the engine's status topic and every bed's status topic are retained and go
``offline`` with the engine. On a clean close the sink publishes them offline; when the engine
dies (killed, crashed, cut off) the broker does, by last will: MQTT allows one will per
connection, so each bed with a status holds one small extra connection whose will is that bed's
``offline`` status (it republishes the bed's last status when it reconnects).
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
from sleepstream.engine.errors import SinkError, SourceError
from sleepstream.engine.protocols import Event
from sleepstream.engine.sinks import SinkFailure


class MqttSink(SinkFailure):
    """Publishes engine events: ``<bed>/stage`` and ``<bed>/alert`` at QoS 1, ``<bed>/status``
    retained. The engine's own liveness is ``sleepstream/v1/<site>/engine/<engine_id>/status``
    (retained, ``online`` on connect, ``offline`` on clean close, and the broker's last will
    publishes ``offline`` when the engine dies).

    ``emit`` never blocks the pipeline: events wait in a bounded queue (``max_pending``); when it
    is full the oldest event is dropped and counted (``dropped``). A publisher task sends them,
    reconnecting with capped jittered backoff; events queued during an outage go out afterwards.
    The first lost event, and a broker that refuses the credentials, make the sink ``failed``
    (``engine.sinks.SinkFailure``): one ``sink_failed`` technical alarm, and a non-zero exit.
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
        self._wills: dict[str, asyncio.Task[None]] = {}  # bed -> its will-holding connection
        self._last_status: dict[str, bytes] = {}  # bed -> its last retained status
        self.wills_held: set[str] = set()  # beds whose will connection is up now
        self.error: SinkError | None = None  # set when the broker refused the credentials
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
        """Queue one event; ``SinkError`` once the broker has refused the credentials
        ``auth_tries`` times (nothing can be published any more)."""
        if self.error is not None:
            raise self.error
        self._start()
        kind = str(event.get("type", "event"))
        bed = str(event.get("bed", "engine"))
        leaf = kind if kind in ("stage", "alert", "status") else "event"
        try:
            topic = bed_topic(self.site, check_segment(bed, "bed"), leaf)
        except ValueError:
            topic = bed_topic(self.site, "engine", leaf)
        payload = json.dumps(event, separators=(",", ":"), default=str).encode()
        retain = leaf == "status" and "state" in event  # a command receipt is not a state
        if retain and bed != "engine" and topic.endswith(f"/{bed}/status"):
            self._last_status[bed] = payload
            if bed not in self._wills:
                self._wills[bed] = asyncio.get_running_loop().create_task(
                    self._hold_will(bed, topic), name=f"mqtt-will-{bed}")
        self._enqueue((topic, payload, retain))

    def _enqueue(self, item: tuple[str, bytes, bool]) -> None:
        if self._pending.full():
            self._pending.get_nowait()
            self.dropped += 1
            if self.failed is None:
                self._fail(SinkError(f"{self._pending.maxsize} events waiting for the broker, "
                                     "the oldest dropped"), "MQTT sink")
        self._pending.put_nowait(item)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every queued event was handed to the broker."""
        async with asyncio.timeout(timeout_s):
            await self._pending.join()

    async def aclose(self) -> None:
        if self._task is None:
            return
        for bed in self._wills:  # the beds go offline with the engine
            self._enqueue((bed_topic(self.site, bed, "status"),
                           _offline(bed, f"engine {self.engine_id} stopped"), True))
        with contextlib.suppress(TimeoutError):
            await self.flush(timeout_s=2.0)
        for task in [self._task, *self._wills.values()]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._wills.clear()

    async def _hold_will(self, bed: str, topic: str) -> None:
        """A connection that only carries ``bed``'s offline status as its last will."""
        will = aiomqtt.Will(topic, _offline(bed, f"engine {self.engine_id} lost"), qos=1,
                            retain=True)
        connects = 0

        async def hold(client: aiomqtt.Client) -> None:
            nonlocal connects
            connects += 1
            if connects > 1:  # the broker may have published the will meanwhile
                await client.publish(topic, self._last_status[bed], qos=1, retain=True)
            self.wills_held.add(bed)
            try:
                await asyncio.Event().wait()
            finally:
                self.wills_held.discard(bed)

        with contextlib.suppress(SourceError):  # refused: the publisher reports it
            await keep_connected(
                self.broker, hold, what=f"MQTT sink, bed {bed} status", will=will,
                identifier=f"sleepstream-will-{self.engine_id}-{bed}-{uuid.uuid4().hex[:6]}"[:64],
            )

    async def _publisher(self) -> None:
        will = aiomqtt.Will(self.status_topic, b'{"state":"offline"}', qos=1, retain=True)
        try:
            await keep_connected(
                self.broker, self._publish_pending, what="MQTT sink", will=will,
                identifier=f"sleepstream-sink-{self.engine_id}-{uuid.uuid4().hex[:6]}",
                on_down=lambda _error: self.connected.clear(),
            )
        except SourceError as exc:  # credentials refused: every later emit says so
            self.error = self._fail(SinkError(str(exc)), "MQTT sink")

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


def _offline(bed: str, message: str) -> bytes:
    return json.dumps({"type": "status", "bed": bed, "state": "offline", "message": message},
                      separators=(",", ":")).encode()


def sink_from_config(opts: Any, *, config: Any) -> MqttSink:
    return MqttSink(
        broker=broker_from_config(config),
        site=str(opts.get("site", "default")),
        engine_id=str(opts.get("engine_id", config.mqtt.client_id or "engine")),
    )
