"""The Sleep-EDF per-epoch spectral summaries (one CSV per night) as stage-model training data.

``load_nights`` reads every ``SCnnnn.epochs.csv`` of a folder: for each night the stage labels
(W, N1, N2, N3, REM as ``STAGES`` indices), the epoch start times and, per EEG derivation, the
(n, 7) summaries in ``spectral.FEATURES`` order. ``trim`` keeps the sleep period and up to 30
minutes of wake on either side (the usual practice: the files span ~20 h, mostly daytime wake).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sleepstream.engine.errors import SleepstreamError
from sleepstream.engine.inference.spectral import FEATURES
from sleepstream.engine.types import STAGES, FloatArray

DERIVATIONS: tuple[str, ...] = ("fpz_cz", "pz_oz")
LABELS = {"W": 0, "N1": 1, "N2": 2, "N3": 3, "R": 4, "REM": 4}
WAKE_MARGIN_S = 30 * 60
_NAME = re.compile(r"SC4(\d\d)(\d)\.epochs\.csv$")


class SpectralDataError(SleepstreamError):
    """A spectral-summary folder that is missing, empty or malformed."""


@dataclass(frozen=True, slots=True)
class Night:
    record: str
    subject: str
    start_s: npt.NDArray[np.float64]
    stages: npt.NDArray[np.int64]
    summaries: dict[str, FloatArray]  # derivation -> (n, 7)

    def __len__(self) -> int:
        return int(self.stages.shape[0])


def _read(path: Path) -> Night:
    import pandas as pd

    try:
        df = pd.read_csv(path)
        stages = df["stage"].map(LABELS)
        if stages.isna().any():
            bad = sorted(set(df["stage"][stages.isna()]))
            raise SpectralDataError(f"{path.name}: unknown stage labels {bad}")
        summaries = {
            d: df[[f"{d}_{f}" for f in FEATURES]].to_numpy(np.float64) for d in DERIVATIONS
        }
        start = df["epoch_start_s"].to_numpy(np.float64)
    except (OSError, KeyError, ValueError) as exc:
        raise SpectralDataError(f"{path.name}: not a spectral-summary file ({exc})") from exc
    m = _NAME.search(path.name)
    subject = m.group(1) if m else path.stem
    return Night(path.name.split(".")[0], subject, start, stages.to_numpy(np.int64), summaries)


def load_nights(folder: str | Path) -> list[Night]:
    folder = Path(folder)
    files = sorted(folder.glob("*.epochs.csv"))
    if not files:
        raise SpectralDataError(f"{folder}: no *.epochs.csv files (point --data to them)")
    return [_read(f) for f in files]


def trim(night: Night, margin_s: float = WAKE_MARGIN_S) -> Night:
    """The sleep period with up to ``margin_s`` of wake before the first and after the last
    sleep epoch."""
    sleep = np.flatnonzero(night.stages != LABELS["W"])
    if not len(sleep):
        return night
    lo = night.start_s[sleep[0]] - margin_s
    hi = night.start_s[sleep[-1]] + margin_s
    keep = (night.start_s >= lo) & (night.start_s <= hi)
    return Night(
        night.record,
        night.subject,
        night.start_s[keep],
        night.stages[keep],
        {d: s[keep] for d, s in night.summaries.items()},
    )


def stage_counts(nights: list[Night]) -> dict[str, int]:
    y = np.concatenate([n.stages for n in nights])
    return {s: int((y == i).sum()) for i, s in enumerate(STAGES)}
