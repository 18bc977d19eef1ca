"""Wrist/chest accelerometer (g, 25 Hz, three axes): body position, movements, breathing.

Position changes happen when the sleeper wakes or is aroused; each change comes with a few
seconds of movement. Wake also has scattered small movements.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sleepstream.simulators.synthetic.events import Event
from sleepstream.simulators.synthetic.hypnogram import EPOCH_S, IntArray, W, runs
from sleepstream.simulators.synthetic.noise import FloatArray, epoch_envelope, interval_mask, smooth

log = logging.getLogger(__name__)

FS = 25.0
LABELS = ("Acc X", "Acc Y", "Acc Z")
POSITIONS: dict[str, tuple[float, float, float]] = {
    "supine": (0.0, 0.0, 1.0),
    "left": (-1.0, 0.0, 0.0),
    "right": (1.0, 0.0, 0.0),
    "prone": (0.0, 0.0, -1.0),
}
_POSITION_P = np.array([0.45, 0.25, 0.25, 0.05])


@dataclass(frozen=True, slots=True)
class PositionChange:
    onset: float
    position: str


def position_changes(
    stages: IntArray, arousals: list[Event], rng: np.random.Generator
) -> list[PositionChange]:
    """When the sleeper turns: at a third of wake bouts and a tenth of arousals."""
    names = list(POSITIONS)
    run_stage, run_len = runs(stages)
    starts = np.concatenate([[0], np.cumsum(run_len)[:-1]]) * EPOCH_S
    times = [float(t) for t, s in zip(starts, run_stage, strict=True) if s == W and
             rng.random() < 0.35]
    times += [e.onset for e in arousals if rng.random() < 0.1]
    out = [PositionChange(0.0, str(rng.choice(names, p=_POSITION_P)))]
    for t in sorted(times):
        if t - out[-1].onset < 60.0:
            continue
        choices = [p for p in names if p != out[-1].position]
        p = _POSITION_P[[names.index(c) for c in choices]]
        out.append(PositionChange(round(t, 2), str(rng.choice(choices, p=p / p.sum()))))
    return out


def accelerometer(
    stages: IntArray, changes: list[PositionChange], breath_phase: FloatArray,
    rng: np.random.Generator,
) -> list[FloatArray]:
    n = breath_phase.size
    idx = np.searchsorted([c.onset * FS for c in changes], np.arange(n), side="right") - 1
    gravity = np.array([POSITIONS[c.position] for c in changes])[idx]  # (n, 3)
    tilt = rng.normal(0.0, 0.08, (len(changes), 3))[idx]
    gravity = gravity + tilt
    gravity /= np.linalg.norm(gravity, axis=1, keepdims=True)
    onsets = np.array([c.onset for c in changes[1:]])
    moving = interval_mask(onsets, rng.uniform(2.0, 6.0, onsets.size), FS, n, ramp_s=0.5)
    wake = epoch_envelope((stages == W).astype(np.float64), EPOCH_S, FS, n)
    fidget = smooth((rng.random(n) < 0.5 * wake / FS).astype(np.float64), int(2 * FS)) * 2 * FS
    activity = 0.15 * moving + 0.04 * np.minimum(fidget, 1.0)
    out = []
    for axis in range(3):
        g = np.convolve(gravity[:, axis], np.ones(int(FS)) / FS, mode="same")
        g += activity * smooth(rng.standard_normal(n), 3) * 1.7
        g += 0.004 * np.sin(breath_phase) * (1.0 if axis == 2 else 0.3)
        out.append(g + 0.002 * rng.standard_normal(n))
    return out
