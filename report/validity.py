"""What the model has shown on real data, for the recording in front of the reader.

A model with an EEG spectral path ships a validity table (``spectral.json``): for each staging
path (the EEG spectral model at >= 100 Hz, below 100 Hz, and the transformer over tokens) the
class set it may claim and the real-data figures behind the claim (accuracy, kappa, the
majority-class accuracy it had to beat, expected calibration error, where it was measured). The
report shows that table with, per path, whether this recording gave the path its input and how
many epochs the engine staged through it; a path the table does not back abstains (no stage).

The per-minute apnea classifier's minutes cite their model's real-data figures in the events
(``validation``); ``minute_validity`` lists them per model that scored this night, with the
minutes it scored and those it left unscored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from sleepstream.report.night import Night

CLASS_NAMES = {"five": "W/N1/N2/N3/REM", "four": "W/light/deep/REM", "two": "sleep/wake",
               "none": "none (abstains)"}
PATH_NAMES = {"eeg": "EEG spectral, EEG at >= 100 Hz",
              "eeg_below_100hz": "EEG spectral, EEG below 100 Hz",
              "tokens": "transformer over tokens (any other modality)"}
COLUMNS = ["path", "claims", "accuracy", "kappa", "majority accuracy", "ECE", "measured on",
           "input here", "epochs here"]
_MODEL_NAME = re.compile(r"staging with (\S+) \(")
MINUTE_MODELS = {"spo2_hr": "SpO2 + heart rate", "hr": "heart rate alone"}
MINUTE_COLUMNS = ["apnea-minute model", "accuracy", "AUROC", "ECE", "index r", "index MAE /h",
                  "measured on", "minutes scored here", "not scored here"]


def model_dir(checkpoint: str | Path | None, default: Path) -> Path | None:
    """The directory of a configured checkpoint ("default": ``default``, a path), None for
    "none"."""
    if checkpoint is None or str(checkpoint) == "none":
        return None
    return default if str(checkpoint) == "default" else Path(checkpoint)


def model_dir_from_status(message: str, default: Path) -> Path | None:
    """``default`` (the shipped model's directory) when a run's status names it."""
    found = _MODEL_NAME.match(message)
    return default if found and found.group(1) == default.name else None


def validity_table(night: Night) -> pd.DataFrame:
    """One row per staging path of the model: what it may claim, its real-data figures, whether
    this recording fed it, and the epochs staged through it. Empty when the model ships no
    validity table (then the note in ``validity_note`` says so)."""
    table = _table_of(night.info.model_dir)
    if not table:
        return pd.DataFrame(columns=COLUMNS)
    fed = _paths_fed(night)
    eeg_path = "eeg_below_100hz" if "eeg_below_100hz" in fed else "eeg"
    epochs = _epochs_by_path(night.stages, eeg_path)
    rows = []
    for path, entry in table.items():
        rows.append({
            "path": PATH_NAMES.get(path, path),
            "claims": CLASS_NAMES.get(str(entry.get("classes")), str(entry.get("classes"))),
            "accuracy": entry.get("accuracy"), "kappa": entry.get("kappa"),
            "majority accuracy": entry.get("majority_accuracy"), "ECE": entry.get("ece"),
            "measured on": "; ".join(str(entry[k]) for k in ("source", "montages")
                                     if entry.get(k)),
            "input here": "yes" if path in fed else "no",
            "epochs here": epochs.get(path, 0),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


def validity_note(night: Night) -> str:
    """One sentence for the reader about how far the stages of this night can be trusted."""
    if night.info.model_dir is None:
        if _MODEL_NAME.match(night.info.model):
            return ("The model that staged this night is not at hand (report --model DIR "
                    "names it): its real-data figures are not shown.")
        return "No model staged this night."
    if not _table_of(night.info.model_dir):
        return (f"The model {night.info.model_dir.name} ships no real-data validity table: "
                "its stages are not backed by a real-data figure.")
    fed = _paths_fed(night)
    backed = [p for p, e in _table_of(night.info.model_dir).items()
              if p in fed and e.get("classes") != "none"]
    if not backed:
        return ("No staging path this recording can feed is backed by a real-data figure: "
                "the engine abstained from staging (epochs without a stage).")
    return ("Stages come from " + " and ".join(PATH_NAMES.get(p, p) for p in backed)
            + ", with the figures shown, measured on held-out real nights.")


def minute_validity(night: Night) -> pd.DataFrame:
    """One row per apnea-minute model that scored this night: the real-data figures its minutes
    cite, the minutes it scored and those it did not (no usable signal, or no backing figure)."""
    rows: dict[str, dict[str, Any]] = {}
    for e in night.raw:
        if e.get("type") != "apnea_minute":
            continue
        key = str(e.get("model"))
        v = e.get("validation") or {}
        row = rows.setdefault(key, {
            "apnea-minute model": MINUTE_MODELS.get(key, key), "accuracy": v.get("accuracy"),
            "AUROC": v.get("auroc"), "ECE": v.get("ece"), "index r": v.get("index_pearson_r"),
            "index MAE /h": v.get("index_mae_per_h"), "measured on": _measured(v),
            "minutes scored here": 0, "not scored here": 0})
        row["minutes scored here" if e.get("apnea") is not None else "not scored here"] += 1
    return pd.DataFrame(list(rows.values()), columns=MINUTE_COLUMNS)


def minute_note(night: Night) -> str:
    """One sentence on the apnea minutes of this night and what backs them."""
    table = minute_validity(night)
    if table.empty:
        return "No apnea minutes were scored."
    scored = table[table["minutes scored here"] > 0]
    if scored.empty:
        return "No apnea minute could be scored (no usable signal, or no backing figure)."
    parts = [f"{r['apnea-minute model']}: {r['minutes scored here']} minutes, accuracy "
             f"{r['accuracy']:.3f}, AUROC {r['AUROC']:.3f} ({r['measured on']})"
             for _, r in scored.iterrows()]
    return "Apnea minutes, " + "; ".join(parts) + "."


def _measured(v: dict[str, Any]) -> str:
    if not v:
        return "no real-data figure (the model abstains)"
    return f"{v.get('set')}, {v.get('records')} records, {v.get('cv')} cross-validation"


def _table_of(root: Path | None) -> dict[str, dict[str, Any]]:
    """The validity table of the model in ``root`` (its ``spectral.json``; the engine checked
    the file's checksum when it loaded the model), empty when it has none."""
    if root is None:
        return {}
    try:
        table = json.loads((root / "spectral.json").read_text(encoding="utf-8"))["validity"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    return {str(k): dict(v) for k, v in table.items()} if isinstance(table, dict) else {}


def _paths_fed(night: Night) -> set[str]:
    """The paths whose input this recording has (EEG by its rate; tokens from anything else)."""
    eeg = [c.fs for c in night.info.channels if c.modality == "eeg"]
    fed = {"eeg" if max(eeg) >= 100 else "eeg_below_100hz"} if eeg else set()
    if any(c.modality and c.modality != "eeg" for c in night.info.channels):
        fed.add("tokens")
    if not night.info.channels:  # events only: what the stage events say they used
        fed |= {_path_of(m) for m in night.stages.get("modalities", pd.Series(dtype=str)) if m}
    return fed


def _path_of(modalities: str | Sequence[str], eeg_path: str = "eeg") -> str:
    return eeg_path if "eeg" in str(modalities).split(",") else "tokens"


def _epochs_by_path(stages: pd.DataFrame, eeg_path: str) -> dict[str, int]:
    """Epochs with a stage, by the path that staged them (EEG where the epoch used EEG)."""
    if stages.empty:
        return {}
    staged = stages[stages["stage"].notna()]
    return {str(k): int(v) for k, v in
            staged["modalities"].map(lambda m: _path_of(m, eeg_path)).value_counts().items()}
