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
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR


def _model_copy(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    root.mkdir(parents=True)
    for f in DEFAULT_MODEL_DIR.iterdir():
        if f.suffix in (".onnx", ".json"):
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


def test_the_banner_shows_the_manifest_actually_loaded(tmp_path: Path) -> None:
    root = _model_copy(tmp_path)
    _rehash(root)  # a re-written manifest: same files, other bytes
    loaded = hashlib.sha256((root / "runtime.json").read_bytes()).hexdigest()[:12]
    assert f"runtime.json sha256 {loaded}" in _choose(root)
