"""Checkpoints round-trip without pickle and refuse altered files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sleepstream.models import checkpoint


def test_round_trip_and_checksum(tmp_path: Path) -> None:
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], np.int64)}
    path = tmp_path / "x.npz"
    digest = checkpoint.save(path, "model", {"d": 8, "mods": ["hr"]}, arrays, {"note": "t"})
    ck = checkpoint.load(path, kind="model")
    assert (
        ck.sha256 == digest and ck.config == {"d": 8, "mods": ["hr"]} and ck.meta == {"note": "t"}
    )
    for k, v in arrays.items():
        np.testing.assert_array_equal(ck.arrays[k], v)
    with pytest.raises(checkpoint.CheckpointError, match="expected"):
        checkpoint.load(path, kind="tokenizer")
    # alter one stored value: same file layout, different bytes
    bad = dict(arrays, a=arrays["a"] + 1)
    header = np.load(path, allow_pickle=False)["__header__"]
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, __header__=header, **bad)
    with pytest.raises(checkpoint.CheckpointError, match="checksum"):
        checkpoint.load(tmp_path / "bad.npz")


def test_pickle_is_never_used(tmp_path: Path) -> None:
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.save(tmp_path / "o.npz", "model", {}, {"o": np.array([{}], dtype=object)})
    np.savez(tmp_path / "p.npz", __header__=np.array([{"x": 1}], dtype=object))
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(tmp_path / "p.npz")


def test_bundle_round_trip(tiny_model) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    from sleepstream.models import bundle

    root, trained = tiny_model
    loaded = bundle.load(root / "model.npz")
    assert loaded.model is not None and trained.model is not None
    assert loaded.model.cfg == trained.model.cfg
    for k, v in trained.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k])
    assert (root / "model.npz").stat().st_size < 20 * 2**20


def test_half_storage_round_trip(tmp_path: Path) -> None:
    a = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    checkpoint.save(tmp_path / "h.npz", "model", {}, {"a": a, "i": np.arange(3)}, half=True)
    ck = checkpoint.load(tmp_path / "h.npz")
    assert ck.arrays["a"].dtype == np.float32 and ck.arrays["i"].dtype == np.int64
    np.testing.assert_array_equal(ck.arrays["a"], a.astype(np.float16).astype(np.float32))
