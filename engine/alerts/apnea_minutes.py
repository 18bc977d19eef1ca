"""Per-minute sleep-apnea classifier from 1-Hz SpO2 and heart rate (or heart rate alone).

Each minute ``m`` (seconds ``[60 m, 60 m + 60)``) is scored when the engine clock reaches
``60 (m + 1) + delay_s``: its features are computed from the last ``WINDOW_S`` seconds up to that
instant, so the decision is causal with a stated delay. The features (``apnea_features``)
describe the cyclic dynamics of obstructive events: desaturation-resaturation shape and cyclic
variation of heart rate, over short and long trailing windows, with their causal context over
the last 10 and 30 minutes and their deviation from, and percentile among, the night so far.
A gradient-boosted tree model, exported to plain arrays (``apnea_model``; fitted with record-wise
cross-validation by ``sleepstream evaluate alerts --fit``, written to ``apnea_minutes.json``),
turns them into a probability.

The offline path (``minute_windows`` + ``minute_features`` + ``with_context``) and the streaming
path (``MinuteClassifierState``) call the same feature functions on the same windows, so a
replayed night scores as the batch evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sleepstream.engine.alerts import apnea_model
from sleepstream.engine.alerts.apnea_features import (
    CONTEXTS,
    HR_CVHR,
    HR_FEATURES,
    SPO2_FEATURES,
    SPO2_SHAPE,
    base_names,
    feature_names,
    minute_features,
    with_context,
)
from sleepstream.engine.alerts.apnea_model import (
    BoostedTrees,
    LogisticModel,
    Model,
    fit_logistic,
    model_from_json,
)
from sleepstream.engine.types import FloatArray

__all__ = [
    "CONTEXTS", "HR_CVHR", "HR_FEATURES", "SPO2_FEATURES", "SPO2_SHAPE", "BoostedTrees",
    "LogisticModel", "Model", "base_names", "feature_names", "fit_logistic", "minute_features",
    "model_from_json", "with_context",
]

WINDOW_S = 600  # trailing seconds each decision looks at
MINUTE_S = 60
PAST_MINUTES = 1440  # base rows the streaming path keeps (the night so far, up to a day)
DELAY_S = 30  # minute m is scored at 60 (m + 1) + DELAY_S
HR_RANGE = (25.0, 220.0)
SPO2_RANGE = (50.0, 100.5)
MODEL_PATH = Path(__file__).with_name("apnea_minutes.json")


def clean_spo2(x: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> FloatArray:
    """SpO2 as float64 with NaN outside the plausible range (0 = no reading) or where invalid."""
    a = np.asarray(x, dtype=np.float64).copy()
    a[(a < SPO2_RANGE[0]) | (a > SPO2_RANGE[1])] = np.nan
    if valid is not None:
        a[~np.asarray(valid, bool)] = np.nan
    return a


def clean_hr(x: npt.ArrayLike, valid: npt.ArrayLike | None = None) -> FloatArray:
    """Heart rate as float64 with NaN outside the plausible range (0 = no beat) or invalid."""
    a = np.asarray(x, dtype=np.float64).copy()
    a[(a < HR_RANGE[0]) | (a > HR_RANGE[1])] = np.nan
    if valid is not None:
        a[~np.asarray(valid, bool)] = np.nan
    return a


def minute_windows(x: FloatArray, n_minutes: int, delay_s: int) -> FloatArray:
    """(n_minutes, WINDOW_S) trailing windows of a 1-Hz series, window m ending at
    ``60 (m + 1) + delay_s`` (NaN before the start and past the end of the data)."""
    pad = np.full(WINDOW_S + n_minutes * MINUTE_S + delay_s, np.nan)
    m = min(x.size, n_minutes * MINUTE_S + delay_s)
    pad[WINDOW_S : WINDOW_S + m] = x[:m]
    ends = WINDOW_S + MINUTE_S * (np.arange(n_minutes) + 1) + delay_s  # exclusive, in pad
    idx = ends[:, None] - WINDOW_S + np.arange(WINDOW_S)[None, :]  # (N, W)
    return pad[np.minimum(idx, pad.size - 1)]


def window_ok(w: FloatArray) -> npt.NDArray[np.bool_]:
    """A window is usable when at least half of its last two minutes are valid."""
    return np.asarray((~np.isnan(w[:, -120:])).mean(axis=1) >= 0.5)


def load_models(path: Path = MODEL_PATH) -> dict[str, Model]:
    """The shipped models by input set: ``"spo2_hr"`` and ``"hr"``."""
    return apnea_model.load_models(path)


def load_shipped(path: Path = MODEL_PATH) -> apnea_model.Parsed:
    """The shipped models and their figures in one read (the composition root shares them
    between beds: the models are read-only)."""
    return apnea_model.parse_file(path)


def load_validation(path: Path = MODEL_PATH) -> dict[str, dict[str, Any]]:
    """The shipped models' figures on real data, by input set."""
    return load_shipped(path)[1]


