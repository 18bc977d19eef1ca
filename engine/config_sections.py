"""The engine configuration's values: one frozen dataclass per TOML section (parsed and
validated by ``engine.config``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleepstream.engine.alerts.config import DEFAULT as DEFAULT_ALERTS
from sleepstream.engine.alerts.config import AlertConfig
from sleepstream.engine.channel_map import ChannelRule

SOURCE_KINDS = ("edf", "lsl", "mqtt")
SINK_KINDS = ("jsonl", "console", "mqtt", "lsl", "edf")
BACKENDS = ("onnx", "torch", "tensorrt")


@dataclass(frozen=True, slots=True)
class EngineSection:
    hop_s: float = 1.0
    epoch_s: float = 30.0
    ring_s: float = 120.0  # seconds of native-rate history kept per channel
    frame_queue: int = 256  # frames buffered between a source and its bed
    event_queue: int = 4096  # events buffered per sink
    live_grace_s: float = 2.0  # live: a hop is closed this long after it ends, data or not


@dataclass(frozen=True, slots=True)
class ModelSection:
    checkpoint: str = "default"  # "default" (shipped), "none", or a path
    backend: str = "onnx"


@dataclass(frozen=True, slots=True)
class MqttSection:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    client_id: str | None = None
    keepalive_s: int = 30
    auth_tries: int = 3  # the broker refusing the credentials this many times in a row ends run


@dataclass(frozen=True, slots=True)
class StoreSection:
    """``[store]``: the event store (SQLite). No ``path``: nothing is stored."""

    path: str | None = None  # relative to the config file
    batch_s: float = 0.5  # a batch is written at least this often
    night_h: float = 16.0  # "the night so far": what was stored in the last night_h hours
    trend_s: float = 60.0  # trend rows (SpO2, HR, respiratory rate, quality) every trend_s


@dataclass(frozen=True, slots=True)
class HttpSection:
    """``[http]``: the web view, ``/metrics`` and health (``run --http`` overrides ``listen``)."""

    listen: str | None = None  # "127.0.0.1:8080"; None: no web view
    token: str | None = None  # bearer token required on every request when set


@dataclass(frozen=True, slots=True)
class ClusterSection:
    """``[cluster]``: shard the beds over a Ray cluster (``run --cluster`` overrides ``address``).
    ``address``: a Ray address (``ray://host:10001``, ``host:6379``) or ``local``;
    ``inference``: ``local`` (a backend in each shard) or ``pooled`` (``cluster.serving``)."""

    address: str | None = None
    heartbeat_s: float = 0.5  # every shard is pinged this often
    dead_after_s: float = 3.0  # a shard silent this long is lost; its beds move
    vnodes: int = 64  # points per shard on the consistent hash ring
    inference: str = "local"  # "pooled": every shard steps through one shared service
    service_backend: str = "onnx"  # the pooled service's backend ("tensorrt" on a GPU node)
    service_gpu: bool = False  # place the pooled service on a node with a GPU


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """A source of one bed. ``options`` holds the kind-specific keys, checked by ``_source``."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BedConfig:
    id: str
    site: str = "default"
    sources: tuple[SourceConfig, ...] = ()
    channel_rules: tuple[ChannelRule, ...] = ()
    alerts: AlertConfig = DEFAULT_ALERTS  # [alerts] with this bed's overrides applied


@dataclass(frozen=True, slots=True)
class SinkConfig:
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Config:
    engine: EngineSection = EngineSection()
    model: ModelSection = ModelSection()
    mqtt: MqttSection = MqttSection()
    beds: tuple[BedConfig, ...] = ()
    sinks: tuple[SinkConfig, ...] = ()
    alerts: AlertConfig = DEFAULT_ALERTS
    path: Path | None = None
    store: StoreSection = StoreSection()
    http: HttpSection = HttpSection()
    cluster: ClusterSection = ClusterSection()
