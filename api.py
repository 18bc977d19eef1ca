"""The Python API: ``sleepstream.analyze`` for researchers, ``sleepstream.stream`` for
integrators.

``analyze`` replays a recording through the same engine path as ``sleepstream replay``
(``engine.app.night_replay``) and returns a ``Night``. It is a plain function: inside a running
event loop (Jupyter, IPython) it runs the engine on a worker thread with its own loop, so
``asyncio.run`` never meets a running loop. Needs the ``report`` extra (pandas, matplotlib,
tqdm).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.app.night_replay import prepare_replay
from sleepstream.engine.channel_map import ChannelRule, modality_of
from sleepstream.engine.config import Config, ModelSection, load_config
from sleepstream.engine.errors import ConfigError, RecordingError, SleepstreamError
from sleepstream.engine.pipeline import BedRuntime
from sleepstream.engine.protocols import Event
from sleepstream.engine.sinks import MemorySink
from sleepstream.engine.types import MODALITIES

log = logging.getLogger(__name__)
T = TypeVar("T")
EDF_SUFFIXES = (".edf", ".rec")


def analyze(
    path: str | Path,
    *,
    config: Config | str | Path | None = None,
    channels: Mapping[str, str | None] | Sequence[ChannelRule] | None = None,
    model: str | None = None,
    modalities: Sequence[str] | None = None,
    progress: bool = True,
    bed: str = "night",
) -> Any:
    """Stage one recording and return its ``Night``; for a folder, a pandas DataFrame with one
    row of statistics per EDF file (files that cannot be read are logged and listed in
    ``frame.attrs["skipped"]``).

    ``config``: an engine ``Config`` or TOML path (alert limits, model, channel map);
    ``channels``: label pattern -> modality (``{"Fpz-Cz": "eeg", "Status": None}``), before the
    configuration's map; ``model``: a checkpoint (``"default"``, ``"none"``, a path);
    ``modalities``: use only these modalities (the other channels are carried, not used);
    ``progress``: a tqdm bar (off with False)."""
    _need_report_extra()
    path = Path(path)
    base = _base_config(config, model)
    if path.is_dir():
        return _analyze_folder(path, base, channels, modalities, progress, bed)
    return _analyze_file(path, base, channels, modalities, progress, bed)


async def stream(
    config: Config | str | Path, *, queue_size: int = 1024
) -> AsyncIterator[Event]:
    """Every event of an engine, as it is emitted: ``async for event in stream(cfg)``.

    ``config`` is a ``Config`` or an engine TOML (run live, as ``sleepstream run``), or an
    EDF file (replayed as fast as possible, as ``sleepstream replay --max-speed``). Leaving the
    loop early stops the engine and closes its sources and sinks."""
    queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=queue_size)
    sink = _QueueSink(queue)
    if isinstance(config, str | Path) and Path(config).suffix.lower() in EDF_SUFFIXES:
        engine = prepare_replay(Path(config), Config(), extra_sinks=[sink]).engine
    else:
        cfg = config if isinstance(config, Config) else load_config(config)
        engine = build_engine(cfg, live=True, extra_sinks=[sink])[0]

    async def run() -> None:
        try:
            await engine.run()
        finally:
            await queue.put(None)

    task = asyncio.create_task(run(), name="sleepstream-stream")
    try:
        while (event := await queue.get()) is not None:
            yield event
        await task  # raises what stopped the engine
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _QueueSink:
    def __init__(self, queue: asyncio.Queue[Event | None]) -> None:
        self.queue = queue

    async def emit(self, event: Event) -> None:
        await self.queue.put(event)

    async def aclose(self) -> None:
        return None


def run_blocking(make: Callable[[], Any]) -> Any:
    """``asyncio.run(make())``, on a worker thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sleepstream") as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _analyze_file(
    path: Path, base: Config, channels: Any, modalities: Sequence[str] | None,
    progress: bool, bed: str, *, position: int = 0,
) -> Any:
    from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR
    from sleepstream.report.night import Night
    from sleepstream.report.validity import model_dir

    rules = _rules(path, base, channels, modalities)
    memory = MemorySink()
    bar: list[Any] = []

    def make_progress(recording: Any) -> Callable[[BedRuntime, float], None]:
        from tqdm.auto import tqdm

        bar.append(tqdm(total=round(recording.duration), unit="s", desc=path.name,
                        disable=not progress, leave=position == 0, position=position))

        def hear(_bed: BedRuntime, t: float) -> None:
            bar[0].update(max(0, min(round(t), bar[0].total) - bar[0].n))

        return hear

    night = prepare_replay(path, base, bed=bed, rules=rules, extra_sinks=[memory],
                           progress=make_progress)
    try:
        run_blocking(night.engine.run)
    finally:
        if bar:
            bar[0].close()
    if night.bed.failed:
        raise SleepstreamError(f"{path.name}: the replay failed: {night.bed.failed}")
    staged_by = (model_dir(base.model.checkpoint, DEFAULT_MODEL_DIR)
                 if night.model.factory is not None else None)
    return Night.from_events(memory.events, night.recording, model_dir=staged_by)


