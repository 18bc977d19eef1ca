"""The streaming step in the two forms the runtimes serve, both equal to ``RQTransformer.step``.

``RingStep`` (the *serving* form, for onnxruntime and TensorRT inside the engine): the ring KV
cache of every layer is a read-only input, one tensor per layer, batch first
(B, H, W, Dh); the graph returns only the new key/value rows (B, H, Dh) of the step. The runtime
writes them into its ring at slot ``pos % W`` in place, so a step reads the cache once and never
copies it.

``StateStep`` (the *state* form, for Triton's sequence batcher with implicit state): the same
step that also writes the ring inside the graph and returns every piece of state whole. Its
state tensors come in ``INPUT_<name>``/``OUTPUT_<name>`` pairs, batch first, so a
``sequence_batching { state [...] }`` block maps them unchanged.

Attention over the ring: the slot about to be overwritten (the step W positions back) and the
slots not yet written are masked; the new key joins as one extra column.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from sleepstream.models.kv_cache import ring_write
from sleepstream.models.rq_transformer import RQTransformer, apply_rope, rope, surprise_of

SERVING_INPUTS_HEAD = ["codes", "presence", "pos", "prev_h"]
SERVING_OUTPUTS_HEAD = ["embedding", "stage_logits", "surprise"]


def serving_names(n_layer: int) -> tuple[list[str], list[str]]:
    """Input and output names of the serving form."""
    ins = SERVING_INPUTS_HEAD + [f"{kv}_cache_{i}" for i in range(n_layer) for kv in "kv"]
    outs = SERVING_OUTPUTS_HEAD + [f"{kv}_new_{i}" for i in range(n_layer) for kv in "kv"]
    return ins, outs


def state_names(n_layer: int) -> list[str]:
    """State tensors of the state form (each an ``INPUT_``/``OUTPUT_`` pair)."""
    return [f"{kv}_cache_{i}" for i in range(n_layer) for kv in "kv"] + ["pos", "prev_h"]


def ring_mask(pos: torch.Tensor, window: int) -> torch.Tensor:
    """(B,) position of the step -> (B, W) True for slots holding one of the previous W-1
    steps (the slot ``pos % W`` is about to be overwritten)."""
    slots = torch.arange(window, device=pos.device)[None, :]
    return (slots < pos[:, None]) & (slots != (pos % window)[:, None])


class RingStep(nn.Module):
    """Serving form: (codes (B, M, Q), presence (B, M), pos (B,), prev_h (B, D),
    k_cache_0, v_cache_0, ... (B, H, W, Dh)) -> (embedding (B, D), stage_logits (B, S),
    surprise (B,), k_new_0, v_new_0, ... (B, H, Dh))."""

    def __init__(self, model: RQTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        codes: torch.Tensor,
        presence: torch.Tensor,
        pos: torch.Tensor,
        prev_h: torch.Tensor,
        *caches: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        m, cfg = self.model, self.model.cfg
        b, hd, w = codes.shape[0], cfg.head_dim, cfg.window
        x = m.fuse(codes, presence)  # (B, D)
        cos, sin = rope(pos, hd, cfg.rope_base)  # (B, Dh/2)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, Dh/2)
        bias = torch.zeros(b, 1, 1, w, dtype=x.dtype).masked_fill(
            ~ring_mask(pos, w)[:, None, None, :], float("-inf")
        )  # (B, 1, 1, W)
        new: list[torch.Tensor] = []
        for i, blk in enumerate(m.blocks):
            kc, vc = caches[2 * i], caches[2 * i + 1]  # (B, H, W, Dh)
            q, k, v = blk.attn._split(blk.ln1(x))  # (B, H, Dh)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            q = q / math.sqrt(hd)
            s_old = torch.matmul(q[:, :, None, :], kc.transpose(2, 3)) + bias  # (B, H, 1, W)
            s_new = (q * k).sum(-1)[:, :, None, None]  # (B, H, 1, 1)
            att = torch.cat([s_old, s_new], -1).softmax(-1)  # (B, H, 1, W+1)
            y = torch.matmul(att[..., :w], vc)[:, :, 0] + att[:, :, 0, w:] * v  # (B, H, Dh)
            x = x + blk.attn.proj(y.reshape(b, cfg.d_model))
            x = x + blk.mlp(blk.ln2(x))
            new += [k, v]
        h = m.ln_out(x)
        stage, _ = m.heads(h)
        _, prev_next = m.heads(prev_h)  # (B, M, K) predicted at the previous step
        surprise = surprise_of(prev_next, codes, presence) * (pos > 0).to(h.dtype)
        return (h, stage, surprise, *new)


class StateStep(nn.Module):
    """State form: inputs ``codes``, ``presence`` and ``INPUT_<state>``; outputs
    ``embedding``, ``stage_logits``, ``surprise`` and ``OUTPUT_<state>`` with the states
    ``k_cache_i``/``v_cache_i`` (B, H, W, Dh), ``pos`` (B, 1) int64, ``prev_h`` (B, D)."""

    def __init__(self, model: RQTransformer) -> None:
        super().__init__()
        self.step = RingStep(model)

    def forward(
        self, codes: torch.Tensor, presence: torch.Tensor, *state: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        caches, pos, prev_h = state[:-2], state[-2][:, 0], state[-1]
        h, stage, surprise, *new = self.step(codes, presence, pos, prev_h, *caches)
        out = [ring_write(c, n, pos) for c, n in zip(caches, new, strict=True)]
        return (h, stage, surprise, *out, (pos + 1)[:, None], h)
