"""Broker settings shared by the MQTT source and sink, and the topic layout.

Topics: ``sleepstream/v1/<site>/<bed>/data/<channel>`` in; ``.../stage``, ``.../alert`` and
``.../status`` out. Every client speaks MQTT v5; TLS (CA, client certificate and key) and
username/password are options. Every client reconnects through ``keep_connected`` (capped,
jittered exponential backoff).

aiomqtt and paho log through ``sleepstream.drivers.mqtt_client``, rate-limited globally: aiomqtt
writes one warning per incoming message its full queue discards, so a flood of 50,000 packets
would write tens of thousands of lines. Each distinct line template is written at most once a
minute with the count held back since (``ClientLogLimiter``); the samples lost are accounted by
the source as ``packet_loss``. Lines about untrusted input go through ``untrusted_log``, limited
the same way for the whole process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt

from sleepstream.engine.errors import PayloadError, SourceError

log = logging.getLogger(__name__)


class ClientLogLimiter(logging.Filter):
    """At most one line per message template every ``every_s`` seconds, whatever the client;
    the next line says how many were held back. Templates are the libraries' fixed strings."""

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._last: dict[str, tuple[float, int]] = {}  # template -> (last line, held back)
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)[:200]
        now = time.monotonic()
        last, held = self._last.get(key, (-1e18, 0))
        if now - last < self.every_s:
            self._last[key] = (last, held + 1)
            self.suppressed += 1
            return False
        if len(self._last) > 1000:  # bounded even if a library formats into its template
            self._last.clear()
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this since the last line)"
        return True


    def reset(self) -> None:
        """Forget what was written (a fresh minute for every template)."""
        self._last.clear()


client_log = logging.getLogger("sleepstream.drivers.mqtt_client")
client_log_limiter = ClientLogLimiter()
client_log.addFilter(client_log_limiter)
# Lines about what devices and clients sent (rejected payloads, sequence jumps, refused acks):
# untrusted input, so one line per template a minute for the whole process, whatever the bed or
# topic. Templates carry only fixed reasons; the counts are in each client's stats.
untrusted_log = logging.getLogger("sleepstream.drivers.untrusted")
untrusted_log_limiter = ClientLogLimiter()
untrusted_log.addFilter(untrusted_log_limiter)

TOPIC_ROOT = "sleepstream/v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
_AUTH_REFUSED = {4, 5, 134, 135}  # CONNACK: bad user name or password, not authorised (v3, v5)


def auth_refused(error: aiomqtt.MqttError) -> bool:
    """Whether ``error`` is the broker refusing the credentials (not a network problem)."""
    rc = getattr(error, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in _AUTH_REFUSED


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    tls: bool = False  # TLS on; without tls_ca the system trust store verifies the broker
    keepalive_s: int = 10
    timeout_s: float = 5.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0
    auth_tries: int = 3  # refusals of the credentials in a row before giving up (SourceError)

    def tls_context(self) -> ssl.SSLContext | None:
        if not self.tls and self.tls_ca is None and self.tls_cert is None:
            return None  # plain TCP only when TLS was not asked for in any way
        ctx = ssl.create_default_context(cafile=self.tls_ca)  # None: the system trust store
        if self.tls_cert is not None:
            ctx.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def client(
        self,
        *,
        identifier: str,
        will: aiomqtt.Will | None = None,
        max_queued_incoming: int = 0,
    ) -> aiomqtt.Client:
        """A fresh (not yet connected) MQTT v5 client; use it as ``async with``."""
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            protocol=aiomqtt.ProtocolVersion.V5,
            will=will,
            keepalive=self.keepalive_s,
            timeout=self.timeout_s,
            tls_context=self.tls_context(),
            tls_insecure=self.tls_insecure if self.tls_context() is not None else None,
            max_queued_incoming_messages=max_queued_incoming,
            logger=client_log,
        )

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before reconnect ``attempt`` (0-based): full jitter under a capped exponential."""
        cap = min(self.backoff_max_s, self.backoff_initial_s * 2.0**attempt)
        return (rng or random).uniform(cap / 2, cap)


async def keep_connected(
    broker: BrokerSettings,
    session: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    identifier: str,
    what: str,
    will: aiomqtt.Will | None = None,
    max_queued_incoming: int = 0,
    ready: Callable[[], Awaitable[object]] | None = None,
    on_down: Callable[[aiomqtt.MqttError | None], None] | None = None,
) -> None:
    """Run ``session`` on a connected client, reconnecting until cancelled, or until the broker
    has refused the credentials ``broker.auth_tries`` times in a row (``SourceError``).

    Each round waits for ``ready`` (when given), connects and runs ``session``; when the broker
    goes away (``MqttError``) or the session returns, ``on_down`` hears why (None: the session
    ended by itself) and the next round starts after a capped, jittered backoff that restarts
    from its first step after every successful connect. Every MQTT client of the project
    (source, sink, command subscriber, simulated device) reconnects this way.
    """
    attempt = refused = 0
    while True:
        if ready is not None:
            await ready()
        error: aiomqtt.MqttError | None = None
        try:
            async with broker.client(identifier=identifier, will=will,
                                     max_queued_incoming=max_queued_incoming) as client:
                attempt = refused = 0
                await session(client)
        except aiomqtt.MqttError as exc:
            error = exc
            refused = refused + 1 if auth_refused(exc) else 0
            if refused >= broker.auth_tries:
                raise SourceError(
                    f"{what}: MQTT broker {broker.host}:{broker.port} refused the credentials "
                    f"{refused} times ({exc}); check [mqtt] username and password"
                ) from None
        if on_down is not None:
            on_down(error)
        delay = broker.backoff(attempt)
        attempt += 1
        if error is not None:
            log.info("%s: broker %s:%d unreachable (%s); retry in %.2f s", what, broker.host,
                     broker.port, error, delay)
        await asyncio.sleep(delay)


def broker_from_config(config: Any) -> BrokerSettings:
    """``[mqtt]`` of the engine config as broker settings."""
    m = config.mqtt
    return BrokerSettings(
        host=m.host, port=m.port, username=m.username, password=m.password,
        tls=bool(m.tls or m.ca_file or m.cert_file), tls_ca=m.ca_file, tls_cert=m.cert_file,
        tls_key=m.key_file, keepalive_s=m.keepalive_s,
        auth_tries=int(getattr(m, "auth_tries", 3)),
    )


def check_segment(value: str, what: str) -> str:
    if not _SEGMENT.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_', '.', '-'"
        )
    return value


def data_topic(site: str, bed: str, channel: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{bed}/data/{channel}"


def bed_topic(site: str, bed: str, leaf: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{bed}/{leaf}"


def channel_of(topic: str, prefix: str) -> str:
    """The channel named by a data topic under ``prefix`` (``.../data/``)."""
    if not topic.startswith(prefix):
        raise PayloadError("bad_topic", f"topic {topic[:120]!r} is not under {prefix!r}")
    channel = topic[len(prefix) :]
    if not _SEGMENT.match(channel):
        raise PayloadError("bad_topic", f"topic {topic[:120]!r} names no valid channel")
    return channel


def topic_safe(label: str) -> str:
    """A channel label turned into a topic segment (spaces and odd characters become '_')."""
    safe = re.sub(r"[^A-Za-z0-9_.\-]", "_", label.strip())[:64]
    return safe or "_"
