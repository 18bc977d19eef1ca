"""Heart beats, ECG (mV, 200 Hz), photoplethysmogram (25 Hz) and a 1 Hz heart-rate channel.

Sinus beats come from an integral pulse-frequency-modulation model: the instantaneous rate is a
stage baseline plus respiratory sinus arrhythmia (strongest in deep sleep), a 0.1 Hz (LF)
component (strongest in REM and wake), slow drift, a surge at every arousal and slowing during
apneas. In atrial fibrillation the RR intervals are drawn independently (irregularly irregular),
P waves are absent and fibrillatory waves ride on the baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sleepstream.simulators.synthetic.events import Event
from sleepstream.simulators.synthetic.hypnogram import EPOCH_S, IntArray
from sleepstream.simulators.synthetic.noise import (
    FloatArray,
    band_noise,
    epoch_envelope,
    interval_mask,
    place,
    smooth,
)

log = logging.getLogger(__name__)

ECG_FS, PPG_FS, GRID_FS = 200.0, 25.0, 25.0
ECG_LABEL, PPG_LABEL, HR_LABEL = "ECG", "Pleth", "HR"
# per stage W, N1, N2, N3, REM
_HR_OFFSET = np.array([7.0, 3.0, 0.0, -3.0, 4.0])  # bpm from the subject's sleeping rate
_RSA_BPM = np.array([2.0, 2.5, 3.5, 4.5, 1.6])
_LF_BPM = np.array([3.0, 2.5, 1.8, 1.0, 3.5])


@dataclass(frozen=True, slots=True)
class Beats:
    times: FloatArray  # seconds of each R peak
    af: np.ndarray  # bool, beat belongs to an AF episode


def heart_rate_curve(
    stages: IntArray, breath_phase: FloatArray, arousals: list[Event], apneas: list[Event],
    base_bpm: float, hrv_scale: float, rng: np.random.Generator,
) -> FloatArray:
    """Instantaneous sinus rate (bpm) on the 25 Hz grid."""
    n = breath_phase.size
    base = epoch_envelope(base_bpm + _HR_OFFSET[stages], EPOCH_S, GRID_FS, n, ramp_s=30.0)
    rsa = hrv_scale * epoch_envelope(_RSA_BPM[stages], EPOCH_S, GRID_FS, n, 10.0)
    lf = hrv_scale * epoch_envelope(_LF_BPM[stages], EPOCH_S, GRID_FS, n, 10.0)
    hr = base + rsa * np.sin(breath_phase) + lf * band_noise(n, GRID_FS, 0.05, 0.14, rng, 0.02)
    hr += 2.0 * smooth(rng.standard_normal(n), int(120 * GRID_FS)) * np.sqrt(120 * GRID_FS)
    t = np.arange(int(25 * GRID_FS))[None, :] / GRID_FS
    surge = (1 - np.exp(-t / 2.0)) * np.exp(-t / 7.0)  # (1, L)
    at = np.array([round(e.onset * GRID_FS) for e in arousals], dtype=np.int64)
    amp = rng.uniform(12.0, 24.0, (at.size, 1))
    hr += place(n, at, amp * surge / surge.max())
    onsets = np.array([e.onset for e in apneas])
    durs = np.array([e.duration for e in apneas])
    hr -= 4.0 * interval_mask(onsets, durs, GRID_FS, n, ramp_s=5.0)
    return np.clip(hr, 35.0, 180.0)


def sinus_beats(hr: FloatArray) -> FloatArray:
    """Beat times where the integrated rate crosses whole beats."""
    phase = np.cumsum(hr / 60.0 / GRID_FS)
    t = np.arange(hr.size) / GRID_FS
    return np.interp(np.arange(1, int(phase[-1]) + 1), phase, t)


def with_af(sinus: FloatArray, hr: FloatArray, episodes: list[Event],
            rng: np.random.Generator) -> Beats:
    """Replace the beats inside AF episodes by irregular ventricular responses."""
    keep = np.ones(sinus.size, dtype=bool)
    extra = []
    for e in episodes:
        keep &= ~((sinus >= e.onset) & (sinus < e.end))
        mean_rr = 60.0 / (float(np.mean(hr[int(e.onset * GRID_FS) : int(e.end * GRID_FS)])) + 18)
        k = int(e.duration / mean_rr * 1.3) + 10
        shape = 1.0 / 0.22**2  # gamma with a coefficient of variation of 0.22
        rr = np.maximum(rng.gamma(shape, mean_rr / shape, k), 0.28)
        t = e.onset + np.cumsum(rr)
        extra.append(t[t < e.end])
    af_times = np.concatenate(extra) if extra else np.zeros(0)
    times = np.concatenate([sinus[keep], af_times])
    af = np.concatenate([np.zeros(int(keep.sum()), dtype=bool), np.ones(af_times.size, bool)])
    order = np.argsort(times)
    return Beats(times[order], af[order])


def _gauss(t: FloatArray, centre: FloatArray | float, width: float) -> FloatArray:
    return np.exp(-((t - centre) ** 2) / (2 * width**2))


def ecg(beats: Beats, n: int, af_mask: FloatArray, resp: FloatArray,
        rng: np.random.Generator) -> FloatArray:
    """Lead-II-like ECG (mV): P-QRS-T per beat, QT following the RR interval."""
    rr = np.diff(beats.times, prepend=beats.times[0] - 1.0)[:, None]
    pos = beats.times * ECG_FS
    centres = np.round(pos).astype(np.int64)
    offset, length = int(0.3 * ECG_FS), int(0.9 * ECG_FS)
    t = (np.arange(length)[None, :] - offset - (pos - centres)[:, None]) / ECG_FS  # (k, L)
    p_amp = np.where(beats.af, 0.0, 0.13)[:, None]
    shapes = (
        p_amp * _gauss(t, -0.17, 0.025)
        - 0.09 * _gauss(t, -0.028, 0.009)
        + 1.15 * _gauss(t, 0.0, 0.011)
        - 0.25 * _gauss(t, 0.03, 0.011)
        + 0.3 * _gauss(t, 0.27 * np.sqrt(np.clip(rr, 0.3, 2.0)), 0.055)
    )
    x = place(n, centres, shapes, offset) * (1.0 + 0.08 * resp)
    x += 0.06 * af_mask * band_noise(n, ECG_FS, 4.5, 8.0, rng, 0.5)
    x += 0.05 * resp + 0.04 * smooth(rng.standard_normal(n), int(3 * ECG_FS)) * 20
    return x + 0.012 * rng.standard_normal(n)


def ppg(beats: Beats, n: int, vasoconstriction: FloatArray, resp: FloatArray,
        rng: np.random.Generator) -> FloatArray:
    """Finger pleth (arbitrary units): one pulse per beat after the pulse transit time."""
    pos = (beats.times + 0.22 + 0.01 * rng.standard_normal(beats.times.size)) * PPG_FS
    centres = np.round(pos).astype(np.int64)
    length = int(1.0 * PPG_FS)
    t = (np.arange(length)[None, :] - (pos - centres)[:, None]) / PPG_FS
    shapes = _gauss(t, 0.16, 0.07) + 0.35 * _gauss(t, 0.42, 0.09)
    amp = np.interp(beats.times, np.arange(n) / PPG_FS, 1.0 - 0.5 * vasoconstriction)
    x = place(n, centres, amp[:, None] * shapes) * (1.0 + 0.1 * resp)
    return x + 0.08 * resp + 0.01 * rng.standard_normal(n)


def heart_rate_channel(beats: Beats, seconds: int) -> FloatArray:
    """A monitor's 1 Hz heart rate: 60 / mean of the last four RR intervals."""
    t = np.arange(seconds, dtype=np.float64) + 1.0
    idx = np.searchsorted(beats.times, t) - 1
    idx = np.clip(idx, 4, beats.times.size - 1)
    rr = (beats.times[idx] - beats.times[idx - 4]) / 4.0
    return np.round(60.0 / np.maximum(rr, 0.2), 1)
