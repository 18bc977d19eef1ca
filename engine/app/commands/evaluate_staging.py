"""``sleepstream evaluate staging``: causal staging figures, over modality subsets.

Two sections, each where the data allows: the token transformer on the labelled recordings
that carry the model's modalities (every single, leave-one-out and all subsets), and, on
recordings with EEG, the engine's EEG spectral path next to YASA's published classifier on
the same 30-s epochs (``models.eeg_compare``; YASA where the ``yasa`` package is installed, the
``peers`` extra): against the expert stages where the recording has them, and against each
other."""

from __future__ import annotations

import argparse
from pathlib import Path
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
    p.add_argument("--no-eeg", action="store_true",
                   help="skip the EEG section (engine's EEG path and YASA on EEG recordings)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _row(name: str, r: dict[str, Any]) -> str:
    f, q = r["five"], r["four"]
    return (
        f"{name:<14} {f['epochs']:>6} {f['accuracy']:>7.3f} {f['kappa']:>7.3f} "
        f"{f['macro_f1']:>7.3f} {q['accuracy']:>7.3f} {q['kappa']:>7.3f} {q['macro_f1']:>7.3f}"
    )


def _load_runs(args: argparse.Namespace) -> list[tuple[Any, list[Any]]]:
    """(model, tokenized labelled records) per fold; each model scores only its own records."""
    from sleepstream.models import bundle
    from sleepstream.models.data import load_nights
    from sleepstream.models.train import tokenize

    paths = [Path(c) for c in args.checkpoint.split(",")]
    folds = args.folds.split(";") if args.folds else [args.include]
    if len(folds) != len(paths):
        raise SystemExit("--folds needs one record-glob list per --checkpoint (';' between folds)")
    runs = []
    for path, include in zip(paths, folds, strict=True):
        tr = bundle.load(path / "model.npz" if path.is_dir() else path)
        if tr.model is None:
            raise SystemExit(f"{path}: the checkpoint has no trained transformer")
        mods = tr.model.cfg.modalities
        nights = load_nights(args.data, include, args.exclude, mods)
        if nights:
            runs.append((tr, [tokenize(tr.tokenizers, n, mods, tr.model.cfg.levels)
                              for n in nights]))
    return runs


def _score_subsets(args: argparse.Namespace, runs: list[tuple[Any, list[Any]]]
                   ) -> tuple[list[Any], dict[str, Any]]:
    import numpy as np

    from sleepstream.models.evaluate import score_probs, stream_probs, subsets

    mods = runs[0][0].model.cfg.modalities
    data = [d for _, ds in runs for d in ds]
    have = tuple(m for i, m in enumerate(mods) if any(d.presence[:, i].any() for d in data))
    want = modality_list(args.modalities)
    table = [("+".join(want), want)] if want else subsets(have)
    masks = [np.array([m in s for m in mods]) for _, s in table]
    per_fold = [stream_probs(tr.model, ds, masks) for tr, ds in runs]
    results = {}
    for i, (name, _) in enumerate(table):
        probs = [p for (_, ds), fp in zip(runs, per_fold, strict=True)
                 for p in fp[i * len(ds) : (i + 1) * len(ds)]]
        results[name] = score_probs(data, probs)
    return data, results


def _print_tokens(data: list[Any], results: dict[str, Any]) -> None:
    print(f"{len(data)} records: {', '.join(d.name for d in data)}")
    print(f"{'subset':<14} {'epochs':>6} {'acc5':>7} {'kappa5':>7} {'mf1_5':>7} "
          f"{'acc4':>7} {'kappa4':>7} {'mf1_4':>7}")
    for name, r in results.items():
        print(_row(name, r))
    main_name = list(results)[-1]
    for k in ("five", "four"):
        r = results[main_name][k]
        print(f"\n[{main_name}, {k} classes] per-stage F1 {r['f1']}")
        print(f"confusion (rows truth, cols predicted): {r['confusion']}")
        print(f"time fraction truth {r['fraction_true']}\ntime fraction pred  {r['fraction_pred']}")
        print(f"REM latency min: truth {r['rem_latency_true_min']} "
              f"pred {r['rem_latency_pred_min']} mean abs err {r['rem_latency_abs_err_min']}")


def _token_figures(data: list[Any], results: dict[str, Any], shas: list[str]) -> dict[str, Any]:
    main_name = list(results)[-1]
    five, four = results[main_name]["five"], results[main_name]["four"]
    short = ("accuracy", "kappa", "macro_f1")
    return {
        "subset": main_name, "records": len(data), "epochs": five["epochs"],
        **{k: five[k] for k in short}, **{f"{k}_4class": four[k] for k in short},
        "f1": five["f1"], "confusion": five["confusion"],
        "confusion_4class": four["confusion"], "f1_4class": four["f1"],
        "rem_latency_abs_err_min": five["rem_latency_abs_err_min"],
        "subsets": {name: {**{k: r["five"][k] for k in short},
                           **{f"{k}_4class": r["four"][k] for k in short}}
                    for name, r in results.items()},
        "checkpoint_sha256": shas,
    }


def _eeg_figures(args: argparse.Namespace) -> dict[str, Any] | None:
    """The engine's EEG path and YASA on the EEG recordings under ``--data``; None if none."""
    from sleepstream.engine.inference.model_files import ModelFilesError
    from sleepstream.engine.inference.spectral_model import load_spectral_model
    from sleepstream.models.eeg_compare import compare, figures

    root = Path(args.checkpoint.split(",")[0])
    try:
        model = load_spectral_model(root if root.is_dir() else root.parent)
    except ModelFilesError as exc:
        print(f"EEG section skipped: {exc}")
        return None
    records = compare(args.data, model, args.include)
    if not records:
        return None
    figs = figures(records)
    print(f"\nEEG recordings: {', '.join(figs['records'])} ({figs['epochs']} epochs); "
          f"engine (EEG spectral path, causal, {', '.join(figs['engine_channels'])}) vs YASA "
          f"({', '.join(figs.get('yasa_channels', [])) or 'not installed'}, offline)")
    for key in ("engine", "yasa", "engine_vs_yasa"):
        if key in figs:
            m = figs[key]
            print(f"  {key:<15} epochs {m['epochs']:>5}  accuracy {m['accuracy']:.3f}  "
                  f"kappa {m['kappa']:.3f}  macro-F1 {m['macro_f1']:.3f}")
    print(f"  stage shares: engine {figs['engine_shares']}  yasa {figs.get('yasa_shares')}")
    return figs


def main(args: argparse.Namespace) -> int:
    import torch

    from sleepstream.engine.report import print_figures

    torch.set_num_threads(args.threads)
    runs = _load_runs(args)
    figures: dict[str, Any] = {}
    if runs:
        data, results = _score_subsets(args, runs)
        _print_tokens(data, results)
        figures = _token_figures(data, results, [t.sha256 for t, _ in runs])
    eeg = None if args.no_eeg else _eeg_figures(args)
    if eeg is not None:
        figures["eeg"] = eeg
    if not figures:
        raise SystemExit(f"no labelled recordings for the model and no EEG under {args.data}")
    print_figures(figures, as_json=args.json)
    return 0
