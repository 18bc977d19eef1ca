"""Tokenizer frames cut for a whole replay block at once equal those cut second by second (the
live path), for every modality of the shipped model, across NaN and invalid samples."""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR, load_model_files
from sleepstream.engine.inference.tokenizer_runtime import new_state, normalize, push_seconds

FILES = load_model_files(DEFAULT_MODEL_DIR)


def _signal(rng: np.random.Generator, m: str, seconds: int) -> tuple[np.ndarray, np.ndarray]:
    spec = FILES.tokenizers[m]
    x = (rng.normal(size=seconds * spec.fs) * spec.scale * 3 + spec.center).astype(np.float32)
    x[rng.random(x.size) < 0.05] = np.nan
    valid = rng.random(x.size) > 0.2
    valid[spec.fs * 3 : spec.fs * 6] = False  # a dropout of three whole seconds
    return x, valid


@pytest.mark.parametrize("m", FILES.modalities)
def test_block_frames_equal_second_by_second(m: str) -> None:
    spec = FILES.tokenizers[m]
    rng = np.random.default_rng(len(m))
    x, valid = _signal(rng, m, 45)
    block, live = new_state(spec), new_state(spec)
    parts = [push_seconds(spec, block, x[a : a + 30 * spec.fs], valid[a : a + 30 * spec.fs])
             for a in (0, 30 * spec.fs)]
    frames = np.concatenate([p[0] for p in parts])
    present = np.concatenate([p[1] for p in parts])
    one = [push_seconds(spec, live, x[i * spec.fs : (i + 1) * spec.fs],
                        valid[i * spec.fs : (i + 1) * spec.fs]) for i in range(45)]
    np.testing.assert_array_equal(frames, np.concatenate([o[0] for o in one]))
    np.testing.assert_array_equal(present, np.concatenate([o[1] for o in one]))
    np.testing.assert_array_equal(block.history, live.history)
    assert frames.shape == (45, 2, spec.frame) and frames.dtype == np.float32


@pytest.mark.parametrize("m", ["eeg", "spo2"])
def test_frame_is_the_last_context_of_normalised_samples(m: str) -> None:
    """Frame i holds the ``frame`` normalised samples (and valid mask) ending with second i,
    zeros before the stream began."""
    spec = FILES.tokenizers[m]
    x, valid = _signal(np.random.default_rng(3), m, 12)
    frames, present = push_seconds(spec, new_state(spec), x, valid)
    xn, ok = normalize(spec, x, valid)
    pad = spec.frame - spec.fs
    sig = np.concatenate([np.zeros((2, pad), np.float32), np.stack([xn, ok])], 1)
    for i in range(12):
        np.testing.assert_array_equal(frames[i], sig[:, i * spec.fs : i * spec.fs + spec.frame])
    np.testing.assert_array_equal(present, ok.reshape(12, spec.fs).mean(1) >= 0.5)


def test_no_whole_second_gives_no_frame() -> None:
    spec = FILES.tokenizers["eeg"]
    state = new_state(spec)
    frames, present = push_seconds(spec, state, np.zeros(spec.fs - 1, np.float32),
                                   np.ones(spec.fs - 1, bool))
    assert frames.shape == (0, 2, spec.frame) and present.shape == (0,)
    assert not state.history.any()
