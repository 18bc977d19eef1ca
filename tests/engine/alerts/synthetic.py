"""Synthetic nights with exact ground truth, replayed through the real pipeline, and the helpers
that match detected alarms against the annotated events."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.drivers.edf import Recording, Signal
from sleepstream.engine.app.commands.bench_alerts import ALERT_LABELS, replay, synthetic_night


@dataclass(frozen=True)
class SyntheticRun:
    night: Any  # simulators.synthetic.night.Night
    rec: Recording  # the channels the alert engine uses, as read back from the EDF+ file
    events: list[dict[str, Any]]  # every event of a clean replay (5-s frames)


def make_run(profile: str, hours: float, seed: int, folder: Path) -> SyntheticRun:
    night, rec = synthetic_night(profile, hours, seed, folder)
    rec = replace(rec, signals=tuple(s for s in rec.signals if s.label in ALERT_LABELS))
    return SyntheticRun(night, rec, replay(rec, chunk_s=5.0))


def with_signal(rec: Recording, label: str, **changes: Any) -> Recording:
    """``rec`` with one signal's ``data``/``valid`` replaced (a fault injected)."""
    sigs: list[Signal] = [replace(s, **changes) if s.label == label else s for s in rec.signals]
    return replace(rec, signals=tuple(sigs))


def intervals(events: Sequence[dict[str, Any]], code: str) -> list[tuple[float, float, float]]:
    """(onset, end, announced t) of each alarm of ``code``; end is the engine time it ended (or
    its announcement + 60 s if it never did)."""
    first: dict[str, dict[str, Any]] = {}
    end: dict[str, float] = {}
    for e in events:
        if e["type"] not in ("alert", "event") or e["code"] != code:
            continue
        first.setdefault(e["id"], e)
        if e["end"] is not None:
            end.setdefault(e["id"], float(e["end"]))
    return [(float(e["onset"]), end.get(i, float(e["t"]) + 60.0), float(e["t"]))
            for i, e in first.items()]


def match(
    detected: Sequence[tuple[float, float, float]], truth: Sequence[Any], tol: float
) -> tuple[float, float]:
    """(sensitivity, PPV): a truth event is found, and a detection is true, when the two
    intervals overlap once widened by ``tol`` seconds."""
    if not truth or not detected:
        return float("nan") if not truth else 0.0, float("nan") if not detected else 0.0
    on = np.array([t.onset for t in truth])
    off = np.array([t.end for t in truth])
    d_on = np.array([d[0] for d in detected])
    d_off = np.array([d[1] for d in detected])
    hit = (d_on[None, :] <= off[:, None] + tol) & (d_off[None, :] >= on[:, None] - tol)
    return float(hit.any(axis=1).mean()), float(hit.any(axis=0).mean())
