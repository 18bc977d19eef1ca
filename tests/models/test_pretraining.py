"""The pretraining ablation end to end on a tiny folder of EDF+ nights: JSON shape, the folds,
consistency of the figures between arms, the cache and the reuse of a pretrained arm."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import edfio
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sleepstream.engine.app.commands import evaluate_pretraining  # noqa: E402
from sleepstream.models import bundle  # noqa: E402
from sleepstream.models.pretrain_eval import subject_folds, subject_of  # noqa: E402
from tests.models.conftest import synthetic_night  # noqa: E402

STAGE_TEXT = ("Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage R")


def _write(path: Path, seed: int, labelled: bool) -> None:
    night = synthetic_night(seed, minutes=14)
    hr = edfio.EdfSignal(
        night.signals["hr"][0].astype(np.float64), 1, label="HR", physical_range=(0, 250)
    )
    ann = (
        [edfio.EdfAnnotation(30.0 * i, 30.0, STAGE_TEXT[s]) for i, s in enumerate(night.stages)]
        if labelled
        else []
    )
    edfio.Edf([hr], annotations=ann).write(path)


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    p = argparse.ArgumentParser()
    evaluate_pretraining.add_arguments(p)
    assert evaluate_pretraining.main(p.parse_args(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_subject_folds_keep_a_subjects_nights_together() -> None:
    nums = ("01a", "01b", "02b", "03", "14", "16", "37", "41", "48", "59", "61", "66")
    names = [f"slpdb/slp{n}" for n in nums]
    folds = subject_folds(names, 3)
    assert folds == [0] * 4 + [1] * 4 + [2] * 4
    assert subject_of("slpdb/slp01b") == "slp01" and subject_of("a01") == "a01"
    assert subject_folds(["x1a", "x1b", "x2", "x3"], 2) == [0, 0, 1, 1]
    with pytest.raises(ValueError):
        subject_folds(["x1a", "x1b"], 2)


def test_ablation_command_end_to_end(
    tmp_path: Path, tiny_model: tuple[Path, bundle.Trained], capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)
    model_dir, _ = tiny_model
    data = tmp_path / "data"
    (data / "unlabelled").mkdir(parents=True)
    (data / "scored").mkdir()
    for s in range(2):
        _write(data / "unlabelled" / f"u{s}.edf", 10 + s, labelled=False)
    for s, name in enumerate(("r01a", "r01b", "r02", "r03")):
        _write(data / "scored" / f"{name}.edf", s, labelled=True)
    argv = [
        "--data", str(data), "--stage-data", str(data / "scored"), "--folds", "2",
        "--checkpoint", str(model_dir), "--arms", "real,synthetic,none",
        "--steps", "2", "--batch", "2", "--crop", "120", "--head-steps", "5",
        "--out", str(tmp_path / "arms"), "--cache", str(tmp_path / "cache"),
        "--save", str(tmp_path / "variant"), "--json",
    ]  # fmt: skip
    rep = _run(argv, capsys)
    assert rep["pretraining"]["records"] == 6  # every night with heart rate, scored or not
    assert rep["pretraining"]["hours"]["all"] == pytest.approx(6 * 14 / 60, abs=0.05)
    assert sorted(rep["stage_records"]) == [f"scored/{n}" for n in ("r01a", "r01b", "r02", "r03")]
    assert rep["folds"] == [["scored/r01a", "scored/r01b"], ["scored/r02", "scored/r03"]]
    assert set(rep["arms"]) == {"real", "synthetic", "none"}
    epochs = {r["epochs"] for r in rep["arms"].values()}
    assert epochs == {4 * 28}  # every scored epoch, each scored once, by every arm
    for r in rep["arms"].values():
        assert len(r["folds"]) == 2
        assert sum(sum(row) for row in r["confusion_4class"]) == r["epochs"]
        assert r["rem_share_gap_points"] == pytest.approx(
            100 * abs(r["rem_share_pred"] - r["rem_share_true"]), abs=1e-3
        )  # printed figures are rounded to 6 decimals
        assert sum(r["fraction_pred_4class"].values()) == pytest.approx(1.0, abs=1e-5)
        assert set(r["before_share_matching"]) >= {"kappa_4class", "rem_share_pred"}
        assert r["meets_goal"] == (r["kappa_4class"] >= 0.35 and r["rem_share_gap_points"] <= 5)
        ctx = r["context_head"]
        assert ctx["epochs"] == r["epochs"] and len(ctx["folds"]) == 2
        assert sum(sum(row) for row in ctx["confusion_4class"]) == ctx["epochs"]
        filt = ctx["filtered"]
        assert filt["epochs"] == r["epochs"] and len(filt["folds"]) == 2
        assert filt["meets_goal"] == (
            filt["kappa_4class"] >= 0.35 and filt["rem_share_gap_points"] <= 5
        )
    assert len({r["rem_share_true"] for r in rep["arms"].values()}) == 1
    assert "pretrain_s" in rep["arms"]["real"]
    assert (tmp_path / "arms" / "pretrain-real.npz").exists()
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 6
    saved = bundle.load(tmp_path / "variant" / "model.npz")
    assert saved.model is not None and saved.sha256 == rep["saved_sha256"]
    assert (tmp_path / "variant" / "context_head.npz").exists()
    # A second run reads the pretrained arm and the codes back and gives the same figures.
    again = _run(argv, capsys)
    for arm in ("real", "synthetic", "none"):
        assert again["arms"][arm]["kappa_4class"] == rep["arms"][arm]["kappa_4class"]
        assert again["arms"][arm]["confusion_4class"] == rep["arms"][arm]["confusion_4class"]
        assert again["arms"][arm]["context_head"] == rep["arms"][arm]["context_head"]
    assert again["arms"]["real"]["pretrain_s"] == rep["arms"]["real"]["pretrain_s"]


def test_share_matching_brings_training_shares_to_the_scored_ones() -> None:
    from sleepstream.models.pretrain_eval import match_shares, unmatched

    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 3))
    x = torch.randn(600, 1, 4).expand(600, 30, 4)  # epochs that differ
    y = torch.from_numpy(np.repeat([0, 1, 2], [360, 180, 60]))
    with torch.no_grad():
        head[2].bias += torch.tensor([3.0, 0.0, 0.0])  # calls nearly everything class 0
        before = head(x).mean(1)
    match_shares(head, x, y, 3)
    with torch.no_grad():
        after = head(x).mean(1)
    shares = torch.bincount(after.argmax(-1), minlength=3).float() / len(y)
    assert torch.allclose(shares, torch.tensor([0.6, 0.3, 0.1]), atol=0.03)
    back = unmatched(head, after.softmax(-1).numpy())
    assert np.allclose(back, before.softmax(-1).numpy(), atol=1e-5)
