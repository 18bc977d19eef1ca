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

All three run ``RQTransformer.step_rows``, the one definition of the step.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from sleepstream.models.kv_cache import KVCacheState, ring_write
from sleepstream.models.rq_transformer import RQTransformer

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
