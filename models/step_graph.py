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

``FullStateStep`` (``step.onnx``): the cache of every layer stacked, in and out whole.

These three run ``RQTransformer.step_rows``, the one definition of the step.

``ChunkStep`` (the *chunk* form, ``step_chunk.onnx``, for replay): T consecutive seconds of one
or more sequences in one call against the same read-only ring, returning the T new key/value
rows per layer (written at ``(pos + t) % W``). Step t of the chunk sees the ring entries that
``step_rows`` would still see at position ``pos + t`` (entries the chunk's earlier steps
overwrite are masked) and the chunk's own steps 0..t, so its outputs equal T calls of
``step_rows`` up to float rounding (T <= W - 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from sleepstream.models.kv_cache import KVCacheState, ring_write
from sleepstream.models.rq_transformer import RQTransformer, apply_rope, rope, surprise_of

SERVING_INPUTS_HEAD = ["codes", "presence", "pos", "prev_h"]
SERVING_OUTPUTS_HEAD = ["embedding", "stage_logits", "surprise"]


def serving_names(n_layer: int) -> tuple[list[str], list[str]]:
    """Input and output names of the serving form."""
    ins = SERVING_INPUTS_HEAD + [f"{kv}_cache_{i}" for i in range(n_layer) for kv in "kv"]
    outs = SERVING_OUTPUTS_HEAD + [f"{kv}_new_{i}" for i in range(n_layer) for kv in "kv"]
    return ins, outs


def chunk_names(n_layer: int) -> tuple[list[str], list[str]]:
    """Input and output names of the chunk form (the serving form's, rows per step)."""
    return serving_names(n_layer)


def state_names(n_layer: int) -> list[str]:
    """State tensors of the state form (each an ``INPUT_``/``OUTPUT_`` pair)."""
    return [f"{kv}_cache_{i}" for i in range(n_layer) for kv in "kv"] + ["pos", "prev_h"]


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
        h, stage, surprise, new = self.model.step_rows(codes, presence, pos, prev_h, caches)
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


class FullStateStep(nn.Module):
    """Full-state form (``step.onnx``): ``RQTransformer.step`` with the cache as explicit
    tensors, (codes, presence, k, v (L, B, H, W, Dh), pos, prev_h) ->
    (embedding, stage_logits, surprise, k, v, pos, prev_h)."""

    def __init__(self, model: RQTransformer) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        codes: torch.Tensor,
        presence: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        pos: torch.Tensor,
        prev_h: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        h, stage, surprise, st = self.model.step(codes, presence, KVCacheState(k, v, pos, prev_h))
        return h, stage, surprise, st.k, st.v, st.pos, st.prev_h


def chunk_bias(pos: torch.Tensor, t: int, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive masks of a chunk of ``t`` steps from positions ``pos`` (B,): over the ring
    (B, 1, T, W) and over the chunk itself (T, T). Ring slot s holds the step ``age + 1`` steps
    before ``pos`` (``age = (pos - 1 - s) mod W``); step i sees it while it is one of its last
    W - 1 steps (``age <= W - 2 - i``) and it was written since the reset (``age < pos``)."""
    slots = torch.arange(window, device=pos.device)
    age = (pos[:, None] - 1 - slots[None, :] + window) % window  # (B, W), never negative
    steps = torch.arange(t, device=pos.device)
    seen = (age[:, None, :] <= window - 2 - steps[None, :, None]) & (
        age[:, None, :] < pos[:, None, None]
    )  # (B, T, W)
    zero = torch.zeros((), dtype=torch.float32)
    ring = torch.where(seen, zero, float("-inf"))[:, None]  # (B, 1, T, W)
    causal = steps[:, None] >= steps[None, :]
    return ring, torch.where(causal, zero, float("-inf"))  # (T, T)


class ChunkStep(nn.Module):
    """Chunk form: (codes (B, T, M, Q), presence (B, T, M), pos (B,), prev_h (B, D),
    k_cache_0, v_cache_0, ... (B, H, W, Dh)) -> (embedding (B, T, D), stage_logits (B, T, S),
    surprise (B, T), k_new_0, v_new_0, ... (B, T, H, Dh))."""

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
        b, t, hd, d = codes.shape[0], codes.shape[1], cfg.head_dim, cfg.d_model
        x = m.fuse(codes, presence)  # (B, T, D)
        p = pos[:, None] + torch.arange(t)[None, :]  # (B, T) absolute positions
        cos, sin = rope(p, hd, cfg.rope_base)  # (B, T, Dh/2)
        cos, sin = cos[:, :, None], sin[:, :, None]  # (B, T, 1, Dh/2)
        ring_bias, self_bias = chunk_bias(pos, t, cfg.window)
        new: list[torch.Tensor] = []
        for i, blk in enumerate(m.blocks):
            kc, vc = caches[2 * i], caches[2 * i + 1]  # (B, H, W, Dh)
            q, k, v = blk.attn._split(blk.ln1(x))  # (B, T, H, Dh)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
            new += [k, v]
            q = q.transpose(1, 2) / math.sqrt(hd)  # (B, H, T, Dh)
            kt, vt = k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T, Dh)
            s_old = torch.matmul(q, kc.transpose(2, 3)) + ring_bias  # (B, H, T, W)
            s_new = torch.matmul(q, kt.transpose(2, 3)) + self_bias  # (B, H, T, T)
            att = torch.cat([s_old, s_new], -1).softmax(-1)  # (B, H, T, W+T)
            w = kc.shape[2]
            y = torch.matmul(att[..., :w], vc) + torch.matmul(att[..., w:], vt)  # (B, H, T, Dh)
            x = x + blk.attn.proj(y.transpose(1, 2).reshape(b, t, d))
            x = x + blk.mlp(blk.ln2(x))
        h = m.ln_out(x)  # (B, T, D)
        stage, _ = m.heads(h)
        before = torch.cat([prev_h[:, None], h[:, :-1]], 1)  # (B, T, D) each step's previous h
        _, prev_next = m.heads(before)  # (B, T, M, K)
        surprise = surprise_of(prev_next, codes, presence) * (p > 0).to(h.dtype)
        return (h, stage, surprise, *new)
