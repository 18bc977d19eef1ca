"""Training smoke tests: the train/evaluate commands end to end on a tiny EDF+ folder, and the
optional cross-modal InfoNCE term."""

from __future__ import annotations

import json
from pathlib import Path

import edfio
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sleepstream.engine.app.cli import main as cli  # noqa: E402
from sleepstream.engine.inference.model_files import load_model_files  # noqa: E402
from sleepstream.models.config import ModelConfig  # noqa: E402
from sleepstream.models.rq_transformer import RQTransformer  # noqa: E402
from sleepstream.models.train import Tokenized, info_nce, pretrain  # noqa: E402
from tests.models.conftest import synthetic_night  # noqa: E402

STAGE_TEXT = ("Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage R")


def _write_edf(path: Path, seed: int) -> None:
    night = synthetic_night(seed, minutes=12)
    sigs = [
        edfio.EdfSignal(
            night.signals["hr"][0].astype(np.float64), 1, label="HR", physical_range=(0, 250)
        ),
        edfio.EdfSignal(
            night.signals["resp"][0].astype(np.float64),
            25,
            label="Resp airflow",
            physical_range=(-10, 10),
        ),
    ]
    ann = [edfio.EdfAnnotation(30.0 * i, 30.0, STAGE_TEXT[s]) for i, s in enumerate(night.stages)]
    edfio.Edf(sigs, annotations=ann).write(path)


def test_train_and_evaluate_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for s in range(3):
        _write_edf(data / f"night{s}.edf", s)
    out = tmp_path / "model"
    common = ["--data", str(data), "--out", str(out)]
    assert (
        cli(
            [
                "train",
                "tokenizer",
                *common,
                "--steps",
                "5",
                "--batch",
                "64",
                "--codes",
                "16",
                "--val",
                "night2",
            ]
        )
        == 0
    )
    assert (
        cli(
            [
                "train",
                "pretrain",
                *common,
                "--exclude",
                "night2",
                "--steps",
                "2",
                "--crop",
                "120",
                "--d-model",
                "32",
                "--layers",
                "1",
                "--window",
                "60",
            ]
        )
        == 0
    )
    assert (
        cli(
            [
                "train",
                "stage",
                *common,
                "--exclude",
                "night2",
                "--steps",
                "2",
                "--crop",
                "120",
                "--half",
            ]
        )
        == 0
    )
    files = load_model_files(out)
    assert files.modalities == ("resp", "hr") and files.window == 60
    capsys.readouterr()
    assert (
        cli(
            [
                "evaluate",
                "staging",
                "--data",
                str(data),
                "--include",
                "night2",
                "--checkpoint",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(figures["subsets"]) == {"resp", "hr", "all"}
    assert figures["epochs"] == 24 and 0 <= figures["accuracy"] <= 1
    assert len(figures["confusion"]) == 5 and len(figures["confusion_4class"]) == 4


def test_info_nce_term_trains() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(
        modalities=("resp", "hr"), codes=16, d_model=32, n_layer=1, n_head=4, window=60
    )
    model = RQTransformer(cfg)
    rng = np.random.default_rng(0)
    data = [
        Tokenized(
            "a", rng.integers(0, 16, (300, 2, 4)), np.ones((300, 2), bool), rng.integers(0, 5, 10)
        )
    ]
    codes = torch.from_numpy(data[0].codes[None, :120].repeat(4, 0))
    pres = torch.ones(4, 120, 2, dtype=torch.bool)
    loss = info_nce(model, codes, pres, rng)
    assert torch.isfinite(loss)
    before = [p.detach().clone() for p in model.parameters()]
    pretrain(model, data, steps=1, batch=2, crop=120, infonce=0.5)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_pretrain_on_unlabelled_nights(tmp_path: Path) -> None:
    from sleepstream.models import bundle

    data = tmp_path / "data"
    (data / "scored").mkdir(parents=True)
    (data / "unscored").mkdir()
    _write_edf(data / "scored" / "night0.edf", 0)
    night = synthetic_night(1, minutes=12)
    hr = edfio.EdfSignal(
        night.signals["hr"][0].astype(np.float64), 1, label="HR", physical_range=(0, 250)
    )
    edfio.Edf([hr]).write(data / "unscored" / "free1.edf")
    out, cache = tmp_path / "model", tmp_path / "cache"
    common = ["--data", str(data), "--out", str(out)]
    tok = ["train", "tokenizer", *common, "--steps", "3", "--batch", "64", "--codes", "16"]
    assert cli(tok) == 0
    pre = ["train", "pretrain", *common, "--unlabelled", "--cache", str(cache), "--steps", "1",
           "--crop", "120", "--d-model", "32", "--layers", "1", "--window", "60"]  # fmt: skip
    assert cli(pre) == 0
    meta = bundle.load(out / "pretrain.npz").meta
    assert meta["pretrain_records"] == ["scored/night0", "unscored/free1"]
    assert len(list(cache.rglob("*.npz"))) == 2
    assert cli([*pre, "--exclude", "night0"]) == 0  # codes read back from the cache
    assert bundle.load(out / "pretrain.npz").meta["pretrain_records"] == ["unscored/free1"]
