"""Value types that travel through the engine.

All are frozen, slotted dataclasses. Arrays inside them are owned by the value: producers hand
over fresh arrays and nobody writes to them afterwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
F32Array = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

Modality = Literal["eeg", "eog", "emg", "ecg", "resp", "spo2", "hr", "ppg", "acc"]
MODALITIES: tuple[Modality, ...] = ("eeg", "eog", "emg", "ecg", "resp", "spo2", "hr", "ppg", "acc")

# Model-side sampling rate per modality (DESIGN.md, "Modalities").
MODEL_RATES: dict[str, float] = {
    "eeg": 100.0,
    "eog": 100.0,
    "emg": 100.0,
    "ecg": 100.0,
    "resp": 25.0,
    "spo2": 1.0,
    "ppg": 25.0,
    "hr": 1.0,
    "acc": 25.0,
}

STAGES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """One device channel: its name, rate and what it measures.

    ``physical_min``/``physical_max`` are the limits of the device's range (used by the clipping
    detector); ``valid_min``/``valid_max`` the physiologically plausible range (out-of-range
    detector). ``None`` disables that check.
    """

    name: str
    fs: float
    modality: Modality | None
    unit: str = ""
    physical_min: float | None = None
    physical_max: float | None = None
    valid_min: float | None = None
    valid_max: float | None = None

    def __post_init__(self) -> None:
        if not self.fs > 0:
            raise ValueError(f"channel {self.name!r}: sampling rate must be > 0, got {self.fs}")


@dataclass(frozen=True, slots=True)
class Frame:
    """A chunk of samples from channels that share one sampling rate.

    ``timestamps`` (n,) are seconds on the engine clock; ``data`` (n, C) float32 in physical
    units; ``valid`` (n, C) is False where the device or driver knows the sample is not real
    (a gap, a lost packet, probe off). ``seq`` is the source's running sample index of the first
    row, used to account for every sample.
    """

    channels: tuple[str, ...]
    timestamps: FloatArray
    data: F32Array
    valid: BoolArray
    seq: int = 0

    def __post_init__(self) -> None:
        n = self.timestamps.shape[0]
        shape = (n, len(self.channels))
        if self.data.shape != shape or self.valid.shape != shape:
            raise ValueError(
                f"frame shapes disagree: timestamps {self.timestamps.shape}, "
                f"data {self.data.shape}, valid {self.valid.shape}, channels {len(self.channels)}"
            )

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])


@dataclass(frozen=True, slots=True)
class StageEstimate:
    """The sleep stage of one epoch, emitted when the epoch ends (causal). ``stage`` is None
    when the decoder abstains (no modality was present for most of the epoch)."""

    bed: str
    epoch_start: float
    epoch_s: float
    stage: str | None
    probs: dict[str, float]
    confidence: float
    modalities: tuple[str, ...]
    missing: tuple[str, ...] = ()
    revision: bool = False
    classes: tuple[str, ...] = STAGES  # the classes this estimate resolves (validity table)

    def to_event(self) -> dict[str, Any]:
        return {
            "type": "stage",
            "bed": self.bed,
            "epoch_start": self.epoch_start,
            "epoch_s": self.epoch_s,
            "stage": self.stage,
            "probs": {k: round(v, 4) for k, v in self.probs.items()},
            "confidence": round(self.confidence, 4),
            "modalities": list(self.modalities),
            "missing": list(self.missing),
            "revision": self.revision,
            "classes": list(self.classes),
        }


class AlertKind(enum.StrEnum):
    PHYSIOLOGICAL = "physiological"
    TECHNICAL = "technical"


class Priority(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AlertState(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alarm-condition transition in IEC 60601-1-8 terms.

    The same ``id`` is reused for every transition of one condition (active -> acknowledged ->
    ended). ``onset`` and ``end`` are engine-clock seconds; ``end`` is None while active.
    ``emitted_at`` is the engine time at which the condition was announced (onset + delay).
    """

    bed: str
    id: str
    code: str
    kind: AlertKind
    priority: Priority
    state: AlertState
    onset: float
    end: float | None
    value: float | None
    message: str
    channels: tuple[str, ...]
    delay_s: float = 0.0
    latching: bool = False
    emitted_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_event(self) -> dict[str, Any]:
        event: dict[str, Any] = {
            "type": "alert",
            "bed": self.bed,
            "id": self.id,
            "code": self.code,
            "kind": str(self.kind),
            "priority": str(self.priority),
            "state": str(self.state),
            "onset": round(self.onset, 3),
            "end": None if self.end is None else round(self.end, 3),
            "value": None if self.value is None else round(float(self.value), 3),
            "message": self.message,
            "channels": list(self.channels),
            "delay_s": self.delay_s,
            "latching": self.latching,
            "t": round(self.emitted_at, 3),
        }
        event.update(self.extra)
        return event


@dataclass(frozen=True, slots=True)
class Command:
    """An operator action addressed to one bed. ``kind`` "ack" acknowledges the alarm
    ``alert_id`` (every announced alarm of the bed when None). ``t`` is engine time of receipt."""

    bed: str
    kind: str
    t: float
    alert_id: str | None = None
    by: str = ""
