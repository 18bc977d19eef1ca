"""The ring KV cache's one write rule, shared by every backend and the exported graphs.

Step ``pos`` of a sequence writes its key/value rows at slot ``pos % W`` of a ring of capacity
``W`` per layer (keys are stored already rotated at their absolute position, so slot order does
not matter). ``write_rows`` writes them in place into a backend's slot-major cache arrays; it
works on numpy arrays (onnxruntime) and torch tensors (TensorRT) alike. The in-graph form that
never writes in place is ``sleepstream.models.kv_cache.ring_write``, built on ``ring_slot``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def ring_slot(pos: Any, window: int) -> Any:
    """The ring slot that step ``pos`` (an array or tensor of positions) writes."""
    return pos % window


def write_rows(
    k: Sequence[Any], v: Sequence[Any], slots: Any, pos: Any, new: Sequence[Any], window: int
) -> None:
    """Write each layer's new rows ``new`` = (k_0, v_0, k_1, ...) (B, H, Dh) into the caches
    ``k[i]``/``v[i]`` (capacity, H, W, Dh) of ``slots`` (B,) at ``ring_slot(pos)``."""
    w = ring_slot(pos, window)
    for i in range(len(k)):
        k[i][slots, :, w] = new[2 * i]  # (B, H, Dh) into slot pos % W
        v[i][slots, :, w] = new[2 * i + 1]
