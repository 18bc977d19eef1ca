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
