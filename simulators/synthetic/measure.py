"""Measurements on the signals of a night, as a scorer would make them.

These read only the signals and the stage annotations (never the generator's internals), so they
check that the physiology is really in the waveforms: band powers per stage, a spindle detector,
slow-wave coverage, an eye-movement detector, R-peak detection with HR/HRV, RR irregularity, and
an AASM-style apnea/hypopnea and desaturation scorer.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage, signal

from sleepstream.simulators.synthetic.hypnogram import EPOCH_S, STAGE_NAMES, IntArray, W
from sleepstream.simulators.synthetic.noise import FloatArray, smooth

log = logging.getLogger(__name__)

BANDS = {"delta": (0.5, 2.0), "theta": (4.0, 8.0), "alpha": (8.0, 12.0),
         "sigma": (11.0, 16.0), "beta": (16.0, 30.0)}


def _bandpass(x: FloatArray, fs: float, lo: float, hi: float, order: int = 4) -> FloatArray:
    sos = signal.butter(order, [lo, hi], btype="band", fs=fs, output="sos")
    return signal.sosfiltfilt(sos, x)


def _epochs(x: FloatArray, fs: float, n_epochs: int) -> FloatArray:
    per = round(EPOCH_S * fs)
    return x[: n_epochs * per].reshape(n_epochs, per)  # (E, samples)


def _runs(mask: np.ndarray) -> tuple[IntArray, IntArray]:
    """[start, end) of every run of True."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def band_powers(x: FloatArray, fs: float, stages: IntArray) -> dict[str, dict[str, float]]:
    """Mean absolute band power (µV²) per stage and band."""
    f, p = signal.welch(_epochs(x, fs, stages.size), fs=fs, nperseg=int(4 * fs), axis=-1)
    out: dict[str, dict[str, float]] = {}
    for code, name in enumerate(STAGE_NAMES):
        sel = stages == code
        if not sel.any():
            continue
        spec = p[sel].mean(axis=0)
        out[name] = {b: float(np.trapezoid(spec[(f >= lo) & (f < hi)], f[(f >= lo) & (f < hi)]))
                     for b, (lo, hi) in BANDS.items()}
    return out


def spindles(x: FloatArray, fs: float, stages: IntArray, stage: int = 2) -> float:
    """Spindles per minute of ``stage``: 11-16 Hz envelope above 2.5x its median for 0.5-3 s."""
    env = smooth(np.abs(signal.hilbert(_bandpass(x, fs, 11.0, 16.0))), int(0.1 * fs))
    in_stage = np.repeat(stages == stage, round(EPOCH_S * fs))[: env.size]
    if not in_stage.any():
        return 0.0
    threshold = 2.5 * float(np.median(env[in_stage]))
    a, b = _runs((env > threshold) & in_stage)
    dur = (b - a) / fs
    n = int(((dur >= 0.5) & (dur <= 3.0)).sum())
    return n / (in_stage.sum() / fs / 60.0)


def slow_wave_coverage(x: FloatArray, fs: float, stages: IntArray) -> FloatArray:
    """Per epoch, the fraction of time covered by 0.5-2 Hz waves over 75 µV peak-to-peak."""
    y = _bandpass(x, fs, 0.5, 2.0, order=2)
    down = np.flatnonzero((y[:-1] >= 0) & (y[1:] < 0))  # wave boundaries
    if down.size < 2:
        return np.zeros(stages.size)
    ptp = np.maximum.reduceat(y, down)[:-1] - np.minimum.reduceat(y, down)[:-1]
    length = np.diff(down) / fs
    good = (ptp > 75.0) & (length >= 0.5) & (length <= 2.0)
    covered = np.zeros(y.size + 1)
    np.add.at(covered, down[:-1][good], 1.0)
    np.add.at(covered, down[1:][good], -1.0)
    return _epochs(np.cumsum(covered)[: y.size], fs, stages.size).mean(axis=1)


