"""The evaluation metrics, pinned against scikit-learn and a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

from sleepstream.models.evaluate import confusion, rem_latency_min, scores

NAMES = ("W", "N1", "N2", "N3", "REM")


def test_hand_computed_case() -> None:
    truth = np.array([0, 0, 1, 2, 2, 4])
    pred = np.array([0, 1, 1, 2, 4, 4])
    s = scores([truth], [pred], NAMES)
    assert s["accuracy"] == pytest.approx(4 / 6)
    # p_o = 4/6; p_e = sum(row * col) / 36 = (2*1 + 1*2 + 2*1 + 0 + 1*2) / 36 = 8/36
    assert s["kappa"] == pytest.approx((4 / 6 - 8 / 36) / (1 - 8 / 36))
    assert s["f1"]["W"] == pytest.approx(2 / 3) and s["f1"]["REM"] == pytest.approx(2 / 3)
    assert s["f1"]["N1"] == pytest.approx(2 / 3) and s["f1"]["N2"] == pytest.approx(2 / 3)
    assert np.isnan(s["f1"]["N3"])  # never scored, never predicted
    assert s["macro_f1"] == pytest.approx(2 / 3)  # over the stages the truth holds
    assert s["epochs"] == 6


@pytest.mark.parametrize("seed", range(5))
def test_scores_equal_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truths = [rng.integers(-1, 5, rng.integers(50, 200)) for _ in range(3)]  # -1: unscored
    preds = [np.where(rng.random(t.size) < 0.6, t, rng.integers(0, 5, t.size)).clip(0)
             for t in truths]
    s = scores(truths, preds, NAMES)
    t = np.concatenate(truths)
    p = np.concatenate(preds)
    keep = t >= 0
    t, p = t[keep], p[keep]
    assert s["accuracy"] == pytest.approx(float((t == p).mean()))
    assert s["kappa"] == pytest.approx(cohen_kappa_score(t, p))
    np.testing.assert_array_equal(s["confusion"], confusion_matrix(t, p, labels=range(5)))
    np.testing.assert_array_equal(confusion(t, p, 5), confusion_matrix(t, p, labels=range(5)))
    per = f1_score(t, p, labels=range(5), average=None, zero_division=np.nan)
    np.testing.assert_allclose([s["f1"][n] for n in NAMES], per)
    assert s["macro_f1"] == pytest.approx(np.nanmean(per[np.unique(t)]))


def test_rem_latency_from_sleep_onset() -> None:
    stages = np.array([0, 0, 2, 2, 2, 4, 0])  # sleep onset at epoch 2, REM at epoch 5
    assert rem_latency_min(stages, rem=4) == pytest.approx(1.5)
    assert np.isnan(rem_latency_min(np.array([0, 2, 2]), rem=4))


def test_hand_computed_stages_predicted_but_never_true() -> None:
    """N1 and N3 predicted but never scored: their F1 is 0 (not NaN) and the macro-F1 averages
    only the stages the truth holds; kappa, fractions and REM latency by hand."""
    truth = np.array([0, 0, 2, 2, 2, 4, 4, 0])
    pred = np.array([0, 3, 2, 2, 1, 4, 0, 0])
    s = scores([truth], [pred], NAMES)
    assert s["accuracy"] == pytest.approx(5 / 8)
    # rows (truth) W 3, N2 3, REM 2; columns (pred) W 3, N1 1, N2 2, N3 1, REM 1
    assert s["kappa"] == pytest.approx((5 / 8 - 17 / 64) / (1 - 17 / 64))
    assert s["f1"] == pytest.approx({"W": 2 / 3, "N1": 0.0, "N2": 0.8, "N3": 0.0, "REM": 2 / 3})
    assert s["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 2 / 3) / 3)
    assert s["confusion"][0] == [2, 0, 0, 1, 0] and s["confusion"][4] == [1, 0, 0, 0, 1]
    assert s["fraction_true"] == pytest.approx(
        {"W": 3 / 8, "N1": 0.0, "N2": 3 / 8, "N3": 0.0, "REM": 2 / 8})
    assert s["fraction_pred"] == pytest.approx(
        {"W": 3 / 8, "N1": 1 / 8, "N2": 2 / 8, "N3": 1 / 8, "REM": 1 / 8})
    # truth: sleep onset at epoch 2, REM at 5 (1.5 min); prediction: onset 1 (N3), REM 5
    assert s["rem_latency_true_min"] == pytest.approx(1.5)
    assert s["rem_latency_pred_min"] == pytest.approx(2.0)
    assert s["rem_latency_abs_err_min"] == pytest.approx(0.5)
