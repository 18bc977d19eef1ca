"""``evaluate alerts`` on a small real set: record-wise CV of both model kinds, a fitted model
the live classifier can load, and data folders without respiratory labels skipped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sleepstream.engine.alerts import apnea_minutes as am
from sleepstream.engine.app.commands import evaluate_alerts as ev
from sleepstream.engine.errors import RecordingError


@pytest.fixture(scope="module")
def small_set(data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("apnea-ecg-hr")
    for name in ("a01", "a02", "a04", "a05", "a07", "a08"):
        for ext in (".edf", ".minutes.csv"):
            (folder / f"{name}{ext}").symlink_to(data_dir / "apnea-ecg-hr" / f"{name}{ext}")
    return folder


@pytest.mark.parametrize("kind", ["boosted", "logistic"])
def test_cross_validation_and_a_loadable_fitted_model(small_set, kind):
    fig, shipped = ev.evaluate_minutes(small_set, kind)
    assert fig["records"] == 6 and fig["model"] == "hr" and fig["kind"] == kind
    assert 0.5 < fig["auroc"] <= 1.0 and 0.5 < fig["accuracy"] <= 1.0
    model = am.model_from_json(json.loads(json.dumps(shipped["hr"])))
    assert model.features == am.feature_names(False)
    state = am.new_classifier({"hr": model})
    hr = np.full(900, 60.0) + 5 * np.sin(np.arange(900) / 9.0)
    scored = am.classify_step(state, np.full(900, np.nan), hr)
    assert scored and all(key == "hr" and p is not None and 0 <= p <= 1 for _, p, key in scored)


def test_sets_skip_epoch_labels_without_respiratory_events(small_set, tmp_path):
    stages = tmp_path / "stages"
    stages.mkdir()
    (stages / "n1.epochs.csv").write_text("onset_s,stage\n0,W\n")
    (tmp_path / "resp").symlink_to(small_set)
    assert ev._sets(tmp_path) == [tmp_path / "resp"]
    with pytest.raises(RecordingError):
        ev._sets(stages)


def test_per_record_figures_add_up_to_the_set(small_set):
    fig, _ = ev.evaluate_minutes(small_set, "logistic", detail=True)
    rows, groups = fig["per_record"], fig["groups"]
    assert [r["record"] for r in rows] == ["a01", "a02", "a04", "a05", "a07", "a08"]
    assert sum(r["minutes"] for r in rows) == fig["minutes"]
    # the set's accuracy is the minute-weighted mean of the records'
    pooled = sum(r["accuracy"] * r["minutes"] for r in rows) / fig["minutes"]
    assert pooled == pytest.approx(fig["accuracy"])
    assert all(0.0 <= r["labelled"] <= 1.0 and 0.0 <= r["predicted"] <= 1.0 for r in rows)
    # every record is named a<number>: one group, with the set's own figures
    assert list(groups) == ["a"]
    assert groups["a"]["records"] == 6 and groups["a"]["accuracy"] == pytest.approx(fig["accuracy"])
    assert groups["a"]["auroc"] == pytest.approx(fig["auroc"])


def test_groups_are_records_named_alike():
    ys = [np.array([1, 0, 1, 0], bool), np.array([1, 1, 0, 0], bool), np.array([0, 0, 0, 1], bool)]
    probs = [np.array([0.9, 0.1, 0.2, 0.3]), np.array([0.8, 0.7, 0.6, 0.1]),
             np.array([0.1, 0.2, 0.3, 0.4])]
    rows, groups = ev.per_record(["ND11", "D2", "ND4"], ys, probs)
    assert [r["accuracy"] for r in rows] == [0.75, 0.75, 0.75]
    assert rows[0]["predicted"] == 0.25 and rows[1]["labelled"] == 0.5
    assert sorted(groups) == ["D", "ND"]
    assert groups["ND"]["records"] == 2 and groups["ND"]["minutes"] == 8
    assert groups["ND"]["sensitivity"] == pytest.approx(1 / 3)  # 1 of 3 apnea minutes found
    assert groups["D"]["specificity"] == pytest.approx(0.5)
