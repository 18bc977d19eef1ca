"""``sleepstream report night.edf|events.jsonl --out report.html|report.pdf``: the one-page
night report.

An EDF file is replayed through the engine first (as ``sleepstream replay --max-speed``); a
JSONL file of events (``replay --out``, a ``jsonl`` sink) is read as it is, with the
recording's trends and metadata when ``--recording`` names it. Needs the ``report`` extra.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from sleepstream.engine.errors import SleepstreamError
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help="an EDF/EDF+ recording or a JSONL file of events")
    p.add_argument("--out", type=Path, required=True, help="report.html or report.pdf")
    p.add_argument("--recording", type=Path,
                   help="with a JSONL input: the recording it came from (trends, metadata)")
    p.add_argument("--config", type=Path, help="engine TOML (channel map, alerts, model)")
    p.add_argument("--model", type=Path,
                   help="with a JSONL input: the checkpoint directory that staged it (its "
                        "validity table; the shipped model is recognised by itself)")
    p.add_argument("--no-model", action="store_true", help="replay without sleep staging")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    try:
        from sleepstream.api import analyze
        from sleepstream.drivers.edf import read_recording
        from sleepstream.report.night import Night
        from sleepstream.report.validity import model_dir_from_status
    except ImportError as exc:
        raise SleepstreamError(f"the report needs the report extra ({exc.name} is missing): "
                               "pip install 'sleepstream[report]'") from exc
    if args.out.suffix.lower() not in (".html", ".htm", ".pdf"):
        raise SleepstreamError(f"{args.out}: --out must end in .html or .pdf")
    if args.input.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        recording = read_recording(args.recording) if args.recording else None
        night = Night.from_jsonl(args.input, recording)
        if night.info.model_dir is None:  # the checkpoint named, or the shipped one if it staged
            staged_by = args.model or model_dir_from_status(night.info.model, DEFAULT_MODEL_DIR)
            night = replace(night, info=replace(night.info, model_dir=staged_by))
    else:
        night = analyze(args.input, config=args.config, progress=not args.quiet,
                        model="none" if args.no_model else None)
    out = night.report(args.out)
    print(f"sleepstream report: {out} ({out.stat().st_size / 1024:.0f} KiB)", file=sys.stderr)
    return 0
