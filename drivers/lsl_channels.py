"""An LSL stream's description as engine channels: labels, modalities from the channel types
(XDF meta-data conventions), and units converted to the engine's (uV, %, bpm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pylsl

from sleepstream.engine.channel_map import ChannelRule, modality_of
from sleepstream.engine.types import ChannelSpec

# LSL channel types (XDF meta-data conventions) <-> engine modalities.
LSL_TYPES: dict[str, str] = {"eeg": "EEG", "eog": "EOG", "emg": "EMG", "ecg": "ECG",
                             "resp": "RESP", "spo2": "SpO2", "hr": "HR", "ppg": "PPG",
                             "acc": "ACC"}
_MODALITY_OF_TYPE = {v.lower(): k for k, v in LSL_TYPES.items()}
_ELECTRICAL = {"eeg", "eog", "emg", "ecg"}  # the engine's unit for these is microvolts
_TO_MICROVOLTS = {"v": 1e6, "volt": 1e6, "volts": 1e6, "mv": 1e3, "millivolts": 1e3,
                  "uv": 1.0, "µv": 1.0, "μv": 1.0, "microvolts": 1.0}
# Other modalities: the engine's unit, and the declared units it converts from.
_UNITS: dict[str, tuple[str, dict[str, float]]] = {
    "spo2": ("%", {"%": 1.0, "percent": 1.0, "pct": 1.0, "fraction": 100.0, "ratio": 100.0}),
    "hr": ("bpm", {"bpm": 1.0, "1/min": 1.0, "beats/min": 1.0, "/min": 1.0, "hz": 60.0,
                   "1/s": 60.0}),
}


def _microvolts_per_unit(unit: str) -> float | None:
    """Factor from a declared electrical unit to uV: names (V, mV, uV, ...) or, as mne-lsl
    writes them, the power of ten of volts ("0": V, "-3": mV, "-6": uV). None: unknown."""
    key = unit.strip().lower()
    if key in _TO_MICROVOLTS:
        return _TO_MICROVOLTS[key]
    if key.lstrip("-").isdigit() and -9 <= int(key) <= 3:
        return float(10.0 ** (int(key) + 6))
    return None


def engine_unit(modality: str | None, declared: str) -> tuple[str, float]:
    """The unit a channel is announced in and the factor from its declared unit: V, mV, uV
    (or mne-lsl's powers of ten) -> uV for EEG/EOG/EMG/ECG; fraction -> % for SpO2; Hz ->
    bpm for HR. A unit the engine does not know is kept as declared (factor 1), so the
    quality checks see what the device said."""
    if modality in _ELECTRICAL:
        factor = _microvolts_per_unit(declared)
        return ("uV", factor) if factor is not None else (declared, 1.0)
    if modality in _UNITS:
        unit, table = _UNITS[modality]
        factor = table.get(declared.strip().lower())
        return (unit, factor) if factor is not None else (declared, 1.0)
    return declared, 1.0


def lsl_type(modality: str | None) -> str:
    """The LSL channel type written for an engine modality (``MISC`` for none)."""
    return LSL_TYPES.get(modality or "", "MISC")


def _nth(values: Sequence[Any] | None, i: int) -> str:
    return str((values[i] if values is not None and i < len(values) else None) or "")


def channel_specs(info: pylsl.StreamInfo, rules: Sequence[ChannelRule] = ()
                  ) -> tuple[list[ChannelSpec], np.ndarray]:
    """One ChannelSpec per channel from the stream's description (labels, types, units), in
    the engine's units, and the per-channel factors that convert the samples to them."""
    n, fs = info.channel_count(), info.nominal_srate()
    labels, units = info.get_channel_labels(), info.get_channel_units()
    types = info.get_channel_types()
    specs: list[ChannelSpec] = []
    scales = np.ones(n, dtype=np.float32)
    seen: set[str] = set()
    for i in range(n):
        label = _nth(labels, i) or f"{info.name()}-{i}"
        if label in seen:
            label = f"{label}-{i}"
        seen.add(label)
        rule = modality_of(label, rules)
        modality = rule.modality if rule else _MODALITY_OF_TYPE.get(_nth(types, i).strip().lower())
        unit, scales[i] = engine_unit(modality, _nth(units, i))
        specs.append(ChannelSpec(label, fs, modality, unit))  # type: ignore[arg-type]
    return specs, scales
