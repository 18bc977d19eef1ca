"""The composition root: the one place that turns configuration into running objects.

Nothing below this module reads configuration; everything receives what it needs here.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleepstream.engine.alerts import apnea_minutes
from sleepstream.engine.alerts.apnea_model import Parsed
from sleepstream.engine.alerts.condition import new_condition, raise_condition
from sleepstream.engine.alerts.config import RuleConfig
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.bed import BedState
from sleepstream.engine.channel_map import ChannelRule
from sleepstream.engine.clock import EngineClock, MonotonicClock, ReplayClockState
from sleepstream.engine.config import BedConfig, Config, SinkConfig, SourceConfig
from sleepstream.engine.errors import ConfigError, ModelError
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR, describe_loaded
from sleepstream.engine.inference.staging import live_processor_factory, processor_factory
from sleepstream.engine.pipeline import BedRuntime, Engine, EngineSettings
from sleepstream.engine.protocols import BlockProcessor, Driver, Event, Sink
from sleepstream.engine.sinks import ConsoleSink, JsonlSink, SinkFailure
from sleepstream.engine.trends import TrendProcessor
from sleepstream.engine.types import AlertKind, Command, Priority

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """What the engine stages with: a processor factory, or None and the reason why not."""

    factory: Any | None
    description: str
    shared: Any | None = None  # live: the staging shared by all beds (an async context manager)


def choose_model(config: Config, *, live: bool = False) -> ModelChoice:
    """The configured model, or ``checkpoint = "none"``. Fail closed: a configured model that
    does not load is a ``ModelError`` (one line, exit 2), never a run without stages."""
    checkpoint = config.model.checkpoint
    if checkpoint == "none":
        return ModelChoice(None, "no model configured: running without sleep stages")
    try:
        if live:  # one backend and one step scheduler for all beds
            choice = ModelChoice(*live_processor_factory(
                checkpoint, config.model.backend, len(config.beds)))
        else:
            choice = ModelChoice(*processor_factory(checkpoint, config.model.backend))
    except ModelError:
        raise
    except Exception as exc:  # onnxruntime on a corrupt graph, and friends
        raise ModelError(f"model {checkpoint!r} does not load ({type(exc).__name__}: "
                         f"{str(exc)[:200]}); fix the model files or set checkpoint = "
                         '"none"') from None
    if choice.factory is None:
        raise ModelError(f"model {checkpoint!r}: {choice.description}; fix the model files or "
                         'set checkpoint = "none"')
    root = Path(checkpoint) if checkpoint != "default" else DEFAULT_MODEL_DIR
    root = root.parent if root.is_file() else root
    loaded = f"; loaded {describe_loaded(root)}"
    return ModelChoice(choice.factory, choice.description + loaded, choice.shared)


def make_processors(
    config: Config, bed: BedConfig, model: ModelChoice, minutes: Parsed | None = None
) -> list[BlockProcessor]:
    """A bed's processors; ``minutes``: the apnea-minute models and their figures, read once
    for every bed (None: the bed reads the shipped ones)."""
    models, validation = minutes if minutes is not None else (None, None)
    processors: list[BlockProcessor] = [
        AlertEngine(bed.id, bed.alerts, models=models, validation=validation)]
    if model.factory is not None:
        processors.append(model.factory(bed.id))
    if config.store.path is not None or config.http.listen is not None:  # for the store and view
        processors.append(TrendProcessor(bed.id, period_s=config.store.trend_s))
    return processors


def make_driver(
    source: SourceConfig,
    bed: BedConfig,
    config: Config,
    *,
    live: bool,
    clock: EngineClock | None = None,
) -> Driver:
    opts = dict(source.options)
    if source.kind == "edf":
        from sleepstream.drivers.edf import EdfSource

        base = config.path.parent if config.path is not None else Path.cwd()
        path = Path(opts["path"])
        speed = opts.get("speed", 1.0 if live else None)
        chunk_s = opts.get("chunk_s", 1.0 if speed is not None else 30.0)
        return EdfSource(path if path.is_absolute() else base / path, speed=speed,
                         chunk_s=chunk_s, rules=bed.channel_rules)
    if source.kind == "lsl":
        from sleepstream.drivers.lsl import source_from_config as lsl_source

        return lsl_source(opts, bed=bed, config=config, clock=clock)
    if source.kind == "mqtt":
        from sleepstream.drivers.mqtt import source_from_config as mqtt_source

        return mqtt_source(opts, bed=bed, config=config, clock=clock)
    raise ConfigError([(f"beds.{bed.id}.sources", f"unknown source kind {source.kind!r}")])


def make_sink(sink: SinkConfig, config: Config, clock: EngineClock | None = None) -> Sink:
    opts = dict(sink.options)
    if sink.kind == "jsonl":
        return JsonlSink(opts["path"])
    if sink.kind == "console":
        return ConsoleSink(alerts_only=bool(opts.get("alerts_only", False)))
    if sink.kind == "mqtt":
        from sleepstream.drivers.mqtt_sink import sink_from_config as mqtt_sink

        return mqtt_sink(opts, config=config)
    if sink.kind == "lsl":
        from sleepstream.drivers.lsl_sink import sink_from_config as lsl_sink

        return lsl_sink(opts, config=config, clock=clock)  # markers on the LSL clock
    if sink.kind == "edf":
        from sleepstream.drivers.edf_annotations import sink_from_config as edf_sink

        return edf_sink(opts)
    raise ConfigError([("sinks", f"unknown sink kind {sink.kind!r}")])


def build_engine(
    config: Config,
    *,
    live: bool,
    extra_sinks: Sequence[Sink] = (),
    clock: EngineClock | None = None,
    drivers: dict[str, Sequence[Driver]] | None = None,
    on_progress: Callable[[BedRuntime, float], None] | None = None,
    extra_commands: Sequence[AsyncIterator[Command]] = (),
) -> tuple[Engine, list[BedRuntime], ModelChoice]:
    """Build the engine for ``config``. ``drivers`` replaces the configured sources of the named
    beds (used by ``replay`` and by tests); ``on_progress`` hears each bed's processed time
    (after a replay clock has advanced to it); ``extra_commands`` are command sources besides
    MQTT (the web view's acknowledgements)."""
    clock = clock or (MonotonicClock() if live else ReplayClockState())
    model = choose_model(config, live=live)
    minutes = apnea_minutes.load_shipped()  # one read-only copy for every bed
    beds = []
    for bed_cfg in config.beds:
        bed_drivers = (drivers or {}).get(bed_cfg.id) or [
            make_driver(s, bed_cfg, config, live=live, clock=clock) for s in bed_cfg.sources
        ]
        state = BedState(
            bed=bed_cfg.id,
            hop_s=config.engine.hop_s,
            ring_s=config.engine.ring_s,
            processors=tuple(make_processors(config, bed_cfg, model, minutes)),
        )
        beds.append(BedRuntime(state=state, drivers=bed_drivers, site=bed_cfg.site))
    sinks = [make_sink(s, config, clock) for s in config.sinks] + list(extra_sinks)
    settings = EngineSettings(
        frame_queue=config.engine.frame_queue,
        event_queue=config.engine.event_queue,
        live=live,
        live_grace_s=config.engine.live_grace_s,
        hop_s=config.engine.hop_s,
    )
    start = [_status_start(b.state.bed, model, clock) for b in beds]
    engine = Engine(beds, sinks, clock=clock, settings=settings, start_events=start,
                    on_progress=_progress(clock, on_progress),
                    commands=[*(_command_sources(config, clock) if live else ()),
                              *extra_commands],
                    resources=[model.shared] if model.shared is not None else ())
    for i, sink in enumerate(sinks[: len(config.sinks)]):
        if isinstance(sink, SinkFailure):
            sink.on_failure = functools.partial(_sink_failed, engine, f"sinks[{i}]")
    return engine, beds, model


def _sink_failed(engine: Engine, where: str, error: str) -> None:
    """A configured sink cannot write: one technical alarm per bed, to every sink."""
    for bed in engine.beds:
        name = bed.state.bed
        cond = new_condition(name, "sink_failed", RuleConfig(0.0, 0.0, Priority.MEDIUM),
                             message=f"{where} ({error}): its events are lost; fix it and "
                             "restart", kind=AlertKind.TECHNICAL)
        for alert in raise_condition(cond, engine.clock.now(), alert_id=f"{name}/sink_failed/"
                                     f"{where}"):
            engine.bus.publish_nowait(alert.to_event())


def sink_failures(engine: Engine) -> list[str]:
    """What each sink that could not write said first (the run then exits non-zero)."""
    out = []
    for ch in engine.bus.channels:
        failed = ch.sink.failed if isinstance(ch.sink, SinkFailure) else None
        if failed is not None:
            out.append(failed)
        elif ch.failed:
            out.append(f"{type(ch.sink).__name__}: {ch.failed} events failed")
    return out


def _progress(clock: EngineClock, then: Callable[[BedRuntime, float], None] | None
              ) -> Callable[[BedRuntime, float], None] | None:
    """A replay clock follows the data time the beds have reached; then ``then`` hears it."""
    if not isinstance(clock, ReplayClockState):
        return then
    replay_clock = clock

    def progress(bed: BedRuntime, t: float) -> None:
        replay_clock.advance(t)
        if then is not None:
            then(bed, t)

    return progress


def _command_sources(config: Config, clock: EngineClock) -> list[Any]:
    """Live engines with an MQTT sink also take acknowledgements over MQTT, per site."""
    if not any(s.kind == "mqtt" for s in config.sinks):
        return []
    from sleepstream.drivers.mqtt_commands import MqttCommandSource
    from sleepstream.drivers.mqtt_common import broker_from_config

    broker = broker_from_config(config)
    sites = sorted({b.site for b in config.beds})
    return [MqttCommandSource(broker=broker, site=s, clock=clock).commands() for s in sites]


def _status_start(bed: str, model: ModelChoice, clock: EngineClock) -> Event:
    wall = getattr(clock, "wall_origin", None)
    start = dt.datetime.fromtimestamp(wall, dt.UTC).isoformat() if wall else None
    return {
        "type": "status", "bed": bed, "state": "online", "t": 0.0, "start": start,
        "stages": model.factory is not None, "message": model.description,
    }


def replay_config(
    path: Path, *, bed: str = "replay", rules: Sequence[ChannelRule] = (),
    base: Config | None = None, jsonl: Path | None = None,
) -> Config:
    """A configuration that replays one file into one bed (used by ``sleepstream replay``)."""
    base = base or Config()
    bed_cfg = BedConfig(id=bed, sources=(SourceConfig("edf", {"path": str(path)}),),
                        channel_rules=tuple(rules),
                        alerts=base.beds[0].alerts if base.beds else base.alerts)
    sinks = tuple(base.sinks) + ((SinkConfig("jsonl", {"path": str(jsonl)}),) if jsonl else ())
    return Config(base.engine, base.model, base.mqtt, (bed_cfg,), sinks, base.alerts, base.path)
