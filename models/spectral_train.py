"""Training, record-wise cross-validation and calibration of the EEG spectral stage model.

scikit-learn fits each head (small ReLU perceptrons, several seeds averaged, on the causal
features of ``spectral_features``; every derivation of every night is one training stream, so
the model is shared across montages); the fitted weights become a numpy ``MlpHead``, which is
what the engine runs. ``cross_validate`` holds out whole subjects (both nights of a Sleep-EDF
subject fall in the same fold), refits the prior, the standardisation and the model on the
other folds, and returns the held-out logits of each derivation; ``fit_temperature``
calibrates on those.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from sleepstream.engine.inference.spectral_features import (
    PRIOR_EPOCHS,
    NormPrior,
    base_vectors,
    feature_names,
    night_features,
)
from sleepstream.engine.inference.spectral_model import (
    HEADS,
    SPECTRAL_MANIFEST,
    SPECTRAL_VERSION,
    SPECTRAL_WEIGHTS,
    MlpHead,
    head_arrays,
    head_columns,
)
from sleepstream.engine.types import FloatArray
from sleepstream.models.spectral_data import DERIVATIONS, Night

REFERENCE_FS = 100.0
log = logging.getLogger(__name__)


def bases(night: Night) -> dict[str, FloatArray]:
    return {d: base_vectors(night.summaries[d], REFERENCE_FS) for d in DERIVATIONS}


def fit_prior(nights: Iterable[Night]) -> NormPrior:
    b = np.concatenate([v for n in nights for v in bases(n).values()])
    return NormPrior(np.nanmean(b, axis=0), np.nanstd(b, axis=0), PRIOR_EPOCHS)


def features(night: Night, prior: NormPrior) -> dict[str, FloatArray]:
    """Per derivation, the (n, F) model input. Every base dimension is normalised on its own,
    so the ``no_gamma`` head's columns are the same numbers as without gamma."""
    return {d: night_features(b, prior) for d, b in bases(night).items()}


HIDDEN = 64
MEMBERS = 3  # seeds averaged (one network's figures move by about 0.01 kappa with the seed)


def fit_head(x: FloatArray, y: np.ndarray, head: str, members: int = MEMBERS) -> MlpHead:
    """A ReLU perceptron (one hidden layer of ``HIDDEN``) per seed, ``members`` seeds; their
    logits averaged are one wider perceptron (hidden units side by side, output weights / n)."""
    from sklearn.neural_network import MLPClassifier

    cols = head_columns(head)
    xs = x[:, cols]
    mean, scale = xs.mean(axis=0), xs.std(axis=0) + 1e-9
    w0, b0, w1, b1 = [], [], [], []
    for seed in range(members):
        net = MLPClassifier((HIDDEN,), alpha=1e-3, max_iter=60, early_stopping=True,
                            random_state=seed)
        net.fit((xs - mean) / scale, y)
        w0.append(net.coefs_[0])
        b0.append(net.intercepts_[0])
        w1.append(net.coefs_[1] / members)
        b1.append(net.intercepts_[1] / members)
    weights = (np.concatenate(w0, axis=1), np.concatenate(w1, axis=0))
    biases = (np.concatenate(b0), np.sum(b1, axis=0))
    return MlpHead(cols, mean, scale, weights, biases, 1.0)


EXCERPT_EPOCHS = 60  # held-out excerpts: 30 min from a random point of the sleep period


def mid_sleep_start(night: Night, rng: np.random.Generator) -> int:
    """A random epoch in the first 60 % of the sleep period (first to last sleep epoch)."""
    sleep = np.flatnonzero(night.stages != 0)
    if not len(sleep):
        return 0
    return int(rng.integers(sleep[0], sleep[0] + max(1, int(0.6 * (sleep[-1] - sleep[0])))))


def training_streams(
    nights: list[Night], prior: NormPrior, derivations: tuple[str, ...] = DERIVATIONS
) -> tuple[FloatArray, np.ndarray]:
    """Model inputs and labels of every night and derivation from its start, plus one stream
    per night and derivation that starts mid-sleep (seeded): a bed's normalisation then starts
    without the night's opening wake, as for a recording that begins asleep."""
    rng = np.random.default_rng(0)
    xs: list[FloatArray] = []
    ys: list[np.ndarray] = []
    for n in nights:
        b = bases(n)
        for d in derivations:
            r = mid_sleep_start(n, rng)
            xs += [night_features(b[d], prior), night_features(b[d][r:], prior)]
            ys += [n.stages, n.stages[r:]]
    return np.concatenate(xs), np.concatenate(ys)


def train(
    nights: list[Night], heads: tuple[str, ...] = HEADS
) -> tuple[NormPrior, dict[str, MlpHead]]:
    prior = fit_prior(nights)
    x, y = training_streams(nights, prior)
    return prior, {h: fit_head(x, y, h) for h in heads}


