"""Runtime side of the model files: the manifest, and streaming tokenizers on onnxruntime.

A model directory holds ``runtime.json`` (shapes, normalization, SHA-256 of every file),
``tokenizer_<modality>.onnx`` and ``step.onnx``. Nothing here imports torch.

Tokenizing is streaming: each modality keeps the last ``ctx_s`` seconds of normalized samples and
their valid mask (a fixed-size history); each new second completes one encoder frame. Cutting
the frames of a whole window at once gives the same frames, hence the same codes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from sleepstream.engine.errors import SleepstreamError
from sleepstream.engine.types import BoolArray, F32Array

CLIP = 8.0
DEFAULT_MODEL_DIR = (
    Path(__file__).resolve().parents[1] / "models" / "checkpoints" / "sleepstream-v1"
)
I64Array = npt.NDArray[np.int64]


class ModelFilesError(SleepstreamError):
    """Model runtime files missing, of another version, or failing their checksum."""


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


def load_model_files(root: str | Path = DEFAULT_MODEL_DIR, *, verify: bool = True) -> ModelFiles:
    root = Path(root)
    path = root / "runtime.json"
    if not path.is_file():
        raise ModelFilesError(
            f"{path}: missing; train a model (sleepstream train stage) or point to one"
        )
    man = json.loads(path.read_text())
    if man.get("version") != 1:
        raise ModelFilesError(f"{path}: runtime version {man.get('version')}, this engine reads 1")
    if verify:
        for name, digest in man["sha256"].items():
            f = root / name
            if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != digest:
                raise ModelFilesError(
                    f"{f}: missing or checksum mismatch; re-install the model files"
                )
    cfg = man["config"]
    model = cfg["model"]
    specs = {
        t["modality"]: TokenizerSpec(
            t["modality"],
            int(t["fs"]),
            int(t["ctx_s"]),
            int(t["levels"]),
            float(t["center"]),
            float(t["scale"]),
        )
        for t in cfg["tokenizers"]
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


def normalize(spec: TokenizerSpec, data: F32Array, valid: BoolArray) -> tuple[F32Array, F32Array]:
    """Physical samples -> (clipped normalized values with 0 where invalid, valid as 0/1)."""
    ok = valid & np.isfinite(data)
    with np.errstate(invalid="ignore"):
        xn = np.clip((data - spec.center) / spec.scale, -CLIP, CLIP)
    return np.where(ok, xn, 0).astype(np.float32), ok.astype(np.float32)


@dataclass(slots=True)
class TokenizerState:
    """History of one modality: (2, frame) normalized values and valid mask; the last ``fs``
    columns are the most recent second."""

    history: F32Array


def new_state(spec: TokenizerSpec) -> TokenizerState:
    return TokenizerState(np.zeros((2, spec.frame), np.float32))


def reset(state: TokenizerState) -> None:
    state.history[:] = 0


def push_seconds(
    spec: TokenizerSpec, state: TokenizerState, data: F32Array, valid: BoolArray
) -> tuple[F32Array, BoolArray]:
    """Append n whole seconds (n*fs samples) -> their frames (n, 2, frame) and presence (n,)."""
    fs = spec.fs
    n = len(data) // fs
    xn, ok = normalize(spec, data[: n * fs], valid[: n * fs])
    sig = np.concatenate([state.history[:, fs:], np.stack([xn, ok])], 1)  # (2, ctx*fs + n*fs)
    idx = np.arange(n)[:, None] * fs + np.arange(spec.frame)[None, :]  # (n, frame)
    frames = sig[:, idx].transpose(1, 0, 2)  # (n, 2, frame)
    if n:
        state.history[:] = frames[-1]
    present = ok.reshape(n, fs).mean(1) >= 0.5
    return np.ascontiguousarray(frames), present


class TokenizerRuntime:
    """onnxruntime encoders of every modality: frames (n, 2, frame) -> codes (n, Q)."""

    def __init__(self, files: ModelFiles, threads: int = 1) -> None:
        self.files = files
        self._sessions = {m: session(p, threads) for m, p in files.tokenizer_files.items()}

    def encode(self, modality: str, frames: F32Array) -> I64Array:
        if len(frames) == 0:
            return np.zeros((0, self.files.levels), np.int64)
        out = self._sessions[modality].run(None, {"frames": frames.astype(np.float32)})[0]
        return np.asarray(out, dtype=np.int64)

    def encode_window(
        self, modality: str, data: F32Array, valid: BoolArray
    ) -> tuple[I64Array, BoolArray]:
        """A whole window in one call (fresh history): codes (T, Q), presence (T,)."""
        spec = self.files.tokenizers[modality]
        frames, present = push_seconds(spec, new_state(spec), data, valid)
        return self.encode(modality, frames), present
