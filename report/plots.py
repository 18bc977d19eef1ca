"""Matplotlib pictures of a night: the hypnogram with the engine's confidence, and SpO2 and
heart-rate trends with scored events and alarms marked. Figures are made with the object API
(no pyplot state), so they work in scripts, notebooks and servers alike."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from sleepstream.report.hypnogram import Hypnogram

if TYPE_CHECKING:
    from sleepstream.report.night import Night

# Hypnogram rows, top to bottom (W on top, as sleep physicians draw it).
LEVELS = {"W": 4, "REM": 3, "N1": 2, "N2": 1, "N3": 0}
STAGE_COLOURS = {"W": "#f4a261", "REM": "#e76f51", "N1": "#8ecae6", "N2": "#219ebc",
                 "N3": "#023047"}
PRIORITY_COLOURS = {"high": "#d62828", "medium": "#f77f00", "low": "#fcbf49"}


def plot_hypnogram(hyp: Hypnogram, ax: Any = None, *, hours: bool = True) -> Any:
    """Steps per epoch (unscored epochs left blank), REM drawn thick; confidence below as a
    grey band when the hypnogram has it. Returns the axes."""
    if ax is None:
        ax = Figure(figsize=(10, 2.6), layout="constrained").add_subplot()
    scale = 3600.0 if hours else 60.0
    t = np.append(hyp.onsets(), hyp.duration_s) / scale
    y = np.array([LEVELS.get(s or "", np.nan) for s in hyp.stages], dtype=float)
    ax.stairs(y, t, baseline=None, color="#333333", lw=1.0)
    rem = np.where(y == LEVELS["REM"], y, np.nan)
    ax.stairs(rem, t, baseline=None, color=STAGE_COLOURS["REM"], lw=3.0)
    ax.set_yticks(list(LEVELS.values()), list(LEVELS))
    ax.set_ylim(-1.3 if hyp.confidence is not None else -0.5, 4.5)
    if hyp.confidence is not None:
        conf = np.array(hyp.confidence, dtype=float)
        ax.stairs(-1.2 + conf, t, baseline=-1.2, fill=True, color="#bbbbbb", lw=0)
        ax.text(t[0], -1.25, "confidence", fontsize=7, va="bottom", color="#555555")
    if len(hyp):
        ax.set_xlim(t[0], t[-1])
    ax.set_xlabel("hours from start" if hours else "minutes from start")
    ax.set_title(f"hypnogram ({hyp.source} stages)", loc="left", fontsize=9)
    return ax


HEIGHTS = {"hyp": 1.4, "expert": 1.0, "spo2": 1.0, "hr": 1.0}


def night_rows(night: Night) -> list[str]:
    rows = ["hyp"] + (["expert"] if night.expert is not None else [])
    return rows + [r for r, trend in (("spo2", night.spo2), ("hr", night.hr)) if trend is not None]


def night_figure(night: Night, *, width: float = 10.0) -> Figure:
    """Hypnogram (engine, and expert when the file has one), SpO2 and heart rate."""
    rows = night_rows(night)
    fig = Figure(figsize=(width, 1.5 + 1.6 * sum(HEIGHTS[r] for r in rows)),
                 layout="constrained")
    draw_night(fig, night)
    return fig


def draw_night(fig: Any, night: Night) -> list[Any]:
    """Draw the night's panels into ``fig`` (a Figure or SubFigure); returns the axes."""
    rows = night_rows(night)
    heights = HEIGHTS
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [heights[r] for r in rows]})[:, 0]
    expert_s = night.expert.duration_s if night.expert is not None else 0.0
    end_h = max(night.info.duration_s, night.hypnogram.duration_s, expert_s, 30.0) / 3600.0
    for ax, row in zip(axes, rows, strict=True):
        if row == "hyp":
            plot_hypnogram(night.hypnogram, ax)
            used = ", ".join(sorted(set(night.stages["modalities"]) - {""})) or "none"
            ax.set_title(f"hypnogram, engine (causal), from: {used}", loc="left", fontsize=9)
        elif row == "expert" and night.expert is not None:
            plot_hypnogram(night.expert, ax)
            ax.set_title("hypnogram, expert scoring in the file", loc="left", fontsize=9)
        elif row == "spo2" and night.spo2 is not None:
            _trend(ax, night.spo2, "SpO2 (%)", "#1d3557")
            ax.axhline(90.0, color="#999999", lw=0.6, ls="--")
            _events(ax, night)
        elif row == "hr" and night.hr is not None:
            _trend(ax, night.hr, "heart rate (bpm)", "#6a040f")
        _alarms(ax, night, physiological_only=row != "spo2")
        ax.set_xlim(0.0, end_h)
        ax.label_outer()
    axes[-1].set_xlabel("hours from start")
    return list(axes)


def _trend(ax: Any, values: np.ndarray, label: str, colour: str) -> None:
    n = values.size
    step = max(1, n // 4000)  # at most ~4000 points: 1-s values averaged in blocks
    m = n // step * step
    with warnings.catch_warnings():  # blocks without a valid second: NaN, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        y = np.nanmean(values[:m].reshape(-1, step), axis=1)
    t = (np.arange(y.size) * step + step / 2.0) / 3600.0
    ax.plot(t, y, color=colour, lw=0.7)
    finite = y[np.isfinite(y)]
    if finite.size:
        lo, hi = np.percentile(finite, [0.5, 99.5])
        ax.set_ylim(lo - 3, hi + 3)
    ax.set_ylabel(label, fontsize=8)


def _events(ax: Any, night: Night) -> None:
    ev = night.events
    for code, marker, colour in (("desat3", 2, "#457b9d"), ("desat4", 3, "#e63946")):
        rows = ev[ev["code"] == code]
        if len(rows):
            ax.plot(rows["onset"] / 3600.0, np.full(len(rows), ax.get_ylim()[0] + marker),
                    "|", color=colour, ms=6, label=f"{code} ({len(rows)})")
    other = ev[~ev["code"].isin(["desat3", "desat4"])]
    for code, rows in other.groupby("code"):
        ax.plot(rows["onset"] / 3600.0, np.full(len(rows), ax.get_ylim()[1] - 1), "v",
                ms=3, label=f"{code} ({len(rows)})")
    if len(ev):
        ax.legend(loc="upper right", fontsize=6, ncol=4, framealpha=0.8)


def _alarms(ax: Any, night: Night, *, physiological_only: bool) -> None:
    al = night.alarms
    if physiological_only:
        al = al[al["kind"] == "physiological"]
    al = al[al["priority"].isin(["high", "medium"])]
    for _, a in al.iterrows():
        end = a["onset"] + (a["duration"] if np.isfinite(a["duration"]) else 0.0)
        ax.axvspan(a["onset"] / 3600.0, max(end, a["onset"] + 30.0) / 3600.0,
                   color=PRIORITY_COLOURS.get(str(a["priority"]), "#cccccc"), alpha=0.25, lw=0)

