"""``sleepstream train pretrain``: the RQ-Transformer by next-token prediction."""

from __future__ import annotations

import argparse
import fnmatch
import logging
import time
from pathlib import Path
from typing import Any

from sleepstream.engine.app.commands.model_common import add_data, add_out

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p)
    add_out(p)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=600, help="training window in seconds")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--window", type=int, default=600, help="KV ring capacity W in seconds")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--dropout", type=float, default=0.0, help="residual dropout (training)")
    p.add_argument(
        "--infonce",
        type=float,
        default=0.0,
        help="weight of the cross-modal InfoNCE term (0 = off)",
    )
    p.add_argument(
        "--unlabelled",
        action="store_true",
        help="use every recording under --data with SpO2 or HR, scored or not (labels unused)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="with --unlabelled: folder keeping the tokenized nights between runs",
    )


def main(args: argparse.Namespace) -> int:
    import torch

    from sleepstream.models import bundle
    from sleepstream.models.config import ModelConfig
    from sleepstream.models.data import load_nights
    from sleepstream.models.train import new_model, pretrain, tokenize

    torch.set_num_threads(args.threads)
    tr = bundle.load(args.out / "tokenizer.npz")
    mods = tuple(tr.tokenizers)
    levels = next(iter(tr.tokenizers.values())).cfg.levels
    codes = next(iter(tr.tokenizers.values())).cfg.codes
    if args.unlabelled:
        data = _unlabelled(args, tr.tokenizers, mods, levels)
    else:
        nights = load_nights(args.data, args.include, args.exclude, mods)
        data = [tokenize(tr.tokenizers, n, mods, levels) for n in nights]
    cfg = ModelConfig(
        modalities=mods,
        levels=levels,
        codes=codes,
        d_model=args.d_model,
        n_layer=args.layers,
        n_head=args.heads,
        window=args.window,
        dropout=args.dropout,
    )
    model = new_model(cfg, args.seed)
    t0 = time.monotonic()
    pretrain(
        model,
        data,
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        infonce=args.infonce,
        seed=args.seed,
    )
    tr.model = model
    tr.meta.update(
        {
            "pretrain_records": [d.name for d in data],
            "pretrain_steps": args.steps,
            "pretrain_s": round(time.monotonic() - t0, 1),
            "infonce": args.infonce,
        }
    )
    bundle.save(args.out / "pretrain.npz", tr, "pretrain")
    print(f"wrote {args.out / 'pretrain.npz'} ({time.monotonic() - t0:.0f} s)")
    return 0


def _unlabelled(
    args: argparse.Namespace, tokenizers: dict[str, Any], mods: tuple[str, ...], levels: int
) -> list[Any]:
    from sleepstream.models.data import split_names
    from sleepstream.models.pretrain_data import find_nights, tokenized_nights

    nights = find_nights(args.data)
    refs = split_names([n.ref for n in nights], args.exclude)
    if args.include:
        pats = [s.strip() for s in args.include.split(",") if s.strip()]
        refs = [r for r in refs if any(fnmatch.fnmatch(r.name, p) for p in pats)]
    use = [n for n in nights if n.ref in refs]
    data = tokenized_nights(use, tokenizers, mods, levels, args.cache)
    log.info("pretraining on %d nights with SpO2 or HR", len(data))
    return data
