"""A stage head over the transformer's causal context: the current and past epochs' states.

The model's own stage head reads one epoch's steps. This head reads, per 30-s epoch ``k``, the
mean causal embedding ``m_k`` of the epoch's steps together with the means of ``m`` over the
last 5 and 10 epochs (``k`` included; fewer at the start of a night): a few minutes of heart-rate
context, which heart-based stagers rely on. It is a multinomial logistic regression over W,
light, deep, REM on standardised features, fit with balanced class weights; its biases are then
shifted so that its predictions on the training epochs come in the scored stage shares.

On top of it, a causal forward filter (``StageFilter``, an HMM run forwards only): the stage
transition matrix counted on the training nights' hypnograms, the emissions the head's
class-balanced probabilities (before the share shift: a balanced head's output stands for the
posterior divided by the training shares), the first epoch's prior the training shares. The
filter's log-posterior is shifted again so that its predictions on the training epochs come in the
scored shares. Epoch ``k``'s filtered stage uses epochs ``<= k`` only: no backward pass.

Everything the head needs at run time is arrays (``ContextHead``) and numpy: ``ContextStream``
gives epoch by epoch exactly what ``ContextHead.stage_logits`` gives for a whole night, so it can
run live without torch. The settings are fixed (``ContextFit``), not tuned to the folds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.models.evaluate import FOUR, four_class, scores
from sleepstream.models.spectral_train import softmax
from sleepstream.models.train import Tokenized

WINDOWS = (5, 10)  # epochs of context pooled beside the current epoch


@dataclass(frozen=True, slots=True)
class ContextFit:
    """How the context head is fit."""

    windows: tuple[int, ...] = WINDOWS
    c: float = 0.05  # inverse L2 strength of the logistic regression
    max_iter: int = 300
    share_iters: int = 60
    forward_filter: bool = True  # fit the causal stage filter over the head
    transition_prior: float = 1.0  # pseudo-count added to every stage transition


@dataclass(frozen=True, slots=True)
class StageFilter:
    """Arrays of a causal forward filter over W, light, deep, REM."""

    transition: np.ndarray  # (4, 4) P(stage of epoch k = j | stage of epoch k - 1 = i)
    initial: np.ndarray  # (4,) prior of a night's first epoch: the training stage shares
    shift: np.ndarray  # (4,) added to the log-posterior: the share shift

    def step(self, prior: np.ndarray, lik: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One epoch: (prior (4,), emission likelihood (4,)) -> (shifted log-posterior (4,),
        the next epoch's prior (4,))."""
        post = prior * lik
        post = post / post.sum() if post.sum() > 0 else prior
        logit: np.ndarray = np.log(post + 1e-12) + self.shift
        return logit, post @ self.transition

    def run(self, lik: np.ndarray) -> np.ndarray:
        """Shifted log-posteriors (E, 4) of a night's emission likelihoods (E, 4), forwards."""
        out = np.zeros((lik.shape[0], 4))
        prior = self.initial
        for k in range(lik.shape[0]):  # the recursion is sequential in k
            out[k], prior = self.step(prior, lik[k])
        return out


@dataclass(frozen=True, slots=True)
class ContextHead:
    """Arrays of a fit context head: features -> 4-class logits."""

    windows: tuple[int, ...]
    mean: np.ndarray  # (F,) feature means on the training epochs
    scale: np.ndarray  # (F,) feature standard deviations
    weight: np.ndarray  # (F, 4)
    bias: np.ndarray  # (4,), share shift included
    shift: np.ndarray = field(default_factory=lambda: np.zeros(4))  # the share shift alone
    filter: StageFilter | None = None

    def logits(self, means: np.ndarray) -> np.ndarray:
        """Per-epoch logits (E, 4) of a night's epoch means (E, D), causally."""
        x = (context_features(means, self.windows) - self.mean) / self.scale
        out: np.ndarray = x @ self.weight + self.bias
        return out

    def probs(self, means: np.ndarray) -> np.ndarray:
        return softmax(self.logits(means))

    def stage_logits(self, means: np.ndarray) -> np.ndarray:
        """The head's output (E, 4): the filtered log-posteriors when it has a filter, else
        ``logits``."""
        if self.filter is None:
            return self.logits(means)
        return self.filter.run(softmax(self.logits(means) - self.shift))

    def stage_probs(self, means: np.ndarray) -> np.ndarray:
        return softmax(self.stage_logits(means))


def epoch_means(h: np.ndarray, es: int = 30) -> np.ndarray:
    """(T, D) step embeddings -> (E, D) means over each whole epoch's steps."""
    e = h.shape[0] // es
    out: np.ndarray = h[: e * es].reshape(e, es, -1).mean(1)
    return out


