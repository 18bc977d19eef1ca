"""A real oximetry night cut to its first 45 minutes (the shipped HuGCDN recording), so the
API, report and export tests replay it in a few seconds."""

from __future__ import annotations

import json
from pathlib import Path

import edfio
import pytest

from sleepstream.engine.app.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "simulators" / "recordings" / "hugcdn-D2.edf"


@pytest.fixture(scope="session")
def short_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    edf = edfio.read_edf(SHIPPED)
    edf.slice_between_seconds(0, 2700)
    path = tmp_path_factory.mktemp("night") / "hugcdn-D2-45min.edf"
    edf.write(path)
    return path


@pytest.fixture(scope="session")
def short_replay(short_night: Path) -> tuple[Path, Path, list[dict]]:
    """``sleepstream replay`` of the short night: (events.jsonl, annotations.edf, events)."""
    out = short_night.parent
    rc = cli(["replay", str(short_night), "--max-speed", "--quiet", "--out",
              str(out / "events.jsonl"), "--edf-annotations", str(out / "annotations.edf")])
    assert rc == 0
    lines = (out / "events.jsonl").read_text().splitlines()
    return out / "events.jsonl", out / "annotations.edf", [json.loads(x) for x in lines]
