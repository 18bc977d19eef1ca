"""The pretraining ablation: real-night pretraining vs synthetic-only vs none, same folds.

Arms (each a transformer of the reference checkpoint's configuration, frozen under the stage
head that ``pretrain_eval`` fits per fold):

- ``real``: a fresh transformer pretrained by next-token prediction on the real nights;
- ``synthetic``: the reference checkpoint's transformer as shipped (synthetic nights only);
- ``none``: the fresh transformer ``real`` starts from, not pretrained;
- ``synthetic+real`` (optional): the reference transformer pretrained further on real nights.

All arms use the reference checkpoint's tokenizers, so the codes are the same for every arm.
A pretrained arm is written to ``<out>/pretrain-<arm>.npz`` and read back on a later run with
the same settings instead of pretraining again.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sleepstream.models import bundle
from sleepstream.models.pretrain_context import (
    ContextFit,
    cross_validate_context,
    epoch_means,
    fit_context_head,
    save_head,
)
from sleepstream.models.pretrain_data import hours
from sleepstream.models.pretrain_eval import (
    HeadFit,
    cross_validate,
    fit_head,
    fresh_head,
    meets_goal,
    stream_embeddings,
    subject_folds,
)
from sleepstream.models.rq_transformer import RQTransformer
from sleepstream.models.train import Tokenized, new_model, next_token_loss, pretrain, sample_crops

log = logging.getLogger(__name__)

ARMS = ("real", "synthetic", "none", "synthetic+real")


@dataclass(frozen=True, slots=True)
class PretrainRun:
    """Next-token pretraining settings (the key under which a pretrained arm is reused)."""

    steps: int = 300
    batch: int = 8
    crop: int = 600
    lr: float = 1e-3
    seed: int = 0


def pretrained(
    arm: str,
    ref: bundle.Trained,
    data: Sequence[Tokenized],
    run: PretrainRun,
    out: Path,
) -> tuple[RQTransformer, dict[str, Any]]:
    """The arm's pretrained transformer (read back when ``out`` holds one for ``run``)."""
    assert ref.model is not None
    path = out / f"pretrain-{arm}.npz"
    key = {**asdict(run), "records": sorted(d.name for d in data)}
    if path.exists():
        old = bundle.load(path)
        if old.model is not None and old.meta.get("pretrain_run") == key:
            log.info("%s: pretrained arm %s read back", path, arm)
            return old.model, old.meta
    if arm == "real":
        model = new_model(ref.model.cfg, run.seed)
    else:
        model = copy.deepcopy(ref.model)
    t0 = time.monotonic()
    pretrain(model, data, steps=run.steps, batch=run.batch, crop=run.crop, lr=run.lr, seed=run.seed)
    meta = {
        "pretrain_run": key,
        "pretrain_s": round(time.monotonic() - t0, 1),
        "pretrain_hours": hours(data),
        "start": "fresh" if arm == "real" else f"transformer of {ref.sha256[:16]}",
    }
    bundle.save(path, bundle.Trained(ref.tokenizers, model, meta), "pretrain")
    return model, meta


@torch.no_grad()
def token_nll(model: RQTransformer, data: Sequence[Tokenized], crops: int = 32) -> dict[str, float]:
    """Next-token NLL (nats) of fixed random windows of ``data``: the depth transformer's over
    every level and the level-0 surprise head's."""
    model.eval()
    rng = np.random.default_rng(123)
    codes, pres, _ = sample_crops(data, crops, 600, rng)
    depth, surprise = next_token_loss(model, model(codes, pres), codes, pres, rng, 64)
    return {"depth_nll": round(float(depth), 4), "surprise_nll": round(float(surprise), 4)}


def arms(
    names: Sequence[str],
    ref: bundle.Trained,
    data: Sequence[Tokenized],
    run: PretrainRun,
    out: Path,
) -> tuple[dict[str, RQTransformer], dict[str, Any]]:
    """The transformer of every named arm, and what pretraining each took."""
    assert ref.model is not None
    models: dict[str, RQTransformer] = {}
    info: dict[str, Any] = {}
    for name in names:
        if name == "synthetic":
            models[name], info[name] = ref.model, {"start": f"transformer of {ref.sha256[:16]}"}
        elif name == "none":
            models[name], info[name] = new_model(ref.model.cfg, run.seed), {"start": "fresh"}
        elif name in ("real", "synthetic+real"):
            models[name], meta = pretrained(name, ref, data, run, out)
            info[name] = {k: meta[k] for k in ("pretrain_s", "start") if k in meta}
        else:
            raise ValueError(f"unknown arm {name!r}; choose from {', '.join(ARMS)}")
    return models, info


def ablation(
    names: Sequence[str],
    ref: bundle.Trained,
    pre: Sequence[Tokenized],
    stage: Sequence[Tokenized],
    k: int,
    run: PretrainRun,
    fit: HeadFit,
    out: Path,
    context: ContextFit | None = None,
) -> tuple[dict[str, Any], dict[str, RQTransformer]]:
    """Figures of every arm on the same record-wise folds of ``stage``: the model's per-epoch
    stage head and, with ``context``, the context head over the same embeddings (and its
    forward filter's figures under ``context_head.filtered``)."""
    folds = subject_folds([d.name for d in stage], k)
    models, info = arms(names, ref, pre, run, out)
    results: dict[str, Any] = {}
    for name, model in models.items():
        t0 = time.monotonic()
        emb = stream_embeddings(model, stage)
        figures, _ = cross_validate(model, stage, folds, fit, emb)
        figures["token_nll_stage_nights"] = token_nll(model, stage)
        figures["meets_goal"] = meets_goal(figures)
        if context is not None:
            ctx = cross_validate_context(emb, stage, folds, context)
            if "filtered" in ctx:
                ctx["filtered"]["meets_goal"] = meets_goal(ctx["filtered"])
            figures["context_head"] = {**ctx, "meets_goal": meets_goal(ctx)}
        figures["fit_s"] = round(time.monotonic() - t0, 1)
        results[name] = {**info[name], **figures}
    report = {
        "pretraining": {
            "records": len(pre),
            "hours": hours(pre),
            "run": asdict(run),
        },
        "stage_records": [d.name for d in stage],
        "folds": [[d.name for d, f in zip(stage, folds, strict=True) if f == g] for g in range(k)],
        "head": asdict(fit),
        "context_head": None if context is None else asdict(context),
        "reference_sha256": ref.sha256,
        "goal": {"kappa_4class": 0.35, "rem_share_gap_points": 5.0},
        "arms": results,
    }
    return report, models


def save_variant(
    path: Path,
    ref: bundle.Trained,
    model: RQTransformer,
    stage: Sequence[Tokenized],
    fit: HeadFit,
    meta: dict[str, Any],
    context: ContextFit | None = None,
) -> str:
    """The transformer with a stage head fit on every ``stage`` night, as ``model.npz``, and
    with ``context`` the context head fit on every night, as ``context_head.npz``."""
    variant = copy.deepcopy(model)
    emb = stream_embeddings(variant, stage)
    variant.stage_head = fit_head(
        fresh_head(variant, fit.seed), emb, stage, variant.cfg.n_stages, fit
    )
    if context is not None:
        head = fit_context_head([epoch_means(h) for h in emb], [d.stages for d in stage], context)
        save_head(path / "context_head.npz", head)
    trained = bundle.Trained(ref.tokenizers, variant.eval(), {**ref.meta, **meta})
    return bundle.save(path / "model.npz", trained, "model")
