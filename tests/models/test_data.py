"""Labelled nights from EDF+ folders: slpdb, Sleep-EDF pairs, SHHS/NSRR XML."""

from __future__ import annotations

from pathlib import Path

import edfio
import numpy as np

from sleepstream.models.data import (
    find_recordings,
    load_night,
    load_nights,
    nsrr_stages,
    to_model_rate,
)

NSRR = """<?xml version="1.0" encoding="UTF-8"?>
<PSGAnnotation><ScoredEvents>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Wake|0</EventConcept>
<Start>0</Start><Duration>60.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>Stage 2 sleep|2</EventConcept>
<Start>60</Start><Duration>30.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Stages|Stages</EventType><EventConcept>REM sleep|5</EventConcept>
<Start>90</Start><Duration>30.0</Duration></ScoredEvent>
<ScoredEvent><EventType>Respiratory|Respiratory</EventType>
<EventConcept>Hypopnea|Hypopnea</EventConcept><Start>70</Start><Duration>12</Duration></ScoredEvent>
</ScoredEvents></PSGAnnotation>"""


def _psg(path: Path, seconds: int = 120) -> None:
    rng = np.random.default_rng(0)
    sig = edfio.EdfSignal(rng.normal(0, 20, seconds * 100), 100, label="EEG Fpz-Cz")
    edfio.Edf([sig]).write(path)


def test_nsrr_and_shhs_pairing(tmp_path: Path) -> None:
    (tmp_path / "edfs").mkdir()
    (tmp_path / "xml").mkdir()
    _psg(tmp_path / "edfs" / "shhs1-200001.edf")
    (tmp_path / "xml" / "shhs1-200001-nsrr.xml").write_text(NSRR)
    assert nsrr_stages(tmp_path / "xml" / "shhs1-200001-nsrr.xml") == [
        (0.0, "W"),
        (30.0, "W"),
        (60.0, "N2"),
        (90.0, "REM"),
    ]
    (ref,) = find_recordings(tmp_path)
    night = load_night(ref)
    assert night.stages.tolist() == [0, 0, 2, 4]
    assert night.signals["eeg"][0].shape == (12000,)


def test_sleep_edf_pairing(tmp_path: Path) -> None:
    _psg(tmp_path / "SC4001E0-PSG.edf")
    hyp = edfio.Edf(
        [],
        annotations=[
            edfio.EdfAnnotation(0, 60, "Sleep stage W"),
            edfio.EdfAnnotation(60, 30, "Sleep stage 4"),
            edfio.EdfAnnotation(90, 30, "Sleep stage R"),
        ],
    )
    hyp.write(tmp_path / "SC4001EC-Hypnogram.edf")
    (ref,) = find_recordings(tmp_path)
    assert ref.name == "SC4001E0" and ref.labels is not None
    assert load_night(ref).stages.tolist() == [0, 0, 3, 4]


def test_resampling_keeps_the_mask() -> None:
    x = np.arange(400, dtype=np.float32)
    v = np.ones(400, bool)
    v[100:200] = False
    y, ok = to_model_rate(x, v, 4.0, 1.0, 100)
    assert y.shape == (100,) and not ok[25:50].any() and ok[:25].all() and ok[50:].all()
    y2, ok2 = to_model_rate(
        np.zeros(256 * 3, np.float32), np.ones(256 * 3, bool), 256.0, 100.0, 300
    )
    assert y2.shape == (300,) and ok2.all()


def test_slpdb_heart_rate_nights(data_dir: Path) -> None:
    nights = load_nights(data_dir / "slpdb", include="slp01a,slp14")
    assert [n.name for n in nights] == ["slp01a", "slp14"]
    for n in nights:
        d, v = n.signals["hr"]
        assert d.shape == (n.seconds,) and v.mean() > 0.9
        assert set(np.unique(n.stages)) <= {-1, 0, 1, 2, 3, 4}
        assert (n.stages >= 0).mean() > 0.9
