"""``sleepstream export onnx|tensorrt``: the streaming step for fast runtimes.

``export onnx`` writes, into the model directory, the serving form of the step
(``step_serving.onnx``, read by the engine's onnxruntime and TensorRT backends, listed in
``serving.json`` with its SHA-256) and, under ``--triton DIR``, a Triton model repository with the
state form of the step and a ``config.pbtxt`` whose sequence batcher keeps the KV cache as
implicit state. ``export tensorrt`` builds a TensorRT engine from the serving ONNX with an
optimization profile over the batch size (needs the ``trt`` extra and a GPU).

Both forms have static cache shapes and a dynamic batch dimension. Torch and TensorRT are
imported inside the functions, so the CLI lists this command on a runtime-only install.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sleepstream.engine.app.commands.model_common import DEFAULT_CHECKPOINT
from sleepstream.engine.errors import ModelError
from sleepstream.engine.inference.model_files import SERVING_FILE


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=DEFAULT_CHECKPOINT,
        help="model directory holding model.npz (default: the shipped model)",
    )
    if p.prog.endswith("onnx"):
        p.add_argument(
            "--out", type=Path, default=None, help="where to write (default: the model directory)"
        )
        p.add_argument(
            "--triton", type=Path, default=None, help="also write a Triton model repository here"
        )
        p.add_argument("--max-batch", type=int, default=1024, help="Triton max_batch_size")
    else:
        p.add_argument(
            "--out", type=Path, default=None, help="engine file (default: next to the ONNX)"
        )
        p.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
        p.add_argument("--min-batch", type=int, default=1)
        p.add_argument("--opt-batch", type=int, default=512)
        p.add_argument("--max-batch", type=int, default=4096)
        p.add_argument("--workspace-mb", type=int, default=4096)


def _load(checkpoint: Path) -> Any:
    from sleepstream.models import bundle

    path = checkpoint / "model.npz" if checkpoint.is_dir() else checkpoint
    if not path.is_file():
        raise ModelError(
            f"{path}: no checkpoint; train one (sleepstream train stage) or pass --checkpoint"
        )
    return bundle.load(path)


def main(args: argparse.Namespace) -> int:
    from sleepstream.models.serving_export import build_tensorrt, export_serving, export_triton

    if args.subcommand == "onnx":
        tr = _load(args.checkpoint)
        if tr.model is None:
            raise ModelError(f"{args.checkpoint}: holds no transformer; train pretrain/stage first")
        out = args.out or (args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent)
        print(f"wrote {export_serving(tr.model, out, tr.sha256)}")
        if args.triton is not None:
            print(f"wrote {export_triton(tr.model, args.triton, args.max_batch)}")
        return 0
    root = args.checkpoint if args.checkpoint.is_dir() else args.checkpoint.parent
    onnx_path = root / SERVING_FILE
    if not onnx_path.is_file():
        raise ModelError(f"{onnx_path}: missing; run sleepstream export onnx first")
    plan = args.out or root / ("step_serving.fp16.plan" if args.fp16 else "step_serving.plan")
    batches = (args.min_batch, args.opt_batch, args.max_batch)
    built = build_tensorrt(
        onnx_path, plan, fp16=args.fp16, batches=batches, workspace_mb=args.workspace_mb
    )
    print(f"wrote {built}")
    return 0
