"""The engine's EEG path next to YASA on the same epochs (``evaluate staging``'s EEG section):
on the real nap EEG (no expert stages: agreement only) and on a scored EDF+ written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR
from sleepstream.engine.inference.spectral_model import load_spectral_model
from sleepstream.models.eeg_compare import compare, figures

NAP = Path(__file__).resolve().parents[2] / "../shared/data/nap-eeg"


def test_real_nap_eeg_engine_and_yasa_on_the_same_epochs() -> None:
    pytest.importorskip("yasa")
    records = compare(NAP, load_spectral_model(DEFAULT_MODEL_DIR))
    assert [r.name for r in records] == ["nap-eeg"]
    r = records[0]
    assert r.truth is None and len(r.engine) == 50  # 25 min, 30-s epochs
    assert r.yasa is not None and len(r.yasa) == 50 and r.yasa_channel == "EEG C4"
    assert (r.engine >= 0).all() and (r.yasa >= 0).all()
    assert set(r.engine_channels) == {f"EEG {c}" for c in ("F3", "F4", "C3", "C4", "O1", "O2")}
    figs = figures(records)
    assert "engine" not in figs and "yasa" not in figs  # nothing scored by an expert
    assert figs["engine_vs_yasa"]["epochs"] == 50
    agree = float((r.engine == r.yasa).mean())
    assert figs["engine_vs_yasa"]["accuracy"] == pytest.approx(agree, abs=1e-4)
    assert sum(figs["yasa_shares"].values()) == pytest.approx(1.0, abs=1e-3)


def test_scored_recording_gets_both_figures_against_the_experts(tmp_path: Path) -> None:
    pytest.importorskip("yasa")
    from edfio import Edf, EdfAnnotation, EdfSignal

    fs, minutes = 100, 10
    rng = np.random.default_rng(0)
    t = np.arange(minutes * 60 * fs) / fs
    deep = t >= 300  # wake-like then slow-wave-like halves
    x = np.where(deep, 60 * np.sin(2 * np.pi * 1.0 * t), 8 * np.sin(2 * np.pi * 10 * t))
    x = x + rng.normal(scale=5.0, size=t.size)
    sig = EdfSignal(x, fs, label="EEG C4-M1", physical_dimension="uV",
                    physical_range=(-500, 500))
    ann = [EdfAnnotation(30.0 * k, 30.0, "Sleep stage 3" if k >= 10 else "Sleep stage W")
           for k in range(minutes * 2)]
    Edf([sig], annotations=ann).write(tmp_path / "scored.edf")
    records = compare(tmp_path, load_spectral_model(DEFAULT_MODEL_DIR))
    assert records[0].truth is not None and (records[0].truth >= 0).all()
    figs = figures(records)
    assert figs["scored_records"] == ["scored"]
    for key in ("engine", "yasa", "engine_vs_yasa"):
        assert figs[key]["epochs"] == minutes * 2
    truth, eng = records[0].truth, records[0].engine
    assert figs["engine"]["accuracy"] == pytest.approx(float((truth == eng).mean()), abs=1e-4)
