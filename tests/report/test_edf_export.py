"""EDF+ annotations out: ``replay --edf-annotations`` and the ``edf`` sink, read back with edfio
and MNE; stages read back as the same stages."""

from __future__ import annotations

import datetime as dt

import edfio
import pytest

from sleepstream.drivers.edf import parse_stage, read_recording
from sleepstream.drivers.edf_annotations import EdfAnnotationSink, to_annotations
from sleepstream.engine.app.compose import make_sink
from sleepstream.engine.config import Config, parse_config


def test_replay_writes_annotations_edfio_and_mne_read(short_night, short_replay):
    _, path, events = short_replay
    edf = edfio.read_edf(path)
    source = edfio.read_edf(short_night)
    assert edf.starttime == source.starttime
    assert edf.local_recording_identification == source.local_recording_identification
    stages = [e for e in events if e["type"] == "stage"]
    alarms = {e["id"]: e for e in events if e["type"] == "alert"}
    texts = [a.text for a in edf.annotations]
    got = [(a.onset, parse_stage(a.text)) for a in edf.annotations
           if a.text.startswith("Sleep stage")]
    assert got == [(e["epoch_start"], e["stage"]) for e in stages]  # abstained epochs: "?"
    assert sum(t.startswith("Alarm ") for t in texts) == len(alarms) > 0
    scored = [e for e in events if e["type"] == "event"]
    assert sum(t.startswith("Oxygen desaturation") for t in texts) == len(scored) > 0
    desat = next(e for e in scored if e["code"] == "desat3")
    match = [a for a in edf.annotations
             if a.text == "Oxygen desaturation >= 3 %" and a.onset == desat["onset"]]
    assert match and match[0].duration == pytest.approx(desat["end"] - desat["onset"])
    mne = pytest.importorskip("mne")
    ann = mne.read_annotations(path)
    assert len(ann) == len(edf.annotations)
    assert list(ann.description) == texts
    assert ann.onset[0] == 0.0 and ann.duration[0] == 30.0
    # the annotations file reads as a hypnogram with the project's own reader
    assert [s for _, s in read_recording(path).stages()] == [
        e["stage"] for e in stages if e["stage"] is not None]


async def test_edf_sink_from_config_takes_start_from_status(tmp_path):
    config = parse_config({"sinks": [{"kind": "edf", "path": str(tmp_path / "live.edf")}]})
    sink = make_sink(config.sinks[0], config)
    assert isinstance(sink, EdfAnnotationSink)
    await sink.emit({"type": "status", "bed": "b", "t": 0.0,
                     "start": "2026-03-01T22:15:07.250000+00:00", "message": "m"})
    await sink.emit({"type": "event", "bed": "b", "code": "desat4", "onset": 12.0,
                     "end": 30.5, "value": 88.0, "channels": ["SpO2"]})
    await sink.emit({"type": "stage", "bed": "b", "epoch_start": 0.0, "epoch_s": 30.0,
                     "stage": "N2", "probs": {}, "confidence": 0.9, "modalities": ["eeg"]})
    await sink.aclose()
    edf = edfio.read_edf(tmp_path / "live.edf")
    assert edf.startdate == dt.date(2026, 3, 1) and edf.starttime == dt.time(22, 15, 7)
    assert [(a.onset, a.duration, a.text) for a in edf.annotations] == [
        (0.0, 30.0, "Sleep stage N2"), (12.0, 18.5, "Oxygen desaturation >= 4 %")]


def test_unknown_sink_option_is_a_config_error():
    from sleepstream.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="path"):
        parse_config({"sinks": [{"kind": "edf"}]})
    assert Config().sinks == ()


def test_revision_replaces_first_estimate():
    ev = [{"type": "stage", "epoch_start": 0.0, "epoch_s": 30.0, "stage": "W"},
          {"type": "stage", "epoch_start": 0.0, "epoch_s": 30.0, "stage": "N1",
           "revision": True}]
    assert [a.text for a in to_annotations(ev)] == ["Sleep stage N1"]
