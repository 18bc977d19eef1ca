"""The context stage head: causal features, live stream equal to the whole night (with and
without the forward filter), share matching, a separable problem learnt, the filter's
transitions and its gain on runs of stages, arrays saved and read back without pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sleepstream.models.pretrain_context import (
    ContextFit,
    ContextStream,
    StageFilter,
    context_features,
    cross_validate_context,
    epoch_means,
    fit_context_head,
    four_class,
    load_head,
    save_head,
    transitions,
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


@pytest.mark.parametrize("filtered", [False, True])
def test_features_and_logits_are_causal_and_the_stream_gives_the_same(filtered: bool) -> None:
    rng = np.random.default_rng(0)
    means, stages = _night(rng, 200)
    head = fit_context_head([means], [stages], ContextFit(windows=(5, 10), forward_filter=filtered))
    assert (head.filter is not None) == filtered
    full = head.stage_logits(means)
    if not filtered:
        assert np.array_equal(full, head.logits(means))
    changed = means.copy()
    changed[120:] = rng.normal(size=changed[120:].shape)  # a different future
    assert np.allclose(head.stage_logits(changed)[:120], full[:120])
    assert not np.allclose(head.stage_logits(changed)[120:], full[120:])
    stream = ContextStream(head)
    live = np.stack([stream.step(m) for m in means])
    assert np.allclose(live, full, atol=1e-9)
    again = ContextStream(head)  # a fresh stream starts from the filter's initial prior
    assert np.allclose(np.stack([again.step(m) for m in means[:50]]), full[:50], atol=1e-9)


def test_transitions_count_consecutive_scored_epochs() -> None:
    y = np.array([0, 0, 1, 1, 1, -1, 3, 3, 2])
    t = transitions([y, np.array([2, 2])], prior=0.0 + 1e-9)
    assert np.allclose(t.sum(1), 1.0)
    assert t[0, 0] == pytest.approx(0.5) and t[0, 1] == pytest.approx(0.5)
    assert t[1, 1] == pytest.approx(1.0)  # 1 -> -1 -> 3 is no transition
    assert t[3, 3] == pytest.approx(0.5) and t[3, 2] == pytest.approx(0.5)
    assert t[2, 2] == pytest.approx(1.0)
    smooth = transitions([y], prior=1.0)
    assert smooth[2].tolist() == [0.25] * 4  # stage 2 never left: the prior alone


def test_filter_steps_are_the_whole_night_and_sticky_transitions_smooth_noisy_emissions() -> None:
    rng = np.random.default_rng(3)
    y = np.repeat(rng.integers(0, 4, 40), 25)  # runs of 25 epochs
    lik = np.full((len(y), 4), 0.2)
    lik[np.arange(len(y)), y] = 0.4  # right stage a little more likely
    lik *= rng.uniform(0.3, 1.7, size=lik.shape)  # noise that often flips the argmax
    sticky = np.full((4, 4), 0.01) + np.eye(4) * 0.96
    filt = StageFilter(sticky, np.full(4, 0.25), np.zeros(4))
    out = filt.run(lik)
    prior = filt.initial
    for k in range(len(y)):
        z, prior = filt.step(prior, lik[k])
        assert np.allclose(z, out[k])
    assert (out.argmax(-1) == y).mean() > (lik.argmax(-1) == y).mean() + 0.15
    flat = StageFilter(np.full((4, 4), 0.25), np.full(4, 0.25), np.zeros(4))
    assert np.array_equal(flat.run(lik).argmax(-1), lik.argmax(-1))  # no memory, no change


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
    assert head.filter is not None
    filt_pred = np.concatenate([head.stage_logits(m).argmax(-1) for m, _ in nights])
    filt_shares = np.bincount(filt_pred, minlength=4) / len(train_y)
    assert np.allclose(filt_shares, target, atol=0.03)
    assert (head.stage_probs(m).argmax(-1) == y).mean() > 0.7  # lags a little at changes
    save_head(tmp_path / "h.npz", head)
    back = load_head(tmp_path / "h.npz")
    assert back.windows == head.windows and back.filter is not None
    assert np.array_equal(back.logits(m), head.logits(m))
    assert np.array_equal(back.stage_logits(m), head.stage_logits(m))
    bare = fit_context_head([m for m, _ in nights], [s for _, s in nights],
                            ContextFit(forward_filter=False))  # fmt: skip
    save_head(tmp_path / "bare.npz", bare)
    assert load_head(tmp_path / "bare.npz").filter is None


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
    f = r["filtered"]
    assert f["epochs"] == r["epochs"] and len(f["folds"]) == 2
    assert sum(sum(row) for row in f["confusion_4class"]) == f["epochs"]
    assert f["kappa_4class"] > 0.4
    assert set(f["before_share_matching"]) >= {"kappa_4class", "rem_share_pred"}
    bare = cross_validate_context(emb, data, [0, 0, 1, 1], ContextFit(forward_filter=False))
    assert "filtered" not in bare and bare["kappa_4class"] == r["kappa_4class"]