def _analyze_folder(
    folder: Path, base: Config, channels: Any, modalities: Sequence[str] | None,
    progress: bool, bed: str,
) -> Any:
    import pandas as pd
    from tqdm.auto import tqdm

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EDF_SUFFIXES)
    rows, skipped = {}, {}
    for path in tqdm(files, desc=folder.name, unit="night", disable=not progress):
        try:
            night = _analyze_file(path, base, channels, modalities, progress, bed, position=1)
        except SleepstreamError as exc:
            log.warning("%s skipped: %s", path.name, exc)
            skipped[path.name] = str(exc)
            continue
        rows[path.name] = night.statistics()
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "night"
    frame.attrs["skipped"] = skipped
    return frame


def _base_config(config: Config | str | Path | None, model: str | None) -> Config:
    base = (config if isinstance(config, Config)
            else load_config(config) if config is not None else Config())
    if model is not None:
        base = replace(base, model=ModelSection(checkpoint=model, backend=base.model.backend))
    return base


def _rules(
    path: Path, base: Config, channels: Any, modalities: Sequence[str] | None
) -> tuple[ChannelRule, ...]:
    rules: list[ChannelRule] = []
    if isinstance(channels, Mapping):
        rules += [ChannelRule(p, m) for p, m in channels.items()]
    elif channels is not None:
        rules += list(channels)
    rules += list(base.beds[0].channel_rules if base.beds else ())
    if modalities is None:
        return tuple(rules)
    unknown = sorted(set(modalities) - set(MODALITIES))
    if unknown:
        raise ConfigError([("modalities", f"{unknown} not among {list(MODALITIES)}")])
    keep = set(modalities)
    drop = []
    for label in _labels(path):
        rule = modality_of(label, rules)
        if rule is not None and rule.modality is not None and rule.modality not in keep:
            drop.append(ChannelRule(_literal(label), None))
    return (*drop, *rules)


def _labels(path: Path) -> list[str]:
    import edfio

    try:
        return [s.label for s in edfio.read_edf(path).signals]
    except FileNotFoundError as exc:
        raise RecordingError(f"{path}: no such file; check the path") from exc
    except Exception as exc:  # edfio raises ValueError and friends on malformed headers
        raise RecordingError(f"{path}: not a readable EDF/EDF+ file ({exc})") from exc


def _literal(label: str) -> str:
    """A wildcard pattern matching exactly ``label`` (lower-cased, as the channel map does)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in label.strip().lower())


def _need_report_extra() -> None:
    missing = [m for m in ("pandas", "matplotlib", "tqdm") if not _importable(m)]
    if missing:
        raise SleepstreamError(f"sleepstream.analyze needs {', '.join(missing)}: "
                               "pip install 'sleepstream[report]'")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
