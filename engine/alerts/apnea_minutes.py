"""Per-minute sleep-apnea classifier from 1-Hz SpO2 and heart rate (or heart rate alone).

Each minute ``m`` (seconds ``[60 m, 60 m + 60)``) is scored when the engine clock reaches
``60 (m + 1) + delay_s``: its features are computed from the last ``WINDOW_S`` seconds up to that
instant, so the decision is causal with a stated delay. Features describe the cyclic dynamics of
obstructive events: desaturation dips below a running pre-dip maximum, SpO2 variability, and heart
rate cyclic variation (spectral power at 0.01-0.05 Hz, the 20-100 s period of apnea cycles), each
over a short and a long trailing window. A logistic model (coefficients in ``apnea_minutes.json``,
fitted with record-wise cross-validation by ``sleepstream evaluate alerts --fit``) turns them into
a probability.

The offline path (``minute_windows`` + ``minute_features``) and the streaming path
(``MinuteClassifierState``) call the same feature function on the same windows, so a replayed
night scores exactly as the batch evaluation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sleepstream.engine.alerts.series import window_percentile
from sleepstream.engine.types import FloatArray

WINDOW_S = 600  # trailing seconds each decision looks at
MINUTE_S = 60
CONTEXT_MINUTES = 10  # base features are also averaged over this many trailing minutes
DELAY_S = 30  # minute m is scored at 60 (m + 1) + DELAY_S
HR_RANGE = (25.0, 220.0)
SPO2_RANGE = (50.0, 100.5)
MODEL_PATH = Path(__file__).with_name("apnea_minutes.json")

SPO2_FEATURES = (
    "dips3_120", "dips3_600", "dips4_600", "below3_frac_120", "below3_frac_600", "depth_120",
    "spo2_range_120", "spo2_absdiff_120", "spo2_absdiff_600", "spo2_cyc_600", "spo2_level",
)
HR_FEATURES = (
    "hr_std_120", "hr_std_600", "hr_range_120", "hr_absdiff_120", "hr_cyc_300", "hr_cyc_600",
    "hr_cyc_rel_600", "hr_level_rel", "hr_vlf_600",
)


def _ffill(x: FloatArray) -> FloatArray:
    """Forward-fill NaNs along the last axis; leading NaNs take the row's first valid value."""
    n = x.shape[-1]
    ok = ~np.isnan(x)
    idx = np.where(ok, np.arange(n), 0)
    np.maximum.accumulate(idx, axis=-1, out=idx)
    out = np.take_along_axis(x, idx, axis=-1)
    first = np.argmax(ok, axis=-1)
    lead = np.take_along_axis(x, first[..., None], axis=-1)
    out = np.where(np.isnan(out), lead, out)
    return np.where(np.isnan(out), 0.0, out)


def _running_max(x: FloatArray, w: int) -> FloatArray:
    """Max over the previous ``w`` samples (exclusive of the current one), per row; (N, T)."""
    padded = np.concatenate([np.full((x.shape[0], w), -np.inf), x], axis=1)
    view = np.lib.stride_tricks.sliding_window_view(padded[:, :-1], w, axis=1)  # (N, T, w)
    return view.max(axis=2)


