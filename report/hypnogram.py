"""``Hypnogram``: one stage (or none) per 30-s epoch, from engine stage events or from a file's
expert annotations.

Stages are the AASM names ``W N1 N2 N3 REM``; ``None`` is an epoch without a stage (the engine
abstained, the scorer wrote "?", movement time, or no data). Epoch ``k`` covers
``[k * epoch_s, (k + 1) * epoch_s)`` seconds on the engine clock (0 = the recording's first
sample).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sleepstream.engine.types import STAGES

# YASA's integer coding (sleep_statistics, plot_hypnogram): -2 unscored, 0 W ... 4 REM.
YASA_CODES: dict[str | None, int] = {None: -2, "W": 0, "N1": 1, "N2": 2, "N3": 3, "REM": 4}


@dataclass(frozen=True, slots=True)
class Hypnogram:
    """Stages per epoch; ``confidence`` (same length, NaN where unknown) for engine stages."""

    stages: tuple[str | None, ...]
    epoch_s: float = 30.0
    confidence: tuple[float, ...] | None = None
    start: dt.datetime | None = None
    source: str = "engine"  # "engine" (causal stages) or "expert" (the file's annotations)

    def __post_init__(self) -> None:
        bad = {s for s in self.stages if s is not None and s not in STAGES}
        if bad:
            raise ValueError(f"unknown stages {sorted(bad)}; expected {list(STAGES)} or None")
        if self.confidence is not None and len(self.confidence) != len(self.stages):
            raise ValueError("confidence must have one value per epoch")

    def __len__(self) -> int:
        return len(self.stages)

    @property
    def duration_s(self) -> float:
        return len(self.stages) * self.epoch_s

    def codes(self) -> npt.NDArray[np.int64]:
        """The stages in YASA's integer coding (-2 unscored, 0 W, 1 N1, 2 N2, 3 N3, 4 REM)."""
        return np.array([YASA_CODES[s] for s in self.stages], dtype=np.int64)

    def onsets(self) -> npt.NDArray[np.float64]:
        return np.arange(len(self.stages), dtype=np.float64) * self.epoch_s

    def statistics(self) -> dict[str, float]:
        """Sleep statistics in AASM report terms (see ``report.statistics``)."""
        from sleepstream.report.statistics import sleep_statistics

        return sleep_statistics(self.stages, self.epoch_s)

    def to_frame(self) -> Any:
        """A pandas DataFrame: onset, duration, stage, confidence (needs the report extra)."""
        import pandas as pd

        conf = self.confidence or (math.nan,) * len(self.stages)
        return pd.DataFrame({
            "onset": self.onsets(), "duration": self.epoch_s,
            "stage": pd.Series(self.stages, dtype="object"), "confidence": conf,
        })

    def plot(self, ax: Any = None) -> Any:
        """Draw the hypnogram on ``ax`` (a new figure when None); returns the axes."""
        from sleepstream.report.plots import plot_hypnogram

        return plot_hypnogram(self, ax=ax)

    @classmethod
    def from_events(
        cls, events: Iterable[Mapping[str, Any]], *, epoch_s: float = 30.0,
        duration_s: float | None = None, start: dt.datetime | None = None,
    ) -> Hypnogram:
        """From ``stage`` events (a later revision of an epoch replaces the first estimate)."""
        by_epoch: dict[int, tuple[str | None, float]] = {}
        for e in events:
            if e.get("type") != "stage":
                continue
            k = round(float(e["epoch_start"]) / epoch_s)
            conf = e.get("confidence")
            by_epoch[k] = (e.get("stage"), math.nan if conf is None else float(conf))
        n = max(by_epoch, default=-1) + 1
        if duration_s is not None:
            n = max(n, math.floor(duration_s / epoch_s + 1e-9))
        stages = [by_epoch.get(k, (None, math.nan)) for k in range(n)]
        return cls(tuple(s for s, _ in stages), epoch_s, tuple(c for _, c in stages), start)

    @classmethod
    def from_annotations(
        cls, annotations: Sequence[tuple[float, float, str | None]], *, epoch_s: float = 30.0,
        start: dt.datetime | None = None,
    ) -> Hypnogram | None:
        """From (onset, duration, stage or None) scored periods, e.g. a file's hypnogram
        annotations; None when no period names a stage."""
        if not any(stage is not None for _, _, stage in annotations):
            return None
        end = max(onset + max(dur, epoch_s) for onset, dur, _ in annotations)
        stages: list[str | None] = [None] * math.floor(end / epoch_s + 1e-9)
        for onset, dur, stage in annotations:
            first = round(onset / epoch_s)
            for k in range(first, first + max(1, round(dur / epoch_s))):
                if k < len(stages):
                    stages[k] = stage
        return cls(tuple(stages), epoch_s, None, start, source="expert")
