"""The streaming step on onnxruntime with the ring KV cache held in place, slot-major.

The serving graph (``step_serving.onnx``, see ``serving.json``) reads each layer's cache
(B, H, W, Dh) and returns only the step's new key/value rows, which are written here at slot
``pos % W``. When the batch's slots are one contiguous run (the scheduler packs them so), the
cache goes to the graph as a view, without a copy. Model directories without the serving graph
fall back to the full-state ``step.onnx`` (``OnnxStepBackend``), which copies the cache twice
per step.

Where ``serving.json`` also lists the chunk graph (``step_chunk.onnx``), ``step_chunk`` runs T
consecutive seconds of one slot in one call (replay): the graph returns T new rows per layer,
written here at ``(pos + t) % W``; its outputs equal T calls of ``step`` up to float rounding.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from sleepstream.engine.errors import ModelError
from sleepstream.engine.inference.kv_ring import write_rows
from sleepstream.engine.inference.model_files import (
    SERVING_MANIFEST,
    ModelFiles,
    load_serving,
    session,
)
from sleepstream.engine.protocols import InferenceBackend, StepBatch, StepOutput

log = logging.getLogger(__name__)

def slot_index(slots: npt.NDArray[np.int64]) -> slice | npt.NDArray[np.int64]:
    """A slice when ``slots`` is one ascending contiguous run (views, no copies), else itself."""
    n = len(slots)
    if n and slots[-1] - slots[0] == n - 1 and (n == 1 or bool(np.all(np.diff(slots) == 1))):
        return slice(int(slots[0]), int(slots[0]) + n)
    return slots


def providers(device: str) -> list[str]:
    have = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" in have:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRingBackend:
    """``InferenceBackend`` on the serving graph; ``capacity`` KV slots."""

    name = "onnxruntime"

    def __init__(
        self, files: ModelFiles, capacity: int, *, threads: int = 1, device: str = "cpu"
    ) -> None:
        man = load_serving(files.root)
        if man is None:
            raise ModelError(f"{files.root}: no {SERVING_MANIFEST}; run sleepstream export onnx")
        self.files, self.capacity = files, capacity
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        if threads > 1:  # idle pool threads sleep instead of spinning (a shared, loaded CPU)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = str(files.root / man["step"])
        self._sess = ort.InferenceSession(path, opts, providers=providers(device))
        self._outs: list[str] = list(man["outputs"])
        shape = (capacity, files.n_head, files.window, files.head_dim)  # (C, H, W, Dh)
        self.k = [np.zeros(shape, np.float32) for _ in range(files.n_layer)]
        self.v = [np.zeros(shape, np.float32) for _ in range(files.n_layer)]
        self.pos = np.zeros(capacity, np.int64)
        self.prev_h = np.zeros((capacity, files.d_model), np.float32)
        chunk = man.get("chunk")
        self._chunk: ort.InferenceSession | None = None
        self._chunk_outs: list[str] = []
        if isinstance(chunk, dict):  # verified with the manifest (it lists the file's digest)
            cpath = str(files.root / chunk["file"])
            self._chunk = ort.InferenceSession(cpath, opts, providers=providers(device))
            self._chunk_outs = list(chunk["outputs"])

    @property
    def max_chunk(self) -> int:
        """The most seconds ``step_chunk`` takes in one call (0: no chunk graph)."""
        return self.files.window - 1 if self._chunk is not None else 0

    @property
    def bytes_per_slot(self) -> int:
        per = sum(a[0].nbytes for a in (*self.k, *self.v))
        return per + self.pos[:1].nbytes + self.prev_h[0].nbytes

    def step(self, batch: StepBatch) -> StepOutput:
        s = slot_index(batch.slots)
        feeds: dict[str, Any] = {
            "codes": np.ascontiguousarray(batch.codes, np.int64),
            "presence": np.ascontiguousarray(batch.presence, bool),
            "pos": self.pos[s],
            "prev_h": self.prev_h[s],
        }
        for i in range(self.files.n_layer):
            feeds[f"k_cache_{i}"] = self.k[i][s]
            feeds[f"v_cache_{i}"] = self.v[i][s]
        out = self._sess.run(self._outs, feeds)
        emb, logits, surprise = out[:3]
        write_rows(self.k, self.v, batch.slots, self.pos[s], out[3:], self.files.window)
        self.pos[s] += 1
        self.prev_h[s] = emb
        return StepOutput(emb, logits, surprise)

    def step_span(self, batch: StepBatch) -> StepOutput:
        """``step`` for non-contiguous slots without gathering the cache: the whole span from
        the lowest to the highest slot goes to the graph as views; the rows not due are stepped
        with absent tokens and dropped (their cache, position and embedding untouched)."""
        lo, hi = int(batch.slots[0]), int(batch.slots[-1]) + 1
        rows = batch.slots - lo  # (B,) rows of the due slots within the span
        n = hi - lo
        codes = np.zeros((n, *batch.codes.shape[1:]), np.int64)
        presence = np.zeros((n, batch.presence.shape[1]), bool)
        codes[rows], presence[rows] = batch.codes, batch.presence
        s = slice(lo, hi)
        feeds: dict[str, Any] = {"codes": codes, "presence": presence, "pos": self.pos[s],
                                 "prev_h": self.prev_h[s]}
        for i in range(self.files.n_layer):
            feeds[f"k_cache_{i}"] = self.k[i][s]
            feeds[f"v_cache_{i}"] = self.v[i][s]
        out = self._sess.run(self._outs, feeds)
        emb, logits, surprise = out[0][rows], out[1][rows], out[2][rows]
        new = [o[rows] for o in out[3:]]
        write_rows(self.k, self.v, batch.slots, self.pos[batch.slots], new, self.files.window)
        self.pos[batch.slots] += 1
        self.prev_h[batch.slots] = emb
        return StepOutput(emb, logits, surprise)

    def swap_slots(self, a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> None:
        """Exchange the whole state (cache, position, embedding) of slots ``a[i]`` and ``b[i]``."""
        src, dst = np.concatenate([b, a]), np.concatenate([a, b])
        arrays: list[np.ndarray] = [*self.k, *self.v, self.pos, self.prev_h]
        for x in arrays:
            x[dst] = x[src]  # the right side is gathered (copied) first

    def step_chunk(self, slot: int, codes: np.ndarray, presence: np.ndarray) -> StepOutput:
        """T consecutive seconds of ``slot``: codes (T, M, Q), presence (T, M) -> outputs with a
        leading T axis (T <= ``max_chunk``)."""
        t = len(codes)
        if self._chunk is None or not 0 < t <= self.max_chunk:
            raise ModelError(f"step_chunk of {t} s: this backend takes 1..{self.max_chunk}")
        s = slice(slot, slot + 1)
        feeds: dict[str, Any] = {
            "codes": np.ascontiguousarray(codes[None], np.int64),  # (1, T, M, Q)
            "presence": np.ascontiguousarray(presence[None], bool),  # (1, T, M)
            "pos": self.pos[s],
            "prev_h": self.prev_h[s],
        }
        for i in range(self.files.n_layer):
            feeds[f"k_cache_{i}"] = self.k[i][s]
            feeds[f"v_cache_{i}"] = self.v[i][s]
        out = self._chunk.run(self._chunk_outs, feeds)
        emb, logits, surprise = out[0][0], out[1][0], out[2][0]
        w = (int(self.pos[slot]) + np.arange(t)) % self.files.window  # (T,) ring slots
        for i, new in enumerate(out[3:]):  # (1, T, H, Dh) -> (H, T, Dh) at slots w
            ring = self.k[i // 2] if i % 2 == 0 else self.v[i // 2]
            ring[slot][:, w] = new[0].transpose(1, 0, 2)
        self.pos[slot] += t
        self.prev_h[slot] = emb[-1]
        return StepOutput(emb, logits, surprise)

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        for a in (*self.k, *self.v):
            a[slots] = 0
        self.pos[slots] = 0
        self.prev_h[slots] = 0


class OnnxStepBackend:
    """The streaming step on onnxruntime; KV cache of ``capacity`` slots held as numpy arrays."""

    name = "onnxruntime"

    def __init__(
        self,
        files: ModelFiles,
        capacity: int = 1,
        threads: int = 1,
        step_session: ort.InferenceSession | None = None,
    ) -> None:
        self.files = files
        self.capacity = capacity
        self._sess = step_session or session(files.step_file, threads)
        shape = (files.n_layer, capacity, files.n_head, files.window, files.head_dim)
        self.k = np.zeros(shape, np.float32)
        self.v = np.zeros(shape, np.float32)
        self.pos = np.zeros(capacity, np.int64)
        self.prev_h = np.zeros((capacity, files.d_model), np.float32)

    def step(self, batch: StepBatch) -> StepOutput:
        s = batch.slots
        whole = len(s) == self.capacity and bool((s == np.arange(self.capacity)).all())
        feeds = {
            "codes": batch.codes.astype(np.int64),
            "presence": batch.presence.astype(bool),
            "k_cache": self.k if whole else self.k[:, s],
            "v_cache": self.v if whole else self.v[:, s],
            "pos": self.pos if whole else self.pos[s],
            "prev_h": self.prev_h if whole else self.prev_h[s],
        }
        emb, logits, surprise, k, v, pos, prev_h = self._sess.run(None, feeds)
        if whole:  # every slot stepped: adopt the new state arrays instead of copying them
            self.k, self.v, self.pos, self.prev_h = k, v, pos, prev_h
        else:
            self.k[:, s], self.v[:, s], self.pos[s], self.prev_h[s] = k, v, pos, prev_h
        return StepOutput(
            np.asarray(emb, np.float32),
            np.asarray(logits, np.float32),
            np.asarray(surprise, np.float32),
        )

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        self.k[:, slots] = 0
        self.v[:, slots] = 0
        self.pos[slots] = 0
        self.prev_h[slots] = 0


def make_onnx_backend(
    files: ModelFiles, capacity: int, *, threads: int = 1, device: str = "cpu"
) -> InferenceBackend:
    """The serving-graph backend, or the full-state fallback where it was not exported."""
    if (files.root / SERVING_MANIFEST).is_file():
        return OnnxRingBackend(files, capacity, threads=threads, device=device)

    log.warning("%s: no serving graph; using step.onnx (slower; run sleepstream export onnx)",
                files.root)
    return OnnxStepBackend(files, capacity=capacity, threads=threads)
