"""``Night``: one analysed recording, its engine events as pandas tables, its hypnograms,
statistics and plots.

Built from the events of a replay (``sleepstream.analyze``) or of a JSONL file, and, when the
recording is at hand, from its 1-Hz SpO2 and heart-rate trends and its expert stage annotations.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from sleepstream.drivers.edf import VALID_RANGES, Recording, parse_stage
from sleepstream.engine.errors import RecordingError
from sleepstream.engine.types import STAGES
from sleepstream.report.hypnogram import Hypnogram
from sleepstream.report.statistics import DEFINITIONS, event_statistics, scored_events
from sleepstream.report.validity import minute_validity, validity_table

Event = Mapping[str, Any]
Trend = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Channel:
    label: str
    modality: str | None
    fs: float
    unit: str


@dataclass(frozen=True, slots=True)
class NightInfo:
    """What the report says about the recording and the engine run."""

    name: str
    path: Path | None
    start: dt.datetime | None
    duration_s: float
    channels: tuple[Channel, ...] = ()
    model: str = ""
    bed: str = ""
    model_dir: Path | None = None  # the checkpoint that staged it (its validity table)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted({c.modality for c in self.channels if c.modality}))


@dataclass(frozen=True, slots=True)
class Night:
    """One night. ``raw`` holds every engine event as emitted; the tables are views of it."""

    info: NightInfo
    raw: tuple[Event, ...]
    hypnogram: Hypnogram
    expert: Hypnogram | None = None
    spo2: Trend | None = None  # 1 Hz from t = 0, NaN where invalid
    hr: Trend | None = None
    cardiac_s: float | None = None  # seconds of valid ECG or PPG (None: neither present)

    @classmethod
    def from_events(
        cls, events: Iterable[Event], recording: Recording | None = None, *, name: str = "",
        model_dir: Path | None = None,
    ) -> Night:
        """``model_dir``: the checkpoint that staged the events (its validity table)."""
        raw = tuple(events)
        status = next((e for e in raw if e.get("type") == "status" and "message" in e), {})
        start = recording.start if recording is not None else _parse_start(status.get("start"))
        info = NightInfo(
            name=name or (recording.path.name if recording is not None else "night"),
            path=recording.path if recording is not None else None,
            start=start,
            duration_s=recording.duration if recording is not None else _last_time(raw),
            channels=_channels(recording) if recording is not None else (),
            model=str(status.get("message", "")), bed=str(status.get("bed", "")),
            model_dir=model_dir,
        )
        hyp = Hypnogram.from_events(raw, duration_s=info.duration_s, start=start)
        if recording is None:
            return cls(info, raw, hyp)
        return cls(info, raw, hyp, expert_hypnogram(recording), trend(recording, "spo2"),
                   trend(recording, "hr"), _cardiac_seconds(recording))

    @classmethod
    def from_jsonl(cls, path: str | Path, recording: Recording | None = None, *,
                   model_dir: Path | None = None) -> Night:
        """Read the events a ``replay --out`` or a ``jsonl`` sink wrote."""
        path = Path(path)
        events = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise RecordingError(f"{path}: cannot read events ({exc})") from exc
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordingError(f"{path}:{i}: not a JSON event ({exc.msg})") from exc
            if isinstance(event, dict):
                events.append(event)
        return cls.from_events(events, recording, model_dir=model_dir,
                               name="" if recording is not None else path.name)

    # ---- tables -------------------------------------------------------------------------------

    @property
    def stages(self) -> pd.DataFrame:
        """One row per stage event: onset, duration, stage, confidence, modalities, p_<stage>."""
        rows = [{
            "onset": float(e["epoch_start"]), "duration": float(e["epoch_s"]),
            "stage": e.get("stage"), "confidence": e.get("confidence"),
            "modalities": ",".join(e.get("modalities") or []),
            "revision": bool(e.get("revision", False)),
            **{f"p_{s}": (e.get("probs") or {}).get(s) for s in STAGES},
        } for e in self.raw if e.get("type") == "stage"]
        cols = ["onset", "duration", "stage", "confidence", "modalities", "revision",
                *(f"p_{s}" for s in STAGES)]
        return pd.DataFrame(rows, columns=cols)

    @property
    def events(self) -> pd.DataFrame:
        """Scored physiological events (desaturations, apneas, hypopneas, AF episodes):
        onset, duration, code, value, channels."""
        detail = {(str(e.get("code")), float(e["onset"])): e for e in self.raw
                  if e.get("type") in ("event", "alert") and "onset" in e}
        rows = [{"onset": o, "duration": d, "code": c,
                 "value": detail.get((c, o), {}).get("value"),
                 "channels": ",".join(detail.get((c, o), {}).get("channels") or [])}
                for c, o, d in scored_events(self.raw)]
        return pd.DataFrame(rows, columns=["onset", "duration", "code", "value", "channels"])

    @property
    def alarms(self) -> pd.DataFrame:
        """One row per alarm condition (its last transition): onset, duration, code, kind,
        priority, state, acknowledged, value, message, channels."""
        last: dict[str, Event] = {}
        acked: set[str] = set()
        for e in self.raw:
            if e.get("type") == "alert":
                last[str(e.get("id"))] = e
                if e.get("state") == "acknowledged":
                    acked.add(str(e.get("id")))
        rows = [{
            "onset": float(e["onset"]),
            "duration": math.nan if e.get("end") is None else float(e["end"]) - float(e["onset"]),
            "code": e["code"], "kind": e.get("kind"), "priority": e.get("priority"),
            "state": e.get("state"), "acknowledged": i in acked, "value": e.get("value"),
            "message": e.get("message", ""), "channels": ",".join(e.get("channels") or []),
            "id": i,
        } for i, e in last.items()]
        cols = ["onset", "duration", "code", "kind", "priority", "state", "acknowledged",
                "value", "message", "channels", "id"]
        return pd.DataFrame(rows, columns=cols).sort_values("onset", ignore_index=True)

    @property
    def apnea_minutes(self) -> pd.DataFrame:
        """One row per minute the apnea classifier scored or abstained on: minute, start, prob,
        apnea (None where it abstained), model (``spo2_hr`` or ``hr``); comparable with a
        ``*.minutes.csv`` of expert labels minute by minute."""
        rows = [{"minute": int(e["minute"]), "start": float(e["start"]), "prob": e.get("prob"),
                 "apnea": e.get("apnea"), "model": e.get("model")}
                for e in self.raw if e.get("type") == "apnea_minute"]
        return pd.DataFrame(rows, columns=["minute", "start", "prob", "apnea", "model"])

    # ---- statistics and pictures --------------------------------------------------------------

    def statistics(self, source: str = "engine") -> pd.Series:
        """Sleep statistics (``report.statistics.DEFINITIONS``) of the engine's causal stages
        (``source="engine"``) or of the file's expert stages (``"expert"``), with the event
        statistics of the night."""
        hyp = self.expert if source == "expert" else self.hypnogram
        if hyp is None:
            raise RecordingError(f"{self.info.name} has no expert stage annotations")
        stats = hyp.statistics()
        stats.update(event_statistics(self.raw, spo2=self.spo2, hr=self.hr, stages=hyp.stages,
                                      epoch_s=hyp.epoch_s, cardiac_s=self.cardiac_s))
        return pd.Series(stats, name=self.info.name, dtype="float64")

    def statistics_table(self, source: str = "engine") -> pd.DataFrame:
        """The statistics with their unit and definition, one row each."""
        s = self.statistics(source)
        return pd.DataFrame({"value": s, "unit": [DEFINITIONS[k][0] for k in s.index],
                             "definition": [DEFINITIONS[k][1] for k in s.index]})

    def event_counts(self) -> pd.DataFrame:
        """Scored events and alarm onsets per code (alarms split by kind)."""
        ev = self.events.groupby("code").size().rename("count").reset_index()
        ev.insert(0, "what", "event")
        al = self.alarms
        al = al.groupby(["kind", "code"]).size().rename("count").reset_index()
        al = al.rename(columns={"kind": "what"})
        al["what"] = al["what"].astype(str) + " alarm"
        return pd.concat([ev, al], ignore_index=True)

    def validity(self) -> pd.DataFrame:
        """The model's real-data validity table for this night: per staging path, the classes it
        may claim, its held-out figures, whether this recording fed it, epochs staged by it."""
        return validity_table(self)

    def minute_validity(self) -> pd.DataFrame:
        """Per apnea-minute model that scored this night: the real-data figures its minutes
        cite, the minutes it scored and those it did not."""
        return minute_validity(self)

    def plot(self) -> Any:
        """A matplotlib Figure: hypnogram with confidence, SpO2 and heart-rate trends with
        events and alarms marked."""
        from sleepstream.report.plots import night_figure

        return night_figure(self)

    def report(self, out: str | Path) -> Path:
        """Write the one-page night report (``.html`` self-contained, or ``.pdf``)."""
        from sleepstream.report.render import write_report

        return write_report(self, Path(out))


def expert_hypnogram(recording: Recording, epoch_s: float = 30.0) -> Hypnogram | None:
    """The file's scored stages (Sleep-EDF, SHHS, ... annotations); "?" and movement time are
    epochs without a stage. None when the file scores no stage."""
    periods = [(a.onset, a.duration, parse_stage(a.text)) for a in recording.annotations
               if parse_stage(a.text) is not None or _unscored_period(a.text)]
    return Hypnogram.from_annotations(periods, epoch_s=epoch_s, start=recording.start)


def _unscored_period(text: str) -> bool:
    key = text.strip().lower()
    return key in ("sleep stage ?", "movement time", "sleep stage mt") or key.startswith("unscored")


def trend(recording: Recording, modality: str) -> Trend | None:
    """1-s means of the first signal of ``modality``, NaN where no valid, plausible sample."""
    sig = next((s for s in recording.signals if s.spec.modality == modality), None)
    if sig is None:
        return None
    n = math.floor(recording.duration + 1e-9)
    lo, hi = VALID_RANGES.get(modality, (None, None))
    x = sig.data.astype(np.float64)
    ok = sig.valid & np.isfinite(x)
    if lo is not None:
        ok &= x >= lo
    if hi is not None:
        ok &= x <= hi
    sec = np.minimum((np.arange(x.size) / sig.spec.fs).astype(np.int64), max(n - 1, 0))
    total = np.bincount(sec[ok], weights=x[ok], minlength=n)[:n]
    count = np.bincount(sec[ok], minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _cardiac_seconds(recording: Recording) -> float | None:
    sig = next((s for s in recording.signals if s.spec.modality in ("ecg", "ppg")), None)
    return None if sig is None else float(sig.valid.sum()) / sig.spec.fs


def _channels(recording: Recording) -> tuple[Channel, ...]:
    return tuple(Channel(s.label, s.spec.modality, s.spec.fs, s.spec.unit)
                 for s in recording.signals)


def _parse_start(text: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _last_time(events: Iterable[Event]) -> float:
    end = 0.0
    for e in events:
        if e.get("type") == "stage":
            end = max(end, float(e["epoch_start"]) + float(e["epoch_s"]))
        for key in ("t", "end", "onset"):
            v = e.get(key)
            if isinstance(v, int | float):
                end = max(end, float(v))
    return end
