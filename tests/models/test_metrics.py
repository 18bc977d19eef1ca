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