def eye_movements(x: FloatArray, fs: float, stages: IntArray) -> dict[str, float]:
    """Rapid eye movements per minute by stage: steep (>700 µV/s) deflections over 40 µV."""
    y = _bandpass(x, fs, 0.5, 8.0, order=2)
    slope = np.abs(np.gradient(y) * fs)
    peaks, _ = signal.find_peaks(slope, height=700.0, distance=int(0.3 * fs))
    lo = ndimage.minimum_filter1d(y, int(0.4 * fs))[peaks]
    hi = ndimage.maximum_filter1d(y, int(0.4 * fs))[peaks]
    peaks = peaks[(hi - lo) > 40.0]
    epoch_of = np.minimum(peaks // round(EPOCH_S * fs), stages.size - 1)
    out = {}
    for code, name in enumerate(STAGE_NAMES):
        minutes = (stages == code).sum() * EPOCH_S / 60.0
        if minutes > 0:
            out[name] = float((stages[epoch_of] == code).sum()) / minutes
    return out


def r_peaks(ecg: FloatArray, fs: float) -> FloatArray:
    """R-peak times (s): band-passed QRS energy peaks at least 0.27 s apart."""
    y = _bandpass(ecg, fs, 5.0, 30.0, order=2)
    energy = smooth(y**2, int(0.05 * fs))
    height = 0.3 * float(np.percentile(energy, 99.5))
    peaks, _ = signal.find_peaks(energy, height=height, distance=int(0.27 * fs))
    # refine to the local maximum of the raw ECG within +-40 ms
    w = int(0.04 * fs)
    idx = np.clip(peaks[:, None] + np.arange(-w, w + 1)[None, :], 0, ecg.size - 1)
    return (idx[np.arange(peaks.size), np.argmax(ecg[idx], axis=1)]) / fs


def hr_by_stage(beats: FloatArray, stages: IntArray, exclude: np.ndarray | None = None
                ) -> dict[str, dict[str, float]]:
    """Per stage: mean HR (bpm), mean per-epoch SDNN and RMSSD (ms) from R-peak times."""
    rr = np.diff(beats)
    at = beats[1:]
    epoch = (at // EPOCH_S).astype(np.int64)
    ok = (epoch < stages.size) & (rr > 0.3) & (rr < 2.0)
    if exclude is not None:
        ok &= ~exclude[np.minimum(epoch, stages.size - 1)]
    out = {}
    for code, name in enumerate(STAGE_NAMES):
        eps = np.flatnonzero(stages == code)
        sdnn, rmssd, hr = [], [], []
        for e in eps:
            r = rr[ok & (epoch == e)]
            if r.size >= 10:
                sdnn.append(r.std() * 1e3)
                rmssd.append(np.sqrt(np.mean(np.diff(r) ** 2)) * 1e3)
                hr.append(60.0 / r.mean())
        if hr:
            out[name] = {"hr": float(np.mean(hr)), "sdnn_ms": float(np.mean(sdnn)),
                         "rmssd_ms": float(np.mean(rmssd)), "epochs": float(len(hr))}
    return out


def rr_irregularity(beats: FloatArray, intervals: list[tuple[float, float]]) -> dict[str, float]:
    """Normalised RMSSD (RMSSD / mean RR) of 30-s segments inside vs outside the intervals."""
    rr, at = np.diff(beats), beats[1:]
    seg = (at // EPOCH_S).astype(np.int64)
    inside = np.zeros(at.size, dtype=bool)
    for a, b in intervals:
        inside |= (at >= a) & (at < b)
    values: dict[bool, list[float]] = {True: [], False: []}
    for s in np.unique(seg):
        sel = seg == s
        if sel.sum() < 10 or not (inside[sel].all() or not inside[sel].any()):
            continue
        r = rr[sel]
        values[bool(inside[sel][0])].append(float(np.sqrt(np.mean(np.diff(r) ** 2)) / r.mean()))
    return {"af": float(np.median(values[True])) if values[True] else float("nan"),
            "sinus": float(np.median(values[False])) if values[False] else float("nan")}


def desaturations(spo2: FloatArray, drop: float = 3.0) -> list[tuple[float, float]]:
    """(onset s, nadir depth %) of every fall of >= ``drop`` below the last 2 minutes' maximum."""
    baseline = ndimage.maximum_filter1d(spo2, 120, origin=59)  # max over the preceding 120 s
    a, b = _runs(spo2 <= baseline - drop)
    return [(float(i), float(baseline[i] - spo2[i:j].min())) for i, j in zip(a, b, strict=True)]


def respiratory_events(
    flow: FloatArray, effort: FloatArray, spo2: FloatArray, fs: float
) -> list[tuple[float, float, str]]:
    """AASM-style scoring: (onset s, duration s, kind) of apneas and hypopneas.

    The flow envelope (1-s resolution) is compared with the 75th percentile of the previous two
    minutes: >= 90 % drop for >= 10 s is an apnea (central when effort drops >= 80 % too);
    >= 30 % for >= 10 s with a >= 3 % desaturation starting within 45 s is a hypopnea.
    """
    sec = int(flow.size // fs)

    def envelope(x: FloatArray) -> FloatArray:
        env = smooth(np.abs(signal.hilbert(x - np.median(x))), int(1.5 * fs))
        return env[: int(sec * fs)].reshape(sec, int(fs)).mean(axis=1)  # (seconds,)

    amp, eff = envelope(flow), envelope(effort)
    base = ndimage.percentile_filter(amp, 75, size=120, origin=59)
    ebase = ndimage.percentile_filter(eff, 75, size=120, origin=59)
    desat_onsets = np.array([t for t, _ in desaturations(spo2)])
    out = []
    a, b = _runs(amp <= 0.7 * base)
    for i, j in zip(a, b, strict=True):
        if j - i < 10:
            continue
        if (amp[i:j] <= 0.1 * base[i:j]).sum() >= 10:
            kind = "Central apnea" if np.median(eff[i:j] / ebase[i:j]) < 0.2 else \
                "Obstructive apnea"
        elif ((desat_onsets >= i) & (desat_onsets <= j + 45)).any():
            kind = "Hypopnea"
        else:
            continue
        out.append((float(i), float(j - i), kind))
    return out


def sleep_hours(stages: IntArray) -> float:
    return float((stages != W).sum()) * EPOCH_S / 3600.0
