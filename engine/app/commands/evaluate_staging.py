"""``sleepstream evaluate staging``: causal staging figures, over modality subsets."""

from __future__ import annotations

import argparse
from typing import Any

from sleepstream.engine.app.commands.model_common import DEFAULT_CHECKPOINT, add_data, modality_list


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p)
    p.add_argument(
        "--checkpoint",
        type=str,
        default=str(DEFAULT_CHECKPOINT),
        help="model directory (model.npz) or checkpoint file",
    )
    p.add_argument(
        "--modalities",
        default=None,
        help="comma list: evaluate this one subset only (default: every single, "
        "leave-one-out and all of the modalities both the model and the data have)",
    )
    p.add_argument(
        "--folds",
        default=None,
        help="cross-validation: ';'-separated record-glob lists, one per comma-"
        "separated --checkpoint; each model scores only its fold, figures are pooled",
    )
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _row(name: str, r: dict[str, Any]) -> str:
    f, q = r["five"], r["four"]
    return (
        f"{name:<14} {f['epochs']:>6} {f['accuracy']:>7.3f} {f['kappa']:>7.3f} "
        f"{f['macro_f1']:>7.3f} {q['accuracy']:>7.3f} {q['kappa']:>7.3f} {q['macro_f1']:>7.3f}"
    )


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    import torch

    from sleepstream.engine.report import print_figures
    from sleepstream.models import bundle
    from sleepstream.models.data import load_nights
    from sleepstream.models.evaluate import score_probs, stream_probs, subsets
    from sleepstream.models.train import tokenize

    torch.set_num_threads(args.threads)
    paths = [Path(c) for c in args.checkpoint.split(",")]
    folds = args.folds.split(";") if args.folds else [args.include]
    if len(folds) != len(paths):
        raise SystemExit("--folds needs one record-glob list per --checkpoint (';' between folds)")
    runs = []  # (model, tokenized records) per fold: each model scores only its own records
    for path, include in zip(paths, folds, strict=True):
        tr = bundle.load(path / "model.npz" if path.is_dir() else path)
        if tr.model is None:
            raise SystemExit(f"{path}: the checkpoint has no trained transformer")
        mods = tr.model.cfg.modalities
        nights = load_nights(args.data, include, args.exclude, mods)
        if not nights:
            raise SystemExit(f"no labelled recordings with {', '.join(mods)} under {args.data}")
        runs.append((tr, [tokenize(tr.tokenizers, n, mods, tr.model.cfg.levels) for n in nights]))
    mods = runs[0][0].model.cfg.modalities  # type: ignore[union-attr]
    data = [d for _, ds in runs for d in ds]
    have = tuple(m for i, m in enumerate(mods) if any(d.presence[:, i].any() for d in data))
    want = modality_list(args.modalities)
    table = [("+".join(want), want)] if want else subsets(have)
    masks = [np.array([m in s for m in mods]) for _, s in table]
    per_fold = [stream_probs(tr.model, ds, masks) for tr, ds in runs]  # type: ignore[arg-type]
    results = {}
    for i, (name, _) in enumerate(table):
        probs = [
            p
            for (_, ds), fp in zip(runs, per_fold, strict=True)
            for p in fp[i * len(ds) : (i + 1) * len(ds)]
        ]
        results[name] = score_probs(data, probs)
    tr = runs[0][0]
    print(f"{len(data)} records: {', '.join(d.name for d in data)}")
    print(
        f"{'subset':<14} {'epochs':>6} {'acc5':>7} {'kappa5':>7} {'mf1_5':>7} "
        f"{'acc4':>7} {'kappa4':>7} {'mf1_4':>7}"
    )
    for name, r in results.items():
        print(_row(name, r))
    main_name = table[-1][0]
    best = results[main_name]
    for k in ("five", "four"):
        r = best[k]
        print(f"\n[{main_name}, {k} classes] per-stage F1 {r['f1']}")
        print(f"confusion (rows truth, cols predicted): {r['confusion']}")
        print(f"time fraction truth {r['fraction_true']}\ntime fraction pred  {r['fraction_pred']}")
        print(
            f"REM latency min: truth {r['rem_latency_true_min']} pred {r['rem_latency_pred_min']} "
            f"mean abs err {r['rem_latency_abs_err_min']}"
        )
    figures: dict[str, Any] = {
        "subset": main_name,
        "records": len(data),
        "epochs": best["five"]["epochs"],
        "accuracy": best["five"]["accuracy"],
        "kappa": best["five"]["kappa"],
        "macro_f1": best["five"]["macro_f1"],
        "accuracy_4class": best["four"]["accuracy"],
        "kappa_4class": best["four"]["kappa"],
        "macro_f1_4class": best["four"]["macro_f1"],
        "f1": best["five"]["f1"],
        "confusion": best["five"]["confusion"],
        "confusion_4class": best["four"]["confusion"],
        "f1_4class": best["four"]["f1"],
        "rem_latency_abs_err_min": best["five"]["rem_latency_abs_err_min"],
        "subsets": {
            name: {
                "accuracy": r["five"]["accuracy"],
                "kappa": r["five"]["kappa"],
                "macro_f1": r["five"]["macro_f1"],
                "accuracy_4class": r["four"]["accuracy"],
                "kappa_4class": r["four"]["kappa"],
                "macro_f1_4class": r["four"]["macro_f1"],
            }
            for name, r in results.items()
        },
        "checkpoint_sha256": [t.sha256 for t, _ in runs],
    }
    print_figures(figures, as_json=args.json)
    return 0
