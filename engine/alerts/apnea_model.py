"""The per-minute apnea models, as plain arrays (no training library at run time).

- ``BoostedTrees``: gradient-boosted regression trees on the log-odds (fitted with scikit-learn's
  HistGradientBoostingClassifier by ``sleepstream evaluate alerts --fit`` and exported node by
  node): p = sigmoid(baseline + sum of one leaf value per tree), a sample going left where
  ``x[feature] <= threshold`` (a NaN feature goes the way the tree learned for missing values);
- ``LogisticModel``: standardised logistic regression (the earlier model, still readable).

``parse_file`` reads the shipped file: one model per input set (``"spo2_hr"``, ``"hr"``) and
the figures on real data each model's minutes cite (``load_models``: the models alone).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sleepstream.engine.types import FloatArray

IntArray = npt.NDArray[np.int64]


def _floats(d: dict[str, Any], key: str) -> tuple[float, ...]:
    v = d[key]
    if not isinstance(v, list):
        raise ValueError(f"apnea model: {key!r} must be a list")
    return tuple(float(a) for a in v)


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """Standardised logistic regression: p = sigmoid(((x - mean) / scale) @ coef + intercept)."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5

    def predict(self, x: FloatArray) -> FloatArray:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return np.asarray(1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept))))

    def to_json(self) -> dict[str, object]:
        return {
            "kind": "logistic", "features": list(self.features), "mean": list(self.mean),
            "scale": list(self.scale), "coef": list(self.coef), "intercept": self.intercept,
            "threshold": self.threshold,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> LogisticModel:
        return LogisticModel(
            features=tuple(str(n) for n in d["features"]), mean=_floats(d, "mean"),
            scale=_floats(d, "scale"), coef=_floats(d, "coef"),
            intercept=float(d["intercept"]), threshold=float(d.get("threshold", 0.5)),
        )


@dataclass(frozen=True, slots=True)
class BoostedTrees:
    """Every tree's nodes in flat arrays; ``roots[t]`` is tree t's first node; a leaf has
    ``feature`` -1 and its log-odds contribution in ``value``."""

    features: tuple[str, ...]
    baseline: float
    roots: IntArray
    feature: IntArray
    threshold_x: FloatArray
    left: IntArray
    right: IntArray
    missing_left: npt.NDArray[np.bool_]
    value: FloatArray
    depth: int
    threshold: float = 0.5

    def predict(self, x: FloatArray) -> FloatArray:
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.size)).copy()  # (N, T)
        rows = np.arange(x.shape[0])[:, None]
        for _ in range(self.depth):
            f = self.feature[node]
            inner = f >= 0
            if not inner.any():
                break
            v = x[rows, np.maximum(f, 0)]
            go_left = np.where(np.isnan(v), self.missing_left[node], v <= self.threshold_x[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        z = self.baseline + self.value[node].sum(axis=1)
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def to_json(self) -> dict[str, object]:
        return {
            "kind": "boosted", "features": list(self.features), "baseline": self.baseline,
            "depth": self.depth, "threshold": self.threshold, "roots": self.roots.tolist(),
            "feature": self.feature.tolist(), "threshold_x": self.threshold_x.tolist(),
            "left": self.left.tolist(), "right": self.right.tolist(),
            "missing_left": self.missing_left.astype(int).tolist(), "value": self.value.tolist(),
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> BoostedTrees:
        def ints(key: str) -> IntArray:
            return np.asarray(d[key], dtype=np.int64)

        return BoostedTrees(
            features=tuple(str(n) for n in d["features"]), baseline=float(d["baseline"]),
            roots=ints("roots"), feature=ints("feature"),
            threshold_x=np.asarray(_floats(d, "threshold_x")), left=ints("left"),
            right=ints("right"), missing_left=ints("missing_left").astype(bool),
            value=np.asarray(_floats(d, "value")), depth=int(d["depth"]),
            threshold=float(d.get("threshold", 0.5)),
        )

    @staticmethod
    def from_sklearn(clf: Any, names: tuple[str, ...]) -> BoostedTrees:
        """Export a fitted binary HistGradientBoostingClassifier (numerical features only)."""
        roots, parts, offset, depth = [], [], 0, 0
        for [tree] in clf._predictors:  # one tree per iteration for a binary loss
            n = tree.nodes
            leaf = n["is_leaf"].astype(bool)
            parts.append((np.where(leaf, -1, n["feature_idx"]), n["num_threshold"],
                          n["left"] + offset, n["right"] + offset,
                          n["missing_go_to_left"].astype(bool), np.where(leaf, n["value"], 0.0)))
            roots.append(offset)
            offset += len(n)
            depth = max(depth, int(n["depth"].max()))
        cols = [np.concatenate(c) for c in zip(*parts, strict=True)]
        return BoostedTrees(
            features=names, baseline=float(np.ravel(clf._baseline_prediction)[0]),
            roots=np.asarray(roots, dtype=np.int64), feature=cols[0].astype(np.int64),
            threshold_x=cols[1].astype(np.float64), left=cols[2].astype(np.int64),
            right=cols[3].astype(np.int64), missing_left=cols[4], value=cols[5].astype(np.float64),
            depth=depth + 1,
        )


Model = LogisticModel | BoostedTrees


def model_from_json(d: dict[str, Any]) -> Model:
    return BoostedTrees.from_json(d) if d.get("kind") == "boosted" else LogisticModel.from_json(d)


def fit_logistic(
    x: FloatArray, y: npt.NDArray[np.bool_], names: tuple[str, ...], l2: float = 1.0
) -> LogisticModel:
    """L2-penalised logistic regression by Newton's method on standardised features."""
    mean = x.mean(axis=0)
    scale = np.where(x.std(axis=0) > 1e-9, x.std(axis=0), 1.0)
    z = np.concatenate([(x - mean) / scale, np.ones((x.shape[0], 1))], axis=1)  # (N, F+1)
    w = np.zeros(z.shape[1])
    pen = np.full(z.shape[1], l2)
    pen[-1] = 0.0
    t = y.astype(np.float64)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - t) + pen * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return LogisticModel(
        features=names, mean=tuple(mean.tolist()), scale=tuple(scale.tolist()),
        coef=tuple(w[:-1].tolist()), intercept=float(w[-1]),
    )


Parsed = tuple[dict[str, Model], dict[str, dict[str, Any]]]


def parse_file(path: Path) -> Parsed:
    """A models file read once: its models by input set, their arrays read-only (the engine
    hands one copy to every bed), and the figures on real data that back each model's minutes
    (``evaluate alerts --fit`` writes them; a model without an entry has none)."""
    data = json.loads(path.read_text())
    models = {str(k): model_from_json(v) for k, v in data["models"].items()}
    for m in models.values():
        for f in dataclasses.fields(m):
            v = getattr(m, f.name)
            if isinstance(v, np.ndarray):
                v.setflags(write=False)
    return models, {str(k): dict(v) for k, v in data.get("validation", {}).items()}


def load_models(path: Path) -> dict[str, Model]:
    """The shipped models by input set: ``"spo2_hr"`` and ``"hr"``."""
    return parse_file(path)[0]

