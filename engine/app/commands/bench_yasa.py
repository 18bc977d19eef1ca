"""YASA's offline staging timed on a recording's EEG/EOG/EMG (``bench replay --vs yasa``).

The peer as a researcher runs it: an MNE ``RawArray`` of the night's first EEG, EOG and EMG
channels (volts), ``yasa.SleepStaging(raw, eeg_name, eog_name=, emg_name=).predict()`` with
YASA's bundled classifier. The timed span is building the Raw and staging; importing yasa, mne
and lightgbm is warmed up before the clock starts. Needs the ``peers`` extra.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

from sleepstream.drivers.edf import Recording, Signal
from sleepstream.engine.errors import BackendUnavailableError, SleepstreamError

UV = 1e-6  # the recordings carry microvolts, MNE wants volts


@dataclass(frozen=True, slots=True)
class YasaRun:
    """One staging of a night: wall seconds, epochs staged, channels used."""

    wall_s: float
    epochs: int
    channels: tuple[str, ...]


def _first(rec: Recording, modality: str) -> Signal | None:
    return next((s for s in rec.signals if s.spec.modality == modality), None)


def yasa_channels(rec: Recording) -> tuple[Signal, Signal | None, Signal | None]:
    """The EEG (required), EOG and EMG channels YASA stages from."""
    eeg = _first(rec, "eeg")
    if eeg is None:
        raise SleepstreamError(f"{rec.path.name}: no EEG channel for YASA to stage")
    return eeg, _first(rec, "eog"), _first(rec, "emg")


def warm_up(rec: Recording, seconds: float = 600.0) -> None:
    """Stage the first ``seconds`` of ``rec`` once, untimed (imports, JIT compilation)."""
    cut = [replace(s, data=s.data[: int(seconds * s.spec.fs)],
                   valid=s.valid[: int(seconds * s.spec.fs)]) for s in rec.signals]
    stage_with_yasa(replace(rec, duration=seconds, signals=tuple(cut)))


def stage_with_yasa(rec: Recording) -> YasaRun:
    """Stage ``rec`` with YASA, timed."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its pickled classifier warns about sklearn versions
        return _stage(rec)


def _stage(rec: Recording) -> YasaRun:
    try:
        import mne
        import yasa
    except ImportError as exc:
        raise BackendUnavailableError(
            "--vs yasa needs YASA: pip install 'sleepstream[peers]' (yasa, mne)"
        ) from exc
    mne.set_log_level("ERROR")
    logging.getLogger("yasa").setLevel(logging.ERROR)
    eeg, eog, emg = yasa_channels(rec)
    used = [s for s in (eeg, eog, emg) if s is not None]
    fs = eeg.spec.fs
    if any(s.spec.fs != fs for s in used):
        used = [s for s in used if s.spec.fs == fs]  # YASA takes one rate; keep the EEG's
    t0 = time.perf_counter()
    data = np.stack([np.where(s.valid, s.data, 0.0) * UV for s in used])  # (C, N) volts
    info = mne.create_info([s.label for s in used], fs, ["eeg"] * len(used))
    raw = mne.io.RawArray(data, info, verbose=False)
    names = [s.label for s in used]
    sls = yasa.SleepStaging(
        raw, eeg.label,
        eog_name=eog.label if eog is not None and eog.label in names else None,
        emg_name=emg.label if emg is not None and emg.label in names else None,
    )
    hyp = sls.predict()
    wall = time.perf_counter() - t0
    return YasaRun(wall, len(hyp), tuple(names))
