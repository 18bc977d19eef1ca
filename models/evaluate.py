"""Causal staging evaluation: stream every night second by second through the KV-cache step
(exactly what the engine does) and score the stage emitted at each epoch's end."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from sleepstream.engine.types import STAGES
from sleepstream.models.rq_transformer import RQTransformer
from sleepstream.models.train import Tokenized, epoch_logits

FOUR = ("W", "light", "deep", "REM")
TO_FOUR = np.array([0, 1, 1, 2, 3])  # W, N1, N2 -> light, N3 -> deep, REM


@torch.no_grad()
def stream_probs(
    model: RQTransformer,
    data: Sequence[Tokenized],
    masks: Sequence[np.ndarray],
    batch: int = 32,
    chunk_s: int = 300,
) -> list[np.ndarray]:
    """For every (night, modality mask) pair: per-epoch stage probabilities (E, S), each from
    the steps of that epoch only, with the cache carrying everything before it. Runs
    ``RQTransformer.chunk`` (tested equal to the second-by-second ``step``) for speed."""
    jobs = [(d, mk) for mk in masks for d in data]
    out: list[np.ndarray] = []
    es = model.cfg.epoch_s
    for a in range(0, len(jobs), batch):
        chunk = jobs[a : a + batch]
        t = max(d.codes.shape[0] for d, _ in chunk)
        b = len(chunk)
        codes = np.zeros((b, t, *chunk[0][0].codes.shape[1:]), np.int64)
        pres = np.zeros((b, t, chunk[0][0].presence.shape[1]), bool)
        for i, (d, mk) in enumerate(chunk):
            n = d.codes.shape[0]
            codes[i, :n], pres[i, :n] = d.codes, d.presence & mk[None]
        ct, pt = torch.from_numpy(codes), torch.from_numpy(pres)
        past = None
        logits = []
        for s in range(0, t // es * es, chunk_s):
            e = min(s + chunk_s, t // es * es)
            h, past = model.chunk(ct[:, s:e], pt[:, s:e], past, s)
            logits.append(model.heads(h)[0])
        probs = epoch_logits(torch.cat(logits, 1), es).softmax(-1).numpy()
        for i, (d, _) in enumerate(chunk):
            out.append(probs[i, : d.codes.shape[0] // es])
    return out


def confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(truth, pred, labels=np.arange(n))


def rem_latency_min(stages: np.ndarray, rem: int, wake: int = 0, epoch_s: int = 30) -> float:
    """Minutes from sleep onset (first non-wake epoch) to the first REM epoch; NaN if none."""
    sleep = np.flatnonzero((stages != wake) & (stages >= 0))
    rems = np.flatnonzero(stages == rem)
    if not len(sleep) or not len(rems):
        return float("nan")
    return float((rems[0] - sleep[0]) * epoch_s / 60)


def scores(
    truths: Sequence[np.ndarray], preds: Sequence[np.ndarray], names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, Cohen's kappa, macro-F1, per-stage F1, confusion, time fractions, REM latency."""
    n = len(names)
    ok = [t >= 0 for t in truths]
    t_all = np.concatenate([t[k] for t, k in zip(truths, ok, strict=True)])
    p_all = np.concatenate([p[k] for p, k in zip(preds, ok, strict=True)])
    from sklearn.metrics import cohen_kappa_score, f1_score

    cm = confusion(t_all, p_all, n)
    total = cm.sum()
    acc = float(np.trace(cm) / total) if total else float("nan")
    agree = total and len(np.unique(np.concatenate([t_all, p_all]))) > 1
    kappa = float(cohen_kappa_score(t_all, p_all)) if agree else float("nan")
    per = f1_score(t_all, p_all, labels=np.arange(n), average=None, zero_division=np.nan)
    f1 = {s: float(per[i]) for i, s in enumerate(names)}
    present = [s for i, s in enumerate(names) if cm[i, :].sum() > 0]
    macro = float(np.mean([f1[s] for s in present])) if present else float("nan")
    rem = names.index("REM")
    lat_t = [rem_latency_min(t, rem) for t in truths]
    lat_p = [
        rem_latency_min(np.where(t >= 0, p, -1), rem) for t, p in zip(truths, preds, strict=True)
    ]
    err = [
        abs(a - b) for a, b in zip(lat_t, lat_p, strict=True) if not (np.isnan(a) or np.isnan(b))
    ]
    return {
        "accuracy": acc,
        "kappa": kappa,
        "macro_f1": macro,
        "f1": f1,
        "confusion": cm.tolist(),
        "fraction_true": {s: float(cm[i, :].sum() / total) for i, s in enumerate(names)},
        "fraction_pred": {s: float(cm[:, i].sum() / total) for i, s in enumerate(names)},
        "rem_latency_true_min": float(np.nanmean(lat_t)) if not np.all(np.isnan(lat_t)) else None,
        "rem_latency_pred_min": float(np.nanmean(lat_p)) if not np.all(np.isnan(lat_p)) else None,
        "rem_latency_abs_err_min": float(np.mean(err)) if err else None,
        "epochs": int(total),
    }


def score_probs(data: Sequence[Tokenized], probs: Sequence[np.ndarray]) -> dict[str, Any]:
    """Five-class and four-class (N1+N2 light) figures from per-epoch probabilities."""
    truths = [d.stages[: len(p)] for d, p in zip(data, probs, strict=True)]
    preds5 = [p.argmax(-1) for p in probs]
    p4 = [np.stack([p[:, 0], p[:, 1] + p[:, 2], p[:, 3], p[:, 4]], -1) for p in probs]
    five = scores(truths, preds5, STAGES)
    four = scores([four_class(t) for t in truths], [p.argmax(-1) for p in p4], FOUR)
    return {"five": five, "four": four}


def four_class(stages: np.ndarray) -> np.ndarray:
    """Five-class stages (-1 unscored) -> W, light, deep, REM (-1 kept)."""
    out: np.ndarray = np.where(stages >= 0, TO_FOUR[np.maximum(stages, 0)], -1)
    return out


def subsets(modalities: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """Each single modality, each leave-one-out, and all."""
    mods = tuple(modalities)
    out = [(m, (m,)) for m in mods]
    if len(mods) > 2:
        out += [(f"all-{m}", tuple(x for x in mods if x != m)) for m in mods]
    if len(mods) > 1:
        out.append(("all", mods))
    return out
