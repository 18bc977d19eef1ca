"""The shipped EEG spectral stage model: verified loading; the live EEG path on generated EEG."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR, ModelFilesError
from sleepstream.engine.inference.spectral import summarize
from sleepstream.engine.inference.spectral_features import (
    base_vectors,
    new_state,
    night_features,
    push,
)
from sleepstream.engine.inference.spectral_model import CLASS_SETS, load_spectral_model
from sleepstream.engine.inference.spectral_staging import epoch_probs, new_spectral_state, write
from sleepstream.engine.protocols import ChannelBlock

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "spectral.json").exists(), reason="no shipped spectral model"
)


def _eeg(rng: np.random.Generator, fs: float, seconds: int, slow: float) -> np.ndarray:
    t = np.arange(int(seconds * fs)) / fs
    x = slow * np.sin(2 * np.pi * 1.2 * t) + 10 * np.sin(2 * np.pi * 10 * t)
    return (x + rng.normal(scale=6.0, size=t.size)).astype(np.float32)  # microvolts


def test_model_loads_verified_and_rejects_a_changed_file(tmp_path: Path) -> None:
    model = load_spectral_model(DEFAULT_MODEL_DIR)
    assert set(model.heads) == {"full", "no_gamma"}
    assert all(h.temperature > 0 for h in model.heads.values())
    for subset in ("eeg", "eeg_below_100hz", "tokens"):
        assert model.classes_for(subset) in (*CLASS_SETS, "none")
    copy = tmp_path / "m"
    copy.mkdir()
    for name in ("spectral.json", "spectral.npz"):
        shutil.copy(DEFAULT_MODEL_DIR / name, copy / name)
    raw = bytearray((copy / "spectral.npz").read_bytes())
    raw[-100] ^= 0xFF
    (copy / "spectral.npz").write_bytes(bytes(raw))
    with pytest.raises(ModelFilesError):
        load_spectral_model(copy)


def test_streamed_features_equal_the_night_loop() -> None:
    model = load_spectral_model(DEFAULT_MODEL_DIR)
    rng = np.random.default_rng(3)
    summ = summarize(np.stack([_eeg(rng, 100.0, 30, 40) for _ in range(6)]) * 1e-6, 100.0)
    base = base_vectors(summ, 100.0)
    st = new_state(model.prior)
    np.testing.assert_array_equal(np.stack([push(st, b) for b in base]),
                                  night_features(base, model.prior))


@pytest.mark.parametrize("fs", [256.0, 50.0])
def test_live_eeg_path_stages_each_epoch(fs: float) -> None:
    model = load_spectral_model(DEFAULT_MODEL_DIR)
    state = new_spectral_state(model)
    rng = np.random.default_rng(int(fs))
    for epoch in range(4):
        x = _eeg(rng, fs, 30, 80.0 if epoch >= 2 else 5.0)
        for part in np.array_split(np.arange(x.size), 7):  # blocks of uneven length
            write(state, ChannelBlock("C4-M1", "eeg", fs, epoch * 30 + part[0] / fs,
                                      x[part], np.ones(part.size, bool)))
        p, used, subset = epoch_probs(state, epoch * 30.0)
        assert p is not None and used == ("C4-M1",)
        assert p.shape == (5,) and abs(p.sum() - 1) < 1e-9
        assert subset == ("eeg" if fs >= 100 else "eeg_below_100hz")
    p, used, _ = epoch_probs(state, 120.0)  # nothing written for this epoch: no claim
    assert p is None and used == ()


def _blocks(rng: np.random.Generator, with_eeg: bool, seconds: int = 60):  # type: ignore[no-untyped-def]
    from sleepstream.engine.protocols import Block

    for t in range(0, seconds, 10):
        hr = np.full(10, 60.0, np.float32) + rng.normal(0, 1, 10).astype(np.float32)
        native = {"HR": ChannelBlock("HR", "hr", 1.0, float(t), hr, np.ones(10, bool))}
        model = dict(native)
        if with_eeg:
            x = _eeg(rng, 256.0, 10, 40.0)
            native["C4-M1"] = ChannelBlock("C4-M1", "eeg", 256.0, float(t), x,
                                           np.ones(x.size, bool))
            xm = x[:: 256 * 10 // 1000][:1000]  # crude 100 Hz feed for the token path
            model["C4-M1"] = ChannelBlock("C4-M1", "eeg", 100.0, float(t), xm,
                                          np.ones(xm.size, bool))
        yield Block("bed", float(t), float(t + 10), native, model, frozenset())


@pytest.mark.parametrize("with_eeg", [True, False])
def test_stage_events_name_the_classes_of_the_validity_table(with_eeg: bool) -> None:
    from sleepstream.engine.inference.staging import StagingProcessor
    from sleepstream.engine.types import StageEstimate

    proc = StagingProcessor("bed")
    assert proc.spectral is not None
    out = [e for b in _blocks(np.random.default_rng(1), with_eeg) for e in proc.process(b)]
    stages = [e for e in out if isinstance(e, StageEstimate)]
    assert [s.epoch_start for s in stages] == [0.0, 30.0]
    for s in stages:
        ev = s.to_event()
        if with_eeg:
            assert ev["classes"] == list(CLASS_SETS[proc.spectral.classes_for("eeg")])
            assert ev["stage"] in ev["classes"] and "eeg" in ev["modalities"]
        else:  # the token path has no real-data figure: it abstains
            assert proc.spectral.classes_for("tokens") == "none"
            assert ev["stage"] is None and ev["classes"] == [] and ev["confidence"] == 0.0
            assert ev["probs"] == {}  # an abstaining stage carries no probabilities


def test_validity_table_names_classes_and_calibration_per_modality_subset() -> None:
    """Every subset of the shipped table names the class set it claims, the modalities it
    covers and the path; the EEG subsets carry their held-out figures, better than the
    majority class, and an expected calibration error <= 0.05 for one and two channels."""
    model = load_spectral_model(DEFAULT_MODEL_DIR)
    assert set(model.validity) == {"eeg", "eeg_below_100hz", "tokens"}
    for subset, entry in model.validity.items():
        assert entry["classes"] in (*CLASS_SETS, "none")
        assert entry["modalities"] and entry["path"] and entry["source"]
        if subset == "tokens":
            continue
        assert entry["classes"] != "none"
        assert entry["accuracy"] > entry["majority_accuracy"] and entry["kappa"] > 0.2
        assert 0 <= entry["ece"] <= 0.05 and 0 <= entry["ece_two_channels"] <= 0.05
        assert "Fpz-Cz" in entry["montages"]
