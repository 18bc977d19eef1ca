"""Ring KV cache of fixed capacity W per layer, with per-sequence offsets and reset.

The cache is plain tensors handed to and returned by the streaming step, so the same step graph
runs eagerly, in ONNX Runtime and in TensorRT (state as explicit inputs/outputs). Keys are stored
already rotated by RoPE at their absolute position, so the order of slots in the ring does not
matter: step ``pos`` writes slot ``pos % W`` and attends to every filled slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sleepstream.engine.inference.kv_ring import ring_slot
from sleepstream.models.config import ModelConfig


@dataclass(slots=True)
class KVCacheState:
    """``k``/``v`` (L, B, H, W, Dh); ``pos`` (B,) steps since reset; ``prev_h`` (B, D) the last
    step's embedding (for the next-token surprise of the coming step)."""

    k: torch.Tensor
    v: torch.Tensor
    pos: torch.Tensor
    prev_h: torch.Tensor


def new_cache(cfg: ModelConfig, batch: int, dtype: torch.dtype = torch.float32) -> KVCacheState:
    shape = (cfg.n_layer, batch, cfg.n_head, cfg.window, cfg.head_dim)
    return KVCacheState(
        k=torch.zeros(shape, dtype=dtype),
        v=torch.zeros(shape, dtype=dtype),
        pos=torch.zeros(batch, dtype=torch.int64),
        prev_h=torch.zeros(batch, cfg.d_model, dtype=dtype),
    )


def reset(state: KVCacheState, mask: torch.Tensor) -> KVCacheState:
    """Restart the sequences where ``mask`` (B,) is True; stale slots become invisible."""
    keep = (~mask).to(state.k.dtype)
    return KVCacheState(
        k=state.k * keep[None, :, None, None, None],
        v=state.v * keep[None, :, None, None, None],
        pos=torch.where(mask, torch.zeros_like(state.pos), state.pos),
        prev_h=state.prev_h * keep[:, None],
    )


def ring_write(cache: torch.Tensor, new: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Write ``new`` (B, H, Dh) into ``cache`` (B, H, W, Dh) at ``ring_slot`` (static shapes,
    no in-place write: the in-graph form of ``kv_ring.write_rows``)."""
    w = cache.shape[2]
    hit = torch.arange(w, device=pos.device)[None, :] == ring_slot(pos, w)[:, None]  # (B, W)
    return torch.where(hit[:, None, :, None], new[:, :, None, :], cache)  # (B, H, W, Dh)


def ring_mask(pos: torch.Tensor, window: int) -> torch.Tensor:
    """(B,) position of the step -> (B, W) True for slots holding one of the previous W-1
    steps (the slot ``ring_slot(pos)`` is about to be overwritten)."""
    slots = torch.arange(window, device=pos.device)[None, :]
    return (slots < pos[:, None]) & (slots != ring_slot(pos, window)[:, None])
