"""A synthetic night as a file: EDF+ round trip, sidecar, determinism and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sleepstream.drivers.edf import read_recording
from sleepstream.engine.app.cli import main as cli_main
from sleepstream.engine.channel_map import modality_of
from sleepstream.simulators.synthetic.night import simulate_night, write_night
from sleepstream.simulators.synthetic.profiles import PROFILES

EXPECTED = {
    "EEG Fpz-Cz": ("eeg", 100.0, "uV"), "EEG Pz-Oz": ("eeg", 100.0, "uV"),
    "EOG horizontal": ("eog", 100.0, "uV"), "EMG chin": ("emg", 100.0, "uV"),
    "ECG": ("ecg", 200.0, "mV"), "Pleth": ("ppg", 25.0, "a.u."), "HR": ("hr", 1.0, "bpm"),
    "Resp airflow": ("resp", 25.0, "L/s"), "Resp thorax": ("resp", 25.0, "mL"),
    "Resp abdomen": ("resp", 25.0, "mL"), "SpO2": ("spo2", 1.0, "%"),
    "Acc X": ("acc", 25.0, "g"), "Acc Y": ("acc", 25.0, "g"), "Acc Z": ("acc", 25.0, "g"),
}


def test_round_trip_through_the_reader(tmp_path: Path) -> None:
    night = simulate_night(PROFILES["osa-moderate"], 1.0, 7)
    path, side = write_night(night, tmp_path / "night.edf")
    rec = read_recording(path)
    assert {s.label for s in rec.signals} == set(EXPECTED)
    for s in rec.signals:
        modality, fs, unit = EXPECTED[s.label]
        assert s.spec.modality == modality == modality_of(s.label).modality  # type: ignore[union-attr]
        assert (s.spec.fs, s.spec.unit) == (fs, unit)
        assert s.data.size == round(3600 * fs) and s.valid.all()
    stages = [st for _, st in rec.stages()]
    assert stages == [("W", "N1", "N2", "N3", "REM")[c] for c in night.stages]
    texts = [a.text for a in rec.annotations]
    for kind in ("Obstructive apnea", "Hypopnea", "Desaturation", "Arousal"):
        assert texts.count(kind) == len(night.events.of(kind))
    ecg = rec.signal("ECG").data
    original = next(c for c in night.channels if c.label == "ECG").data
    assert np.abs(ecg - original).max() < 1e-3  # 16-bit resolution over +-5 mV
    truth = json.loads(side.read_text())
    assert truth["profile"] == "osa-moderate" and truth["seed"] == 7
    assert truth["target_ahi"] == 22.0 and len(truth["stages"]) == night.stages.size
    assert len(truth["events"]) == len(night.events.all())


def test_same_seed_same_night_other_seed_other_night() -> None:
    a = simulate_night(PROFILES["healthy"], 0.5, 11)
    b = simulate_night(PROFILES["healthy"], 0.5, 11)
    c = simulate_night(PROFILES["healthy"], 0.5, 12)
    assert np.array_equal(a.stages, b.stages) and a.events == b.events
    assert np.array_equal(a.channels[0].data, b.channels[0].data)
    assert not np.array_equal(a.channels[0].data, c.channels[0].data)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_profile_generates(name: str) -> None:
    night = simulate_night(PROFILES[name], 0.5, 1)
    assert night.stages.size == 60
    assert all(np.isfinite(c.data).all() for c in night.channels)


def test_cli_writes_night_and_prints_ratio(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    out = tmp_path / "n.edf"
    code = cli_main(["simulate", "synthetic", "--profile", "osa-severe", "--hours", "0.5",
                     "--seed", "3", "--out", str(out), "--json"])
    assert code == 0 and out.exists() and out.with_suffix(".json").exists()
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    assert figures["ratio"] == pytest.approx(0.5 * 3600 / figures["generate_s"], rel=1e-3)
    assert figures["goal_ahi"] == 48.0
    assert any("real time" in line for line in lines)
