"""Many consecutive seconds of one bed through a backend: one call per chunk where it can.

Replay steps a bed's seconds in blocks (30 s at a time). A backend with a chunk graph
(``ChunkedBackend``: ``step_chunk`` and ``max_chunk``, e.g. onnxruntime's ``OnnxRingBackend``
when the model ships ``step_chunk.onnx``) runs a block in one call with the KV ring carried
between calls; any other backend steps it second by second. Both give the same outputs within
``CHUNK_TOL`` (float rounding: the chunk sums attention in another order).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from sleepstream.engine.protocols import InferenceBackend, StepBatch, StepOutput

CHUNK_TOL = 1e-4
"""Largest absolute difference between chunked and second-by-second outputs (embeddings,
stage logits, surprise), measured by the tests on real and synthetic nights."""


@runtime_checkable
class ChunkedBackend(Protocol):
    @property
    def max_chunk(self) -> int: ...

    def step_chunk(self, slot: int, codes: np.ndarray, presence: np.ndarray) -> StepOutput: ...


def step_many(
    backend: InferenceBackend, slot: int, codes: npt.NDArray[np.int64],
    presence: npt.NDArray[np.bool_],
) -> StepOutput:
    """``n`` consecutive seconds of ``slot``: codes (n, M, Q), presence (n, M) -> outputs with a
    leading n axis, in chunks of at most ``max_chunk`` seconds (or one step per call)."""
    n = len(codes)
    size = backend.max_chunk if isinstance(backend, ChunkedBackend) else 0
    parts: list[StepOutput] = []
    if size > 0:
        assert isinstance(backend, ChunkedBackend)
        for a in range(0, n, size):
            parts.append(backend.step_chunk(slot, codes[a : a + size], presence[a : a + size]))
    else:
        slots = np.array([slot], np.int64)
        for j in range(n):
            parts.append(backend.step(StepBatch(codes[j : j + 1], presence[j : j + 1], slots)))
    if len(parts) == 1:
        return parts[0]
    return StepOutput(
        np.concatenate([p.embeddings for p in parts]),
        np.concatenate([p.stage_logits for p in parts]),
        np.concatenate([p.surprise for p in parts]),
    )
