"""The RQ-Transformer: a causal temporal transformer over 1-s steps plus a depth transformer.

Each step fuses the M modality tokens of one second into one input vector: per modality the
sum of its Q level embeddings plus a modality embedding, or a learned "absent" embedding where
presence is 0; the M vectors are summed and normalized. The temporal transformer attends
causally over the last W steps (RoPE positions). Heads on its output ``h_t``:

- stage: per-step logits; an epoch's logits are the mean over its steps (pooled embedding head);
- next: level-0 code of every modality at t+1, used for the next-token surprise;
- depth transformer (pretraining only): the full next step, modality by modality, level by
  level, conditioned on ``h_t``.

``forward`` runs a whole window; ``step_rows`` is the one definition of the streaming step (one
second against the ring KV cache) that ``step`` (training, the torch backend) and every exported
form (``models.step_graph``) run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from sleepstream.models.config import ModelConfig
from sleepstream.models.kv_cache import KVCacheState, ring_mask, ring_write


def rope(pos: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (...,) -> cos, sin (..., head_dim // 2)."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    ang = pos.to(torch.float32)[..., None] * inv
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)


class Attention(nn.Module):
    def __init__(self, d: int, n_head: int) -> None:
        super().__init__()
        self.n_head, self.hd = n_head, d // n_head
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)

    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).split(self.n_head * self.hd, -1)
        shape = (*x.shape[:-1], self.n_head, self.hd)
        return q.view(shape), k.view(shape), v.view(shape)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        rot: tuple[torch.Tensor, torch.Tensor] | None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, D); ``past`` keys/values (B, H, P, Dh) in front of the chunk; mask (T, P+T)."""
        b, t, d = x.shape
        q, k, v = self._split(x)  # (B, T, H, Dh)
        if rot is not None:
            cos, sin = rot[0][:, None], rot[1][:, None]  # (T, 1, Dh/2)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))  # (B, H, T, Dh)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)  # (B, H, P+T, Dh)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, Dh)
        return self.proj(y.transpose(1, 2).reshape(b, t, d)), (k, v)


class Block(nn.Module):
    def __init__(self, d: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)  # residual dropout, training only
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, n_head)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        rot: tuple[torch.Tensor, torch.Tensor] | None,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        a, kv = self.attn(self.ln1(x), mask, rot, past)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x))), kv


