"""Save and load the trained networks (tokenizers + RQ-Transformer) as one checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sleepstream.models import checkpoint
from sleepstream.models.config import Bundle, ModelConfig, bundle_from_dict, to_dict
from sleepstream.models.rq_transformer import RQTransformer
from sleepstream.models.tokenizer import Tokenizer


@dataclass(slots=True)
class Trained:
    tokenizers: dict[str, Tokenizer]
    model: RQTransformer | None
    meta: dict[str, Any]
    sha256: str = ""

    @property
    def config(self) -> Bundle:
        model_cfg = self.model.cfg if self.model is not None else ModelConfig()
        return Bundle(tuple(t.cfg for t in self.tokenizers.values()), model_cfg)


def round_to_half(trained: Trained) -> None:
    """Round every float32 weight to float16 precision in place, so the networks in memory
    (and what is exported from them) equal what a ``half`` checkpoint loads back."""
    nets = [*trained.tokenizers.values(), *([trained.model] if trained.model else [])]
    with torch.no_grad():
        for net in nets:
            for t in [*net.parameters(), *net.buffers()]:
                if t.dtype == torch.float32:
                    t.copy_(t.half().float())


def save(path: str | Path, trained: Trained, kind: str, *, half: bool = False) -> str:
    arrays = {}
    for m, tok in trained.tokenizers.items():
        arrays.update(checkpoint.state_to_arrays(tok.state_dict(), f"tok.{m}."))
    if trained.model is not None:
        arrays.update(checkpoint.state_to_arrays(trained.model.state_dict(), "rq."))
    cfg = to_dict(trained.config)
    cfg["has_model"] = trained.model is not None
    trained.sha256 = checkpoint.save(path, kind, cfg, arrays, trained.meta, half=half)
    return trained.sha256


def load(path: str | Path) -> Trained:
    ck = checkpoint.load(path)
    cfg = bundle_from_dict(ck.config)
    toks = {}
    for tc in cfg.tokenizers:
        tok = Tokenizer(tc)
        tok.load_state_dict(checkpoint.arrays_to_state(ck.arrays, f"tok.{tc.modality}."))
        toks[tc.modality] = tok.eval()
    model = None
    if ck.config.get("has_model"):
        model = RQTransformer(cfg.model)
        model.load_state_dict(checkpoint.arrays_to_state(ck.arrays, "rq."))
        model.eval()
    return Trained(toks, model, ck.meta, ck.sha256)


def size_mb(path: str | Path) -> float:
    return Path(path).stat().st_size / 2**20
