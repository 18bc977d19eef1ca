"""The engine's EEG path and YASA on the same 30-s epochs of EEG recordings.

For every EDF recording under a folder that has EEG channels: the engine's EEG spectral path
(``spectral_staging``, the live code: every EEG channel, causal, epoch by epoch) and, where the
``yasa`` package is installed, YASA's published classifier (``yasa.SleepStaging``: one central
EEG channel, EOG and EMG where present, the whole recording at once, offline) on the same epoch
grid (epoch k spans [30 k, 30 k + 30) s of the recording). Where the recording carries expert
stages, both are scored against them; always, the engine is also scored against YASA
(agreement) and each one's stage shares are given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.drivers.edf import Recording, read_recording
from sleepstream.engine.inference.spectral_model import SpectralModel
from sleepstream.engine.inference.spectral_staging import epoch_probs, new_spectral_state, write
from sleepstream.engine.protocols import ChannelBlock
from sleepstream.engine.types import STAGES
from sleepstream.models.data import find_recordings
from sleepstream.models.evaluate import scores

log = logging.getLogger(__name__)

EPOCH_S = 30
YASA_STAGES = {"W": 0, "WAKE": 0, "N1": 1, "N2": 2, "N3": 3, "R": 4, "REM": 4}
CENTRAL = ("c4", "c3", "cz")  # YASA's classifier was trained on central EEG


@dataclass(frozen=True, slots=True)
class EegRecord:
    """Per-epoch stage indices (-1: none) of one recording; ``truth`` None when unscored."""

    name: str
    truth: np.ndarray | None
    engine: np.ndarray
    engine_channels: tuple[str, ...]
    yasa: np.ndarray | None
    yasa_channel: str | None


def _stages(rec: Recording, labels: Path | None, n: int) -> np.ndarray | None:
    marks = read_recording(labels).stages() if labels is not None else rec.stages()
    if not marks:
        return None
    out = np.full(n, -1, np.int64)
    for onset, stage in marks:
        i = round(onset / EPOCH_S)
        if 0 <= i < n and stage in STAGES:
            out[i] = STAGES.index(stage)
    return out


def engine_stages(rec: Recording, model: SpectralModel, n: int) -> tuple[np.ndarray, tuple]:
    """Five-class stages of the live EEG path, fed one 30-s block per channel and epoch."""
    state = new_spectral_state(model)
    eeg = [s for s in rec.signals if s.spec.modality == "eeg"]
    out = np.full(n, -1, np.int64)
    used: set[str] = set()
    for k in range(n):
        for s in eeg:
            a, b = round(k * EPOCH_S * s.spec.fs), round((k + 1) * EPOCH_S * s.spec.fs)
            write(state, ChannelBlock(s.spec.name, "eeg", s.spec.fs, float(k * EPOCH_S),
                                      s.data[a:b], s.valid[a:b]))
        p, chans, _ = epoch_probs(state, float(k * EPOCH_S))
        if p is not None:
            out[k] = int(p.argmax())
            used.update(chans)
    return out, tuple(sorted(used))


def _pick(rec: Recording, modality: str, prefer: Sequence[str] = ()) -> Any:
    sigs = [s for s in rec.signals if s.spec.modality == modality]
    for key in prefer:
        for s in sigs:
            if key in s.spec.name.lower():
                return s
    return sigs[0] if sigs else None


def yasa_stages(rec: Recording, n: int) -> tuple[np.ndarray, str] | None:
    """YASA's stages on the recording's epoch grid, or None where yasa is not installed or
    cannot stage the recording."""
    try:
        import mne
        import yasa
    except ImportError:
        return None
    eeg = _pick(rec, "eeg", CENTRAL)
    extra = {"eog": _pick(rec, "eog"), "emg": _pick(rec, "emg")}
    chans = [("eeg", eeg)] + [(k, s) for k, s in extra.items() if s is not None]
    fs = eeg.spec.fs
    if any(s.spec.fs != fs for _, s in chans):
        chans = [("eeg", eeg)]
    scale = {"uv": 1e-6, "mv": 1e-3, "v": 1.0}
    data = np.stack([np.where(s.valid, s.data, 0.0) * scale.get(s.spec.unit.lower(), 1e-6)
                     for _, s in chans])
    names = [s.spec.name for _, s in chans]
    raw = mne.io.RawArray(data, mne.create_info(names, fs, [k for k, _ in chans]), verbose=False)
    kw = {f"{k}_name": s.spec.name for k, s in chans if k != "eeg"}
    try:
        hyp = yasa.SleepStaging(raw, eeg_name=eeg.spec.name, **kw).predict()
    except (ValueError, AssertionError) as exc:  # e.g. shorter than YASA's 5 minutes
        log.warning("YASA could not stage %s: %s", eeg.spec.name, exc)
        return None
    labels = getattr(hyp, "hypno", hyp)
    out = np.full(n, -1, np.int64)
    for i, v in enumerate(list(labels)[:n]):
        out[i] = YASA_STAGES.get(str(v).upper(), -1)
    return out, eeg.spec.name


def compare(root: str | Path, model: SpectralModel, include: str | None = None) -> list[EegRecord]:
    """Every recording under ``root`` with EEG, staged by the engine and (if installed) YASA."""
    out = []
    for ref in find_recordings(root, include):
        rec = read_recording(ref.edf)
        if not any(s.spec.modality == "eeg" for s in rec.signals):
            continue
        n = int(rec.duration // EPOCH_S)
        eng, used = engine_stages(rec, model, n)
        ya = yasa_stages(rec, n)
        out.append(EegRecord(ref.name, _stages(rec, ref.labels, n), eng, used,
                             ya[0] if ya else None, ya[1] if ya else None))
        log.info("%s: %d epochs staged", ref.name, n)
    return out


def yasa_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("yasa") is not None


def _shares(preds: Sequence[np.ndarray]) -> dict[str, float]:
    p = np.concatenate(preds)
    p = p[p >= 0]
    return {s: round(float((p == i).mean()), 4) if len(p) else 0.0 for i, s in enumerate(STAGES)}


def _brief(truth: Sequence[np.ndarray], pred: Sequence[np.ndarray]) -> dict[str, Any]:
    r = scores(truth, pred, STAGES)
    return {k: (round(r[k], 4) if isinstance(r[k], float) else r[k])
            for k in ("epochs", "accuracy", "kappa", "macro_f1")}


def _same(r: EegRecord, ref: np.ndarray) -> np.ndarray:
    """``ref`` on the epochs both the engine and YASA (where run) staged, -1 elsewhere."""
    ok = (r.engine >= 0) & (ref >= 0) & (r.yasa >= 0 if r.yasa is not None else True)
    return np.where(ok, ref, -1)


def figures(records: Sequence[EegRecord]) -> dict[str, Any]:
    """Pooled five-class figures on the same epochs: engine and YASA against the expert
    stages where a recording has some, and the engine against YASA."""
    out: dict[str, Any] = {
        "records": [r.name for r in records],
        "epochs": int(sum(len(r.engine) for r in records)),
        "scored_records": [r.name for r in records if r.truth is not None],
        "engine_channels": sorted({c for r in records for c in r.engine_channels}),
        "engine_shares": _shares([r.engine for r in records]),
        "yasa_installed": yasa_available(),
    }
    scored = [r for r in records if r.truth is not None]
    if scored:
        out["engine"] = _brief([_same(r, r.truth) for r in scored],  # type: ignore[arg-type]
                               [r.engine for r in scored])
    both = [r for r in records if r.yasa is not None]
    if both:
        out["yasa_channels"] = sorted({r.yasa_channel for r in both if r.yasa_channel})
        out["yasa_shares"] = _shares([r.yasa for r in both])  # type: ignore[misc]
        out["engine_vs_yasa"] = _brief([_same(r, r.yasa) for r in both],  # type: ignore[arg-type]
                                       [r.engine for r in both])
        scored_y = [r for r in both if r.truth is not None]
        if scored_y:
            out["yasa"] = _brief([_same(r, r.truth) for r in scored_y],  # type: ignore[arg-type]
                                 [r.yasa for r in scored_y])  # type: ignore[misc]
    return out
