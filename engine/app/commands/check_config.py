"""``sleepstream check-config FILE``: validate an engine configuration and say what to fix.

Beyond what ``run`` validates when it reads the file, this opens what ``run`` would open: every
EDF source (header, record onsets, annotations), the configured model (its files verified and
its sessions created, as ``run`` does), and a probe file in the folder of every file sink and
of the store, so a folder that refuses writes (a read-only disk) is found now, not mid-run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from sleepstream.drivers.edf import read_info
from sleepstream.engine.config import Config, load_config
from sleepstream.engine.errors import ConfigError, ModelError, RecordingError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="engine TOML file")


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
        problems = _check_recordings(config) + _check_writes(config) + _check_model(config)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        print(f"{args.path}: {len(exc.problems)} problem(s)")
        for where, what in exc.problems:
            print(f"  {where}: {what}")
        return 2
    sources = sum(len(b.sources) for b in config.beds)
    print(f"{args.path}: ok ({len(config.beds)} beds, {sources} sources, "
          f"{len(config.sinks)} sinks, model {config.model.checkpoint} on {config.model.backend})")
    return 0


def _base(config: Config) -> Path:
    return config.path.parent if config.path is not None else Path.cwd()


def _check_recordings(config: Config) -> list[tuple[str, str]]:
    """Every EDF source passes the checks ``run`` applies when it opens it (header, record
    onsets, annotations); its samples are not read."""
    problems = []
    for i, bed in enumerate(config.beds):
        for j, src in enumerate(bed.sources):
            if src.kind == "edf":
                path = Path(src.options["path"])
                try:
                    read_info(path if path.is_absolute() else _base(config) / path)
                except RecordingError as exc:
                    problems.append((f"beds[{i}].sources[{j}].path", str(exc)))
    return problems


def _check_writes(config: Config) -> list[tuple[str, str]]:
    """A file can be created next to every file sink and the store (then removed)."""
    files = [(f"sinks[{i}].path", s.options["path"]) for i, s in enumerate(config.sinks)
             if s.kind in ("jsonl", "edf")]
    if config.store.path is not None:
        files.append(("store.path", config.store.path))
    problems = []
    for where, name in files:
        path = Path(name) if Path(name).is_absolute() else _base(config) / name
        folder = path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".sleepstream-check-"):
                pass
        except OSError as exc:
            problems.append((where, f"cannot create a file in {folder} ({exc.strerror}); "
                             f"{path} could not be written"))
    return problems


def _check_model(config: Config) -> list[tuple[str, str]]:
    """The configured model loads as ``run`` loads it (fail closed)."""
    from sleepstream.engine.app.compose import choose_model

    try:
        choose_model(config)
    except ModelError as exc:
        return [("model.checkpoint", str(exc))]
    return []
