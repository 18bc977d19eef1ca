"""One recorded night through the engine: the set-up ``sleepstream replay``, ``sleepstream
report`` and the Python API (``sleepstream.analyze``) share, so they run the same path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sleepstream.drivers.edf import EdfSource, Recording, RecordingInfo, read_info, read_recording
from sleepstream.engine.app.compose import ModelChoice, build_engine, replay_config
from sleepstream.engine.app.replay_offload import offload_staging
from sleepstream.engine.channel_map import ChannelRule
from sleepstream.engine.config import Config
from sleepstream.engine.pipeline import BedRuntime, Engine
from sleepstream.engine.protocols import Sink


@dataclass(frozen=True, slots=True)
class NightReplay:
    """The engine set to replay one file; the replay streams from the file (``info`` holds its
    channels, duration and annotations, not its samples)."""

    engine: Engine
    bed: BedRuntime
    model: ModelChoice
    info: RecordingInfo
    config: Config
    rules: tuple[ChannelRule, ...] = ()

    @property
    def recording(self) -> Recording:
        """The whole recording in memory (for reports and trends), read on each call."""
        return read_recording(self.info.path, self.rules)


def prepare_replay(
    path: Path,
    base: Config,
    *,
    bed: str = "replay",
    speed: float | None = None,
    rules: Sequence[ChannelRule] | None = None,
    jsonl: Path | None = None,
    extra_sinks: Sequence[Sink] = (),
    progress: Callable[[RecordingInfo], Callable[[BedRuntime, float], None]] | None = None,
) -> NightReplay:
    """The engine replaying ``path`` into one bed (``speed`` None: as fast as possible).
    ``rules`` (channel map) default to those of the configuration's first bed; ``progress``
    makes, from the recording read, the callback that hears each processed second. As fast as
    possible, the bed's staging runs on a worker thread beside the rest (``replay_offload``:
    the same events, stage events one block later in the stream)."""
    if rules is None:
        rules = base.beds[0].channel_rules if base.beds else ()
    config = replay_config(path, bed=bed, rules=rules, base=base, jsonl=jsonl)
    info = read_info(path, rules)
    source = EdfSource(path, speed=speed, chunk_s=1.0 if speed and speed < 100 else 30.0,
                       rules=rules, info=info)
    hear = None if progress is None else progress(info)
    engine, beds, model = build_engine(config, live=False, extra_sinks=extra_sinks,
                                       drivers={bed: [source]}, on_progress=hear)
    if speed is None:
        offload_staging(beds[0])
    return NightReplay(engine, beds[0], model, info, config, tuple(rules))
