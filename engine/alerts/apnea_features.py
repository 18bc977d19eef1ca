"""Per-minute apnea features from trailing 1-Hz SpO2 and heart-rate windows (all causal).

Each minute's window is the ``WINDOW_S`` seconds up to its decision time (``apnea_minutes``).
Base features per window describe the cyclic dynamics of obstructive events:

- SpO2 (``SPO2_FEATURES``): desaturation dips below a running pre-dip maximum, SpO2 variability
  and cyclic power; and (``SPO2_SHAPE``) the desaturation-resaturation shape: the periodicity of
  the detrended trace (autocorrelation peak at 20-100 s lags), its power in the 0.01-0.04 Hz band
  (absolute and relative) over 3, 5 and 10 minutes, the area below the 5-minute 95th percentile,
  the steepest fall and rise, the count of dips below the 2-minute trend, the last 90 s range;
- heart rate (``HR_FEATURES``): variability, cyclic power at 0.01-0.05 Hz, level; and
  (``HR_CVHR``) the cyclic variation of heart rate: the detrended (60-s mean removed) trace's
  periodicity at 20-100 s, its 0.01-0.04 Hz band power (absolute, relative) over 3, 5 and 10
  minutes, and the count of heart-rate surges above 3 and 6 bpm.

``with_context`` appends, per base feature, the causal means over the last 10 and 30 minutes,
the deviation from the night's running mean so far and the feature's running percentile among
every minute of the night so far (two per-night normalisations: a subject's own baseline heart-rate
variability or SpO2 level reads as "usual for this night", whatever its absolute value).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from sleepstream.engine.alerts.series import window_percentile
from sleepstream.engine.types import FloatArray

CONTEXTS = (10, 30)  # minutes over which base features are also averaged (causally)
SPO2_FEATURES = (
    "dips3_120", "dips3_600", "dips4_600", "below3_frac_120", "below3_frac_600", "depth_120",
    "spo2_range_120", "spo2_absdiff_120", "spo2_absdiff_600", "spo2_cyc_600", "spo2_level",
)
_SPANS = (180, 300, 600)
_CYCLIC = ("acf", "std", "band", "relband")
SPO2_SHAPE = (
    *(f"spo2_{k}_{w}" for w in _SPANS for k in _CYCLIC),
    "spo2_area_60", "spo2_area_120", "spo2_area_300", "spo2_fall", "spo2_rise", "spo2_moving",
    "spo2_dips15_300", "spo2_dips15_120", "spo2_dips3_300", "spo2_dips3_120", "spo2_range_90",
    "spo2_nadir_90",
)
HR_FEATURES = (
    "hr_std_120", "hr_raw_std_600", "hr_range_120", "hr_absdiff_120", "hr_cyc_300", "hr_cyc_600",
    "hr_cyc_rel_600", "hr_level_rel", "hr_vlf_600",
)
HR_CVHR = (
    *(f"hr_{k}_{w}" for w in _SPANS for k in _CYCLIC),
    "hr_surge3_300", "hr_surge3_120", "hr_surge6_300", "hr_surge6_120", "hr_range_90",
    "hr_spread_300",
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


def _moving_mean(x: FloatArray, w: int) -> FloatArray:
    """Centred moving mean over ``w`` samples (shorter at the edges), per row; (N, T)."""
    c = np.cumsum(np.concatenate([np.zeros((x.shape[0], 1)), x], axis=1), axis=1)
    i = np.arange(x.shape[1])
    lo, hi = np.clip(i - w // 2, 0, x.shape[1]), np.clip(i + w // 2 + 1, 0, x.shape[1])
    return np.asarray((c[:, hi] - c[:, lo]) / (hi - lo))


def _acf_peak(x: FloatArray, lo: int, hi: int) -> FloatArray:
    """Highest normalised autocorrelation at lags [lo, hi) s: how periodic the row is."""
    x = x - x.mean(axis=1, keepdims=True)
    n = x.shape[1]
    f = np.fft.rfft(x, 2 * n, axis=1)
    ac = np.fft.irfft(np.abs(f) ** 2, axis=1)[:, :n]
    return np.asarray((ac / np.maximum(ac[:, :1], 1e-9))[:, lo:hi].max(axis=1))


def _peaks(d: FloatArray, thr: float) -> FloatArray:
    """Local maxima of each row above ``thr``."""
    m = (d[:, 1:-1] > d[:, :-2]) & (d[:, 1:-1] >= d[:, 2:]) & (d[:, 1:-1] > thr)
    return m.sum(axis=1).astype(np.float64)


def _cyclic(x: FloatArray, d: FloatArray) -> list[FloatArray]:
    """Periodicity, spread and 0.01-0.04 Hz power of a trace and its detrended form."""
    out: list[FloatArray] = []
    for w in _SPANS:
        band, total = _band_power(x[:, -w:], 0.01, 0.04)
        out += [_acf_peak(d[:, -w:], 20, 100), np.log1p(d[:, -w:].std(axis=1)), np.log1p(band),
                band / (total + 1e-6)]
    return out


def _spo2_shape(s: FloatArray) -> FloatArray:
    """(N, WINDOW_S) SpO2 windows -> (N, len(SPO2_SHAPE)): desaturation-resaturation shape."""
    x = _ffill(s)
    d = x - _moving_mean(x, 121)
    p95 = np.percentile(x[:, -300:], 95, axis=1)
    dx = np.diff(x[:, -300:], axis=1)
    cols = _cyclic(x, d) + [(p95[:, None] - x[:, -w:]).clip(0).mean(axis=1) for w in (60, 120, 300)]
    cols += [(-dx).clip(0).max(axis=1), dx.clip(0).max(axis=1), (np.abs(dx) > 0.5).mean(axis=1)]
    cols += [_peaks(-d[:, -w:], thr) for thr in (1.5, 3.0) for w in (300, 120)]
    cols += [np.ptp(x[:, -90:], axis=1), x[:, -90:].min(axis=1) - p95]
    return np.stack(cols, axis=1)


def _hr_cvhr(h: FloatArray) -> FloatArray:
    """(N, WINDOW_S) heart-rate windows -> (N, len(HR_CVHR)): cyclic variation of heart rate."""
    x = _ffill(h)
    d = x - _moving_mean(x, 61)
    cols = _cyclic(x, d) + [_peaks(d[:, -w:], thr) for thr in (3.0, 6.0) for w in (300, 120)]
    q90, q10 = np.percentile(d[:, -300:], [90, 10], axis=1)
    cols += [np.ptp(d[:, -90:], axis=1), q90 - q10]
    return np.stack(cols, axis=1)


def minute_features(spo2: FloatArray | None, hr: FloatArray | None) -> FloatArray:
    """(N, F) base features from (N, WINDOW_S) windows; either signal may be None (absent)."""
    parts = []
    if spo2 is not None:
        parts += [_spo2_features(spo2), _spo2_shape(spo2)]
    if hr is not None:
        parts += [_hr_features(hr), _hr_cvhr(hr)]
    if not parts:
        raise ValueError("minute_features needs SpO2 or heart-rate windows")
    return np.concatenate(parts, axis=1)


def base_names(with_spo2: bool) -> tuple[str, ...]:
    return (SPO2_FEATURES + SPO2_SHAPE if with_spo2 else ()) + HR_FEATURES + HR_CVHR


def feature_names(with_spo2: bool) -> tuple[str, ...]:
    base = base_names(with_spo2)
    ctx = tuple(f"ctx{m}_{n}" for m in CONTEXTS for n in base)
    return (base + ctx + tuple(f"rel_{n}" for n in base) + tuple(f"pct_{n}" for n in base))


def _running_percentile(rows: FloatArray, first: int) -> FloatArray:
    """Per row ``i >= first`` of (K, F) ``rows`` and per column: the share of rows 0..i (itself
    included) below it, ties counted half; (K - first, F)."""
    out = np.empty((rows.shape[0] - first, rows.shape[1]))
    for i in range(first, rows.shape[0]):
        past = rows[: i + 1]
        out[i - first] = ((past < rows[i]).sum(axis=0) + 0.5 * (past == rows[i]).sum(axis=0)) \
            / (i + 1)
    return out


def with_context(base: FloatArray, past: FloatArray | None = None) -> FloatArray:
    """Append per base feature its causal means over the last ``CONTEXTS`` minutes (current one
    included), its deviation from the mean of every minute so far and its running percentile
    among them. Streaming: ``past`` (k, F) are every base row before ``base``, oldest first;
    (N, F) -> (N, 5F)."""
    prev = np.zeros((0, base.shape[1])) if past is None else past
    rows = np.concatenate([prev, base], axis=0)  # (k + N, F)
    c = np.concatenate([np.zeros((1, rows.shape[1])), np.cumsum(rows, axis=0)], axis=0)
    i = np.arange(prev.shape[0], rows.shape[0])
    parts = [base]
    for m in CONTEXTS:
        lo = np.maximum(i + 1 - m, 0)
        parts.append((c[i + 1] - c[lo]) / (i + 1 - lo)[:, None])
    parts.append(base - c[i + 1] / (i + 1)[:, None])
    parts.append(_running_percentile(rows, prev.shape[0]))
    return np.concatenate(parts, axis=1)
