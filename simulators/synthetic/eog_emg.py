"""Horizontal EOG and chin EMG in microvolts at 100 Hz.

EOG: rapid eye movements (sharp saccades in phasic bursts) in REM, slow rolling eye movements
around sleep onset and in N1, saccades and blinks in wake, and frontal slow waves leaking in.
EMG: broadband 10-45 Hz activity whose tone falls with depth, atonia in REM broken by short
twitches, bursts at arousals.
"""

from __future__ import annotations

import logging

import numpy as np

from sleepstream.simulators.synthetic.hypnogram import EPOCH_S, REM, IntArray, W
from sleepstream.simulators.synthetic.noise import (
    FloatArray,
    band_noise,
    epoch_envelope,
    place,
    poisson_times,
    smooth,
    thin,
)

log = logging.getLogger(__name__)

FS = 100.0
EOG_LABEL, EMG_LABEL = "EOG horizontal", "EMG chin"
# per stage W, N1, N2, N3, REM
_SACCADE_RATE = np.array([4.0, 0.5, 0.1, 0.0, 0.0])  # per minute; REM bursts added separately
_BLINK_RATE = np.array([12.0, 1.0, 0.0, 0.0, 0.0])
_SEM_UV = np.array([8.0, 55.0, 12.0, 0.0, 4.0])
_EMG_UV = np.array([11.0, 6.5, 4.5, 3.5, 1.4])


def _saccades(rate_per_s: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Sharp conjugate eye movements: a fast step (50-100 ms) that drifts back in ~1 s."""
    n = rate_per_s.size
    centres = thin(poisson_times(rate_per_s, FS, rng), int(0.25 * FS))
    k, length = centres.size, int(2.5 * FS)
    t = np.arange(length)[None, :] / FS  # (1, L)
    rise = rng.uniform(0.03, 0.06, (k, 1))
    tau = rng.uniform(0.6, 1.4, (k, 1))
    step = 0.5 * (1 + np.tanh((t - 0.2) / rise)) * np.exp(-np.maximum(t - 0.2, 0.0) / tau)
    amp = rng.choice([-1.0, 1.0], (k, 1)) * rng.uniform(60.0, 220.0, (k, 1))
    return place(n, centres, amp * step, int(0.2 * FS))


def _rem_bursts(stages: IntArray, n: int, rng: np.random.Generator) -> FloatArray:
    """Phasic REM: eye-movement rate switched on and off by a slow random process."""
    in_rem = epoch_envelope((stages == REM).astype(np.float64), EPOCH_S, FS, n, ramp_s=1.0)
    phasic = smooth(rng.standard_normal(n), int(8 * FS))
    phasic = (phasic > np.quantile(phasic, 0.55)).astype(np.float64)
    return in_rem * phasic * (45.0 / 60.0)


def _blinks(stages: IntArray, n: int, rng: np.random.Generator) -> FloatArray:
    rate = epoch_envelope(_BLINK_RATE[stages] / 60.0, EPOCH_S, FS, n)
    centres = thin(poisson_times(rate, FS, rng), int(1.0 * FS))
    t = np.arange(int(0.6 * FS))[None, :] / FS
    amp = rng.uniform(12.0, 30.0, (centres.size, 1))
    return place(n, centres, amp * np.exp(-((t - 0.3) ** 2) / (2 * 0.07**2)), int(0.3 * FS))


def eog(stages: IntArray, frontal_delta: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Horizontal EOG (µV)."""
    n = frontal_delta.size
    rate = epoch_envelope(_SACCADE_RATE[stages] / 60.0, EPOCH_S, FS, n) + _rem_bursts(
        stages, n, rng
    )
    sem = epoch_envelope(_SEM_UV[stages], EPOCH_S, FS, n, ramp_s=20.0)
    x = _saccades(rate, rng) + _blinks(stages, n, rng)
    x += sem * band_noise(n, FS, 0.1, 0.45, rng, edge=0.05) * np.sqrt(2.0)
    x += 0.3 * frontal_delta + 4.0 * band_noise(n, FS, 0.3, 35.0, rng)
    return x


def emg(stages: IntArray, arousal: FloatArray, rng: np.random.Generator) -> FloatArray:
    """Chin EMG (µV): tone by stage, REM atonia with twitches, bursts at arousals and in wake."""
    n = arousal.size
    tone = epoch_envelope(_EMG_UV[stages], EPOCH_S, FS, n, ramp_s=8.0)
    drift = np.exp(0.25 * smooth(rng.standard_normal(n), int(20 * FS)) * 20)
    wake = epoch_envelope((stages == W).astype(np.float64), EPOCH_S, FS, n)
    moves = smooth((rng.random(n) < 0.3 / FS).astype(np.float64), int(1.5 * FS)) * FS
    rem = epoch_envelope((stages == REM).astype(np.float64), EPOCH_S, FS, n, ramp_s=1.0)
    twitch_at = thin(poisson_times(rem * 8.0 / 60.0, FS, rng), int(0.5 * FS))
    t = np.arange(int(0.3 * FS))[None, :] / FS
    width = rng.uniform(0.03, 0.07, (twitch_at.size, 1))
    twitch_env = place(
        n, twitch_at, rng.uniform(12, 30, (twitch_at.size, 1)) *
        np.exp(-((t - 0.15) ** 2) / (2 * width**2)), int(0.15 * FS)
    )
    env = tone * drift + 10.0 * arousal + 15.0 * wake * np.minimum(moves, 1.0) + twitch_env
    return env * band_noise(n, FS, 10.0, 45.0, rng, edge=2.0)
