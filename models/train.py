"""Training: tokenizers (reconstruction), the RQ-Transformer (next-token), the stage head.

Every stage samples random windows from nights held in memory; nothing reads data deep inside
the loops. Modality dropout (whole windows and mid-window segments) teaches the transformer that
any subset of modalities is a valid input.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from sleepstream.models.config import ModelConfig, TokenizerConfig
from sleepstream.models.data import Night
from sleepstream.models.rq_transformer import RQTransformer
from sleepstream.models.tokenizer import CLIP, Tokenizer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Tokenized:
    """A night as model input: codes (T, M, Q), presence (T, M), stages (T // 30,)."""

    name: str
    codes: np.ndarray
    presence: np.ndarray
    stages: np.ndarray


def fit_normalization(
    nights: Sequence[Night], modality: str, rng: np.random.Generator
) -> tuple[float, float]:
    """Median and robust scale (1.4826 MAD, or std where MAD vanishes) of valid samples."""
    vals = [d[v] for n in nights if modality in n.signals for d, v in [n.signals[modality]]]
    x = np.concatenate(vals) if vals else np.zeros(1, np.float32)
    if x.size > 2_000_000:
        x = rng.choice(x, 2_000_000, replace=False)
    med = float(np.median(x))
    mad = 1.4826 * float(np.median(np.abs(x - med)))
    scale = mad if mad > 1e-6 else float(x.std()) or 1.0
    return med, scale


class FrameSampler:
    """Random encoder frames (values, valid) of one modality from whole nights."""

    def __init__(self, tok: TokenizerConfig, nights: Sequence[Night]) -> None:
        self.cfg = tok
        pad = tok.ctx_s * tok.fs
        self.arrays = []
        for n in nights:
            if tok.modality not in n.signals:
                continue
            d, v = n.signals[tok.modality]
            xn = np.clip((d - tok.center) / tok.scale, -CLIP, CLIP)
            xn = np.where(v & np.isfinite(d), xn, 0).astype(np.float32)
            arr = np.zeros((2, pad + len(d)), np.float32)
            arr[0, pad:], arr[1, pad:] = xn, v
            ok = v[: n.seconds * tok.fs].reshape(n.seconds, tok.fs).mean(1) >= 0.5
            self.arrays.append((arr, np.flatnonzero(ok)))
        self.arrays = [(a, s) for a, s in self.arrays if len(s)]
        if not self.arrays:
            raise ValueError(f"no valid {tok.modality} data to train its tokenizer on")

    def sample(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        fr = np.empty((n, 2, self.cfg.frame), np.float32)
        which = rng.integers(0, len(self.arrays), n)
        off = np.arange(self.cfg.frame)
        for i, w in enumerate(np.unique(which)):
            del i
            rows = np.flatnonzero(which == w)
            arr, secs = self.arrays[w]
            starts = rng.choice(secs, len(rows)) * self.cfg.fs
            fr[rows] = arr[:, starts[:, None] + off].transpose(1, 0, 2)
        return torch.from_numpy(fr)


def train_tokenizer(
    tok_cfg: TokenizerConfig,
    nights: Sequence[Night],
    *,
    steps: int,
    batch: int = 512,
    lr: float = 2e-3,
    seed: int = 0,
) -> Tokenizer:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    center, scale = fit_normalization(nights, tok_cfg.modality, rng)
    tok_cfg = replace(tok_cfg, center=center, scale=scale)
    sampler = FrameSampler(tok_cfg, nights)
    tok = Tokenizer(tok_cfg)
    opt = torch.optim.AdamW(tok.parameters(), lr=lr, weight_decay=0.0)
    sched = warmup_cosine(opt, steps, 0.05)
    tok.train()
    t0 = time.monotonic()
    for it in range(steps):
        fr = sampler.sample(batch, rng)
        err, commit, _ = tok(fr)
        loss = err + tok_cfg.commitment * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if it % 200 == 0 or it == steps - 1:
            log.info(
                "tokenizer %s step %d recon %.4f commit %.4f restarts %d (%.0f s)",
                tok_cfg.modality,
                it,
                err.item(),
                commit.item(),
                tok.rvq.restarts,
                time.monotonic() - t0,
            )
    return tok.eval()


@torch.no_grad()
def tokenizer_quality(
    tok: Tokenizer, nights: Sequence[Night], n: int = 20000, seed: int = 1
) -> dict[str, float]:
    """Held-out reconstruction NMSE / SNR (normalized units, valid samples) and perplexity."""
    rng = np.random.default_rng(seed)
    fr = FrameSampler(tok.cfg, nights).sample(n, rng)
    fs = tok.cfg.fs
    target, mask = fr[:, 0, -fs:], fr[:, 1, -fs:]
    recon = tok.reconstruct(fr)
    err = float(((recon - target) ** 2 * mask).sum())
    mean = float((target * mask).sum() / mask.sum())
    var = float((((target - mean) ** 2) * mask).sum())
    nmse = err / max(var, 1e-12)
    codes = tok.encode_frames(fr)
    ppl = tok.rvq.perplexity(codes)
    return {
        "nmse": nmse,
        "snr_db": -10 * math.log10(max(nmse, 1e-12)),
        **{f"perplexity_l{q}": p for q, p in enumerate(ppl)},
        "codes": float(tok.cfg.codes),
    }


@torch.no_grad()
def tokenize(
    tokenizers: dict[str, Tokenizer], night: Night, modalities: Sequence[str], levels: int
) -> Tokenized:
    t = night.seconds
    codes = np.zeros((t, len(modalities), levels), np.int64)
    pres = np.zeros((t, len(modalities)), bool)
    for i, m in enumerate(modalities):
        if m not in night.signals or m not in tokenizers:
            continue
        d, v = night.signals[m]
        for s in range(0, t, 3600):  # an hour at a time bounds memory
            e = min(t, s + 3600)
            tok = tokenizers[m]
            a, b = (s - tok.cfg.ctx_s) * tok.cfg.fs, e * tok.cfg.fs
            lead = max(0, -a)
            x = torch.from_numpy(np.pad(d[max(a, 0) : b], (lead, 0)))[None]
            vv = torch.from_numpy(np.pad(v[max(a, 0) : b], (lead, 0)))[None]
            c, p = tok.encode(x, vv)
            k = tok.cfg.ctx_s
            codes[s:e, i], pres[s:e, i] = c[0, k:].numpy(), p[0, k:].numpy()
    return Tokenized(night.name, codes, pres, night.stages)


def drop_modalities(
    pres: torch.Tensor, rng: np.random.Generator, p_drop: float = 0.35, p_segment: float = 0.3
) -> torch.Tensor:
    """Modality dropout on presence (B, T, M): whole windows and mid-window segments; at least
    one originally present modality survives each window."""
    b, t, m = pres.shape
    keep = torch.from_numpy(rng.random((b, m)) >= p_drop)
    anyp = pres.any(1)  # (B, M)
    none_left = ~(keep & anyp).any(1)
    for i in torch.nonzero(none_left).flatten().tolist():
        cand = torch.nonzero(anyp[i]).flatten()
        if len(cand):
            keep[i, cand[rng.integers(len(cand))]] = True
    out = pres & keep[:, None, :]
    for i in range(b):
        if rng.random() < p_segment:
            j = int(rng.integers(m))
            a = int(rng.integers(t))
            out[i, a : a + int(rng.integers(30, 600)), j] = False
    return out


def sample_crops(
    data: Sequence[Tokenized], batch: int, crop: int, rng: np.random.Generator, align: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random windows: codes (B, T, M, Q), presence (B, T, M), stages (B, T // 30)."""
    cs, ps, ss = [], [], []
    for _ in range(batch):
        d = data[rng.integers(len(data))]
        n = d.codes.shape[0]
        start = int(rng.integers(0, max(1, n - crop) // align + 1)) * align
        c = np.zeros((crop, *d.codes.shape[1:]), np.int64)
        p = np.zeros((crop, d.presence.shape[1]), bool)
        c[: n - start], p[: n - start] = (
            d.codes[start : start + crop],
            d.presence[start : start + crop],
        )
        st = np.full(crop // 30, -1, np.int64)
        e0 = start // 30
        seg = d.stages[e0 : e0 + crop // 30]
        st[: len(seg)] = seg
        cs.append(c)
        ps.append(p)
        ss.append(st)
    return (
        torch.from_numpy(np.stack(cs)),
        torch.from_numpy(np.stack(ps)),
        torch.from_numpy(np.stack(ss)),
    )


def next_token_loss(
    model: RQTransformer,
    h: torch.Tensor,
    codes: torch.Tensor,
    pres: torch.Tensor,
    rng: np.random.Generator,
    depth_steps: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth-transformer CE on random steps and level-0 CE of the surprise head on all steps."""
    b, t, m, q = codes.shape
    _, nxt = model.heads(h[:, :-1])  # (B, T-1, M, K)
    tgt0 = codes[:, 1:, :, 0]
    w = pres[:, 1:].float()
    ce0 = F.cross_entropy(nxt.reshape(-1, model.cfg.codes), tgt0.reshape(-1), reduction="none")
    surprise_loss = (ce0 * w.reshape(-1)).sum() / w.sum().clamp(min=1)
    idx = torch.from_numpy(rng.integers(0, t - 1, (b, depth_steps)))  # (B, S)
    bi = torch.arange(b)[:, None]
    hs, tg, pr = h[bi, idx], codes[bi, idx + 1], pres[bi, idx + 1]  # (B, S, D), (B, S, M, Q)
    logits = model.depth(hs.reshape(-1, h.shape[-1]), tg.reshape(-1, m, q), pr.reshape(-1, m))
    ce = F.cross_entropy(logits.reshape(-1, model.cfg.codes), tg.reshape(-1), reduction="none")
    wd = pr.reshape(-1, m, 1).expand(-1, m, q).reshape(-1).float()
    return (ce * wd).sum() / wd.sum().clamp(min=1), surprise_loss


def info_nce(
    model: RQTransformer,
    codes: torch.Tensor,
    pres: torch.Tensor,
    rng: np.random.Generator,
    weights: torch.Tensor | None = None,
    tau: float = 0.1,
) -> torch.Tensor:
    """Cross-modal InfoNCE (sleep2vec-style): embeddings of two disjoint modality subsets of the
    same window are positives, other windows negatives; ``weights`` (B, B) re-weight negatives
    (e.g. by metadata similarity), uniform when None."""
    m = pres.shape[-1]
    split = torch.from_numpy(rng.random(m) < 0.5)
    za = model(codes, pres & split)[:, -30:].mean(1)
    zb = model(codes, pres & ~split)[:, -30:].mean(1)
    za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
    sim = za @ zb.T / tau  # (B, B)
    if weights is not None:
        sim = sim + torch.log(weights.clamp(min=1e-6)) * (1 - torch.eye(len(sim)))
    lbl = torch.arange(len(sim))
    return 0.5 * (F.cross_entropy(sim, lbl) + F.cross_entropy(sim.T, lbl))


def pretrain(
    model: RQTransformer,
    data: Sequence[Tokenized],
    *,
    steps: int,
    batch: int = 8,
    crop: int = 600,
    lr: float = 1e-3,
    infonce: float = 0.0,
    seed: int = 0,
) -> RQTransformer:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = warmup_cosine(opt, steps, 0.1)
    model.train()
    t0 = time.monotonic()
    for it in range(steps):
        codes, pres, _ = sample_crops(data, batch, crop, rng)
        pres = drop_modalities(pres, rng)
        h = model(codes, pres)
        depth, surp = next_token_loss(model, h, codes, pres, rng)
        loss = depth + 0.5 * surp
        if infonce > 0:
            loss = loss + infonce * info_nce(model, codes, pres, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if it % 50 == 0 or it == steps - 1:
            log.info(
                "pretrain step %d depth-nll %.3f surprise-nll %.3f (%.0f s)",
                it,
                depth.item(),
                surp.item(),
                time.monotonic() - t0,
            )
    return model.eval()


def epoch_logits(step_logits: torch.Tensor, epoch_s: int = 30) -> torch.Tensor:
    """Per-step logits (B, T, S) -> per-epoch logits (B, T // epoch_s, S): the mean over each
    epoch's steps, i.e. the stage head on the epoch's pooled embeddings."""
    b, t, s = step_logits.shape
    n = t // epoch_s
    return step_logits[:, : n * epoch_s].reshape(b, n, epoch_s, s).mean(2)


def class_weights(data: Sequence[Tokenized], n: int) -> torch.Tensor:
    counts = np.bincount(np.concatenate([d.stages[d.stages >= 0] for d in data]), minlength=n)
    w = 1.0 / np.sqrt(np.maximum(counts, 1))
    w = np.where(counts > 0, w, 0.0)
    return torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32)


def train_stage(
    model: RQTransformer,
    data: Sequence[Tokenized],
    *,
    steps: int,
    batch: int = 8,
    crop: int = 600,
    lr: float = 5e-4,
    seed: int = 0,
) -> RQTransformer:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    cw = class_weights(data, model.cfg.n_stages)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = warmup_cosine(opt, steps, 0.1)
    model.train()
    t0 = time.monotonic()
    for it in range(steps):
        codes, pres, stages = sample_crops(data, batch, crop, rng, align=30)
        pres = drop_modalities(pres, rng)
        h = model(codes, pres)
        stage_logits, _ = model.heads(h)
        el = epoch_logits(stage_logits)  # (B, E, S)
        ok = stages >= 0
        loss = F.cross_entropy(el[ok], stages[ok], weight=cw) if ok.any() else el.sum() * 0
        _, surp = next_token_loss(model, h, codes, pres, rng, depth_steps=1)
        total = loss + 0.1 * surp
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if it % 50 == 0 or it == steps - 1:
            acc = (
                float((el[ok].argmax(-1) == stages[ok]).float().mean())
                if ok.any()
                else float("nan")
            )
            log.info(
                "stage step %d ce %.3f acc %.3f (%.0f s)",
                it,
                loss.item(),
                acc,
                time.monotonic() - t0,
            )
    return model.eval()


def warmup_cosine(
    opt: torch.optim.Optimizer, steps: int, warm: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warm`` of the steps, then cosine decay to 5 %."""
    n_warm = max(1, int(warm * steps))

    def factor(i: int) -> float:
        if i < n_warm:
            return (i + 1) / n_warm
        frac = (i - n_warm) / max(1, steps - n_warm)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def new_model(cfg: ModelConfig, seed: int = 0) -> RQTransformer:
    torch.manual_seed(seed)
    return RQTransformer(cfg)
