"""A configured model that does not load is an error (fail closed), never a run without stages;
the banner names the manifest actually loaded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sleepstream.engine.app.compose import choose_model
from sleepstream.engine.config import parse_config
from sleepstream.engine.errors import ModelError
from sleepstream.engine.inference import model_files
from sleepstream.engine.inference.model_files import (
    DEFAULT_MODEL_DIR,
    SHIPPED_MODEL_SHA256,
    model_sha256,
)


def _model_copy(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir(parents=True)
    for f in DEFAULT_MODEL_DIR.iterdir():
        if f.suffix in (".onnx", ".json", ".npz"):
            (root / f.name).symlink_to(f)  # replaced, never written through, by each case
    return root


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _choose(root: Path) -> str:
    return choose_model(parse_config({"model": {"checkpoint": str(root)}})).description


def _rehash(root: Path) -> None:
    man = json.loads((root / "runtime.json").read_text())
    for name in man["sha256"]:
        man["sha256"][name] = hashlib.sha256((root / name).read_bytes()).hexdigest()
    _replace(root / "runtime.json", json.dumps(man).encode())


def test_corrupt_or_missing_files_fail_closed_in_one_line(tmp_path: Path) -> None:
    cases = {
        "corrupt step": lambda r: _replace(r / "step.onnx", b"\x00garbage" * 100),
        "corrupt step, re-hashed manifest": lambda r: (
            _replace(r / "step.onnx", b"\x00garbage" * 100), _rehash(r)),
        "missing tokenizer": lambda r: (r / "tokenizer_eeg.onnx").unlink(),
        "corrupt EEG spectral model": lambda r: _replace(r / "spectral.npz", b"PK\x03\x04" * 9),
        "missing EEG spectral model": lambda r: (r / "spectral.npz").unlink(),
        "broken runtime.json": lambda r: _replace(r / "runtime.json", b"{\xff not json"),
        "runtime.json a list": lambda r: _replace(r / "runtime.json", b"[1, 2]"),
        "runtime.json without config": lambda r: _replace(
            r / "runtime.json", json.dumps({"version": 1, "sha256": {}}).encode()),
        "a listed file outside the folder": lambda r: _replace(
            r / "runtime.json", json.dumps({"version": 1, "sha256": {"../x": "0"}}).encode()),
    }
    for i, (name, damage) in enumerate(cases.items()):
        root = _model_copy(tmp_path / str(i))
        damage(root)
        with pytest.raises(ModelError) as info:
            _choose(root)
        assert "\n" not in str(info.value) and str(root) in str(info.value), name


def test_the_banner_shows_the_model_actually_loaded(tmp_path: Path) -> None:
    root = _model_copy(tmp_path)
    _rehash(root)  # a re-written manifest: same files, other bytes
    loaded = model_sha256(root)
    assert loaded != SHIPPED_MODEL_SHA256
    banner = _choose(root)
    assert f"model sha256 {loaded[:12]}" in banner and "pinned" not in banner


def test_the_pin_is_the_shipped_model_on_disk() -> None:
    digest = model_sha256(DEFAULT_MODEL_DIR)
    assert digest == SHIPPED_MODEL_SHA256, (
        f"models/checkpoints/sleepstream-v2 changed: set SHIPPED_MODEL_SHA256 = {digest!r} in "
        "engine/inference/model_files.py if the re-export is intended")
    assert f"model sha256 {digest[:12]} (the pinned sleepstream-v2)" in _choose(DEFAULT_MODEL_DIR)


def test_the_shipped_directory_tampered_with_and_re_hashed_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = _model_copy(tmp_path / "shipped")
    monkeypatch.setattr(model_files, "DEFAULT_MODEL_DIR", shipped)
    assert "(the pinned sleepstream-v2)" in _choose(shipped)  # untouched: it loads
    step = (DEFAULT_MODEL_DIR / "step.onnx").read_bytes()
    _replace(shipped / "step.onnx", step[:-1] + bytes([step[-1] ^ 1]))  # one bit flipped
    _rehash(shipped)
    with pytest.raises(ModelError, match="pinned") as info:
        _choose(shipped)
    assert "\n" not in str(info.value)
