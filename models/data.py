"""Labelled nights from a folder of EDF/EDF+ recordings, at the model's rates.

Recognised layouts (searched recursively):

- Sleep-EDF: ``SC4001E0-PSG.edf`` with ``SC4001EC-Hypnogram.edf`` (paired on the name minus its
  last two characters);
- SHHS / NSRR: ``shhs1-200001.edf`` with ``shhs1-200001-nsrr.xml`` (stage events of the XML);
- any other EDF+ carrying its own "Sleep stage ..." annotations (slpdb, the synthetic nights).

Each modality takes the first signal mapped to it; signals are resampled to the modality's model
rate with invalid samples (NaN, out of the plausible range) kept as an explicit mask.
"""

from __future__ import annotations

import fnmatch
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from sleepstream.drivers.edf import VALID_RANGES, Recording, read_recording
from sleepstream.engine.types import MODEL_RATES, STAGES

log = logging.getLogger(__name__)

NSRR_STAGE = {"0": "W", "1": "N1", "2": "N2", "3": "N3", "4": "N3", "5": "REM"}


@dataclass(frozen=True, slots=True)
class RecordingRef:
    name: str
    edf: Path
    labels: Path | None  # separate hypnogram (EDF+ or NSRR XML); None: in the EDF itself


@dataclass(frozen=True, slots=True)
class Night:
    """One recording: per modality (data (seconds*fs,) float32, valid bool) and per-epoch
    stage indices into ``STAGES`` (-1 where unscored)."""

    name: str
    seconds: int
    signals: dict[str, tuple[np.ndarray, np.ndarray]]
    stages: np.ndarray
    epoch_s: int = 30


def find_recordings(root: str | Path, include: str | None = None) -> list[RecordingRef]:
    """Every labelled recording under ``root``; ``include`` is a comma list of name globs."""
    root = Path(root)
    files = sorted(root.rglob("*.edf")) + sorted(root.rglob("*.EDF")) if root.is_dir() else [root]
    hyps = {
        p.name[: -len("-Hypnogram.edf")][:-2]: p for p in files if p.name.endswith("-Hypnogram.edf")
    }
    xmls = (
        {p.name[: -len("-nsrr.xml")]: p for p in root.rglob("*-nsrr.xml")} if root.is_dir() else {}
    )
    refs = []
    for p in files:
        if p.name.endswith("-Hypnogram.edf"):
            continue
        if p.name.endswith("-PSG.edf"):
            stem = p.name[: -len("-PSG.edf")]
            hyp = hyps.get(stem[:-2])
            if hyp is None:
                log.warning("%s: no matching *-Hypnogram.edf; skipped", p.name)
                continue
            refs.append(RecordingRef(stem, p, hyp))
        else:
            refs.append(RecordingRef(p.stem, p, xmls.get(p.stem)))
    if include:
        pats = [s.strip() for s in include.split(",") if s.strip()]
        refs = [r for r in refs if any(fnmatch.fnmatch(r.name, pat) for pat in pats)]
    return refs


def split_names(refs: list[RecordingRef], exclude: str | None) -> list[RecordingRef]:
    if not exclude:
        return refs
    pats = [s.strip() for s in exclude.split(",") if s.strip()]
    return [r for r in refs if not any(fnmatch.fnmatch(r.name, pat) for pat in pats)]


def nsrr_stages(path: Path, epoch_s: float = 30.0) -> list[tuple[float, str]]:
    """(epoch onset, stage) from an NSRR annotation XML (``Stage 2 sleep|2`` concepts)."""
    out: list[tuple[float, str]] = []
    for ev in ET.parse(path).getroot().iter("ScoredEvent"):
        etype = (ev.findtext("EventType") or "").lower()
        concept = ev.findtext("EventConcept") or ""
        if "stage" not in etype or "|" not in concept:
            continue
        stage = NSRR_STAGE.get(concept.rsplit("|", 1)[1].strip())
        if stage is None:
            continue
        start, dur = float(ev.findtext("Start") or 0), float(ev.findtext("Duration") or epoch_s)
        out.extend((start + i * epoch_s, stage) for i in range(max(1, round(dur / epoch_s))))
    return sorted(out)


def to_model_rate(
    data: np.ndarray, valid: np.ndarray, fs: float, target: float, n_out: int
) -> tuple[np.ndarray, np.ndarray]:
    """Resample one signal to ``target`` Hz, ``n_out`` samples; invalid samples stay masked."""
    valid = valid & np.isfinite(data)
    fill = float(np.median(data[valid])) if valid.any() else 0.0
    x = np.where(valid, data, fill).astype(np.float64)
    if fs == target:
        y, v = x, valid
    elif fs > target and float(fs / target).is_integer():
        f = int(fs / target)
        n = len(x) // f
        y = x[: n * f].reshape(n, f).mean(1)
        v = valid[: n * f].reshape(n, f).mean(1) >= 0.5
    else:
        r = Fraction(target / fs).limit_denominator(1000)
        y = resample_poly(x, r.numerator, r.denominator)
        idx = np.minimum((np.arange(len(y)) * fs / target).astype(np.int64), len(valid) - 1)
        v = valid[idx]
    out = np.zeros(n_out, dtype=np.float32)
    ok = np.zeros(n_out, dtype=bool)
    n = min(n_out, len(y))
    out[:n], ok[:n] = y[:n], v[:n]
    return out, ok


def _stage_list(ref: RecordingRef, rec: Recording) -> list[tuple[float, str]]:
    if ref.labels is None:
        return rec.stages()
    if ref.labels.suffix.lower() == ".xml":
        return nsrr_stages(ref.labels)
    return read_recording(ref.labels).stages()


def load_night(ref: RecordingRef, modalities: tuple[str, ...] | None = None) -> Night:
    rec = read_recording(ref.edf)
    seconds = int(rec.duration)
    signals: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for s in rec.signals:
        m = s.spec.modality
        if m is None or m in signals or (modalities is not None and m not in modalities):
            continue
        valid = s.valid.copy()
        lo, hi = VALID_RANGES.get(m, (None, None))
        if lo is not None:
            valid &= s.data >= lo
        if hi is not None:
            valid &= s.data <= hi
        fs_m = MODEL_RATES[m]
        signals[m] = to_model_rate(s.data, valid, s.spec.fs, fs_m, round(seconds * fs_m))
    stages = np.full(seconds // 30, -1, dtype=np.int64)
    for onset, st in _stage_list(ref, rec):
        i = round(onset / 30)
        if 0 <= i < len(stages):
            stages[i] = STAGES.index(st)
    return Night(ref.name, seconds, signals, stages)


def load_nights(
    root: str | Path,
    include: str | None = None,
    exclude: str | None = None,
    modalities: tuple[str, ...] | None = None,
) -> list[Night]:
    refs = split_names(find_recordings(root, include), exclude)
    nights = []
    for r in refs:
        n = load_night(r, modalities)
        if not n.signals or (n.stages >= 0).sum() == 0:
            log.warning("%s: no mapped signals or no stage labels; skipped", r.name)
            continue
        nights.append(n)
    return nights
