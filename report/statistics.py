"""Sleep statistics in AASM report terms, from a hypnogram and from the engine's events.

Every statistic is defined once, in ``DEFINITIONS`` (name -> unit, definition); the README's table
and the night report print those definitions. Stage durations and latencies are in minutes.
The names and definitions shared with YASA's ``sleep_statistics`` (TIB, SPT, WASO, TST, SE, SME,
SOL, stage minutes and percentages) give the same values on the same hypnogram; the REM latency is
the AASM one (from sleep onset), which is YASA's ``Lat_REM - SOL``.

Event statistics need the recording's 1-Hz SpO2 and heart-rate trends (NaN where invalid) and
the events; a statistic whose inputs are absent is NaN ("not available"), never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from sleepstream.engine.types import STAGES

SLEEP = ("N1", "N2", "N3", "REM")
# Codes of scored physiological events (``"type": "event"``; alarms of these codes are read as
# the same events where the engine announces them as alarms).
EVENT_CODES = ("desat3", "desat4", "apnea", "hypopnea", "arousal", "af")

DEFINITIONS: dict[str, tuple[str, str]] = {
    "TIB": ("min", "time in bed: the whole hypnogram, scored or not"),
    "SPT": ("min", "sleep period time: first to last sleep epoch, inclusive"),
    "TST": ("min", "total sleep time: N1 + N2 + N3 + REM epochs within SPT"),
    "SE": ("%", "sleep efficiency: TST / TIB x 100"),
    "SME": ("%", "sleep maintenance efficiency: TST / SPT x 100"),
    "SOL": ("min", "sleep onset latency: start of recording to the first sleep epoch"),
    "WASO": ("min", "wake after sleep onset: W epochs within SPT"),
    "REM_latency": ("min", "REM latency (AASM): sleep onset to the first REM epoch"),
    "W": ("min", "minutes of W over the whole hypnogram"),
    "N1": ("min", "minutes of N1"), "N2": ("min", "minutes of N2"),
    "N3": ("min", "minutes of N3 (R&K stages 3 and 4)"), "REM": ("min", "minutes of REM"),
    "NREM": ("min", "N1 + N2 + N3"),
    "%N1": ("% TST", "N1 / TST x 100"), "%N2": ("% TST", "N2 / TST x 100"),
    "%N3": ("% TST", "N3 / TST x 100"), "%REM": ("% TST", "REM / TST x 100"),
    "%NREM": ("% TST", "NREM / TST x 100"),
    "unscored": ("min", "epochs without a stage (abstained, unscored, movement time)"),
    "awakenings": ("count", "transitions from a sleep epoch straight into a W epoch"),
    "SFI": ("/h", "sleep fragmentation index: awakenings per hour of TST"),
    "stage_shifts": ("count", "changes of stage between consecutive scored epochs within SPT"),
    "AHI": ("/h", "apneas + hypopneas per hour of valid airflow (the engine's running index)"),
    "ODI3": ("/h", "desaturations >= 3 % per hour of valid SpO2"),
    "ODI4": ("/h", "desaturations >= 4 % per hour of valid SpO2"),
    "apnea_minutes_per_h": ("/h", "minutes scored apneic per hour of scored minutes "
                            "(oximetry / heart-rate minute classifier)"),
    "T90": ("% valid", "share of valid SpO2 time below 90 %"),
    "SpO2_mean": ("%", "mean SpO2 over valid readings"),
    "SpO2_min": ("%", "lowest valid SpO2 reading (1-s means)"),
    "HR_mean": ("bpm", "mean heart rate over valid readings"),
    **{f"HR_{s}": ("bpm", f"mean heart rate in {s} epochs") for s in STAGES},
    "AF_burden": ("% valid", "time in atrial fibrillation episodes / valid ECG or PPG time"),
}


def sleep_statistics(stages: Sequence[str | None], epoch_s: float = 30.0) -> dict[str, float]:
    """Stage statistics of one hypnogram (``None`` = no stage); minutes unless noted."""
    st = np.array([s or "" for s in stages], dtype=object)
    per_min = 60.0 / epoch_s
    is_sleep = np.isin(st, SLEEP)
    idx = np.flatnonzero(is_sleep)
    has_sleep = idx.size > 0
    spt = st[idx[0]: idx[-1] + 1] if has_sleep else st[:0]
    out: dict[str, float] = {"TIB": st.size / per_min, "SPT": spt.size / per_min}
    out["TST"] = float(np.isin(spt, SLEEP).sum()) / per_min
    out["SE"] = 100.0 * out["TST"] / out["TIB"] if st.size else math.nan
    out["SME"] = 100.0 * out["TST"] / out["SPT"] if has_sleep else math.nan
    out["SOL"] = idx[0] / per_min if has_sleep else math.nan
    out["WASO"] = float((spt == "W").sum()) / per_min if has_sleep else math.nan
    rem = np.flatnonzero(st == "REM")
    out["REM_latency"] = (rem[0] - idx[0]) / per_min if rem.size else math.nan
    for s in STAGES:
        out[s] = float((st == s).sum()) / per_min
    out["NREM"] = out["N1"] + out["N2"] + out["N3"]
    for s in (*SLEEP, "NREM"):
        out[f"%{s}"] = 100.0 * out[s] / out["TST"] if out["TST"] > 0 else math.nan
    out["unscored"] = float((st == "").sum()) / per_min
    awakenings = int((is_sleep[:-1] & (st[1:] == "W")).sum())
    out["awakenings"] = float(awakenings)
    out["SFI"] = awakenings / (out["TST"] / 60.0) if out["TST"] > 0 else math.nan
    scored = spt[spt != ""]
    out["stage_shifts"] = float((scored[1:] != scored[:-1]).sum()) if has_sleep else math.nan
    if not (st != "").any():  # nothing staged (the model abstained): no stage figure at all
        out.update({k: math.nan for k in out if k not in ("TIB", "unscored")})
    return out


def event_statistics(
    events: Iterable[Mapping[str, Any]],
    *,
    spo2: npt.ArrayLike | None = None,
    hr: npt.ArrayLike | None = None,
    stages: Sequence[str | None] = (),
    epoch_s: float = 30.0,
    cardiac_s: float | None = None,
) -> dict[str, float]:
    """Statistics from the events (indices, AF) and the 1-Hz trends (``spo2``, ``hr``: one
    value per second from t = 0, NaN where invalid). ``cardiac_s``: seconds of valid ECG or PPG
    (the AF burden's denominator; None when the night has neither)."""
    events = list(events)
    out = dict.fromkeys(("AHI", "ODI3", "ODI4", "apnea_minutes_per_h"), math.nan)
    index = [e for e in events if e.get("type") == "index"]
    if index:
        last = index[-1]
        for key, name in (("ahi", "AHI"), ("odi3", "ODI3"), ("odi4", "ODI4"),
                          ("apnea_minutes_per_hour", "apnea_minutes_per_h")):
            if last.get(key) is not None:
                out[name] = float(last[key])
    out.update(_spo2_stats(spo2))
    out.update(_hr_stats(hr, stages, epoch_s))
    af = sum(d for code, _, d in scored_events(events) if code == "af")
    out["AF_burden"] = 100.0 * af / cardiac_s if cardiac_s else math.nan
    return out


def scored_events(events: Iterable[Mapping[str, Any]]) -> list[tuple[str, float, float]]:
    """(code, onset, duration) of every scored event: ``"type": "event"`` rows, and alarm
    conditions of an event code (one per alarm id, its last transition), each counted once."""
    found: dict[tuple[str, float], float] = {}
    alarms: dict[str, Mapping[str, Any]] = {}
    for e in events:
        if e.get("type") == "event":
            onset = float(e["onset"])
            end = e.get("end")
            found[(str(e["code"]), onset)] = 0.0 if end is None else float(end) - onset
        elif e.get("type") == "alert" and e.get("code") in EVENT_CODES:
            alarms[str(e.get("id"))] = e
    for e in alarms.values():
        onset = float(e["onset"])
        end = e.get("end")
        found.setdefault((str(e["code"]), onset), 0.0 if end is None else float(end) - onset)
    return sorted(((c, o, d) for (c, o), d in found.items()), key=lambda x: (x[1], x[0]))


def _spo2_stats(spo2: npt.ArrayLike | None) -> dict[str, float]:
    nan = dict.fromkeys(("T90", "SpO2_mean", "SpO2_min"), math.nan)
    if spo2 is None:
        return nan
    x = np.asarray(spo2, dtype=np.float64)
    x = x[np.isfinite(x)]
    if not x.size:
        return nan
    return {"T90": 100.0 * float((x < 90.0).mean()), "SpO2_mean": float(x.mean()),
            "SpO2_min": float(x.min())}


def _hr_stats(
    hr: npt.ArrayLike | None, stages: Sequence[str | None], epoch_s: float
) -> dict[str, float]:
    out = dict.fromkeys(("HR_mean", *(f"HR_{s}" for s in STAGES)), math.nan)
    if hr is None:
        return out
    x = np.asarray(hr, dtype=np.float64)
    if np.isfinite(x).any():
        out["HR_mean"] = float(np.nanmean(x))
    per = round(epoch_s)
    n = min(len(stages), x.size // per)
    if n == 0:
        return out
    epochs = x[: n * per].reshape(n, per)  # (epochs, seconds)
    st = np.array([s or "" for s in stages[:n]], dtype=object)
    for s in STAGES:
        vals = epochs[st == s]
        if np.isfinite(vals).any():
            out[f"HR_{s}"] = float(np.nanmean(vals))
    return out
