"""Per-modality tokenizer: causal conv encoder -> residual vector quantizer -> decoder.

One token step per second. The encoder sees a frame of ``ctx_s`` seconds of history plus the
current second (values and valid mask), patchified by convolutions whose strides multiply to
one second of samples, so the code of second t depends only on samples up to the end of second
t. Encoding a window at once (frames cut with ``unfold``) and second by second (a history
buffer) therefore give the same codes. The decoder reconstructs the current second and is used
in training only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from sleepstream.models.config import TokenizerConfig

CLIP = 8.0  # normalized samples are clipped to +-CLIP


class Encoder(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 2  # value, valid
        for s in cfg.strides:
            layers += [nn.Conv1d(c_in, cfg.channels, kernel_size=s, stride=s), nn.GELU()]
            c_in = cfg.channels
        self.convs = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Linear(c_in * (cfg.ctx_s + 1), cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.latent),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        h = self.convs(frames)  # (N, C, ctx_s + 1): one column per second
        return self.mlp(h.flatten(1))  # (N, latent)


class ResidualVQ(nn.Module):
    """Q levels of K codes with EMA codebooks, k-means init, dead-code restart and quantizer
    dropout (training uses a random number of leading levels per sample)."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        q, k, d = cfg.levels, cfg.codes, cfg.latent
        self.register_buffer("codebooks", torch.randn(q, k, d) * 0.1)
        self.register_buffer("ema_count", torch.ones(q, k))
        self.register_buffer("ema_sum", self.codebooks.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.restarts = 0

    @staticmethod
    def nearest(r: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
        # (N, D), (K, D) -> (N,) index of the closest code
        dist = (r * r).sum(1, keepdim=True) - 2 * r @ book.T + (book * book).sum(1)[None]
        return dist.argmin(1)

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, D) -> summed quantized (N, D), per-level partial sums (Q, N, D), codes (N, Q)."""
        r = z
        parts, codes = [], []
        acc = torch.zeros_like(z)
        for q in range(self.cfg.levels):
            idx = self.nearest(r, self.codebooks[q])
            e = self.codebooks[q][idx]
            acc = acc + e
            r = r - e
            parts.append(acc)
            codes.append(idx)
        return acc, torch.stack(parts), torch.stack(codes, 1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        # (N, Q) -> (N, D)
        return sum(self.codebooks[q][codes[:, q]] for q in range(codes.shape[1]))  # type: ignore[return-value]

    @torch.no_grad()
    def _kmeans_init(self, z: torch.Tensor, iters: int = 10) -> None:
        k = self.cfg.codes
        r = z
        for q in range(self.cfg.levels):
            pick = torch.randint(0, r.shape[0], (k,))
            c = r[pick].clone()
            for _ in range(iters):
                idx = self.nearest(r, c)
                onehot = F.one_hot(idx, k).to(r.dtype)
                cnt = onehot.sum(0)
                c = torch.where(cnt[:, None] > 0, onehot.T @ r / cnt.clamp(min=1)[:, None], c)
            self.codebooks[q] = c
            self.ema_sum[q] = c
            self.ema_count[q] = 1.0
            r = r - c[self.nearest(r, c)]
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, z: torch.Tensor, codes: torch.Tensor) -> None:
        cfg = self.cfg
        n, k = z.shape[0], cfg.codes
        r = z
        for q in range(cfg.levels):
            onehot = F.one_hot(codes[:, q], k).to(z.dtype)  # (N, K)
            self.ema_count[q].mul_(cfg.ema_decay).add_(onehot.sum(0), alpha=1 - cfg.ema_decay)
            self.ema_sum[q].mul_(cfg.ema_decay).add_(onehot.T @ r, alpha=1 - cfg.ema_decay)
            cnt = self.ema_count[q]
            smoothed = (cnt + 1e-5) / (cnt.sum() + k * 1e-5) * cnt.sum()
            self.codebooks[q] = self.ema_sum[q] / smoothed[:, None]
            dead = cnt < cfg.dead_after * n / k  # used far less than a uniform share
            if dead.any():
                nd = int(dead.sum())
                fresh = r[torch.randint(0, n, (nd,))]
                self.codebooks[q][dead] = fresh
                self.ema_sum[q][dead] = fresh
                self.ema_count[q][dead] = 1.0
                self.restarts += nd
            r = r - self.codebooks[q][codes[:, q]]

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training/eval pass: straight-through quantized (N, D), codes (N, Q), commit loss."""
        if self.training and not bool(self.initialized):
            self._kmeans_init(z.detach())
        zq, parts, codes = self.quantize(z.detach())
        if self.training:
            self._ema_update(z.detach(), codes)
            if self.cfg.quantizer_dropout > 0:
                n = z.shape[0]
                keep = torch.randint(1, self.cfg.levels + 1, (n,))
                full = torch.rand(n) >= self.cfg.quantizer_dropout
                keep = torch.where(full, torch.full_like(keep, self.cfg.levels), keep)
                zq = parts[keep - 1, torch.arange(n)]  # (N, D): sum of the first `keep` levels
        commit = F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), codes, commit

    def perplexity(self, codes: torch.Tensor) -> list[float]:
        out = []
        for q in range(codes.shape[1]):
            p = torch.bincount(codes[:, q], minlength=self.cfg.codes).double()
            p = p / p.sum()
            out.append(float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum())))
        return out


