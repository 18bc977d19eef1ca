"""The bed hands its processors quality's mask, never the driver's.

Samples the driver called valid but quality rejects (out of the plausible range, NaN, clipped,
a flatline past its window) must reach every detector as invalid, in the native block and in
the resampled model block, and their values must not be usable either (NaN).
"""

from __future__ import annotations

import numpy as np

from sleepstream.engine import quality
from sleepstream.engine.bed import BedState
from sleepstream.engine.types import ChannelSpec, Frame
from tests.engine.recorder import Recorder

SPO2 = ChannelSpec("SpO2", 1.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)
EEG = ChannelSpec("EEG", 100.0, "eeg", "uV", -500.0, 500.0)


def _run(spec: ChannelSpec, x: np.ndarray, valid: np.ndarray) -> tuple[Recorder, np.ndarray]:
    rec = Recorder()
    bed = BedState("b1", hop_s=1.0, ring_s=60.0, processors=(rec,))
    bed.add_channels([spec])
    per = round(spec.fs)
    for a in range(0, x.size, per):
        t = np.arange(a, a + per, dtype=np.float64) / spec.fs
        bed.push(Frame((spec.name,), t, x[a:a + per, None].astype(np.float32),
                       valid[a:a + per, None]))
    # what quality alone says about the same samples
    expected = quality.step(quality.new_state(spec, "b1"), "b1", 0.0, x.astype(np.float32),
                            valid).valid
    return rec, expected


def _native(rec: Recorder, name: str) -> tuple[np.ndarray, np.ndarray]:
    blocks = [b.native[name] for b in rec.blocks if name in b.native]
    return (np.concatenate([c.valid for c in blocks]), np.concatenate([c.data for c in blocks]))


def test_samples_quality_rejects_reach_the_detectors_as_invalid() -> None:
    x = (96.0 + np.arange(120) % 3).astype(np.float32)
    x[30:40] = 30.0  # below the plausible 50 %: the driver still says valid
    x[60:62] = np.nan
    x[80:85] = 0.0  # probe off
    driver = np.ones(x.size, bool)
    driver[100:103] = False  # a gap the driver knows about
    rec, expected = _run(SPO2, x, driver)
    valid, data = _native(rec, "SpO2")
    n = valid.size
    assert n >= 110
    np.testing.assert_array_equal(valid, expected[:n])
    assert not valid[30:40].any() and not valid[60:62].any() and not valid[80:85].any()
    assert not valid[100:103].any() and valid[:30].all() and valid[40:60].all()
    assert np.isnan(data[~valid]).all() and np.isfinite(data[valid]).all()


def test_the_resampled_model_block_carries_the_quality_mask_too() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 20, 3000).astype(np.float32)
    x[1000:1600] = 3.0  # 6 s flat: past EEG's 5-s flatline window, driver says valid
    x[2000:2100] = np.nan
    rec, expected = _run(EEG, x, np.ones(x.size, bool))
    valid, data = _native(rec, "EEG")
    np.testing.assert_array_equal(valid, expected[: valid.size])
    assert not valid[1500:1600].any() and not valid[2000:2100].any()
    assert np.isnan(data[~valid]).all()
    model = [b.model["EEG"] for b in rec.blocks if "EEG" in b.model]
    assert model
    for cb in model:  # resampled rows inside the flat and NaN stretches are invalid, and NaN
        t = cb.t0 + np.arange(cb.data.shape[0]) / cb.fs
        bad = ((t >= 15.2) & (t < 15.9)) | ((t >= 20.1) & (t < 20.9))
        assert not cb.valid[bad].any()
        assert np.isnan(cb.data[~cb.valid]).all()
