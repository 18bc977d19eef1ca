"""``sleepstream evaluate tokenizer``: reconstruction NMSE/SNR and codebook perplexity."""

from __future__ import annotations

import argparse
from pathlib import Path

from sleepstream.engine.app.commands.model_common import DEFAULT_CHECKPOINT, add_data


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_data(p)
    p.add_argument("--checkpoint", type=str, default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def main(args: argparse.Namespace) -> int:
    import torch

    from sleepstream.engine.report import print_figures
    from sleepstream.models import bundle
    from sleepstream.models.data import load_nights
    from sleepstream.models.train import tokenizer_quality

    torch.set_num_threads(args.threads)
    path = Path(args.checkpoint)
    if path.is_dir():
        path = path / "model.npz" if (path / "model.npz").exists() else path / "tokenizer.npz"
    tr = bundle.load(path)
    nights = load_nights(args.data, args.include, args.exclude, tuple(tr.tokenizers))
    figures = {}
    print(f"{'modality':<8} {'nmse':>7} {'snr_db':>7} perplexity per level (of codes)")
    for m, tok in tr.tokenizers.items():
        held = [n for n in nights if m in n.signals]
        if not held:
            continue
        q = tokenizer_quality(tok, held)
        figures[m] = q
        ppl = [round(v, 1) for k, v in q.items() if k.startswith("perplexity")]
        print(f"{m:<8} {q['nmse']:>7.3f} {q['snr_db']:>7.2f} {ppl} (of {int(q['codes'])})")
    print_figures({"records": len(nights), "modalities": figures}, as_json=args.json)
    return 0