@dataclass(frozen=True, slots=True)
class HeldOut:
    """Out-of-fold results: per night and derivation the held-out logits, and the labels."""

    logits: dict[str, list[dict[str, FloatArray]]]  # head -> per night {derivation: (n, 5)}
    labels: list[np.ndarray]
    folds: list[int]
    excerpts: dict[str, list[dict[str, FloatArray]]]  # the same on a 30-min mid-sleep excerpt
    excerpt_labels: list[np.ndarray]


def subject_folds(nights: list[Night], k: int) -> list[int]:
    subjects = sorted({n.subject for n in nights})
    fold = {s: i % k for i, s in enumerate(subjects)}
    return [fold[n.subject] for n in nights]


def cross_validate(nights: list[Night], k: int, heads: tuple[str, ...] = HEADS) -> HeldOut:
    """Held-out logits of whole nights and of one 30-min excerpt per night from mid-sleep
    (features computed from the excerpt's first epoch on, as for a recording starting there)."""
    folds = subject_folds(nights, k)
    logits: dict[str, list[dict[str, FloatArray]]] = {h: [{} for _ in nights] for h in heads}
    parts: dict[str, list[dict[str, FloatArray]]] = {h: [{} for _ in nights] for h in heads}
    rng = np.random.default_rng(123)
    cuts = [mid_sleep_start(n, rng) for n in nights]
    for f in range(k):
        train_n = [n for n, g in zip(nights, folds, strict=True) if g != f]
        prior, models = train(train_n, heads)
        for i, (n, g) in enumerate(zip(nights, folds, strict=True)):
            if g != f:
                continue
            feats = features(n, prior)
            part = {d: night_features(b[cuts[i]:cuts[i] + EXCERPT_EPOCHS], prior)
                    for d, b in bases(n).items()}
            for h in heads:
                logits[h][i] = {d: models[h].logits(x) for d, x in feats.items()}
                parts[h][i] = {d: models[h].logits(x) for d, x in part.items()}
        log.info("fold %d of %d done", f + 1, k)
    return HeldOut(logits, [n.stages for n in nights], folds, parts,
                   [n.stages[c:c + EXCERPT_EPOCHS] for n, c in zip(nights, cuts, strict=True)])


def cross_montage(nights: list[Night], k: int) -> dict[str, dict[str, np.ndarray]]:
    """Montage transfer, record-wise: per ``"train->test"`` derivation pair, the held-out
    predictions (``full`` head, prior and model fitted on the training derivation only) and
    the labels, concatenated over the folds."""
    folds = subject_folds(nights, k)
    out: dict[str, dict[str, np.ndarray]] = {}
    for src in DERIVATIONS:
        preds: dict[str, list[np.ndarray]] = {d: [] for d in DERIVATIONS}
        labels: list[np.ndarray] = []
        for f in range(k):
            train_n = [n for n, g in zip(nights, folds, strict=True) if g != f]
            b = np.concatenate([bases(n)[src] for n in train_n])
            prior = NormPrior(np.nanmean(b, axis=0), np.nanstd(b, axis=0), PRIOR_EPOCHS)
            x, y = training_streams(train_n, prior, (src,))
            head = fit_head(x, y, "full")
            for n, g in zip(nights, folds, strict=True):
                if g == f:
                    feats = features(n, prior)
                    for d in DERIVATIONS:
                        preds[d].append(head.logits(feats[d]).argmax(axis=1))
                    labels.append(n.stages)
        for d in DERIVATIONS:
            out[f"{src}->{d}"] = {"pred": np.concatenate(preds[d]),
                                  "truth": np.concatenate(labels)}
    return out


def softmax(z: FloatArray) -> FloatArray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True), np.float64)


def fit_temperature(logits: FloatArray, y: np.ndarray) -> float:
    def nll(t: float) -> float:
        p = softmax(logits / t)
        return float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())

    return float(minimize_scalar(nll, bounds=(0.05, 20.0), method="bounded").x)


def ece(probs: FloatArray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top-class confidence (equal-width bins)."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    err = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            err += sel.mean() * abs((pred[sel] == y[sel]).mean() - conf[sel].mean())
    return float(err)


def save(
    root: Path, prior: NormPrior, heads: dict[str, MlpHead], validity: dict[str, Any],
    extra: dict[str, Any],
) -> None:
    """Write ``spectral.npz`` and its manifest ``spectral.json`` (with the npz's SHA-256)."""
    root.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {"prior_mean": prior.mean, "prior_std": prior.std}
    for name, head in heads.items():
        arrays.update(head_arrays(name, head))
    np.savez(root / SPECTRAL_WEIGHTS, **arrays)  # type: ignore[arg-type]
    digest = hashlib.sha256((root / SPECTRAL_WEIGHTS).read_bytes()).hexdigest()
    man = {
        "version": SPECTRAL_VERSION,
        "features": list(feature_names()),
        "prior_weight": prior.weight,
        "temperature": {h: m.temperature for h, m in heads.items()},
        "validity": validity,
        "sha256": {SPECTRAL_WEIGHTS: digest},
        **extra,
    }
    (root / SPECTRAL_MANIFEST).write_text(json.dumps(man, indent=1) + "\n")
