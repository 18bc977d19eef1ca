"""bench kv and bench beds run end to end on a tiny random model and end with one JSON line;
bench beds --backend tensorrt says clearly that it is unavailable where there is no GPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sleepstream.engine.app.cli import main

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sleepstream.models.serving_export import export_random

    return export_random(tmp_path_factory.mktemp("tiny"), tiny=True)


def last_json(out: str) -> dict[str, object]:
    obj: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return obj


def test_bench_kv_quick(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "kv", "--quick", "--checkpoint", str(tiny), "--json"]) == 0
    fig = last_json(capsys.readouterr().out)
    for key in ("onnx_1min", "torch_1min", "onnx_5min"):
        r = fig[key]
        assert isinstance(r, dict) and r["ratio"] > 0 and r["step_ms"] > 0


def test_bench_beds_quick(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "beds", "--quick", "--checkpoint", str(tiny), "--json"]) == 0
    fig = last_json(capsys.readouterr().out)
    assert fig["backend"] == "onnx" and isinstance(fig["max_beds_realtime"], int)
    ok = [t["beds"] for t in fig["trials"] if t["ok"]]
    assert fig["max_beds_realtime"] == max(ok, default=0)  # the figure is the trials' verdict
    assert fig["mb_per_bed"] == pytest.approx(fig["kv_mb_per_bed"] + fig["buffers_mb_per_bed"])
    assert fig["kv_mb_per_bed"] > 0 and fig["buffers_mb_per_bed"] > 0
    prof = fig["profile_ms_per_s"]
    assert sum(prof.values()) == pytest.approx(1e3)
    layouts = fig["layouts"]
    assert isinstance(layouts, dict) and set(layouts) == {"compact", "masked", "copy"}
    n = fig["at_beds"]
    for name, r in layouts.items():  # every layout ran at the same bed count, as named
        assert r["layout"] == name and r["beds"] == n and r["p50_ms"] <= r["p99_ms"]
    assert layouts["compact"]["contiguous_calls"] == 1.0  # swaps leave no gathered call
    assert layouts["compact"]["masked_rows_per_s"] == layouts["copy"]["swaps_per_s"] == 0
    assert fig[f"p99_ms_at_{n}"] == layouts[fig["layout"]]["p99_ms"]
    assert fig["best_layout_at_beds"] in layouts


def test_bench_beds_tensorrt_unavailable(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT is available here")
    assert main(["bench", "beds", "--backend", "tensorrt", "--json"]) == 3
    fig = last_json(capsys.readouterr().out)
    assert fig["available"] is False and "pip install" in str(fig["reason"])