def context_features(means: np.ndarray, windows: Sequence[int]) -> np.ndarray:
    """(E, D) -> (E, D * (1 + len(windows))): each epoch's mean, then the mean of the last
    ``w`` epochs' means for each window (the epoch itself included)."""
    c = np.concatenate([np.zeros((1, means.shape[1])), np.cumsum(means, 0, dtype=np.float64)])
    i = np.arange(1, means.shape[0] + 1)
    parts = [means.astype(np.float64)]
    for w in windows:
        a = np.maximum(i - w, 0)
        parts.append((c[i] - c[a]) / (i - a)[:, None])
    return np.concatenate(parts, 1)


class ContextStream:
    """The head epoch by epoch, as a live decoder runs it: a ring of the last epoch means and
    the filter's prior for the next epoch."""

    def __init__(self, head: ContextHead) -> None:
        self.head = head
        self.ring: list[np.ndarray] = []
        self.prior = None if head.filter is None else head.filter.initial

    def step(self, mean: np.ndarray) -> np.ndarray:
        """The 4-class output (``stage_logits``) of the epoch whose step-embedding mean is
        ``mean`` (D,)."""
        self.ring.append(np.asarray(mean, np.float64))
        self.ring = self.ring[-max(self.head.windows, default=1) :]
        past = np.stack(self.ring)
        parts = [past[-1]] + [past[-w:].mean(0) for w in self.head.windows]
        x = (np.concatenate(parts) - self.head.mean) / self.head.scale
        out: np.ndarray = x @ self.head.weight + self.head.bias
        if self.head.filter is None or self.prior is None:
            return out
        out, self.prior = self.head.filter.step(self.prior, softmax(out - self.head.shift))
        return out


def share_shift(z: np.ndarray, y: np.ndarray, iters: int) -> np.ndarray:
    """Bias shift (4,) that brings the argmax shares of logits ``z`` to those of ``y``."""
    target = np.bincount(y, minlength=4) / len(y)
    shift = np.zeros(4)
    for it in range(iters):
        pred = np.bincount((z + shift).argmax(-1), minlength=4) / len(y)
        shift += 0.5 / (1 + it / 10) * np.log((target + 1e-3) / (pred + 1e-3))  # damped
    return shift


def transitions(nights: Sequence[np.ndarray], prior: float) -> np.ndarray:
    """Row-stochastic (4, 4) stage transitions counted over consecutive scored epochs of the
    nights' 4-class stages (-1 unscored), ``prior`` added to every count."""
    t = np.full((4, 4), float(prior))
    for y in nights:
        a, b = y[:-1], y[1:]
        ok = (a >= 0) & (b >= 0)
        np.add.at(t, (a[ok], b[ok]), 1.0)
    out: np.ndarray = t / t.sum(1, keepdims=True)
    return out


def fit_filter(
    head: ContextHead, means: Sequence[np.ndarray], ys: Sequence[np.ndarray], fit: ContextFit
) -> StageFilter:
    """The forward filter over ``head`` from the training nights (``ys`` 4-class, -1 unscored)."""
    y = np.concatenate([t[t >= 0] for t in ys])
    shares = np.bincount(y, minlength=4) / len(y)
    bare = StageFilter(transitions(ys, fit.transition_prior), shares, np.zeros(4))
    z = [
        bare.run(softmax(head.logits(m) - head.shift))[t >= 0]
        for m, t in zip(means, ys, strict=True)
    ]
    shift = share_shift(np.concatenate(z), y, fit.share_iters)
    return StageFilter(bare.transition, shares, shift)


def fit_context_head(
    means: Sequence[np.ndarray], stages: Sequence[np.ndarray], fit: ContextFit
) -> ContextHead:
    """Fit on the scored epochs of the nights (``means`` (E, D) and five-class ``stages``)."""
    from sklearn.linear_model import LogisticRegression

    xs, ys, nights = [], [], []
    for m, s in zip(means, stages, strict=True):
        y = four_class(s[: m.shape[0]])
        ok = y >= 0
        xs.append(context_features(m[: len(y)], fit.windows)[ok])
        ys.append(y[ok])
        nights.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xz = (x - mu) / sd
    clf = LogisticRegression(C=fit.c, max_iter=fit.max_iter, class_weight="balanced")
    clf.fit(xz, y)
    weight = np.zeros((x.shape[1], 4))
    bias = np.zeros(4)
    weight[:, clf.classes_] = clf.coef_.T  # a class absent from training keeps zeros
    bias[clf.classes_] = clf.intercept_
    bias[np.setdiff1d(np.arange(4), clf.classes_)] = -1e3
    shift = share_shift(xz @ weight + bias, y, fit.share_iters)
    head = ContextHead(tuple(fit.windows), mu, sd, weight, bias + shift, shift)
    if not fit.forward_filter:
        return head
    cut = [m[: len(t)] for m, t in zip(means, nights, strict=True)]
    return replace(head, filter=fit_filter(head, cut, nights, fit))