class DepthTransformer(nn.Module):
    """Predicts the M x Q codes of step t+1 from ``h_t``, one token after another."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        m, q, k, d = len(cfg.modalities), cfg.levels, cfg.codes, cfg.d_model
        self.cfg = cfg
        self.inp = nn.Linear(d, d)
        self.emb = nn.Embedding(m * q * k + m, d)  # codes of (m, q), then one absent token per m
        self.pos = nn.Parameter(torch.randn(m * q, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, cfg.n_head) for _ in range(cfg.depth_layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, k)
        off = torch.arange(m * q).view(m, q) * k
        self.register_buffer("offset", off, persistent=False)

    def forward(self, h: torch.Tensor, target: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """h (N, D), target (N, M, Q), present (N, M) -> logits (N, M*Q, K)."""
        n, m, q = target.shape
        k = self.cfg.codes
        idx = target + self.offset  # (N, M, Q)
        absent = (m * q * k + torch.arange(m)).expand(n, m)[..., None].expand(n, m, q)
        idx = torch.where(present[..., None], idx, absent).reshape(n, m * q)
        tok = torch.cat([self.inp(h)[:, None], self.emb(idx[:, :-1])], 1) + self.pos  # (N, J, D)
        j = m * q
        mask = torch.ones(j, j, dtype=torch.bool).tril()
        for blk in self.blocks:
            tok, _ = blk(tok, mask, None)
        return self.head(self.ln(tok))  # (N, J, K)


class RQTransformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        m, q, k, d = len(cfg.modalities), cfg.levels, cfg.codes, cfg.d_model
        self.code_emb = nn.Embedding(m * q * k, d)
        nn.init.normal_(self.code_emb.weight, std=0.02)
        self.mod_emb = nn.Parameter(torch.randn(m, d) * 0.02)
        self.absent_emb = nn.Parameter(torch.randn(m, d) * 0.02)
        self.ln_in = nn.LayerNorm(d)
        self.blocks = nn.ModuleList(Block(d, cfg.n_head, cfg.dropout) for _ in range(cfg.n_layer))
        self.ln_out = nn.LayerNorm(d)
        self.stage_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, cfg.n_stages))
        self.next_head = nn.Linear(d, m * k)
        self.depth = DepthTransformer(cfg)
        self.register_buffer("offset", torch.arange(m * q).view(m, q) * k, persistent=False)

    def fuse(self, codes: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """codes (..., M, Q), presence (..., M) -> step input (..., D)."""
        e = self.code_emb(codes + self.offset).sum(-2) + self.mod_emb  # (..., M, D)
        e = torch.where(presence[..., None], e, self.absent_emb.expand_as(e))
        return self.ln_in(e.sum(-2))

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (..., D) -> stage logits (..., S), next level-0 logits (..., M, K)."""
        nxt = self.next_head(h)
        return self.stage_head(h), nxt.view(*h.shape[:-1], len(self.cfg.modalities), self.cfg.codes)

    def forward(self, codes: torch.Tensor, presence: torch.Tensor) -> torch.Tensor:
        """codes (B, T, M, Q), presence (B, T, M) -> h (B, T, D), causal over the last W steps."""
        t = codes.shape[1]
        x = self.fuse(codes, presence)  # (B, T, D)
        pos = torch.arange(t)
        rot = rope(pos, self.cfg.head_dim, self.cfg.rope_base)
        lag = pos[:, None] - pos[None, :]
        mask = (lag >= 0) & (lag < self.cfg.window)  # (T, T)
        for blk in self.blocks:
            x, _ = blk(x, mask, rot)
        return self.ln_out(x)

    def chunk(
        self,
        codes: torch.Tensor,
        presence: torch.Tensor,
        past: list[tuple[torch.Tensor, torch.Tensor]] | None,
        start: int,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Many steps at once with the last W keys/values of every layer carried between calls
        (the same numbers as ``step``, faster for offline evaluation). codes (B, T, M, Q) of
        positions [start, start+T) -> h (B, T, D) and the new per-layer (k, v) (B, H, W, Dh)."""
        b, t = codes.shape[:2]
        w, cfg = self.cfg.window, self.cfg
        if past is None:
            z = torch.zeros(b, cfg.n_head, w, cfg.head_dim)
            past = [(z, z)] * cfg.n_layer
        qp = start + torch.arange(t)
        kp = torch.cat([torch.arange(start - w, start), qp])  # (W+T,) key positions
        lag = qp[:, None] - kp[None, :]
        mask = (lag >= 0) & (lag < w) & (kp[None, :] >= 0)  # (T, W+T)
        x = self.fuse(codes, presence)
        rot = rope(qp, cfg.head_dim, cfg.rope_base)
        new = []
        for blk, kv in zip(self.blocks, past, strict=True):
            x, (k, v) = blk(x, mask, rot, kv)
            new.append((k[:, :, -w:], v[:, :, -w:]))
        return self.ln_out(x), new

    def step_rows(
        self,
        codes: torch.Tensor,
        presence: torch.Tensor,
        pos: torch.Tensor,
        prev_h: torch.Tensor,
        caches: Sequence[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """The streaming step, defined once: one second for B sequences at positions ``pos``
        (B,), codes (B, M, Q), presence (B, M), the previous embedding (B, D) and the ring of
        every layer (``caches`` k_0, v_0, k_1, ... each (B, H, W, Dh), read only) ->
        embedding (B, D), stage logits (B, S), surprise (B,) and the new key/value rows
        (B, H, Dh) per layer, to be written at ring slot ``pos % W``. The slot about to be
        overwritten and the slots not yet written are masked; the new key joins as one column."""
        cfg = self.cfg
        b, hd, w = codes.shape[0], cfg.head_dim, cfg.window
        x = self.fuse(codes, presence)  # (B, D)
        cos, sin = rope(pos, hd, cfg.rope_base)  # (B, Dh/2)
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, Dh/2)
        bias = torch.zeros(b, 1, 1, w, dtype=x.dtype).masked_fill(
            ~ring_mask(pos, w)[:, None, None, :], float("-inf")
        )  # (B, 1, 1, W)
        new: list[torch.Tensor] = []
        for i, blk in enumerate(self.blocks):
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
        h = self.ln_out(x)
        stage, _ = self.heads(h)
        _, prev_next = self.heads(prev_h)  # (B, M, K) predicted at the previous step
        surprise = surprise_of(prev_next, codes, presence) * (pos > 0).to(h.dtype)
        return h, stage, surprise, new

    def step(
        self, codes: torch.Tensor, presence: torch.Tensor, state: KVCacheState
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, KVCacheState]:
        """``step_rows`` with the ring written: codes (B, M, Q), presence (B, M), the cache ->
        embedding (B, D), stage logits (B, S), surprise (B,), the updated cache."""
        caches = [c for i in range(self.cfg.n_layer) for c in (state.k[i], state.v[i])]
        h, stage, surprise, new = self.step_rows(codes, presence, state.pos, state.prev_h, caches)
        written = [ring_write(c, n, state.pos) for c, n in zip(caches, new, strict=True)]
        k, v = torch.stack(written[0::2]), torch.stack(written[1::2])  # (L, B, H, W, Dh)
        return h, stage, surprise, KVCacheState(k, v, state.pos + 1, h)


def surprise_of(
    next_logits: torch.Tensor, codes: torch.Tensor, presence: torch.Tensor
) -> torch.Tensor:
    """Mean NLL (nats) of the level-0 codes of present modalities: (..., M, K), (..., M, Q),
    (..., M) -> (...). Zero where nothing is present."""
    logp = next_logits.log_softmax(-1).gather(-1, codes[..., :1]).squeeze(-1)  # (..., M)
    w = presence.to(logp.dtype)
    return -(logp * w).sum(-1) / w.sum(-1).clamp(min=1)


def full_surprise(
    model: RQTransformer, h: torch.Tensor, codes: torch.Tensor, presence: torch.Tensor
) -> torch.Tensor:
    """Surprise of every step of a window, as ``step`` computes it: (B, T)."""
    _, nxt = model.heads(h[:, :-1])  # (B, T-1, M, K)
    s = surprise_of(nxt, codes[:, 1:], presence[:, 1:])
    return F.pad(s, (1, 0))
