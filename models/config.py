"""Frozen configuration of the tokenizer and the RQ-Transformer.

Configs travel inside checkpoints as JSON (``to_dict``/``from_dict``), so a checkpoint always
says exactly which network it holds.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sleepstream.engine.types import MODALITIES, MODEL_RATES

# Seconds of left context each modality's encoder sees besides the current second.
DEFAULT_CONTEXT_S: dict[str, int] = {"spo2": 7, "hr": 7}
# Strides of the causal conv encoder: their product is one second of samples.
DEFAULT_STRIDES: dict[int, tuple[int, ...]] = {100: (4, 5, 5), 25: (5, 5), 1: ()}


@dataclass(frozen=True, slots=True)
class TokenizerConfig:
    """Tokenizer of one modality: causal conv encoder -> RVQ -> decoder (training only).

    ``center``/``scale`` normalize physical units (fitted on training data); ``ctx_s`` seconds
    of history plus the current second form one encoder frame.
    """

    modality: str
    fs: int
    strides: tuple[int, ...]
    ctx_s: int = 1
    channels: int = 48
    latent: int = 64
    levels: int = 4
    codes: int = 256
    hidden: int = 256
    center: float = 0.0
    scale: float = 1.0
    ema_decay: float = 0.99
    commitment: float = 0.25
    dead_after: float = 0.03  # EMA usage (share of uniform) below which a code restarts
    quantizer_dropout: float = 0.5

    def __post_init__(self) -> None:
        if math.prod(self.strides) != self.fs:
            raise ValueError(
                f"{self.modality}: strides {self.strides} do not multiply to {self.fs}"
            )

    @property
    def frame(self) -> int:
        """Samples in one encoder frame (history + current second)."""
        return (self.ctx_s + 1) * self.fs

    @classmethod
    def for_modality(cls, modality: str, **overrides: Any) -> TokenizerConfig:
        fs = round(MODEL_RATES[modality])
        kw: dict[str, Any] = {
            "modality": modality,
            "fs": fs,
            "strides": DEFAULT_STRIDES[fs],
            "ctx_s": DEFAULT_CONTEXT_S.get(modality, 1),
        }
        kw.update(overrides)
        return cls(**kw)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The temporal RQ-Transformer over 1-s steps, its depth transformer and heads."""

    modalities: tuple[str, ...] = MODALITIES
    levels: int = 4
    codes: int = 256
    d_model: int = 128
    n_layer: int = 3
    n_head: int = 4
    window: int = 600  # W: KV ring capacity in steps (seconds)
    depth_layers: int = 1
    n_stages: int = 5
    epoch_s: int = 30
    rope_base: float = 10000.0
    dropout: float = 0.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


@dataclass(frozen=True, slots=True)
class Bundle:
    """Everything a checkpoint configures: one tokenizer per modality and the transformer."""

    tokenizers: tuple[TokenizerConfig, ...] = field(default_factory=tuple)
    model: ModelConfig = field(default_factory=ModelConfig)

    def tokenizer(self, modality: str) -> TokenizerConfig:
        for t in self.tokenizers:
            if t.modality == modality:
                return t
        raise KeyError(modality)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def tokenizer_from_dict(d: dict[str, Any]) -> TokenizerConfig:
    return TokenizerConfig(**{**d, "strides": tuple(d["strides"])})


def model_from_dict(d: dict[str, Any]) -> ModelConfig:
    return ModelConfig(**{**d, "modalities": tuple(d["modalities"])})


def bundle_from_dict(d: dict[str, Any]) -> Bundle:
    return Bundle(
        tokenizers=tuple(tokenizer_from_dict(t) for t in d["tokenizers"]),
        model=model_from_dict(d["model"]),
    )
