"""``sleepstream check-config FILE``: validate an engine configuration and say what to fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from sleepstream.engine.config import load_config
from sleepstream.engine.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", type=Path, help="engine TOML file")


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        print(f"{args.path}: {len(exc.problems)} problem(s)")
        for where, what in exc.problems:
            print(f"  {where}: {what}")
        return 2
    sources = sum(len(b.sources) for b in config.beds)
    print(f"{args.path}: ok ({len(config.beds)} beds, {sources} sources, "
          f"{len(config.sinks)} sinks, model {config.model.checkpoint} on {config.model.backend})")
    return 0