@dataclass(slots=True)
class Context:
    """One model's feature history: every base row so far (the last ``PAST_MINUTES``), oldest
    first, for the context means and the night's running mean and percentiles."""

    rows: FloatArray


@dataclass(slots=True)
class MinuteClassifierState:
    """Streaming per-minute scoring: rings of the last ``WINDOW_S`` seconds of SpO2 and HR and
    each model's feature history."""

    models: dict[str, Model]
    validation: dict[str, dict[str, Any]]  # per model: its figures on real data (may be empty)
    spo2: FloatArray  # (WINDOW_S,) oldest first, NaN invalid
    hr: FloatArray  # (WINDOW_S,)
    seen_s: int = 0  # seconds consumed since the engine clock's 0
    history: dict[str, Context] = field(default_factory=dict)


def new_classifier(models: dict[str, Model] | None = None,
                   validation: dict[str, dict[str, Any]] | None = None) -> MinuteClassifierState:
    """The shipped models with their figures, or ``models`` with ``validation`` (none given:
    none)."""
    if models is None:
        models, validation = load_shipped()
    return MinuteClassifierState(
        models=models, validation={} if validation is None else validation,
        spo2=np.full(WINDOW_S, np.nan), hr=np.full(WINDOW_S, np.nan),
    )


def classify_step(
    state: MinuteClassifierState, spo2: FloatArray, hr: FloatArray
) -> list[tuple[int, float | None, str]]:
    """Feed per-second SpO2 and HR (NaN invalid), from second ``seen_s`` on; returns
    ``(minute, probability or None when abstaining, model key)`` for each minute that became
    due (at ``60 (m + 1) + DELAY_S``) within the chunk."""
    out: list[tuple[int, float | None, str]] = []
    n = spo2.size
    assert hr.size == n
    both_s = np.concatenate([state.spo2, spo2])  # (WINDOW_S + n,)
    both_h = np.concatenate([state.hr, hr])
    ends = state.seen_s + np.arange(1, n + 1)  # seconds consumed after each sample
    for j in np.flatnonzero((ends > DELAY_S) & ((ends - DELAY_S) % MINUTE_S == 0)).tolist():
        minute = int((ends[j] - DELAY_S) // MINUTE_S - 1)
        lo = j + 1  # window ends after sample j: both[lo : lo + WINDOW_S]
        out.append(_score(state, minute, both_s[lo : lo + WINDOW_S], both_h[lo : lo + WINDOW_S]))
    state.spo2, state.hr = both_s[-WINDOW_S:], both_h[-WINDOW_S:]
    state.seen_s += n
    return out


def _score(
    state: MinuteClassifierState, minute: int, spo2: FloatArray, hr: FloatArray
) -> tuple[int, float | None, str]:
    s, h = spo2[None, :], hr[None, :]  # (1, WINDOW_S)
    has_spo2 = bool(window_ok(s)[0])
    key = "spo2_hr" if has_spo2 and "spo2_hr" in state.models else "hr"
    feats: dict[str, FloatArray] = {}
    for k in state.models:  # every model's context advances every minute
        base = minute_features(s if k == "spo2_hr" else None, h)  # (1, F)
        ctx = state.history.get(k)
        if ctx is None:
            feats[k] = with_context(base)
            state.history[k] = Context(base)
            continue
        feats[k] = with_context(base, ctx.rows)
        ctx.rows = np.concatenate([ctx.rows, base])[-PAST_MINUTES:]
    if not (window_ok(h)[0] or has_spo2):
        return minute, None, key
    return minute, float(state.models[key].predict(feats[key])[0]), key
