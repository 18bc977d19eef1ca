"""EDF replay streams from the file: a 24-h 14-channel night replays in bounded, flat memory
(measured in a child process from /proc/self/status), and ``bench memory`` reports it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleepstream.engine.app.cli import main as cli_main
from sleepstream.engine.app.commands.bench_memory import GOAL_PEAK_MB, in_child, write_night


def test_a_24_h_night_replays_in_flat_memory_below_its_file_size(tmp_path: Path) -> None:
    path = write_night(tmp_path / "night.edf", 24.0)
    file_mb = path.stat().st_size / 2**20
    assert file_mb > 120  # 14 channels, 777 samples/s, 24 h
    try:
        result = in_child("source", path)
    finally:
        path.unlink()  # 134 MB: not kept with pytest's last temporary folders
    hourly = result["hourly_mb"]
    assert len(hourly) == 24
    # never loaded whole: the peak stays below the file's own size, far below the goal
    assert result["peak_mb"] < min(file_mb, GOAL_PEAK_MB), result
    assert hourly[-1] - hourly[0] < 16.0, hourly  # flat over the night


def test_bench_memory_prints_figures_for_each_case(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["bench", "memory", "--hours", "1", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for case in ("source", "replay", "load"):
        assert figures[f"{case}_peak_rss_mb"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["replay_peak_rss_mb"] / figures["load_peak_rss_mb"], rel=1e-3, abs=1e-6)
    assert figures["goal_peak_rss_mb"] == GOAL_PEAK_MB and figures["channels"] == 14
