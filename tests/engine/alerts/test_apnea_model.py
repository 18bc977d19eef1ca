"""The boosted-tree apnea model, exported from scikit-learn to plain arrays, predicts exactly as
scikit-learn does (NaN features included) and survives its JSON round trip; the shipped file
holds one such model per input set, with the feature names the engine computes."""

from __future__ import annotations

import json

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from sleepstream.engine.alerts import apnea_minutes as am
from sleepstream.engine.alerts.apnea_model import BoostedTrees, model_from_json


def test_exported_trees_predict_as_sklearn():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 6))
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned branch
    y = (np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1]) ** 2
         + 0.3 * rng.normal(size=3000)) > 0.4
    clf = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, random_state=0).fit(x, y)
    model = BoostedTrees.from_sklearn(clf, tuple(f"f{i}" for i in range(6)))
    np.testing.assert_allclose(model.predict(x), clf.predict_proba(x)[:, 1], rtol=0, atol=1e-12)
    again = model_from_json(json.loads(json.dumps(model.to_json())))
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_shipped_models_match_the_engine_features():
    models = am.load_models()
    assert set(models) == {"spo2_hr", "hr"}
    assert models["spo2_hr"].features == am.feature_names(True)
    assert models["hr"].features == am.feature_names(False)
    assert all(isinstance(m, BoostedTrees) for m in models.values())
