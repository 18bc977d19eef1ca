"""Engine configuration: one TOML file into frozen dataclasses, validated once at start-up.

``load_config`` collects every problem with its location (``beds[1].sources[0].path``) and
raises one ``ConfigError`` listing them all, each saying what to fix.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from sleepstream.engine.alerts.config import DEFAULT as DEFAULT_ALERTS
from sleepstream.engine.alerts.config import AlertConfig, parse_alerts_table
from sleepstream.engine.channel_map import ChannelRule
from sleepstream.engine.config_checks import (
    check_files,
    check_recordings,
    check_writable,
    is_listen,
)
from sleepstream.engine.config_sections import (  # re-exported: the config's values
    BACKENDS as BACKENDS,
)
from sleepstream.engine.config_sections import (
    SINK_KINDS as SINK_KINDS,
)
from sleepstream.engine.config_sections import (
    SOURCE_KINDS as SOURCE_KINDS,
)
from sleepstream.engine.config_sections import (
    BedConfig as BedConfig,
)
from sleepstream.engine.config_sections import (
    ClusterSection as ClusterSection,
)
from sleepstream.engine.config_sections import (
    Config as Config,
)
from sleepstream.engine.config_sections import (
    EngineSection as EngineSection,
)
from sleepstream.engine.config_sections import (
    HttpSection as HttpSection,
)
from sleepstream.engine.config_sections import (
    ModelSection as ModelSection,
)
from sleepstream.engine.config_sections import (
    MqttSection as MqttSection,
)
from sleepstream.engine.config_sections import (
    SinkConfig as SinkConfig,
)
from sleepstream.engine.config_sections import (
    SourceConfig as SourceConfig,
)
from sleepstream.engine.config_sections import (
    StoreSection as StoreSection,
)
from sleepstream.engine.errors import ConfigError
from sleepstream.engine.types import MODALITIES

T = TypeVar("T")
Problems = list[tuple[str, str]]

# Keys each source kind accepts: name -> (type, required).
SOURCE_KEYS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "edf": {"path": (str, True), "speed": ((int, float), False), "chunk_s": ((int, float), False)},
    "lsl": {
        "name": (str, False), "type": (str, False), "source_id": (str, False),
        "timeout_s": ((int, float), False), "lost_after_s": ((int, float), False),
        "clocksync": (bool, False), "dejitter": (str, False),
    },
    "mqtt": {
        "channels": (list, False), "timeout_s": ((int, float), False),
        "lost_after_s": ((int, float), False), "reorder_packets": (int, False),
        "reorder_wait_s": ((int, float), False), "fault_hold_s": ((int, float), False),
    },
}
SINK_KEYS: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "jsonl": {"path": (str, True)},
    "edf": {"path": (str, True)},  # EDF+ annotations, written when the run ends
    "console": {"alerts_only": (bool, False)},
    "mqtt": {"site": (str, False), "engine_id": (str, False)},
    "lsl": {"name": (str, False)},
}
DEJITTER_MODES = ("engine", "liblsl", "none")
CLUSTER_ADDRESS = re.compile(r"^(local|auto|(ray://)?[A-Za-z0-9_.\-]+:\d{1,5})$")
SEGMENT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")  # one MQTT topic level (site, bed, channel)
MAX_RING_S = 3600.0  # per-channel history cap: an hour at native rate
MAX_FS = 100_000.0
# Numeric source options: key -> (lowest allowed, lowest is allowed, highest allowed).
SOURCE_RANGES: dict[str, tuple[float, bool, float]] = {
    "speed": (0.0, False, 1e6), "chunk_s": (0.0, False, 600.0),
    "timeout_s": (0.0, True, 3600.0), "lost_after_s": (0.0, False, 3600.0),
    "reorder_packets": (1.0, True, 1024.0), "reorder_wait_s": (0.0, False, 60.0),
    "fault_hold_s": (0.0, True, 600.0),
}


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([(str(path), "file not found; check the path")]) from None
    except IsADirectoryError:
        raise ConfigError([(str(path), "is a directory; give the TOML file")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([(str(path), f"not UTF-8 text (byte {exc.start}); save it as "
                            "UTF-8")]) from None
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot be read: {exc.strerror}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from None
    return parse_config(raw, path=path)


def parse_config(raw: Mapping[str, Any], *, path: Path | None = None) -> Config:
    problems: Problems = []
    known = {"engine", "model", "mqtt", "beds", "sinks", "alerts", "store", "http",
             "cluster"}
    for key in raw:
        if key not in known:
            problems.append((key, f"unknown section; expected one of {sorted(known)}"))
    engine = _section(raw.get("engine", {}), EngineSection, "engine", problems)
    model = _section(raw.get("model", {}), ModelSection, "model", problems)
    mqtt = _section(raw.get("mqtt", {}), MqttSection, "mqtt", problems)
    store = _section(raw.get("store", {}), StoreSection, "store", problems)
    http = _section(raw.get("http", {}), HttpSection, "http", problems)
    cluster = _section(raw.get("cluster", {}), ClusterSection, "cluster", problems)
    if model is not None and model.backend not in BACKENDS:
        problems.append(("model.backend", f"{model.backend!r} is not one of {list(BACKENDS)}"))
    _check_positive(engine, "engine", problems)
    _check_services(mqtt, http, cluster, store, path, problems)
    beds = _list(raw.get("beds", []), "beds", _bed, problems)
    ids = [b.id for b in beds]
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(("beds", f"bed id {dup!r} is used more than once; ids must be unique"))
    if path is not None:  # a file on disk: its recordings must be there too
        check_recordings(beds, path, problems)
    sinks = _list(raw.get("sinks", []), "sinks", _sink, problems)
    alerts = _alerts(raw.get("alerts", {}), "alerts", DEFAULT_ALERTS, problems)
    raw_beds = raw.get("beds", [])
    for i, bed in enumerate(beds):
        table = raw_beds[i].get("alerts", {}) if i < len(raw_beds) else {}
        beds[i] = replace(bed, alerts=_alerts(table, f"beds[{i}].alerts", alerts, problems))
    if problems:
        raise ConfigError(problems)
    assert engine is not None and model is not None and mqtt is not None
    assert store is not None and http is not None
    assert cluster is not None
    return Config(engine, model, mqtt, tuple(beds), tuple(sinks), alerts, path, store, http,
                  cluster)


def _check_services(mqtt: MqttSection | None, http: HttpSection | None,
                    cluster: ClusterSection | None, store: StoreSection | None,
                    path: Path | None, problems: Problems) -> None:
    """``[mqtt]``, ``[http]``, ``[cluster]`` and ``[store]``: values ``run`` can start with."""
    if cluster is not None and not (cluster.heartbeat_s > 0 and cluster.dead_after_s
                                    > cluster.heartbeat_s and cluster.vnodes > 0):
        problems.append(("cluster", "need heartbeat_s > 0, dead_after_s > heartbeat_s, "
                         "vnodes > 0"))
    if cluster is not None and cluster.inference not in ("local", "pooled"):
        problems.append(("cluster.inference", f"{cluster.inference!r} is not local or pooled"))
    if store is not None and not (store.batch_s > 0 and store.night_h > 0 and store.trend_s > 0):
        problems.append(("store", "batch_s, night_h and trend_s must be > 0"))
    if mqtt is not None and not 1 <= mqtt.port <= 65535:
        problems.append(("mqtt.port", f"{mqtt.port} is not a TCP port (1 to 65535)"))
    if mqtt is not None and (mqtt.keepalive_s < 1 or mqtt.auth_tries < 1):
        problems.append(("mqtt", "keepalive_s and auth_tries must be >= 1"))
    if mqtt is not None and (mqtt.cert_file is None) != (mqtt.key_file is None):
        problems.append(("mqtt", "cert_file and key_file go together"))
    check_files(mqtt, problems)
    if http is not None and http.listen is not None and not is_listen(http.listen):
        problems.append(("http.listen", f"{http.listen!r} is not HOST:PORT with a port 0 to "
                         "65535 (e.g. 127.0.0.1:8080)"))
    if cluster is not None and cluster.address is not None and not CLUSTER_ADDRESS.match(
            cluster.address):
        problems.append(("cluster.address", f"{cluster.address!r} is not 'local', 'auto', "
                         "HOST:PORT or ray://HOST:PORT"))
    if store is not None and store.path is not None:
        file = Path(store.path)
        base = path.parent if path is not None else Path.cwd()
        check_writable(file if file.is_absolute() else base / file, "store.path", problems)


def _alerts(table: Any, where: str, base: AlertConfig, problems: Problems) -> AlertConfig:
    """An ``[alerts]`` table (or a bed's override) on top of ``base``."""
    if not isinstance(table, Mapping):
        problems.append((where, "must be a table"))
        return base
    parsed, found = parse_alerts_table(dict(table), where, base)
    problems.extend(found)
    return parsed


def _section(table: Any, cls: type[T], where: str, problems: Problems) -> T | None:
    if not isinstance(table, Mapping):
        problems.append((where, "must be a table"))
        return None
    fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            problems.append((f"{where}.{key}", f"unknown key; expected one of {sorted(fields)}"))
            continue
        default = getattr(cls(), key)
        expected: tuple[type, ...] = (int, float) if isinstance(default, float) else (
            (str,) if default is None else (type(default),)
        )
        if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
            name = "number" if float in expected else expected[0].__name__
            problems.append((f"{where}.{key}", f"expected a {name}, got {value!r}"))
            continue
        kwargs[key] = float(value) if isinstance(default, float) else value  # type: ignore[arg-type]
    return cls(**kwargs)


def _check_positive(engine: EngineSection | None, where: str, problems: Problems) -> None:
    if engine is None:
        return
    for key in ("hop_s", "epoch_s", "ring_s", "frame_queue", "event_queue"):
        value = getattr(engine, key)
        if not (value > 0 and math.isfinite(value)):
            problems.append((f"{where}.{key}", "must be a finite number > 0"))
    if engine.ring_s > MAX_RING_S:
        problems.append((f"{where}.ring_s", f"at most {MAX_RING_S:g} s"))
    if engine.frame_queue > 1_000_000 or engine.event_queue > 1_000_000:
        problems.append((where, "frame_queue and event_queue are at most 1000000"))
    if not (engine.hop_s > 0 and engine.epoch_s > 0 and math.isfinite(engine.epoch_s)):
        return
    if engine.epoch_s % engine.hop_s:
        problems.append((f"{where}.epoch_s", "must be a whole number of hops (hop_s)"))


def _list(
    items: Any, where: str, parse: Callable[[Any, str, Problems], T | None], problems: Problems
) -> list[T]:
    if not isinstance(items, list):
        problems.append((where, "must be an array of tables ([[...]])"))
        return []
    out = []
    for i, item in enumerate(items):
        parsed = parse(item, f"{where}[{i}]", problems)
        if parsed is not None:
            out.append(parsed)
    return out


def _options(
    table: Mapping[str, Any],
    keys: dict[str, tuple[type | tuple[type, ...], bool]],
    where: str,
    problems: Problems,
) -> dict[str, Any]:
    opts = {}
    for key, (typ, required) in keys.items():
        if key not in table:
            if required:
                problems.append((f"{where}.{key}", "missing; this key is required"))
            continue
        value = table[key]
        if (isinstance(value, bool) and typ is not bool) or not isinstance(value, typ):
            problems.append((f"{where}.{key}", f"wrong type: {value!r}"))
            continue
        opts[key] = value
    for key in table:
        if key != "kind" and key not in keys:
            problems.append((f"{where}.{key}", f"unknown key; expected one of {sorted(keys)}"))
    return opts


def _source(table: Any, where: str, problems: Problems) -> SourceConfig | None:
    if not isinstance(table, Mapping):
        problems.append((where, "must be a table"))
        return None
    kind = table.get("kind")
    if kind not in SOURCE_KINDS:
        problems.append((f"{where}.kind", f"{kind!r} is not one of {list(SOURCE_KINDS)}"))
        return None
    opts = _options(table, SOURCE_KEYS[kind], where, problems)
    if kind == "lsl" and not {"name", "type", "source_id"} & set(opts):
        problems.append((where, "an lsl source needs at least one of name, type, source_id"))
    if kind == "lsl" and opts.get("dejitter", "engine") not in DEJITTER_MODES:
        problems.append((f"{where}.dejitter", f"must be one of {list(DEJITTER_MODES)}"))
    for key, (lo, closed, hi) in SOURCE_RANGES.items():
        value = opts.get(key)
        if value is not None and not ((value >= lo if closed else value > lo) and value <= hi):
            low = f">= {lo:g}" if closed else f"> {lo:g}"
            problems.append((f"{where}.{key}", f"must be {low} and <= {hi:g}, got {value!r}"))
    if kind == "mqtt":
        _mqtt_channels(opts.get("channels", []), f"{where}.channels", problems)
    return SourceConfig(kind, opts)


def _mqtt_channels(items: list[Any], where: str, problems: Problems) -> None:
    if not items:
        problems.append((where, "an mqtt source needs its channels: [{name = \"SpO2\", fs = 1.0}]"))
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            problems.append((w, f"must be a table {{name = ..., fs = ...}}, got {item!r}"))
            continue
        name, fs = item.get("name"), item.get("fs")
        if not isinstance(name, str) or not SEGMENT.match(name):
            problems.append((f"{w}.name", "1-64 characters of letters, digits, '_', '.', '-'"))
        if isinstance(fs, bool) or not isinstance(fs, int | float) or not 0 < fs <= MAX_FS:
            problems.append((f"{w}.fs", f"a sampling rate in Hz (0 < fs <= {MAX_FS:g}) is "
                             f"required, got {fs!r}"))
        for key in item:
            if key not in ("name", "fs", "unit", "modality"):
                problems.append((f"{w}.{key}", "unknown key; expected name, fs, unit, modality"))


def _sink(table: Any, where: str, problems: Problems) -> SinkConfig | None:
    if not isinstance(table, Mapping):
        problems.append((where, "must be a table"))
        return None
    kind = table.get("kind")
    if kind not in SINK_KINDS:
        problems.append((f"{where}.kind", f"{kind!r} is not one of {list(SINK_KINDS)}"))
        return None
    opts = _options(table, SINK_KEYS[kind], where, problems)
    if kind in ("jsonl", "edf") and isinstance(opts.get("path"), str):
        check_writable(Path(opts["path"]), f"{where}.path", problems)
    return SinkConfig(kind, opts)


def _bed(table: Any, where: str, problems: Problems) -> BedConfig | None:
    if not isinstance(table, Mapping):
        problems.append((where, "must be a table"))
        return None
    bed_id = table.get("id")
    if not isinstance(bed_id, str) or not bed_id or set(bed_id) & set("/+#"):
        problems.append((f"{where}.id", "a non-empty string without '/', '+' or '#' is required"))
        bed_id = "?"
    for key in table:
        if key not in {"id", "site", "sources", "channels", "alerts"}:
            problems.append((f"{where}.{key}", "unknown key; expected id, site, sources, "
                             "channels, alerts"))
    sources = _list(table.get("sources", []), f"{where}.sources", _source, problems)
    if not sources:
        problems.append((f"{where}.sources", "a bed needs at least one [[beds.sources]]"))
    rules = _rules(table.get("channels", []), f"{where}.channels", problems)
    site = table.get("site", "default")
    if not isinstance(site, str) or not SEGMENT.match(site):
        problems.append((f"{where}.site", "1-64 characters of letters, digits, '_', '.', '-' "
                         "(it is one MQTT topic level)"))
        site = "default"
    if any(s.kind == "mqtt" for s in sources) and bed_id != "?" and not SEGMENT.match(bed_id):
        problems.append((f"{where}.id", "with an mqtt source: 1-64 characters of letters, "
                         "digits, '_', '.', '-'"))
    return BedConfig(bed_id, site, tuple(sources), rules)


def _rules(items: Any, where: str, problems: Problems) -> tuple[ChannelRule, ...]:
    if not isinstance(items, list):
        problems.append((where, "must be an array of {pattern, modality, scale} tables"))
        return ()
    rules = []
    for i, item in enumerate(items):
        w = f"{where}[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("pattern"), str):
            problems.append((w, "needs a string 'pattern' (e.g. \"Fpz-Cz*\")"))
            continue
        modality = item.get("modality")
        if modality is not None and modality not in (*MODALITIES, "none"):
            problems.append((f"{w}.modality", f"{modality!r} is not one of {list(MODALITIES)}"))
            continue
        scale = item.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            problems.append((f"{w}.scale", "must be a number"))
            continue
        rules.append(ChannelRule(item["pattern"], None if modality == "none" else modality,
                                 float(scale)))
    return tuple(rules)