class Tokenizer(nn.Module):
    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.rvq = ResidualVQ(cfg)
        self.decoder = nn.Sequential(
            nn.Linear(cfg.latent, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.hidden),
            nn.GELU(),
            nn.Linear(cfg.hidden, cfg.fs),
        )

    def normalize(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Physical units -> clipped normalized values, 0 where invalid."""
        xn = ((x - self.cfg.center) / self.cfg.scale).clamp(-CLIP, CLIP)
        return torch.where(valid & torch.isfinite(x), xn, torch.zeros_like(xn))

    def frames(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, T*fs) physical samples + valid -> encoder frames (B, T, 2, frame)."""
        cfg = self.cfg
        v = (valid & torch.isfinite(x)).to(x.dtype)
        xn = self.normalize(x, valid)
        pad = cfg.ctx_s * cfg.fs
        sig = F.pad(torch.stack([xn, v], 1), (pad, 0))  # (B, 2, pad + T*fs)
        fr = sig.unfold(2, cfg.frame, cfg.fs)  # (B, 2, T, frame)
        return fr.permute(0, 2, 1, 3)  # (B, T, 2, frame)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, 2, frame) -> codes (N, Q). The graph the runtime exports."""
        return self.rvq.quantize(self.encoder(frames))[2]

    @torch.no_grad()
    def encode(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T*fs) -> codes (B, T, Q) int64, presence (B, T) bool (>= half the second valid)."""
        b = x.shape[0]
        fr = self.frames(x, valid)  # (B, T, 2, frame)
        t = fr.shape[1]
        codes = self.encode_frames(fr.reshape(b * t, 2, self.cfg.frame)).reshape(b, t, -1)
        present = fr[:, :, 1, -self.cfg.fs :].mean(-1) >= 0.5  # (B, T)
        return codes, present

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 2, frame) -> reconstruction loss (masked NMSE numerator), commit loss, codes."""
        fs = self.cfg.fs
        target, mask = frames[:, 0, -fs:], frames[:, 1, -fs:]
        zq, codes, commit = self.rvq(self.encoder(frames))
        recon = self.decoder(zq)  # (N, fs)
        err = ((recon - target) ** 2 * mask).sum() / mask.sum().clamp(min=1)
        return err, commit, codes

    @torch.no_grad()
    def reconstruct(self, frames: torch.Tensor) -> torch.Tensor:
        zq, _, _ = self.rvq.quantize(self.encoder(frames))
        return self.decoder(zq)


class TokenizerExport(nn.Module):
    """``encode_frames`` as a module for ONNX export: frames (N, 2, frame) -> codes (N, Q)."""

    def __init__(self, tok: Tokenizer) -> None:
        super().__init__()
        self.tok = tok

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.tok.encode_frames(frames)
