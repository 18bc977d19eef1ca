"""Fit the hypnogram model to a folder of scored nights and compare generated with real nights.

Real nights (Sleep-EDF cassette hypnograms) start and end with hours of wake outside the lights-off
period; each night is cut to its sleep period plus up to ``pad_min`` of wake on both sides.
Unscored epochs and movement time inside the sleep period count as wake.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sleepstream.drivers.edf import read_recording
from sleepstream.simulators.synthetic.hypnogram import (
    EPOCH_S,
    MAX_CYCLE_INDEX,
    N_CYCLE_GROUPS,
    REM,
    STAGE_NAMES,
    HypnogramModel,
    IntArray,
    LogNormal,
    W,
    generate_hypnogram,
    night_stats,
    rem_periods,
    runs,
    sleep_period,
    transition_matrix,
)

log = logging.getLogger(__name__)

_CODE = {name: i for i, name in enumerate(STAGE_NAMES)}


def read_hypnogram(path: Path, pad_min: float = 30.0) -> IntArray:
    """Stage codes of one scored night, trimmed to its sleep period plus ``pad_min`` of wake."""
    rec = read_recording(path)
    scored = rec.stages(EPOCH_S)
    if not scored:
        return np.zeros(0, dtype=np.int64)
    n = round(scored[-1][0] / EPOCH_S) + 1
    stages = np.full(n, W, dtype=np.int64)
    for onset, stage in scored:
        stages[round(onset / EPOCH_S)] = _CODE[stage]
    asleep = np.flatnonzero(stages != W)
    if asleep.size == 0:
        return stages[:0]
    pad = int(pad_min * 60 / EPOCH_S)
    return stages[max(asleep[0] - pad, 0) : asleep[-1] + 1 + pad]


def read_folder(folder: Path, pattern: str = "*Hypnogram*.edf") -> list[IntArray]:
    paths = sorted(folder.glob(pattern))
    nights = [read_hypnogram(p) for p in paths]
    log.info("read %d hypnograms from %s", len(nights), folder)
    return [n for n in nights if n.size]


@dataclass(frozen=True, slots=True)
class _Periods:
    """Per night: NREM periods as (cycle, epochs, complete) and REM periods as (cycle, epochs)."""

    nrem: list[tuple[int, IntArray, bool]]
    rem: list[tuple[int, IntArray]]


def _segment(spt: IntArray) -> _Periods:
    periods = rem_periods(spt)
    nrem: list[tuple[int, IntArray, bool]] = []
    rem: list[tuple[int, IntArray]] = []
    start = 0
    for cycle, (a, b) in enumerate(periods, start=1):
        nrem.append((cycle, spt[start:a], True))
        rem.append((cycle, spt[a:b]))
        start = b
    if start < spt.size:
        nrem.append((len(periods) + 1, spt[start:], False))
    return _Periods(nrem, rem)


def _lognormal(values: list[int], prior: LogNormal) -> LogNormal:
    """Log-normal fit, shrunk towards ``prior`` when there are few values."""
    if not values:
        return prior
    logs = np.log(np.asarray(values, dtype=np.float64))
    k = len(values)
    w = k / (k + 3.0)
    mu = w * float(logs.mean()) + (1 - w) * prior.mu
    sd = float(logs.std()) if k > 1 else prior.sigma
    return LogNormal(round(mu, 4), round(max(w * sd + (1 - w) * prior.sigma, 0.1), 4))


def _normalise(counts: npt.NDArray[np.float64]) -> tuple[float, ...]:
    return tuple(round(float(x), 5) for x in counts / max(counts.sum(), 1e-12))


def fit_model(nights: list[IntArray], source: str = "") -> HypnogramModel:
    """Maximum-likelihood (lightly smoothed) parameters from scored nights."""
    nrem_len: dict[int, list[int]] = {c: [] for c in range(1, MAX_CYCLE_INDEX + 1)}
    rem_len: dict[int, list[int]] = {c: [] for c in range(1, MAX_CYCLE_INDEX + 1)}
    chain = np.full((N_CYCLE_GROUPS, 4, 4), 0.5)
    start = np.full((N_CYCLE_GROUPS, 4), 0.5)
    interrupt = np.full(4, 0.5)
    bouts: dict[str, list[int]] = {}
    for night in nights:
        seg = _segment(sleep_period(night))
        for cycle, epochs, complete in seg.nrem:
            g = min(cycle, N_CYCLE_GROUPS) - 1
            if complete:
                nrem_len[min(cycle, MAX_CYCLE_INDEX)].append(epochs.size)
            st, ln = runs(epochs)
            if cycle > 1 and st.size:
                start[g, st[0]] += 1
            np.add.at(chain[g], (st[:-1], st[1:]), 1.0)
            for s, n in zip(st, ln, strict=True):
                bouts.setdefault(f"nrem{g}:{STAGE_NAMES[s]}", []).append(int(n))
        for cycle, epochs in seg.rem:
            rem_len[min(cycle, MAX_CYCLE_INDEX)].append(epochs.size)
            st, ln = runs(epochs)
            np.add.at(interrupt, st[st != REM], 1.0)
            for s, n in zip(st, ln, strict=True):
                bouts.setdefault(f"rem:{STAGE_NAMES[s]}", []).append(int(n))
    for g in range(N_CYCLE_GROUPS):
        np.fill_diagonal(chain[g], 0.0)
    pooled = LogNormal(float(np.log(4.0)), 1.0)
    keys = [f"nrem{g}:{s}" for g in range(N_CYCLE_GROUPS) for s in STAGE_NAMES[:4]]
    keys += [f"rem:{s}" for s in STAGE_NAMES]
    period_prior = LogNormal(float(np.log(150.0)), 0.5)
    return HypnogramModel(
        nrem_period=tuple(_lognormal(nrem_len[c], period_prior) for c in sorted(nrem_len)),
        rem_period=tuple(
            _lognormal(rem_len[c], LogNormal(float(np.log(40.0)), 0.6)) for c in sorted(rem_len)
        ),
        nrem_chain=tuple(tuple(_normalise(r) for r in m) for m in chain),
        nrem_start=tuple(_normalise(r) for r in start),
        rem_interrupt=_normalise(interrupt),
        bouts={k: _lognormal(bouts.get(k, []), pooled) for k in keys},
        source=source,
        n_nights=len(nights),
    )


def stats_table(nights: list[IntArray]) -> dict[str, npt.NDArray[np.float64]]:
    """Each statistic of ``night_stats`` across nights."""
    rows = [night_stats(n) for n in nights]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in rows[0]}


def distance(real: list[IntArray], generated: list[IntArray]) -> dict[str, Any]:
    """How far generated nights are from real ones.

    Per statistic: |mean difference| in units of the real nights' standard deviation (a
    standardised mean difference, SMD); ``smd_mean`` averages them. ``transition_l1`` is the
    mean over rows of the L1 distance between the pooled epoch transition matrices (0..2).
    """
    a, b = stats_table(real), stats_table(generated)
    smd = {}
    for k in a:
        ra, rb = a[k][np.isfinite(a[k])], b[k][np.isfinite(b[k])]
        if ra.size < 2 or rb.size == 0:
            continue
        smd[k] = abs(float(rb.mean() - ra.mean())) / max(float(ra.std(ddof=1)), 1e-6)
    ta = np.mean([transition_matrix(sleep_period(n)) for n in real], axis=0)
    tb = np.mean([transition_matrix(sleep_period(n)) for n in generated], axis=0)
    return {
        "smd": smd,
        "smd_mean": float(np.mean(list(smd.values()))),
        "smd_max": float(np.max(list(smd.values()))),
        "transition_l1": float(np.abs(ta - tb).sum(axis=1).mean()),
        "real_mean": {k: float(np.nanmean(v)) for k, v in a.items()},
        "generated_mean": {k: float(np.nanmean(v)) for k, v in b.items()},
    }


def generate_like(
    model: HypnogramModel, real: list[IntArray], seed: int, per_night: int = 3
) -> list[IntArray]:
    """Generated nights of the same lengths as the real ones (``per_night`` each)."""
    rng = np.random.default_rng(seed)
    out = []
    for night in real:
        asleep = np.flatnonzero(night != W)
        lead, tail = int(asleep[0]), int(night.size - asleep[-1] - 1)
        for _ in range(per_night):
            out.append(generate_hypnogram(model, night.size, rng, None, lead, tail))
    return out


def fit_folder(folder: Path, seed: int = 0) -> HypnogramModel:
    """Fit on every hypnogram in ``folder`` and record the fit and its distance in the model."""
    real = read_folder(folder)
    if not real:
        raise ValueError(f"{folder}: no scored hypnograms (*Hypnogram*.edf) found")
    model = fit_model(real, source=folder.name)
    d = distance(real, generate_like(model, real, seed))
    report = {
        "smd_mean": round(d["smd_mean"], 4),
        "smd_max": round(d["smd_max"], 4),
        "transition_l1": round(d["transition_l1"], 4),
        "real_mean": {k: round(v, 3) for k, v in d["real_mean"].items()},
        "generated_mean": {k: round(v, 3) for k, v in d["generated_mean"].items()},
    }
    return HypnogramModel(**{**_fields(model), "fit_report": report})


def _fields(model: HypnogramModel) -> dict[str, Any]:
    return {name: getattr(model, name) for name in HypnogramModel.__dataclass_fields__}
