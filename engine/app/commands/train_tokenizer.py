"""``sleepstream train tokenizer``: one RVQ tokenizer per modality found in the data."""

from __future__ import annotations

import argparse
import json
import logging

from sleepstream.engine.app.commands.model_common import add_data, add_out, modality_list

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p)
    add_out(p)
    p.add_argument("--modalities", default=None, help="comma list (default: all in the data)")
    p.add_argument("--val", default=None, help="record globs held out to measure reconstruction")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--levels", type=int, default=4)
    p.add_argument("--codes", type=int, default=256)


def main(args: argparse.Namespace) -> int:
    import torch

    from sleepstream.engine.types import MODALITIES
    from sleepstream.models import bundle
    from sleepstream.models.config import TokenizerConfig
    from sleepstream.models.data import load_nights
    from sleepstream.models.tokenizer import Tokenizer
    from sleepstream.models.train import tokenizer_quality, train_tokenizer

    torch.set_num_threads(args.threads)
    mods = modality_list(args.modalities)
    train = load_nights(
        args.data, args.include, ",".join(filter(None, [args.exclude, args.val])), mods
    )
    val = load_nights(args.data, args.val, args.exclude, mods) if args.val else []
    found = [m for m in MODALITIES if any(m in n.signals for n in train)]
    log.info("training tokenizers for %s on %d nights", found, len(train))
    toks: dict[str, Tokenizer] = {}
    quality: dict[str, dict[str, float]] = {}
    for m in found:
        cfg = TokenizerConfig.for_modality(m, levels=args.levels, codes=args.codes)
        toks[m] = train_tokenizer(cfg, train, steps=args.steps, batch=args.batch, seed=args.seed)
        held = [n for n in val if m in n.signals]
        if held:
            quality[m] = tokenizer_quality(toks[m], held)
            print(m, json.dumps({k: round(v, 4) for k, v in quality[m].items()}), flush=True)
    meta = {
        "data": str(args.data),
        "train_records": [n.name for n in train],
        "val_records": [n.name for n in val],
        "tokenizer_quality": quality,
        "tokenizer_steps": args.steps,
    }
    trained = bundle.Trained(toks, None, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    bundle.save(args.out / "tokenizer.npz", trained, "tokenizer")
    print(f"wrote {args.out / 'tokenizer.npz'}")
    return 0
