"""``sleepstream evaluate pretraining``: does next-token pretraining on real nights help staging?

Pretrains the reference checkpoint's transformer configuration on every recording under
``--data`` that carries SpO2 or heart rate (labels unused), then fits the stage head on the
frozen embeddings of the ``--stage-data`` nights with ``--folds`` record-wise folds (a subject's
nights in one fold) and reports, on the same folds, each arm: real pretraining, the reference's
synthetic-only pretraining, and none. The head's output biases are then shifted so that its
predictions on the training folds come in the scored stage shares (figures before the shift are
reported under ``before_share_matching``). On the same embeddings and folds, each arm also reports
``context_head``: a logistic stage head over the current epoch's mean embedding and the means over
the last 5 and 10 epochs (``models.pretrain_context``; ``--no-context`` leaves it out), and under
``context_head.filtered`` the same head through a causal forward filter (stage transitions counted
on the training folds' hypnograms, forward pass only; ``--no-filter`` leaves it out).
Tokenized nights are cached under ``--cache``; pretrained arms are kept in ``--out`` and reused by
a later run with the same settings. ``--save DIR`` also writes the real-pretrained transformer with
a stage head fit on every stage night, and its context head (``context_head.npz``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sleepstream.engine.app.commands.model_common import DEFAULT_CHECKPOINT


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="folder of real recordings (EDF+)")
    p.add_argument(
        "--stage-data",
        type=Path,
        default=None,
        help="scored nights for the stage head (default: DATA/slpdb)",
    )
    p.add_argument("--folds", type=int, default=3, help="record-wise folds (default 3)")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=DEFAULT_CHECKPOINT,
        help="reference model (tokenizers, configuration, synthetic arm)",
    )
    p.add_argument(
        "--arms",
        default="real,synthetic,none",
        help="comma list of real, synthetic, none, synthetic+real",
    )
    p.add_argument(
        "--exclude", default=None, help="comma list of record-name globs left out of pretraining"
    )
    p.add_argument("--steps", type=int, default=300, help="pretraining steps")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=600, help="pretraining window in seconds")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--head-steps", type=int, default=600, help="stage-head steps per fold")
    p.add_argument("--head-lr", type=float, default=2e-3)
    p.add_argument(
        "--no-context", action="store_true", help="leave the context head (past epochs) out"
    )
    p.add_argument(
        "--no-filter", action="store_true", help="leave the context head's forward filter out"
    )
    p.add_argument(
        "--out", type=Path, default=Path("out/pretraining"), help="folder for the pretrained arms"
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path("out/cache/pretraining"),
        help="folder for tokenized nights",
    )
    p.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="DIR",
        help="write the real-pretrained variant (model.npz, context_head.npz) into DIR",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _row(name: str, r: dict[str, float]) -> str:
    return (
        f"{name:<20} {r['accuracy']:>6.3f} {r['kappa']:>7.3f} {r['accuracy_4class']:>6.3f} "
        f"{r['kappa_4class']:>7.3f} {r['macro_f1_4class']:>6.3f} "
        f"{100 * r['rem_share_true']:>6.1f} {100 * r['rem_share_pred']:>6.1f}"
    )


def _row4(name: str, r: dict[str, float]) -> str:
    """A 4-class-only row (the context head resolves W, light, deep, REM)."""
    return (
        f"{name:<20} {'':>6} {'':>7} {r['accuracy_4class']:>6.3f} {r['kappa_4class']:>7.3f} "
        f"{r['macro_f1_4class']:>6.3f} {100 * r['rem_share_true']:>6.1f} "
        f"{100 * r['rem_share_pred']:>6.1f}"
    )


def main(args: argparse.Namespace) -> int:
    import fnmatch

    import torch

    from sleepstream.engine.report import print_figures
    from sleepstream.models import bundle
    from sleepstream.models.pretrain_ablation import PretrainRun, ablation, save_variant
    from sleepstream.models.pretrain_context import ContextFit
    from sleepstream.models.pretrain_data import find_nights, tokenized_nights
    from sleepstream.models.pretrain_eval import HeadFit

    torch.set_num_threads(args.threads)
    path = args.checkpoint
    ref = bundle.load(path / "model.npz" if path.is_dir() else path)
    if ref.model is None:
        raise SystemExit(f"{path}: the checkpoint has no trained transformer")
    mods, levels = ref.model.cfg.modalities, ref.model.cfg.levels
    nights = find_nights(args.data)
    if args.exclude:
        pats = [s.strip() for s in args.exclude.split(",") if s.strip()]
        nights = [n for n in nights if not any(fnmatch.fnmatch(n.ref.name, p) for p in pats)]
    pre = tokenized_nights(nights, ref.tokenizers, mods, levels, args.cache)
    stage_nights = find_nights(args.stage_data or args.data / "slpdb")
    stage = [
        d
        for d in tokenized_nights(stage_nights, ref.tokenizers, mods, levels, args.cache)
        if (d.stages >= 0).any()
    ]
    if not pre or not stage:
        raise SystemExit("no recordings with SpO2 or heart rate (and, for the head, stages)")
    run = PretrainRun(args.steps, args.batch, args.crop, args.lr, args.seed)
    fit = HeadFit(steps=args.head_steps, lr=args.head_lr, seed=args.seed)
    context = None if args.no_context else ContextFit(forward_filter=not args.no_filter)
    names = [a.strip() for a in args.arms.split(",") if a.strip()]
    report, models = ablation(names, ref, pre, stage, args.folds, run, fit, args.out, context)
    print(f"pretraining: {len(pre)} nights, hours {report['pretraining']['hours']}")
    print(f"stage head: {len(stage)} nights, folds {report['folds']}")
    print(
        f"{'arm':<20} {'acc5':>6} {'kappa5':>7} {'acc4':>6} {'kappa4':>7} {'mf1_4':>6} "
        f"{'REM%':>6} {'pred%':>6}"
    )
    for name, r in report["arms"].items():
        print(_row(name, r))
    for name, r in report["arms"].items():
        if "context_head" in r:
            print(_row4(f"{name}+context", r["context_head"]))
            if "filtered" in r["context_head"]:
                print(_row4(f"{name}+ctx+filter", r["context_head"]["filtered"]))
    if args.save is not None and "real" in models:
        meta = {"pretraining_ablation": report, "stage_records": report["stage_records"]}
        report["saved_sha256"] = save_variant(
            args.save, ref, models["real"], stage, fit, meta, context
        )
        print(f"wrote {args.save / 'model.npz'}")
    print_figures(report, as_json=args.json)
    return 0
