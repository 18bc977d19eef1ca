"""The ``sleepstream`` command line.

Every subcommand lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; this file only lists them. Modules must import without torch (import it
inside ``main``), so ``sleepstream --help`` works on a runtime-only install.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from sleepstream.engine.errors import SleepstreamError

# (group or None, name, module of COMMANDS_PACKAGE, one-line help). Grouped commands read
# "sleepstream GROUP NAME".
COMMANDS_PACKAGE = "sleepstream.engine.app.commands"
COMMANDS: tuple[tuple[str | None, str, str, str], ...] = (
    (None, "run", "run", "run the engine on live sources with all sinks"),
    (None, "replay", "replay", "replay an EDF/EDF+ recording through the engine"),
    (None, "report", "report", "one-page night report (HTML or PDF) from a recording or events"),
    (None, "ack", "ack", "acknowledge an alarm on a running engine (MQTT)"),
    (None, "check-config", "check_config", "validate an engine TOML file"),
    ("bench", "replay", "bench_replay", "replay speed-up and cost per hop"),
    ("bench", "alerts", "bench_alerts", "alert latency on engine time (p50/p99)"),
    ("evaluate", "alerts", "evaluate_alerts",
     "apnea detection, AHI/ODI and alert latency on scored nights"),
    ("evaluate", "alarms", "evaluate_alarms",
     "alarm burden per bed-hour, sustained hypoxemia alarmed"),
    ("simulate", "synthetic", "simulate_synthetic", "a synthetic night with truth"),
    ("simulate", "replay", "simulate_replay", "a recorded night as a live device"),
    ("simulate", "wearable", "simulate_wearable", "SpO2 + HR + accelerometer over MQTT"),
    ("bench", "io", "bench_io", "live driver ingest rates vs a no-op baseline"),
    ("bench", "memory", "bench_memory", "peak memory of a long EDF replay vs loading it"),
    ("train", "tokenizer", "train_tokenizer", "RVQ tokenizer per modality"),
    ("train", "pretrain", "train_pretrain", "next-token pretraining"),
    ("train", "stage", "train_stage", "stage head; writes model and ONNX runtime"),
    ("evaluate", "staging", "evaluate_staging", "causal staging, modality subsets"),
    ("evaluate", "tokenizer", "evaluate_tokenizer", "tokenizer quality, usage"),
    ("evaluate", "spectral", "evaluate_spectral",
     "EEG spectral stage model, record-wise folds on real nights"),
    ("evaluate", "pretraining", "evaluate_pretraining", "pretraining ablation, real nights"),
    ("export", "onnx", "export", "streaming step as ONNX (+ Triton repository)"),
    ("export", "tensorrt", "export", "TensorRT engine from the serving ONNX"),
    ("bench", "kv", "bench_kv", "ring-cache step vs recomputing the window"),
    ("bench", "beds", "bench_beds", "beds served in real time, p50/p99, MB/bed"),
    ("bench", "cluster", "bench_cluster", "shards on a local Ray cluster: failover, overhead"),
)

GROUP_HELP = {
    "bench": "benchmarks that print ratios against a baseline measured in the same run",
    "evaluate": "accuracy on labelled recordings",
    "simulate": "synthetic nights and recordings replayed as live devices",
    "train": "train the tokenizer, the transformer and the heads (needs the train extra)",
    "export": "export the streaming step (ONNX, TensorRT)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sleepstream",
        description="Real-time sleep staging and physiological alerts from biosignal streams.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for group, name, module_name, help_text in COMMANDS:
        module = importlib.import_module(f"{COMMANDS_PACKAGE}.{module_name}")
        if group is None:
            p = sub.add_parser(name, help=help_text, description=help_text)
        else:
            if group not in groups:
                gp = sub.add_parser(group, help=GROUP_HELP.get(group, group))
                groups[group] = gp.add_subparsers(dest="subcommand", required=True, metavar="WHAT")
            p = groups[group].add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=f"{COMMANDS_PACKAGE}.{module_name}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module = importlib.import_module(args._module)
    try:
        return int(module.main(args) or 0)
    except SleepstreamError as exc:
        print(f"sleepstream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
