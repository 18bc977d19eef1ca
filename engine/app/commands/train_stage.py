"""``sleepstream train stage``: fine-tune with the stage head; writes the model and runtime."""

from __future__ import annotations

import argparse
import time

from sleepstream.engine.app.commands.model_common import add_data, add_out


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p)
    add_out(p)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=600)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument(
        "--half",
        action="store_true",
        help="store weights as float16 (the shipped model: halves the file)",
    )
    p.add_argument(
        "--export-only",
        action="store_true",
        help="only rewrite the ONNX runtime files from an existing model.npz",
    )
    p.add_argument("--no-export", action="store_true", help="skip writing the ONNX runtime files")


def main(args: argparse.Namespace) -> int:
    import torch

    from sleepstream.models import bundle
    from sleepstream.models.data import load_nights
    from sleepstream.models.export import export_runtime
    from sleepstream.models.train import tokenize, train_stage

    torch.set_num_threads(args.threads)
    if args.export_only:
        print(f"wrote {export_runtime(bundle.load(args.out / 'model.npz'), args.out)}")
        return 0
    tr = bundle.load(args.out / "pretrain.npz")
    assert tr.model is not None
    mods = tr.model.cfg.modalities
    nights = load_nights(args.data, args.include, args.exclude, mods)
    data = [tokenize(tr.tokenizers, n, mods, tr.model.cfg.levels) for n in nights]
    t0 = time.monotonic()
    train_stage(
        tr.model,
        data,
        steps=args.steps,
        batch=args.batch,
        crop=args.crop,
        lr=args.lr,
        seed=args.seed,
    )
    tr.meta.update(
        {
            "stage_records": [n.name for n in nights],
            "stage_steps": args.steps,
            "stage_s": round(time.monotonic() - t0, 1),
        }
    )
    if args.half:
        bundle.round_to_half(tr)
    bundle.save(args.out / "model.npz", tr, "model", half=args.half)
    print(f"wrote {args.out / 'model.npz'} ({bundle.size_mb(args.out / 'model.npz'):.1f} MB)")
    if not args.no_export:
        print(f"wrote {export_runtime(tr, args.out)}")
    return 0
