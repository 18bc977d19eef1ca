"""Broker settings shared by the MQTT source and sink, and the topic layout.

Topics: ``sleepstream/v1/<site>/<bed>/data/<channel>`` in; ``.../stage``, ``.../alert`` and
``.../status`` out. Every client speaks MQTT v5; TLS (CA, client certificate and key) and
username/password are options. Reconnects use capped, jittered exponential backoff.
"""

from __future__ import annotations

import random
import re
import ssl
from dataclasses import dataclass

import aiomqtt

from sleepstream.engine.errors import PayloadError

TOPIC_ROOT = "sleepstream/v1"
_SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


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
    keepalive_s: int = 10
    timeout_s: float = 5.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 10.0

    def tls_context(self) -> ssl.SSLContext | None:
        if self.tls_ca is None and self.tls_cert is None:
            return None
        ctx = ssl.create_default_context(cafile=self.tls_ca)
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
        )

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before reconnect ``attempt`` (0-based): full jitter under a capped exponential."""
        cap = min(self.backoff_max_s, self.backoff_initial_s * 2.0**attempt)
        return (rng or random).uniform(cap / 2, cap)


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
