"""Two EEG derivations (Fpz-Cz, Pz-Oz) in microvolts at 100 Hz, with stage-specific content.

Background is 1/f noise; rhythms (alpha, theta, beta) are band-limited noise under per-epoch
envelopes; slow waves are a frequency-wandering 0.5-2 Hz oscillation whose amplitude in N3
exceeds 75 uV peak-to-peak for a large part of each epoch; spindles, K-complexes, vertex waves
and sawtooth trains are transients placed by Poisson processes with stage-dependent rates.
Arousals bring alpha and beta and take the slow waves away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sleepstream.simulators.synthetic.hypnogram import EPOCH_S, N3, IntArray
from sleepstream.simulators.synthetic.noise import (
    FloatArray,
    band_noise,
    epoch_envelope,
    place,
    poisson_times,
    power_law_noise,
    smooth,
    thin,
)

log = logging.getLogger(__name__)

FS = 100.0
LABELS = ("EEG Fpz-Cz", "EEG Pz-Oz")
# per stage W, N1, N2, N3, REM: RMS in uV of each rhythm
_BACKGROUND = np.array([7.0, 9.0, 11.0, 13.0, 8.0])
_ALPHA = np.array([13.0, 3.0, 1.5, 1.0, 2.5])
_THETA = np.array([2.5, 9.0, 5.0, 4.0, 7.0])
_BETA = np.array([3.5, 1.8, 1.2, 0.8, 2.2])
_DELTA = np.array([2.0, 7.0, 16.0, 0.0, 5.0])  # N3 amplitude is drawn per epoch
# transient rates per minute, per stage
_SPINDLE_RATE = np.array([0.0, 0.3, 4.2, 1.5, 0.0])
_KCOMPLEX_RATE = np.array([0.0, 0.1, 1.3, 0.6, 0.0])
_VERTEX_RATE = np.array([0.0, 2.0, 0.2, 0.0, 0.0])
_SAWTOOTH_RATE = np.array([0.0, 0.0, 0.0, 0.0, 0.7])
# gain of each component in (Fpz-Cz, Pz-Oz)
_GAIN = {"alpha": (0.45, 1.0), "theta": (1.0, 0.7), "delta": (1.0, 0.6), "spindle": (0.8, 1.0),
         "kcomplex": (1.0, 0.45), "vertex": (1.0, 0.5), "sawtooth": (0.8, 0.9)}


@dataclass(frozen=True, slots=True)
class EegParts:
    """Shared sources (µV) before they are mixed into the derivations."""

    alpha: FloatArray
    theta: FloatArray
    beta: FloatArray
    delta: FloatArray
    spindles: FloatArray
    kcomplexes: FloatArray
    vertex: FloatArray
    sawtooth: FloatArray
    spindle_times: FloatArray  # seconds, centre of each spindle


def _rate(stages: IntArray, per_min: np.ndarray, n: int) -> FloatArray:
    return epoch_envelope(per_min[stages] / 60.0, EPOCH_S, FS, n, ramp_s=1.0)


def _slow_waves(stages: IntArray, n: int, scale: float, rng: np.random.Generator) -> FloatArray:
    """0.5-2 Hz waves; in N3 the amplitude is high enough to fill 20-100 % of each epoch."""
    level = _DELTA[stages].astype(np.float64)
    n3 = stages == N3
    level[n3] = np.maximum(rng.uniform(33.0, 70.0, int(n3.sum())) * scale, 34.0)
    env = epoch_envelope(level, EPOCH_S, FS, n, ramp_s=6.0)
    wobble = smooth(rng.standard_normal(n), int(2.5 * FS))
    wobble = 0.75 + 0.5 * (wobble - wobble.min()) / (np.ptp(wobble) + 1e-12)
    freq = 1.0 + 0.45 * np.tanh(smooth(rng.standard_normal(n), int(1.5 * FS)) * 8.0)
    phase = np.cumsum(2 * np.pi * freq / FS)
    return env * wobble * np.sin(phase)


def _spindles(stages: IntArray, n: int, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    centres = thin(poisson_times(_rate(stages, _SPINDLE_RATE, n), FS, rng), int(3.0 * FS))
    k, length = centres.size, int(2.0 * FS)
    t = np.arange(length)[None, :] / FS  # (1, L)
    dur = rng.uniform(0.6, 1.8, (k, 1))
    freq = rng.uniform(11.5, 15.0, (k, 1))
    amp = rng.uniform(20.0, 40.0, (k, 1))
    inside = t < dur
    env = np.where(inside, np.sin(np.pi * np.minimum(t / dur, 1.0)) ** 2, 0.0)
    shapes = amp * env * np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (k, 1)))
    return place(n, centres, shapes, length // 2), centres / FS


def _kcomplexes(stages: IntArray, n: int, rng: np.random.Generator) -> FloatArray:
    centres = thin(poisson_times(_rate(stages, _KCOMPLEX_RATE, n), FS, rng), int(5.0 * FS))
    t = np.arange(int(1.6 * FS))[None, :] / FS
    amp = rng.uniform(90.0, 170.0, (centres.size, 1))
    shapes = amp * (-np.exp(-((t - 0.45) ** 2) / (2 * 0.09**2))
                    + 0.55 * np.exp(-((t - 0.95) ** 2) / (2 * 0.16**2)))
    return place(n, centres, shapes, int(0.45 * FS))


def _vertex(stages: IntArray, n: int, rng: np.random.Generator) -> FloatArray:
    centres = thin(poisson_times(_rate(stages, _VERTEX_RATE, n), FS, rng), int(3.0 * FS))
    t = np.arange(int(0.6 * FS))[None, :] / FS
    amp = rng.uniform(45.0, 90.0, (centres.size, 1))
    shapes = -amp * np.exp(-((t - 0.3) ** 2) / (2 * 0.045**2))
    return place(n, centres, shapes, int(0.3 * FS))


def _sawtooth(stages: IntArray, n: int, rng: np.random.Generator) -> FloatArray:
    """Trains of 2-4 Hz triangular waves with a slow rise and a quick fall."""
    centres = thin(poisson_times(_rate(stages, _SAWTOOTH_RATE, n), FS, rng), int(8.0 * FS))
    k, length = centres.size, int(5.0 * FS)
    t = np.arange(length)[None, :] / FS
    freq = rng.uniform(2.0, 4.0, (k, 1))
    dur = rng.uniform(1.5, 5.0, (k, 1))
    frac = (t * freq) % 1.0
    wave = np.where(frac < 0.75, frac / 0.75, (1.0 - frac) / 0.25) * 2.0 - 1.0
    env = np.where(t < dur, np.sin(np.pi * np.minimum(t / dur, 1.0)) ** 0.5, 0.0)
    return place(n, centres, rng.uniform(15.0, 30.0, (k, 1)) * env * wave, length // 2)


def eeg_parts(
    stages: IntArray, arousal: FloatArray, rng: np.random.Generator, slow_wave_scale: float = 1.0
) -> EegParts:
    """All shared EEG sources of a night; ``arousal`` is a 0..1 mask at 100 Hz."""
    n = arousal.size
    wake_mod = 0.55 + 0.45 * np.tanh(3 * smooth(rng.standard_normal(n), int(4 * FS)) * 10)

    def rhythm(table: np.ndarray, lo: float, hi: float) -> FloatArray:
        return epoch_envelope(table[stages], EPOCH_S, FS, n) * band_noise(n, FS, lo, hi, rng)

    alpha = rhythm(_ALPHA, 8.5, 11.5) * np.where(stages[np.arange(n) // 3000] == 0, wake_mod, 1.0)
    spindles, times = _spindles(stages, n, rng)
    return EegParts(
        alpha=alpha + 14.0 * arousal * band_noise(n, FS, 8.5, 11.5, rng),
        theta=rhythm(_THETA, 4.0, 7.5),
        beta=rhythm(_BETA, 16.0, 30.0) + 5.0 * arousal * band_noise(n, FS, 16.0, 30.0, rng),
        delta=_slow_waves(stages, n, slow_wave_scale, rng) * (1.0 - 0.8 * arousal),
        spindles=spindles,
        kcomplexes=_kcomplexes(stages, n, rng),
        vertex=_vertex(stages, n, rng),
        sawtooth=_sawtooth(stages, n, rng),
        spindle_times=times,
    )


def mix_eeg(parts: EegParts, stages: IntArray, rng: np.random.Generator) -> list[FloatArray]:
    """The two derivations (µV): shared sources with per-derivation gains plus own 1/f noise."""
    n = parts.alpha.size
    background = epoch_envelope(_BACKGROUND[stages], EPOCH_S, FS, n)
    shared = power_law_noise(n, FS, 1.6, rng)
    out = []
    for ch in range(2):
        x = background * (0.6 * shared + 0.8 * power_law_noise(n, FS, 1.6, rng))
        x = x + parts.beta
        for name in ("alpha", "theta", "delta", "spindles", "kcomplexes", "vertex", "sawtooth"):
            key = name.rstrip("s") if name != "kcomplexes" else "kcomplex"
            x = x + _GAIN[key][ch] * getattr(parts, name)
        out.append(x)
    return out


