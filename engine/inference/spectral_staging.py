"""The EEG path of the live decoder: one bed's EEG channels -> spectral summaries -> stages.

``SpectralStagingState`` keeps, per EEG channel of the bed, the native-rate samples of the
current and the previous 30-s epoch (a ring two epochs deep, by absolute sample index) and the
channel's causal feature state (``spectral_features``: the per-bed normalisation carries the
channel's montage). When the decoder closes an epoch, ``epoch_probs`` summarises every EEG
channel that was valid for at least ``MIN_VALID`` of the epoch, runs the head that fits its
rate (gamma needs >= 100 Hz), and combines the channels' calibrated probabilities by their
geometric mean (the channels of one head see the same brain: not independent evidence).
Amplitudes are taken in volts; EEG in microvolts (an epoch's standard deviation above 1e-3 in
its units) is converted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sleepstream.engine.inference.spectral import EPOCH_S, REFERENCE_FS, summarize
from sleepstream.engine.inference.spectral_features import (
    SpectralFeatureState,
    base_vectors,
    new_state,
    push,
)
from sleepstream.engine.inference.spectral_model import SpectralModel
from sleepstream.engine.protocols import ChannelBlock
from sleepstream.engine.types import F32Array, FloatArray

MIN_VALID = 0.9
MICROVOLT_STD = 1e-3  # an EEG epoch with a larger std (in its units) is not in volts


@dataclass(slots=True)
class _ChannelState:
    fs: float
    n: int  # samples per epoch
    data: F32Array
    valid: npt.NDArray[np.bool_]
    features: SpectralFeatureState


@dataclass(slots=True)
class SpectralStagingState:
    model: SpectralModel
    channels: dict[str, _ChannelState] = field(default_factory=dict)


def new_spectral_state(model: SpectralModel) -> SpectralStagingState:
    return SpectralStagingState(model)


def write(state: SpectralStagingState, ch: ChannelBlock) -> None:
    """Buffer one native EEG channel block."""
    cs = state.channels.get(ch.name)
    if cs is None or cs.fs != ch.fs:
        n = round(EPOCH_S * ch.fs)
        cs = _ChannelState(ch.fs, n, np.zeros(2 * n, np.float32), np.zeros(2 * n, bool),
                           new_state(state.model.prior))
        state.channels[ch.name] = cs
    start = round(ch.t0 * ch.fs)
    idx = (start + np.arange(len(ch.data))) % (2 * cs.n)
    cs.data[idx] = ch.data
    cs.valid[idx] = ch.valid & np.isfinite(ch.data)


def _epoch(cs: _ChannelState, epoch_start: float) -> FloatArray | None:
    idx = (round(epoch_start * cs.fs) + np.arange(cs.n)) % (2 * cs.n)
    x, v = cs.data[idx].astype(np.float64), cs.valid[idx].copy()
    cs.valid[idx] = False  # consumed: an epoch that is not rewritten reads as missing
    if v.mean() < MIN_VALID:
        return None
    x = np.where(v, x, x[v].mean())
    if x.std() > MICROVOLT_STD:
        x = x * 1e-6
    return x


def epoch_probs(
    state: SpectralStagingState, epoch_start: float
) -> tuple[FloatArray | None, tuple[str, ...], str]:
    """Calibrated (5,) stage probabilities of the epoch from the bed's EEG, the channels used,
    and the validity subset they fall in ("eeg" or "eeg_below_100hz"); None if none was valid."""
    logp = np.zeros(5)
    used: list[str] = []
    subset = "eeg"
    for name, cs in state.channels.items():
        x = _epoch(cs, epoch_start)
        if x is None:
            continue
        summary = summarize(x, cs.fs)
        if not np.isfinite(summary[0, [0, 1, 2, 3, 5, 6]]).all() or summary[0, 5] <= 0:
            continue
        feats = push(cs.features, base_vectors(summary, cs.fs)[0])
        head = "full" if cs.fs >= REFERENCE_FS else "no_gamma"
        if head == "no_gamma":
            subset = "eeg_below_100hz"
        p = state.model.heads[head].probs(feats[None])[0]
        logp += np.log(np.maximum(p, 1e-12))
        used.append(name)
    if not used:
        return None, (), subset
    logp /= len(used)  # geometric mean: channels of one head are not independent evidence
    p = np.exp(logp - logp.max())
    return p / p.sum(), tuple(used), subset