def summary4(truths: Sequence[np.ndarray], probs: Sequence[np.ndarray]) -> dict[str, Any]:
    """The ablation's 4-class figures of per-epoch probabilities (E, 4)."""
    q = scores(truths, [p.argmax(-1) for p in probs], FOUR)
    return {"epochs": q["epochs"], **four_class_figures(q)}


def four_class_figures(q: dict[str, Any]) -> dict[str, Any]:
    """The 4-class figures the ablation reports, from ``evaluate.scores`` over W/light/deep/REM."""
    rem_t, rem_p = q["fraction_true"]["REM"], q["fraction_pred"]["REM"]
    return {
        "accuracy_4class": q["accuracy"],
        "kappa_4class": q["kappa"],
        "macro_f1_4class": q["macro_f1"],
        "f1_4class": q["f1"],
        "confusion_4class": q["confusion"],
        "fraction_true_4class": q["fraction_true"],
        "fraction_pred_4class": q["fraction_pred"],
        "rem_share_true": rem_t,
        "rem_share_pred": rem_p,
        "rem_share_gap_points": 100 * abs(rem_p - rem_t),
        "majority_accuracy_4class": max(q["fraction_true"].values()),
    }


def cross_validate_context(
    emb: Sequence[np.ndarray], data: Sequence[Tokenized], folds: Sequence[int], fit: ContextFit
) -> dict[str, Any]:
    """Pooled held-out 4-class figures of the context head on the same folds, and per fold;
    with the filter, its figures under ``filtered`` (and before its share shift)."""
    means = [epoch_means(h) for h in emb]
    stages = [d.stages for d in data]
    truths = [four_class(s[: m.shape[0]]) for s, m in zip(stages, means, strict=True)]
    kinds = ("head", "filtered", "unshifted")
    probs: dict[str, list[np.ndarray]] = {k: [np.zeros((0, 4))] * len(data) for k in kinds}
    per_fold: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    for f in sorted(set(folds)):
        train = [i for i, g in enumerate(folds) if g != f]
        test = [i for i, g in enumerate(folds) if g == f]
        head = fit_context_head([means[i] for i in train], [stages[i] for i in train], fit)
        for i in test:
            probs["head"][i] = head.probs(means[i])
            if head.filter is not None:
                z = head.stage_logits(means[i])
                probs["filtered"][i] = softmax(z)
                probs["unshifted"][i] = softmax(z - head.filter.shift)
        for k in kinds if head.filter is not None else kinds[:1]:
            r = summary4([truths[i] for i in test], [probs[k][i] for i in test])
            names = [data[i].name for i in test]
            per_fold[k].append({"records": names, "kappa_4class": r["kappa_4class"]})
    out = {**summary4(truths, probs["head"]), "folds": per_fold["head"]}
    out["windows"] = list(fit.windows)
    if fit.forward_filter:
        out["filtered"] = {**summary4(truths, probs["filtered"]), "folds": per_fold["filtered"]}
        out["filtered"]["before_share_matching"] = {
            k: v for k, v in summary4(truths, probs["unshifted"]).items()
            if k in ("accuracy_4class", "kappa_4class", "macro_f1_4class", "rem_share_pred",
                     "rem_share_gap_points")
        }  # fmt: skip
    return out


def save_head(path: Path, head: ContextHead) -> None:
    """The head's arrays as one ``.npz`` (read back without pickle by ``load_head``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "windows": np.asarray(head.windows, np.int64), "mean": head.mean, "scale": head.scale,
        "weight": head.weight, "bias": head.bias, "shift": head.shift,
    }  # fmt: skip
    if head.filter is not None:
        arrays["transition"] = head.filter.transition
        arrays["initial"] = head.filter.initial
        arrays["filter_shift"] = head.filter.shift
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_head(path: Path) -> ContextHead:
    with np.load(path, allow_pickle=False) as z:
        filt = None
        if "transition" in z.files:
            filt = StageFilter(z["transition"], z["initial"], z["filter_shift"])
        return ContextHead(
            tuple(int(w) for w in z["windows"]), z["mean"], z["scale"], z["weight"], z["bias"],
            z["shift"], filt,
        )  # fmt: skip
