"""bench replay on short synthetic PSG nights: one JSON line whose figures agree with each other
(speed-ups from the median walls, growth from the per-hop costs), every second through the
model, every stage from the EEG path, and the YASA ratio from the times it prints."""

from __future__ import annotations

import json
import statistics

import pytest

from sleepstream.engine.app.cli import main


def _last_json(out: str) -> dict[str, object]:
    obj: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return obj


def test_bench_replay_figures_are_consistent(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("yasa")
    hours = (0.05, 0.1)
    argv = ["bench", "replay", "--hours", *map(str, hours), "--repeat", "2", "--vs", "yasa",
            "--json"]
    assert main(argv) == 0
    fig = _last_json(capsys.readouterr().out)
    assert fig["channels"] == 14 and fig["repeat"] == 2
    per_hop = {}
    for h in hours:
        k, secs = f"{h:g}h", h * 3600
        runs = fig[f"runs_s_{k}"]
        assert isinstance(runs, list) and len(runs) == 2
        assert fig[f"engine_s_{k}"] == pytest.approx(statistics.median(runs), rel=1e-5)
        assert fig[f"speedup_{k}"] == pytest.approx(secs / fig[f"engine_s_{k}"], rel=1e-5)
        assert fig[f"us_per_hop_{k}"] == pytest.approx(1e6 / fig[f"speedup_{k}"], rel=1e-5)
        assert fig[f"model_steps_{k}"] == secs  # every second went through the transformer
        assert fig[f"stages_{k}"] == secs // 30
        assert fig[f"stages_by_path_{k}"] == {"eeg": secs // 30}  # the EEG path staged them
        assert 0 <= fig[f"model_share_{k}"] < 1
        assert fig[f"speedup_cpu_{k}"] == pytest.approx(secs / fig[f"cpu_s_{k}"], rel=1e-4)
        per_hop[h] = fig[f"engine_s_{k}"] / secs
    assert fig["ratio"] == pytest.approx(per_hop[0.1] / per_hop[0.05], rel=1e-4)
    cpu = {h: fig[f"cpu_s_{h:g}h"] / (h * 3600) for h in hours}
    assert fig["ratio_cpu"] == pytest.approx(cpu[0.1] / cpu[0.05], rel=1e-4)
    assert fig["speedup"] == fig["speedup_0.1h"]
    assert fig["vs_yasa"] == pytest.approx(fig["engine_s_0.1h"] / fig["yasa_s"], rel=1e-4)
    assert fig["yasa_s"] == pytest.approx(statistics.median(fig["yasa_runs_s"]), rel=1e-5)
