"""Arguments and helpers shared by the train/evaluate commands (imports no torch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR

DEFAULT_CHECKPOINT = DEFAULT_MODEL_DIR  # the shipped model (its model.npz for export/evaluate)


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        required=True,
        type=Path,
        help="folder (or file) of EDF+ recordings with stage labels (Sleep-EDF, SHHS, EDF+)",
    )
    p.add_argument("--include", default=None, help="comma list of record-name globs to use")
    p.add_argument("--exclude", default=None, help="comma list of record-name globs to leave out")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)


def add_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, type=Path, help="model directory (created if missing)")


def modality_list(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    from sleepstream.engine.types import MODALITIES

    mods = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in mods if m not in MODALITIES]
    if bad:
        raise SystemExit(f"unknown modalities {bad}; choose from {', '.join(MODALITIES)}")
    return mods
