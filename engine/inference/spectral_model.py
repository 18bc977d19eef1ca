"""The EEG spectral stage model at run time: plain numpy arrays, no torch, no pickle.

A model directory's ``spectral.json`` (a manifest verified like ``runtime.json``: the SHA-256 of
``spectral.npz`` in its ``sha256`` table) names the feature order, the population prior of the
per-bed normalisation, the calibration temperature of each head and the validity table: for
each modality subset, the classes the model has been shown to resolve on real held-out data.
``spectral.npz`` holds, per head (``full``: EEG at >= 100 Hz with the gamma band; ``no_gamma``:
EEG sampled lower), the input standardisation and the weights of a small ReLU perceptron.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.inference.model_files import ModelFilesError, read_manifest
from sleepstream.engine.inference.spectral_features import (
    NormPrior,
    feature_names,
    gamma_free,
)
from sleepstream.engine.types import FloatArray

SPECTRAL_MANIFEST = "spectral.json"
SPECTRAL_WEIGHTS = "spectral.npz"
SPECTRAL_VERSION = 1
HEADS: tuple[str, ...] = ("full", "no_gamma")
# class sets a stage event may claim, finest first: W/N1/N2/N3/REM, W/light/deep/REM, sleep/wake
CLASS_SETS: dict[str, tuple[str, ...]] = {
    "five": ("W", "N1", "N2", "N3", "REM"),
    "four": ("W", "light", "deep", "REM"),
    "two": ("W", "sleep"),
}
# stage index (STAGES order) -> index in the coarser class set
COLLAPSE: dict[str, tuple[int, ...]] = {
    "five": (0, 1, 2, 3, 4),
    "four": (0, 1, 1, 2, 3),
    "two": (0, 1, 1, 1, 1),
}


@dataclass(frozen=True, slots=True)
class MlpHead:
    """Standardisation, then ReLU layers, then logits; ``columns`` selects the features."""

    columns: np.ndarray
    mean: FloatArray
    scale: FloatArray
    weights: tuple[FloatArray, ...]
    biases: tuple[FloatArray, ...]
    temperature: float

    def logits(self, x: FloatArray) -> FloatArray:
        h = (x[..., self.columns] - self.mean) / self.scale  # (n, F_head)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return np.asarray(h, np.float64)  # (n, 5), uncalibrated

    def probs(self, x: FloatArray) -> FloatArray:
        z = self.logits(x) / self.temperature
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return np.asarray(z / z.sum(axis=-1, keepdims=True), np.float64)


@dataclass(frozen=True, slots=True)
class SpectralModel:
    root: Path
    prior: NormPrior
    heads: dict[str, MlpHead]
    validity: dict[str, Any]  # subset -> {"classes": "five"|"four"|"two"|"none", figures...}
    manifest: dict[str, Any]

    def classes_for(self, subset: str) -> str:
        """The class set (a ``CLASS_SETS`` key or "none") shown valid for a modality subset."""
        entry = self.validity.get(subset)
        return str(entry["classes"]) if entry else "none"


def head_arrays(prefix: str, head: MlpHead) -> dict[str, np.ndarray]:
    """The arrays of one head under ``prefix`` (for writing ``spectral.npz``)."""
    out = {f"{prefix}_columns": head.columns.astype(np.int64), f"{prefix}_mean": head.mean,
           f"{prefix}_scale": head.scale}
    for i, (w, b) in enumerate(zip(head.weights, head.biases, strict=True)):
        out[f"{prefix}_w{i}"] = w
        out[f"{prefix}_b{i}"] = b
    return out


def _head(arrays: Any, prefix: str, temperature: float) -> MlpHead:
    n = sum(1 for k in arrays.files if k.startswith(f"{prefix}_w"))
    return MlpHead(
        columns=np.asarray(arrays[f"{prefix}_columns"], np.int64),
        mean=np.asarray(arrays[f"{prefix}_mean"], np.float64),
        scale=np.asarray(arrays[f"{prefix}_scale"], np.float64),
        weights=tuple(np.asarray(arrays[f"{prefix}_w{i}"], np.float64) for i in range(n)),
        biases=tuple(np.asarray(arrays[f"{prefix}_b{i}"], np.float64) for i in range(n)),
        temperature=temperature,
    )


def head_columns(head: str) -> np.ndarray:
    names = feature_names()
    mask = np.ones(len(names), bool) if head == "full" else gamma_free(names)
    return np.flatnonzero(mask)


def load_spectral_model(root: str | Path) -> SpectralModel:
    """The verified spectral model of a model directory (``ModelFilesError`` if absent/bad)."""
    root = Path(root)
    path = root / SPECTRAL_MANIFEST
    if not path.is_file():
        raise ModelFilesError(f"{path}: missing; this model has no EEG spectral stage model")
    man = read_manifest(path, "re-install the model files")
    try:
        if man.get("version") != SPECTRAL_VERSION:
            raise ValueError(f"version {man.get('version')}, this engine reads {SPECTRAL_VERSION}")
        if tuple(man["features"]) != feature_names():
            raise ValueError("feature order differs from this engine's")
        with np.load(root / SPECTRAL_WEIGHTS, allow_pickle=False) as arrays:
            heads = {h: _head(arrays, h, float(man["temperature"][h])) for h in HEADS}
            prior = NormPrior(
                np.asarray(arrays["prior_mean"], np.float64),
                np.asarray(arrays["prior_std"], np.float64),
                float(man["prior_weight"]),
            )
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ModelFilesError(f"{path}: malformed spectral model ({exc})") from exc
    return SpectralModel(root, prior, heads, dict(man["validity"]), man)