def _dips(x: FloatArray, drop: float) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Per row: a boolean (N, T) 'at least ``drop`` below the 60-s pre-dip maximum' and the
    depth below that maximum."""
    ref = _running_max(x, 60)
    depth = np.where(np.isfinite(ref), ref - x, 0.0)
    return np.asarray(depth >= drop), depth


def _onsets(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    prev = np.concatenate([np.zeros((mask.shape[0], 1), bool), mask[:, :-1]], axis=1)
    return mask & ~prev


def _band_power(x: FloatArray, lo: float, hi: float) -> tuple[FloatArray, FloatArray]:
    """(band power, total power) of each detrended, Hann-windowed row sampled at 1 Hz."""
    n = x.shape[1]
    t = np.arange(n) - (n - 1) / 2
    slope = (x * t).sum(axis=1, keepdims=True) / (t * t).sum()
    y = (x - x.mean(axis=1, keepdims=True) - slope * t) * np.hanning(n)
    p = np.abs(np.fft.rfft(y, axis=1)) ** 2 / n  # (N, n//2+1)
    f = np.fft.rfftfreq(n, 1.0)
    band = p[:, (f >= lo) & (f <= hi)].sum(axis=1)
    total = p[:, (f >= 0.005) & (f <= 0.5)].sum(axis=1)
    return band, total


def _spo2_features(s: FloatArray) -> FloatArray:
    """(N, WINDOW_S) SpO2 windows (NaN where invalid) -> (N, len(SPO2_FEATURES))."""
    x = _ffill(s)
    d3, depth = _dips(x, 3.0)
    d4, _ = _dips(x, 4.0)
    on3, on4 = _onsets(d3), _onsets(d4)
    last = slice(-120, None)
    p95 = window_percentile(s[:, -300:], 95.0, 1)
    cyc, _total = _band_power(x[:, -600:], 0.01, 0.05)
    cols = [
        on3[:, last].sum(axis=1),
        on3.sum(axis=1) / 5.0,
        on4.sum(axis=1) / 5.0,
        d3[:, last].mean(axis=1),
        d3.mean(axis=1),
        depth[:, last].max(axis=1),
        np.ptp(x[:, last], axis=1),
        np.abs(np.diff(x[:, last], axis=1)).mean(axis=1),
        np.abs(np.diff(x, axis=1)).mean(axis=1),
        np.log1p(cyc),
        np.nan_to_num(p95, nan=95.0) - 95.0,
    ]
    return np.stack(cols, axis=1)


def _hr_features(h: FloatArray) -> FloatArray:
    """(N, WINDOW_S) heart-rate windows (NaN where invalid) -> (N, len(HR_FEATURES))."""
    x = _ffill(h)
    last = slice(-120, None)
    cyc300, _ = _band_power(x[:, -300:], 0.01, 0.05)
    cyc600, tot600 = _band_power(x, 0.01, 0.05)
    vlf, _ = _band_power(x, 0.003, 0.01)
    n_ok = (~np.isnan(h)).sum(axis=1)
    srt = np.sort(h, axis=1)  # NaNs last: the median of the valid values, without warnings
    med = 0.5 * (np.take_along_axis(srt, ((n_ok - 1) // 2)[:, None].clip(0), axis=1)[:, 0]
                 + np.take_along_axis(srt, (n_ok // 2)[:, None].clip(0), axis=1)[:, 0])
    med = np.where(n_ok > 0, med, x.mean(axis=1))
    cols = [
        np.log1p(x[:, last].std(axis=1)),
        np.log1p(x.std(axis=1)),
        np.log1p(np.ptp(x[:, last], axis=1)),
        np.log1p(np.abs(np.diff(x[:, last], axis=1)).mean(axis=1)),
        np.log1p(cyc300),
        np.log1p(cyc600),
        cyc600 / (tot600 + 1e-6),
        (x[:, last].mean(axis=1) - med) / np.maximum(med, 1.0),
        np.log1p(vlf),
    ]
    return np.stack(cols, axis=1)


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


def minute_features(spo2: FloatArray | None, hr: FloatArray | None) -> FloatArray:
    """(N, F) features from (N, WINDOW_S) windows; either signal may be None (not present)."""
    parts = []
    if spo2 is not None:
        parts.append(_spo2_features(spo2))
    if hr is not None:
        parts.append(_hr_features(hr))
    if not parts:
        raise ValueError("minute_features needs SpO2 or heart-rate windows")
    return np.concatenate(parts, axis=1)


def with_context(base: FloatArray, history: FloatArray | None = None) -> FloatArray:
    """Append the causal mean of each base feature over the last ``CONTEXT_MINUTES`` minutes
    (current one included). ``history`` (k, F), k < CONTEXT_MINUTES, are the rows of the minutes
    just before ``base`` (streaming); (N, F) -> (N, 2F)."""
    prev = np.zeros((0, base.shape[1])) if history is None else history
    rows = np.concatenate([prev, base], axis=0)  # (k + N, F)
    c = np.concatenate([np.zeros((1, rows.shape[1])), np.cumsum(rows, axis=0)], axis=0)
    i = np.arange(prev.shape[0], rows.shape[0])
    lo = np.maximum(i + 1 - CONTEXT_MINUTES, 0)
    ctx = (c[i + 1] - c[lo]) / (i + 1 - lo)[:, None]
    return np.concatenate([base, ctx], axis=1)


def feature_names(with_spo2: bool) -> tuple[str, ...]:
    base = (SPO2_FEATURES if with_spo2 else ()) + HR_FEATURES
    return base + tuple(f"ctx_{n}" for n in base)


def window_ok(w: FloatArray) -> npt.NDArray[np.bool_]:
    """A window is usable when at least half of its last two minutes are valid."""
    return np.asarray((~np.isnan(w[:, -120:])).mean(axis=1) >= 0.5)


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
            "features": list(self.features), "mean": list(self.mean), "scale": list(self.scale),
            "coef": list(self.coef), "intercept": self.intercept, "threshold": self.threshold,
        }

    @staticmethod
    def from_json(d: dict[str, object]) -> LogisticModel:
        def floats(key: str) -> tuple[float, ...]:
            v = d[key]
            assert isinstance(v, list)
            return tuple(float(a) for a in v)

        names = d["features"]
        assert isinstance(names, list)
        return LogisticModel(
            features=tuple(str(n) for n in names), mean=floats("mean"), scale=floats("scale"),
            coef=floats("coef"), intercept=float(str(d["intercept"])),
            threshold=float(str(d.get("threshold", 0.5))),
        )


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


def load_models(path: Path = MODEL_PATH) -> dict[str, LogisticModel]:
    """The shipped models by input set: ``"spo2_hr"`` and ``"hr"``."""
    data = json.loads(path.read_text())
    return {k: LogisticModel.from_json(v) for k, v in data["models"].items()}


@dataclass(slots=True)
class MinuteClassifierState:
    """Streaming per-minute scoring: rings of the last ``WINDOW_S`` seconds of SpO2 and HR and
    of the last ``CONTEXT_MINUTES - 1`` base feature rows."""

    models: dict[str, LogisticModel]
    spo2: FloatArray  # (WINDOW_S,) oldest first, NaN invalid
    hr: FloatArray  # (WINDOW_S,)
    seen_s: int = 0  # seconds consumed since the engine clock's 0
    history: dict[str, FloatArray] | None = None  # per model key: (k, F) base rows


def new_classifier(models: dict[str, LogisticModel] | None = None) -> MinuteClassifierState:
    return MinuteClassifierState(
        models=load_models() if models is None else models,
        spo2=np.full(WINDOW_S, np.nan), hr=np.full(WINDOW_S, np.nan), history={},
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
    assert state.history is not None
    feats: dict[str, FloatArray] = {}
    for k in state.models:  # every model's context advances every minute
        base = minute_features(s if k == "spo2_hr" else None, h)  # (1, F)
        hist = state.history.get(k)
        feats[k] = with_context(base, hist)
        state.history[k] = base if hist is None else np.concatenate([hist, base])[
            -(CONTEXT_MINUTES - 1) :]
    if not (window_ok(h)[0] or has_spo2):
        return minute, None, key
    return minute, float(state.models[key].predict(feats[key])[0]), key
