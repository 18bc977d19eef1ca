"""Streaming tokenizers on onnxruntime (the model directory is read by ``model_files``).

Tokenizing is streaming: each modality keeps the last ``ctx_s`` seconds of normalized samples and
their valid mask (a fixed-size history); each new second completes one encoder frame. Cutting
the frames of a whole window at once gives the same frames, hence the same codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from sleepstream.engine.inference.model_files import ModelFiles, TokenizerSpec, session
from sleepstream.engine.types import BoolArray, F32Array

CLIP = 8.0
I64Array = npt.NDArray[np.int64]


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
    fs, frame = spec.fs, spec.frame
    n = len(data) // fs
    if n == 0:
        return np.zeros((0, 2, frame), np.float32), np.zeros(0, bool)
    xn, ok = normalize(spec, data[: n * fs], valid[: n * fs])
    keep = frame - fs  # history samples that precede the first new second
    sig = np.empty((2, keep + n * fs), np.float32)  # (2, ctx*fs + n*fs)
    sig[:, :keep] = state.history[:, fs:]
    sig[0, keep:], sig[1, keep:] = xn, ok
    frames = sliding_window_view(sig, frame, axis=1)[:, ::fs]  # (2, n, frame): second i at i*fs
    out = np.ascontiguousarray(frames.transpose(1, 0, 2))
    state.history[:] = out[-1]
    present = ok.reshape(n, fs).mean(1) >= 0.5
    return out, present


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
