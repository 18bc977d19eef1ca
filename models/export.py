"""Write the runtime files the engine stages with (no torch needed to read them).

``<dir>/tokenizer_<modality>.onnx``: frames (N, 2, frame) float32 -> codes (N, Q) int64;
``<dir>/step.onnx``: the streaming step with the KV cache as explicit inputs/outputs;
``<dir>/runtime.json``: shapes, normalization and the SHA-256 of every file.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from sleepstream.engine.inference.model_files import RUNTIME_MANIFEST, RUNTIME_VERSION
from sleepstream.models.bundle import Trained
from sleepstream.models.config import to_dict
from sleepstream.models.kv_cache import new_cache
from sleepstream.models.step_graph import FullStateStep
from sleepstream.models.tokenizer import TokenizerExport

STEP_INPUTS = ["codes", "presence", "k_cache", "v_cache", "pos", "prev_h"]
STEP_OUTPUTS = [
    "embedding",
    "stage_logits",
    "surprise",
    "k_cache_out",
    "v_cache_out",
    "pos_out",
    "prev_h_out",
]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def onnx_export(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    batch_axes: dict[str, int],
    time_axes: dict[str, int] | None = None,
) -> None:
    """Export ``module`` at opset 17; ``batch_axes`` (and ``time_axes``) name each input's or
    output's dynamic batch (time) dimension."""
    axes: dict[str, dict[int, str]] = {k: {v: "batch"} for k, v in batch_axes.items()}
    for k, v in (time_axes or {}).items():
        axes.setdefault(k, {})[v] = "time"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            dynamo=False,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=17,
        )


@torch.no_grad()
def export_runtime(trained: Trained, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if trained.model is None:
        raise ValueError("export needs a trained transformer; train pretrain/stage first")
    files: dict[str, Any] = {}
    for m, tok in trained.tokenizers.items():
        p = out / f"tokenizer_{m}.onnx"
        frames = torch.zeros(2, 2, tok.cfg.frame)
        onnx_export(
            TokenizerExport(tok).eval(),
            (frames,),
            p,
            ["frames"],
            ["codes"],
            {"frames": 0, "codes": 0},
        )
        files[p.name] = _sha(p)
    cfg = trained.model.cfg
    st = new_cache(cfg, 2)
    m, q = len(cfg.modalities), cfg.levels
    args = (
        torch.zeros(2, m, q, dtype=torch.int64),
        torch.ones(2, m, dtype=torch.bool),
        st.k,
        st.v,
        st.pos,
        st.prev_h,
    )
    p = out / "step.onnx"
    axes = {
        "codes": 0,
        "presence": 0,
        "k_cache": 1,
        "v_cache": 1,
        "pos": 0,
        "prev_h": 0,
        "embedding": 0,
        "stage_logits": 0,
        "surprise": 0,
        "k_cache_out": 1,
        "v_cache_out": 1,
        "pos_out": 0,
        "prev_h_out": 0,
    }
    onnx_export(FullStateStep(trained.model).eval(), args, p, STEP_INPUTS, STEP_OUTPUTS, axes)
    files[p.name] = _sha(p)
    manifest = {
        "version": RUNTIME_VERSION,
        "config": to_dict(trained.config),
        "step": {"file": "step.onnx", "inputs": STEP_INPUTS, "outputs": STEP_OUTPUTS},
        "tokenizers": {t: f"tokenizer_{t}.onnx" for t in trained.tokenizers},
        "sha256": files,
        "checkpoint_sha256": trained.sha256,
        "meta": trained.meta,
    }
    path = out / RUNTIME_MANIFEST
    path.write_text(json.dumps(manifest, indent=1))
    return path
