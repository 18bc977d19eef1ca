"""Nasal airflow (L/s), thoracic and abdominal effort (mL) at 25 Hz and SpO2 (%) at 1 Hz.

Breathing is a phase process whose rate and depth depend on the stage (regular in N3, irregular
in REM). Obstructive apneas stop the airflow while effort continues and the belts go out of
phase; central apneas stop both; hypopneas cut the airflow by 40-65 %. Each event ends with a few
deep recovery breaths. SpO2 falls one circulation delay after each event starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sleepstream.simulators.synthetic.events import CENTRAL, HYPOPNEA, OBSTRUCTIVE, Event
from sleepstream.simulators.synthetic.hypnogram import EPOCH_S, REM, IntArray
from sleepstream.simulators.synthetic.noise import (
    FloatArray,
    epoch_envelope,
    interval_level,
    place,
    smooth,
)

log = logging.getLogger(__name__)

FS = 25.0
FLOW_LABEL, THORAX_LABEL, ABDOMEN_LABEL, SPO2_LABEL = (
    "Resp airflow", "Resp thorax", "Resp abdomen", "SpO2",
)
# per stage W, N1, N2, N3, REM
_RATE_BPM = np.array([15.0, 14.5, 14.0, 13.5, 15.5])
_RATE_JITTER = np.array([0.10, 0.06, 0.04, 0.02, 0.14])
_DEPTH = np.array([1.0, 0.95, 1.0, 1.05, 0.9])


@dataclass(frozen=True, slots=True)
class Breathing:
    phase: FloatArray  # radians at 25 Hz
    flow: FloatArray  # L/s
    thorax: FloatArray  # mL
    abdomen: FloatArray  # mL


def breath_phase(stages: IntArray, n: int, rng: np.random.Generator) -> FloatArray:
    rate = epoch_envelope(_RATE_BPM[stages], EPOCH_S, FS, n, ramp_s=20.0) / 60.0
    jitter = epoch_envelope(_RATE_JITTER[stages], EPOCH_S, FS, n, ramp_s=10.0)
    wander = smooth(rng.standard_normal(n), int(6 * FS)) * np.sqrt(6 * FS)
    return np.cumsum(2 * np.pi * rate * (1.0 + jitter * np.clip(wander, -3, 3)) / FS)


def _levels(events: list[Event], kind: str, value: FloatArray | float, n: int,
            ramp_s: float) -> FloatArray:
    sel = [e for e in events if e.kind == kind]
    onsets = np.array([e.onset for e in sel])
    durs = np.array([e.duration for e in sel])
    vals = np.broadcast_to(np.asarray(value, dtype=np.float64), onsets.shape)
    return interval_level(onsets, durs, vals, FS, n, ramp_s)


def _recovery(events: list[Event], n: int) -> FloatArray:
    """Deep breaths for ~12 s after each event (ramps up fast, fades out)."""
    t = np.arange(int(14 * FS))[None, :] / FS
    ends = np.array([round(e.end * FS) for e in events], dtype=np.int64)
    return place(n, ends, 0.9 * np.exp(-t / 6.0) * (1 - np.exp(-t / 1.0)))


def breathing(stages: IntArray, events: list[Event], rng: np.random.Generator) -> Breathing:
    """Airflow and effort for the whole night, with every respiratory event applied."""
    n = stages.size * int(EPOCH_S * FS)
    phase = breath_phase(stages, n, rng)
    depth = epoch_envelope(_DEPTH[stages], EPOCH_S, FS, n) * (
        1 + 0.06 * np.clip(smooth(rng.standard_normal(n), int(15 * FS)) * 20, -2, 2)
    )
    hyp_depth = rng.uniform(0.35, 0.6, sum(e.kind == HYPOPNEA for e in events))
    obstructive = _levels(events, OBSTRUCTIVE, 1.0, n, 2.0)
    central = _levels(events, CENTRAL, 1.0, n, 2.0)
    hypopnea = _levels(events, HYPOPNEA, 1.0 - hyp_depth, n, 3.0)
    recovery = 1.0 + _recovery(events, n)
    flow_gain = (1 - 0.96 * obstructive) * (1 - 0.97 * central) * (1 - hypopnea) * recovery
    # effort grows through an obstructive apnea (crescendo) and stops in a central one
    rank = np.clip(smooth(obstructive, int(20 * FS)), 0, 1)
    effort_gain = (1 + 0.5 * rank * obstructive) * (1 - 0.95 * central) * (
        1 - 0.5 * hypopnea
    ) * recovery
    wave = np.sin(phase + 0.25 * np.sin(phase))
    flow = 0.45 * depth * flow_gain * wave + 0.01 * rng.standard_normal(n)
    paradox = np.pi * 0.8 * obstructive
    thorax = 260.0 * depth * effort_gain * np.sin(phase - 0.2)
    abdomen = 210.0 * depth * effort_gain * np.sin(phase - 0.35 + paradox)
    noise = smooth(rng.standard_normal(n), int(FS)) * 30
    return Breathing(phase, flow, thorax + noise, abdomen - noise)


def spo2(stages: IntArray, desats: list[Event], baseline: float,
         rng: np.random.Generator) -> FloatArray:
    """Oxygen saturation (%) at 1 Hz, 0.1 % resolution.

    Each desaturation falls linearly for the length of its event (to the depth in ``value``)
    and recovers over about 12 s.
    """
    n = stages.size * int(EPOCH_S)
    level = baseline - 0.6 * np.repeat((stages == REM).astype(np.float64), int(EPOCH_S))
    level = smooth(level, 60) + 0.3 * np.clip(
        smooth(rng.standard_normal(n), 300) * np.sqrt(300), -3, 3
    )
    length = int(max((e.duration for e in desats), default=1.0)) + 2
    t = np.arange(length, dtype=np.float64)[None, :]  # (1, L)
    fall = np.array([e.duration - 12.0 for e in desats])[:, None]
    depth = np.array([e.value for e in desats])[:, None]
    shape = np.where(t <= fall, t / np.maximum(fall, 1.0),
                     np.exp(-((t - fall) / 4.5) ** 2))
    starts = np.array([round(e.onset) for e in desats], dtype=np.int64)
    drop = place(n, starts, depth * shape) if desats else np.zeros(n)
    return np.round(np.clip(level - drop + 0.15 * rng.standard_normal(n), 50.0, 100.0), 1)
