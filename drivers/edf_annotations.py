"""Stages, scored events and alarms out as EDF+ annotations (an annotation-only EDF+ file).

The file has the recording's start date and time, and onsets in seconds from its first sample,
so EDFbrowser (File > Import annotations) and MNE (``mne.read_annotations`` then
``raw.set_annotations``) show them over the original signals, the way Sleep-EDF ships its
``*-Hypnogram.edf`` files. Texts:

- stage events: ``Sleep stage W|N1|N2|N3|R`` for 30 s (``Sleep stage ?`` where the engine
  abstained); a revision replaces the first estimate of its epoch;
- scored events (``"type": "event"``): a plain name (``Oxygen desaturation >= 3 %``, ``Apnea``...);
- alarms: ``Alarm <kind> <priority> <code>: <message>`` from onset to end (one per alarm id, its
  last transition; an alarm still active at the end lasts 0 s).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import edfio

from sleepstream.engine.errors import SinkError
from sleepstream.engine.protocols import Event
from sleepstream.engine.sinks import SinkFailure

log = logging.getLogger(__name__)

STAGE_TEXT = {"W": "W", "N1": "N1", "N2": "N2", "N3": "N3", "REM": "R"}
EVENT_TEXT = {
    "desat3": "Oxygen desaturation >= 3 %", "desat4": "Oxygen desaturation >= 4 %",
    "apnea": "Apnea", "hypopnea": "Hypopnea", "arousal": "Arousal",
    "af": "Atrial fibrillation",
}
MAX_TEXT = 200  # characters per annotation (EDF+ allows more; viewers show one line)


def to_annotations(events: Iterable[Mapping[str, Any]]) -> list[edfio.EdfAnnotation]:
    """The EDF+ annotations of a stream of engine events, sorted by onset."""
    stages: dict[float, tuple[float, str]] = {}
    alarms: dict[str, Mapping[str, Any]] = {}
    out: list[edfio.EdfAnnotation] = []
    for e in events:
        kind = e.get("type")
        if kind == "stage":
            text = STAGE_TEXT.get(str(e.get("stage")), "?")
            stages[float(e["epoch_start"])] = (float(e["epoch_s"]), f"Sleep stage {text}")
        elif kind == "event":
            onset = float(e["onset"])
            end = e.get("end")
            code = str(e.get("code"))
            out.append(edfio.EdfAnnotation(
                onset, None if end is None else max(0.0, float(end) - onset),
                EVENT_TEXT.get(code, code.replace("_", " ").capitalize())))
        elif kind == "alert":
            alarms[str(e.get("id"))] = e
    out += [edfio.EdfAnnotation(t, d, text) for t, (d, text) in stages.items()]
    for e in alarms.values():
        onset = float(e["onset"])
        end = e.get("end")
        text = (f"Alarm {e.get('kind')} {e.get('priority')} {e.get('code')}: "
                f"{e.get('message', '')}")[:MAX_TEXT]
        out.append(edfio.EdfAnnotation(
            onset, 0.0 if end is None else max(0.0, float(end) - onset), text))
    return sorted(out, key=lambda a: (a.onset, a.text))


def write_annotations(
    path: str | Path,
    events: Iterable[Mapping[str, Any]],
    *,
    start: dt.datetime | None = None,
    like: str | Path | None = None,
) -> int:
    """Write ``events`` as an annotation-only EDF+ file; returns the number of annotations.

    The header's start date and time come from ``like`` (the replayed EDF file, copied as it is,
    anonymised or not) or else from ``start``; with neither, the start is anonymised."""
    path = Path(path)
    anns = to_annotations(events)
    if not anns:  # EDF+ needs at least one annotation; say that nothing was scored
        anns = [edfio.EdfAnnotation(0.0, None, "sleepstream: no events")]
    patient, recording, starttime = _header(start, like)
    edf = edfio.Edf([], patient=patient, recording=recording, starttime=starttime,
                    annotations=anns)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        edf.write(path)
    except OSError as exc:
        raise SinkError(f"cannot write EDF+ annotations to {path}: {exc}") from exc
    return len(anns)


def _header(
    start: dt.datetime | None, like: str | Path | None
) -> tuple[edfio.Patient | None, edfio.Recording | None, dt.time | None]:
    if like is not None:
        try:
            src = edfio.read_edf(like)
            return (edfio.Patient._from_str(src.local_patient_identification),
                    edfio.Recording._from_str(src.local_recording_identification),
                    src.starttime)
        except Exception as exc:  # an unreadable header: fall back to ``start``
            log.warning("%s: header not copied (%s); using the run's start time", like, exc)
    if start is None:
        return None, None, None
    return None, edfio.Recording(startdate=start.date()), start.time().replace(microsecond=0)


class EdfAnnotationSink(SinkFailure):
    """Keeps the events of a run and writes them as EDF+ annotations when the run ends; a write
    that fails raises ``SinkError`` and is reported (``SinkFailure``).

    Without ``start`` or ``like``, the start is the one the run's first ``status`` event gives
    (the live engine's wall-clock origin)."""

    def __init__(self, path: str | Path, *, start: dt.datetime | None = None,
                 like: str | Path | None = None) -> None:
        self.path = Path(path)
        self.start = start
        self.like = like
        self.events: list[Event] = []
        self.written = 0

    async def emit(self, event: Event) -> None:
        if event.get("type") in ("stage", "event", "alert"):
            self.events.append(event)
        elif event.get("type") == "status" and self.start is None and event.get("start"):
            try:
                self.start = dt.datetime.fromisoformat(str(event["start"]))
            except ValueError:
                log.warning("status start %r is not an ISO time", event["start"])

    async def aclose(self) -> None:
        try:
            self.written = write_annotations(self.path, self.events, start=self.start,
                                             like=self.like)
        except SinkError as exc:
            raise self._fail(exc, "EDF+ annotations lost") from exc
        log.info("%d EDF+ annotations written to %s", self.written, self.path)


def sink_from_config(options: Mapping[str, Any]) -> EdfAnnotationSink:
    return EdfAnnotationSink(options["path"])
