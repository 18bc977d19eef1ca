"""A model directory and its manifests: the one place that names, reads and verifies them.

A model directory holds ``runtime.json`` (shapes, normalization, the SHA-256 of every runtime
file), ``tokenizer_<modality>.onnx`` and ``step.onnx``, and optionally the serving form of the
step: ``serving.json`` listing ``step_serving.onnx`` with its SHA-256. Every file a manifest
lists is checked against its digest here, once, before any session opens it; a failure is a
``ModelFilesError`` (a ``ModelError``). Nothing here imports torch.

The shipped model is pinned: ``SHIPPED_MODEL_SHA256`` is the digest of its manifests
(``model_sha256``), so the shipped directory tampered with, manifests re-hashed, is refused; any
other directory is loaded as its own model and the banner shows its hash, never the shipped
model's name. Re-exporting ``models/checkpoints/sleepstream-v2`` means updating that constant
(its test prints the new value).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from sleepstream.engine.errors import ModelError

RUNTIME_MANIFEST = "runtime.json"
SERVING_MANIFEST = "serving.json"
SERVING_FILE = "step_serving.onnx"
RUNTIME_VERSION = 1
SHIPPED_MODEL = "sleepstream-v2"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "checkpoints" / SHIPPED_MODEL
SHIPPED_MODEL_SHA256 = "80706016aae864c59d742708d3e13abad2464e8852369beb0d1e66db8066fbcf"
SPECTRAL_MANIFEST = "spectral.json"  # the EEG spectral model (engine.inference.spectral_model)
MANIFESTS = (RUNTIME_MANIFEST, SPECTRAL_MANIFEST, SERVING_MANIFEST)  # what model_sha256 covers


class ModelFilesError(ModelError):
    """Model runtime files missing, of another version, unreadable or failing their checksum."""


@dataclass(frozen=True, slots=True)
class TokenizerSpec:
    modality: str
    fs: int
    ctx_s: int
    levels: int
    center: float
    scale: float

    @property
    def frame(self) -> int:
        return (self.ctx_s + 1) * self.fs


@dataclass(frozen=True, slots=True)
class ModelFiles:
    """A verified model directory: what its step graph expects and where its files are."""

    root: Path
    modalities: tuple[str, ...]
    tokenizers: dict[str, TokenizerSpec]
    tokenizer_files: dict[str, Path]
    step_file: Path
    n_layer: int
    n_head: int
    head_dim: int
    window: int
    d_model: int
    levels: int
    epoch_s: int
    manifest: dict[str, Any]


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def read_manifest(path: Path, hint: str) -> dict[str, Any]:
    """A manifest's JSON with every file it lists verified against its SHA-256."""
    man = _json(path, hint)
    if not isinstance(man.get("sha256"), dict):
        raise ModelFilesError(f"{path}: not a model manifest (no sha256 table); {hint}")
    for name, digest in man["sha256"].items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            raise ModelFilesError(f"{path}: lists {name!r}, not a file of the model directory")
        f = path.parent / name
        if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise ModelFilesError(f"{f}: missing or checksum mismatch; {hint}")
    return man


def _json(path: Path, hint: str) -> dict[str, Any]:
    try:
        man = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFilesError(f"{path}: unreadable ({type(exc).__name__}); {hint}") from None
    if not isinstance(man, dict):
        raise ModelFilesError(f"{path}: not a model manifest (not a JSON object); {hint}")
    return man


def model_sha256(root: str | Path) -> str:
    """One SHA-256 naming a model directory as it is on disk now: over the digests of its
    manifests (``MANIFESTS``, those present, in that order). Each manifest pins the digest of
    every file it lists, so this hash names every file the engine loads."""
    h = hashlib.sha256()
    for name in MANIFESTS:
        path = Path(root) / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ModelFilesError(f"{path}: unreadable ({exc.strerror})") from None
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


def _check_pin(root: Path) -> None:
    """The shipped directory must hold the shipped model, byte for byte."""
    if root.resolve() != DEFAULT_MODEL_DIR.resolve():
        return
    digest = model_sha256(root)
    if digest != SHIPPED_MODEL_SHA256:
        raise ModelFilesError(
            f"{root}: the shipped model {SHIPPED_MODEL} hashes to {digest[:12]}, not the pinned "
            f"{SHIPPED_MODEL_SHA256[:12]}; its files were changed: re-install the model files")


def describe_loaded(root: str | Path) -> str:
    """What the banner says of a model directory: the hash of what is on disk, and whether it
    is the pinned shipped model."""
    digest = model_sha256(root)
    pinned = f" (the pinned {SHIPPED_MODEL})" if digest == SHIPPED_MODEL_SHA256 else ""
    return f"model sha256 {digest[:12]}{pinned}"


def load_serving(root: Path) -> dict[str, Any] | None:
    """The verified serving manifest of a model directory, or None where there is none."""
    path = root / SERVING_MANIFEST
    if not path.is_file():
        return None
    return read_manifest(path, "run sleepstream export onnx")


def load_model_files(root: str | Path = DEFAULT_MODEL_DIR, *, verify: bool = True) -> ModelFiles:
    root = Path(root)
    path = root / RUNTIME_MANIFEST
    if not path.is_file():
        raise ModelFilesError(
            f"{path}: missing; train a model (sleepstream train stage) or point to one"
        )
    hint = "re-install the model files"
    man = read_manifest(path, hint) if verify else _json(path, hint)
    if verify:
        _check_pin(root)
        if (root / SPECTRAL_MANIFEST).is_file():  # part of the model: a bad file fails closed
            read_manifest(root / SPECTRAL_MANIFEST, hint)
    if man.get("version") != RUNTIME_VERSION:
        raise ModelFilesError(
            f"{path}: runtime version {man.get('version')}, this engine reads {RUNTIME_VERSION}"
        )
    try:
        return _model_files(root, man)
    except (KeyError, TypeError, ValueError, AttributeError, ZeroDivisionError) as exc:
        raise ModelFilesError(f"{path}: malformed manifest ({exc!r}); {hint}") from None


def _model_files(root: Path, man: dict[str, Any]) -> ModelFiles:
    model = man["config"]["model"]
    specs = {
        t["modality"]: TokenizerSpec(
            t["modality"],
            int(t["fs"]),
            int(t["ctx_s"]),
            int(t["levels"]),
            float(t["center"]),
            float(t["scale"]),
        )
        for t in man["config"]["tokenizers"]
    }
    return ModelFiles(
        root=root,
        modalities=tuple(model["modalities"]),
        tokenizers=specs,
        tokenizer_files={m: root / f for m, f in man["tokenizers"].items()},
        step_file=root / man["step"]["file"],
        n_layer=int(model["n_layer"]),
        n_head=int(model["n_head"]),
        head_dim=int(model["d_model"]) // int(model["n_head"]),
        window=int(model["window"]),
        d_model=int(model["d_model"]),
        levels=int(model["levels"]),
        epoch_s=int(model["epoch_s"]),
        manifest=man,
    )
