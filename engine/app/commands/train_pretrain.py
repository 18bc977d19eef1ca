"""``sleepstream train pretrain``: the RQ-Transformer by next-token prediction."""

from __future__ import annotations

import argparse
import logging
import time

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
            "pretrain_records": [n.name for n in nights],
            "pretrain_steps": args.steps,
            "pretrain_s": round(time.monotonic() - t0, 1),
            "infonce": args.infonce,
        }
    )
    bundle.save(args.out / "pretrain.npz", tr, "pretrain")
    print(f"wrote {args.out / 'pretrain.npz'} ({time.monotonic() - t0:.0f} s)")
    return 0
