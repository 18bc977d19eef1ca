"""``sleepstream check-config FILE``: validate an engine configuration and say what to fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from sleepstream.drivers.edf import read_info
from sleepstream.engine.config import Config, load_config
from sleepstream.engine.errors import ConfigError, RecordingError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="engine TOML file")


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
        _check_recordings(config)
    except ConfigError as exc:
        print(f"{args.path}: {len(exc.problems)} problem(s)")
        for where, what in exc.problems:
            print(f"  {where}: {what}")
        return 2
    sources = sum(len(b.sources) for b in config.beds)
    print(f"{args.path}: ok ({len(config.beds)} beds, {sources} sources, "
          f"{len(config.sinks)} sinks, model {config.model.checkpoint} on {config.model.backend})")
    return 0


def _check_recordings(config: Config) -> None:
    """Every EDF source passes the checks ``run`` applies when it opens it (header, record
    onsets, annotations); its samples are not read."""
    base = config.path.parent if config.path is not None else Path.cwd()
    problems = []
    for i, bed in enumerate(config.beds):
        for j, src in enumerate(bed.sources):
            if src.kind == "edf":
                path = Path(src.options["path"])
                try:
                    read_info(path if path.is_absolute() else base / path)
                except RecordingError as exc:
                    problems.append((f"beds[{i}].sources[{j}].path", str(exc)))
    if problems:
        raise ConfigError(problems)
