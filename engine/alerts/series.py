"""Helpers that turn a channel's block into per-second series and tri-state criteria."""

from __future__ import annotations

import numpy as np

from sleepstream.engine.alerts.condition import Criterion
from sleepstream.engine.protocols import ChannelBlock
from sleepstream.engine.types import BoolArray, FloatArray


def usable(cb: ChannelBlock, technical: frozenset[str]) -> BoolArray:
    """The samples a physiological detector may use: valid, finite and not under a technical
    alarm (a channel in ``technical`` is unusable for the whole block)."""
    if cb.name in technical:
        return np.zeros(cb.data.shape[0], dtype=bool)
    return np.asarray(cb.valid & np.isfinite(cb.data))


def per_second(
    cb: ChannelBlock | None, technical: frozenset[str], t_start: float, n: int
) -> FloatArray:
    """(n,) mean of the usable samples in each second ``[t_start + i, t_start + i + 1)``; NaN
    where a second has none (or the channel is absent)."""
    out = np.full(n, np.nan)
    if cb is None or cb.data.size == 0:
        return out
    ok = usable(cb, technical)
    sec = np.floor(cb.t0 - t_start + np.arange(cb.data.shape[0]) / cb.fs + 1e-9).astype(np.int64)
    keep = ok & (sec >= 0) & (sec < n)
    total = np.bincount(sec[keep], weights=cb.data[keep].astype(np.float64), minlength=n)
    count = np.bincount(sec[keep], minlength=n)
    np.divide(total, count, out=out, where=count > 0)
    return out


def tri(met: BoolArray, known: BoolArray) -> Criterion:
    """1 where met, 0 where known and not met, -1 where unknown."""
    return np.where(known, met.astype(np.int8), np.int8(-1)).astype(np.int8)


def window_percentile(view: FloatArray, q: float, min_valid: int) -> FloatArray:
    """Per row of ``view`` (n, w), the ``q``-th percentile (linear) of its non-NaN values; NaN
    where fewer than ``min_valid`` are valid. Sorting once is much faster than nanpercentile."""
    srt = np.sort(view, axis=1)  # NaNs sort last
    k = (~np.isnan(view)).sum(axis=1)
    pos = (q / 100.0) * np.maximum(k - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, np.maximum(k - 1, 0))
    rows = np.arange(view.shape[0])
    frac = pos - lo
    out = srt[rows, lo] * (1 - frac) + srt[rows, hi] * frac
    return np.where(k >= max(min_valid, 1), out, np.nan)
