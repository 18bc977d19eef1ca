"""The context stage head: causal features, live stream equal to the whole night, share
matching, a separable problem learnt, arrays saved and read back without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sleepstream.models.pretrain_context import (
    ContextFit,
    ContextStream,
    context_features,
    cross_validate_context,
    epoch_means,
    fit_context_head,
    four_class,
    load_head,
    save_head,
)
from sleepstream.models.train import Tokenized

pytest.importorskip("sklearn")


def _night(rng: np.random.Generator, n: int, d: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Epoch means whose first feature tells the stage through a noisy, slow code."""
    stages = rng.choice([0, 1, 2, 3, 4], size=n, p=[0.3, 0.1, 0.4, 0.1, 0.1])
    stages = np.repeat(stages[: n // 5], 5)[:n]  # stages hold for 5 epochs
    means = rng.normal(size=(len(stages), d))
    means[:, 0] += 4.0 * four_class(stages)
    return means, stages


def test_context_features_are_the_past_means() -> None:
    m = np.arange(24, dtype=float).reshape(12, 2)
    x = context_features(m, (3,))
    assert x.shape == (12, 4)
    assert np.allclose(x[:, :2], m)
    assert np.allclose(x[0, 2:], m[0]) and np.allclose(x[1, 2:], m[:2].mean(0))
    assert np.allclose(x[7, 2:], m[5:8].mean(0))


def test_features_and_logits_are_causal_and_the_stream_gives_the_same() -> None:
    rng = np.random.default_rng(0)
    means, stages = _night(rng, 200)
    head = fit_context_head([means], [stages], ContextFit(windows=(5, 10)))
    full = head.logits(means)
    changed = means.copy()
    changed[120:] = rng.normal(size=changed[120:].shape)  # a different future
    assert np.allclose(head.logits(changed)[:120], full[:120])
    assert not np.allclose(head.logits(changed)[120:], full[120:])
    stream = ContextStream(head)
    live = np.stack([stream.step(m) for m in means])
    assert np.allclose(live, full, atol=1e-9)


def test_fit_learns_a_separable_code_and_matches_the_scored_shares(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    nights = [_night(rng, 300) for _ in range(4)]
    head = fit_context_head([m for m, _ in nights], [s for _, s in nights], ContextFit())
    m, s = _night(rng, 300)
    pred = head.probs(m).argmax(-1)
    y = four_class(s)
    assert (pred == y).mean() > 0.8
    train_y = np.concatenate([four_class(s) for _, s in nights])
    train_pred = np.concatenate([head.logits(m).argmax(-1) for m, _ in nights])
    target = np.bincount(train_y, minlength=4) / len(train_y)
    assert np.allclose(np.bincount(train_pred, minlength=4) / len(train_y), target, atol=0.03)
    save_head(tmp_path / "h.npz", head)
    back = load_head(tmp_path / "h.npz")
    assert back.windows == head.windows
    assert np.array_equal(back.logits(m), head.logits(m))


def test_cross_validation_scores_every_scored_epoch_once() -> None:
    rng = np.random.default_rng(2)
    data, emb = [], []
    for i in range(4):
        means, stages = _night(rng, 60, d=4)
        stages[:3] = -1  # unscored epochs are left out
        emb.append(np.repeat(means, 30, axis=0).astype(np.float32))  # 30 equal steps per epoch
        data.append(Tokenized(f"r{i}", np.zeros((60 * 30, 1, 1), np.uint8),
                              np.ones((60 * 30, 1), bool), stages))  # fmt: skip
    assert np.allclose(epoch_means(emb[0]), emb[0][::30])
    r = cross_validate_context(emb, data, [0, 0, 1, 1], ContextFit())
    assert r["epochs"] == 4 * 57
    assert sum(sum(row) for row in r["confusion_4class"]) == r["epochs"]
    assert len(r["folds"]) == 2 and r["windows"] == [5, 10]
    assert r["kappa_4class"] > 0.5
