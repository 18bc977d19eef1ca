"""A whole synthetic night: composition of every generator, EDF+ writing and the JSON sidecar.

Each generator draws from its own child of the night's seed, so a night is reproducible from
(profile, hours, seed) and changing one generator does not reshuffle the others.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import edfio
import numpy as np

from sleepstream.engine.errors import SinkError
from sleepstream.simulators.synthetic import cardiac, eeg, eog_emg, motion, respiration
from sleepstream.simulators.synthetic.events import (
    AF,
    AROUSAL,
    CENTRAL,
    OBSTRUCTIVE,
    RESPIRATORY,
    Event,
    NightEvents,
    schedule_events,
)
from sleepstream.simulators.synthetic.hypnogram import (
    EPOCH_S,
    STAGE_NAMES,
    HypnogramModel,
    IntArray,
    W,
    generate_hypnogram,
    load_model,
)
from sleepstream.simulators.synthetic.motion import PositionChange
from sleepstream.simulators.synthetic.noise import FloatArray, interval_mask, place
from sleepstream.simulators.synthetic.profiles import Profile

log = logging.getLogger(__name__)

STAGE_TEXT = {"W": "Sleep stage W", "N1": "Sleep stage 1", "N2": "Sleep stage 2",
              "N3": "Sleep stage 3", "REM": "Sleep stage R"}


@dataclass(frozen=True, slots=True)
class Channel:
    label: str
    fs: float
    unit: str
    data: FloatArray
    physical_range: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Night:
    profile: Profile
    seed: int
    hours: float
    stages: IntArray  # one code per 30-s epoch (0=W .. 4=REM)
    events: NightEvents
    positions: tuple[PositionChange, ...]
    channels: tuple[Channel, ...]

    @property
    def sleep_hours(self) -> float:
        return float((self.stages != W).sum()) * EPOCH_S / 3600.0

    @property
    def ahi(self) -> float:
        return len(self.events.respiratory) / max(self.sleep_hours, 1e-9)

    @property
    def odi(self) -> float:
        return len(self.events.desaturations) / max(self.sleep_hours, 1e-9)


def _vasoconstriction(arousals: list[Event], n: int) -> FloatArray:
    """Pulse amplitude falls a few seconds after an arousal and recovers over ~20 s."""
    t = np.arange(int(40 * respiration.FS))[None, :] / respiration.FS
    kernel = (1 - np.exp(-np.maximum(t - 3.0, 0) / 2.0)) * np.exp(-np.maximum(t - 3.0, 0) / 15.0)
    at = np.array([round(e.onset * respiration.FS) for e in arousals], dtype=np.int64)
    return np.minimum(place(n, at, kernel / kernel.max()), 1.0)


def _upsample(x: FloatArray, fs_in: float, fs_out: float, n_out: int) -> FloatArray:
    return np.interp(np.arange(n_out) / fs_out, np.arange(x.size) / fs_in, x)


def _cardiac(stages: IntArray, ev: NightEvents, phase: FloatArray, profile: Profile,
             rng: np.random.Generator) -> list[Channel]:
    arousals = list(ev.arousals)
    apneas = [e for e in ev.respiratory if e.kind in (OBSTRUCTIVE, CENTRAL)]
    hr = cardiac.heart_rate_curve(stages, phase, arousals, apneas, profile.heart_rate,
                                  profile.hrv_scale, rng)
    beats = cardiac.with_af(cardiac.sinus_beats(hr), hr, list(ev.af), rng)
    seconds = stages.size * int(EPOCH_S)
    n_ecg = seconds * int(cardiac.ECG_FS)
    af_on = np.array([e.onset for e in ev.af])
    af_dur = np.array([e.duration for e in ev.af])
    af_mask = interval_mask(af_on, af_dur, cardiac.ECG_FS, n_ecg, ramp_s=1.0)
    resp_ecg = _upsample(np.sin(phase), cardiac.GRID_FS, cardiac.ECG_FS, n_ecg)
    ecg = cardiac.ecg(beats, n_ecg, af_mask, resp_ecg, rng)
    pleth = cardiac.ppg(beats, phase.size, _vasoconstriction(arousals, phase.size),
                        np.sin(phase), rng)
    return [
        Channel(cardiac.ECG_LABEL, cardiac.ECG_FS, "mV", ecg, (-5.0, 5.0)),
        Channel(cardiac.PPG_LABEL, cardiac.PPG_FS, "a.u.", pleth, (-2.0, 4.0)),
        Channel(cardiac.HR_LABEL, 1.0, "bpm", cardiac.heart_rate_channel(beats, seconds),
                (0.0, 250.0)),
    ]


def simulate_night(
    profile: Profile, hours: float, seed: int, model: HypnogramModel | None = None
) -> Night:
    """Generate every channel and every ground-truth event of one night."""
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8)]
    n_epochs = round(hours * 3600 / EPOCH_S)
    stages = generate_hypnogram(model or load_model(), n_epochs, rngs[0], profile.hypnogram)
    ev = schedule_events(stages, profile, rngs[1])
    n100 = n_epochs * int(EPOCH_S * eeg.FS)
    on = np.array([e.onset for e in ev.arousals])
    dur = np.array([e.duration for e in ev.arousals])
    arousal = interval_mask(on, dur, eeg.FS, n100, ramp_s=0.5)
    parts = eeg.eeg_parts(stages, arousal, rngs[2], profile.slow_wave_scale)
    fpz, pz = eeg.mix_eeg(parts, stages, rngs[2])
    breath = respiration.breathing(stages, list(ev.respiratory), rngs[3])
    positions = motion.position_changes(stages, list(ev.arousals), rngs[4])
    acc = motion.accelerometer(stages, positions, breath.phase, rngs[4])
    channels = [
        Channel(eeg.LABELS[0], eeg.FS, "uV", fpz, (-500.0, 500.0)),
        Channel(eeg.LABELS[1], eeg.FS, "uV", pz, (-500.0, 500.0)),
        Channel(eog_emg.EOG_LABEL, eog_emg.FS, "uV", eog_emg.eog(stages, parts.delta, rngs[5]),
                (-1000.0, 1000.0)),
        Channel(eog_emg.EMG_LABEL, eog_emg.FS, "uV", eog_emg.emg(stages, arousal, rngs[5]),
                (-300.0, 300.0)),
        *_cardiac(stages, ev, breath.phase, profile, rngs[6]),
        Channel(respiration.FLOW_LABEL, respiration.FS, "L/s", breath.flow, (-3.0, 3.0)),
        Channel(respiration.THORAX_LABEL, respiration.FS, "mL", breath.thorax, (-2000, 2000)),
        Channel(respiration.ABDOMEN_LABEL, respiration.FS, "mL", breath.abdomen, (-2000, 2000)),
        Channel(respiration.SPO2_LABEL, 1.0, "%",
                respiration.spo2(stages, list(ev.desaturations), profile.spo2_baseline, rngs[7]),
                (0.0, 100.0)),
        *(Channel(label, motion.FS, "g", a, (-4.0, 4.0))
          for label, a in zip(motion.LABELS, acc, strict=True)),
    ]
    return Night(profile, seed, hours, stages, ev, tuple(positions), tuple(channels))


def truth_annotations(night: Night) -> list[Event]:
    """Ground truth as annotations: a stage per epoch, then every event."""
    stages = [Event(i * EPOCH_S, EPOCH_S, STAGE_TEXT[STAGE_NAMES[s]])
              for i, s in enumerate(night.stages)]
    return stages + night.events.all()


def write_edf(night: Night, path: Path) -> Path:
    """Write the night as EDF+ (1-s data records) with its ground truth as annotations."""
    signals = [
        edfio.EdfSignal(
            np.clip(c.data, *c.physical_range).astype(np.float64), c.fs, label=c.label,
            physical_dimension=c.unit, physical_range=c.physical_range,
        )
        for c in night.channels
    ]
    notes = [edfio.EdfAnnotation(e.onset, e.duration, e.kind) for e in truth_annotations(night)]
    edf = edfio.Edf(
        signals, data_record_duration=1.0, annotations=notes,
        recording=edfio.Recording(equipment_code=f"synthetic-{night.profile.name}"[:40]),
    )
    try:
        edf.write(path)
    except OSError as exc:
        raise SinkError(f"cannot write {path}: {exc}; check the folder exists and is writable") \
            from exc
    return path


def sidecar(night: Night) -> dict[str, Any]:
    """The same truth as plain JSON, with the profile, the seed and the targets."""
    profile = dataclasses.asdict(night.profile)
    return {
        "generator": "sleepstream.simulators.synthetic",
        "profile": night.profile.name,
        "profile_parameters": profile,
        "seed": night.seed,
        "hours": night.hours,
        "epoch_s": EPOCH_S,
        "target_ahi": night.profile.ahi,
        "ahi": round(night.ahi, 3),
        "odi": round(night.odi, 3),
        "sleep_hours": round(night.sleep_hours, 4),
        "circulation_delay_s": night.events.circulation_delay_s,
        "stages": [STAGE_NAMES[s] for s in night.stages],
        "events": [dataclasses.asdict(e) for e in night.events.all()],
        "counts": {k: len(night.events.of(k)) for k in (*RESPIRATORY, AROUSAL, AF)},
        "positions": [dataclasses.asdict(p) for p in night.positions],
        "channels": [{"label": c.label, "fs": c.fs, "unit": c.unit} for c in night.channels],
    }


def write_night(night: Night, path: Path) -> tuple[Path, Path]:
    """The EDF+ file and its sidecar (same name, .json)."""
    write_edf(night, path)
    side = path.with_suffix(".json")
    side.write_text(json.dumps(sidecar(night), indent=1) + "\n")
    return path, side
