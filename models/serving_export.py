"""The serving forms of the streaming step, written next to a model's runtime files.

``step_serving.onnx`` (read by the engine's onnxruntime and TensorRT backends; listed in
``serving.json`` with its SHA-256), a Triton model repository whose sequence batcher keeps the KV
cache as implicit state, and a TensorRT engine built from the serving ONNX with an optimization
profile over the batch size. Static cache shapes, a dynamic batch dimension. torch and TensorRT
are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sleepstream.engine.errors import BackendUnavailableError, ModelError
from sleepstream.engine.inference.model_files import SERVING_FILE, SERVING_MANIFEST

CHUNK_FILE = "step_chunk.onnx"

TRITON_MODEL = "sleepstream_step"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _example(model: Any, batch: int) -> tuple[Any, ...]:
    import torch

    cfg = model.cfg
    m, q = len(cfg.modalities), cfg.levels
    codes = torch.zeros(batch, m, q, dtype=torch.int64)
    presence = torch.ones(batch, m, dtype=torch.bool)
    cache = torch.zeros(batch, cfg.n_head, cfg.window, cfg.head_dim)
    return codes, presence, cache


def export_serving(model: Any, out_dir: Path, checkpoint_sha256: str = "") -> Path:
    """Write ``step_serving.onnx`` and ``serving.json`` into ``out_dir``; return the manifest."""
    import torch

    from sleepstream.models.export import onnx_export
    from sleepstream.models.step_graph import RingStep, serving_names

    cfg = model.cfg
    ins, outs = serving_names(cfg.n_layer)
    codes, presence, cache = _example(model, 2)
    pos = torch.tensor([0, 3], dtype=torch.int64)
    prev_h = torch.zeros(2, cfg.d_model)
    args = (codes, presence, pos, prev_h, *[cache] * (2 * cfg.n_layer))
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SERVING_FILE
    with torch.no_grad():
        onnx_export(RingStep(model).eval(), args, path, ins, outs, dict.fromkeys(ins + outs, 0))
    manifest = {
        "version": 1,
        "form": "serving",
        "step": SERVING_FILE,
        "inputs": ins,
        "outputs": outs,
        "shapes": {
            "n_layer": cfg.n_layer,
            "n_head": cfg.n_head,
            "window": cfg.window,
            "head_dim": cfg.head_dim,
            "d_model": cfg.d_model,
            "modalities": list(cfg.modalities),
            "levels": cfg.levels,
        },
        "sha256": {SERVING_FILE: _sha(path)},
        "checkpoint_sha256": checkpoint_sha256,
    }
    man = out_dir / SERVING_MANIFEST
    man.write_text(json.dumps(manifest, indent=1))
    return export_chunk(model, out_dir)


def export_chunk(model: Any, out_dir: Path) -> Path:
    """Write ``step_chunk.onnx`` (``ChunkStep``: dynamic batch and time) and list it in the
    existing ``serving.json`` (key ``chunk``, with its SHA-256); return the manifest."""
    import torch

    from sleepstream.models.export import onnx_export
    from sleepstream.models.step_graph import ChunkStep, chunk_names

    cfg = model.cfg
    ins, outs = chunk_names(cfg.n_layer)
    codes, presence, cache = _example(model, 2)
    t = 3
    codes, presence = codes[:, None].expand(2, t, *codes.shape[1:]), presence[:, None].expand(
        2, t, presence.shape[1])  # (B, T, M, Q), (B, T, M)
    pos = torch.tensor([0, 3], dtype=torch.int64)
    prev_h = torch.zeros(2, cfg.d_model)
    args = (codes, presence, pos, prev_h, *[cache] * (2 * cfg.n_layer))
    time_axes = {"codes": 1, "presence": 1, "embedding": 1, "stage_logits": 1, "surprise": 1}
    time_axes.update({n: 1 for n in outs[3:]})
    path = out_dir / CHUNK_FILE
    with torch.no_grad():
        onnx_export(ChunkStep(model).eval(), args, path, ins, outs, dict.fromkeys(ins + outs, 0),
                    time_axes)
    man = out_dir / SERVING_MANIFEST
    manifest = json.loads(man.read_text())
    manifest["chunk"] = {"file": CHUNK_FILE, "inputs": ins, "outputs": outs}
    manifest["sha256"][CHUNK_FILE] = _sha(path)
    man.write_text(json.dumps(manifest, indent=1))
    return man


def export_triton(model: Any, repo: Path, max_batch: int) -> Path:
    """A Triton model repository: ``<repo>/sleepstream_step/{config.pbtxt, 1/model.onnx}``."""
    import torch

    from sleepstream.models.export import onnx_export
    from sleepstream.models.step_graph import StateStep, state_names

    cfg = model.cfg
    states = state_names(cfg.n_layer)
    ins = ["codes", "presence"] + [f"INPUT_{s}" for s in states]
    outs = ["embedding", "stage_logits", "surprise"] + [f"OUTPUT_{s}" for s in states]
    codes, presence, cache = _example(model, 2)
    args = (
        codes,
        presence,
        *[cache] * (2 * cfg.n_layer),
        torch.tensor([[0], [3]], dtype=torch.int64),
        torch.zeros(2, cfg.d_model),
    )
    d = repo / TRITON_MODEL
    (d / "1").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        onnx_export(
            StateStep(model).eval(),
            args,
            d / "1" / "model.onnx",
            ins,
            outs,
            dict.fromkeys(ins + outs, 0),
        )
    (d / "config.pbtxt").write_text(triton_config(cfg, max_batch))
    return d / "config.pbtxt"


def triton_config(cfg: Any, max_batch: int) -> str:
    """``config.pbtxt`` for the state form: the cache lives in Triton as implicit state, zeroed
    when a sequence (a bed) starts; dims exclude the batch dimension."""
    m, q, hd = len(cfg.modalities), cfg.levels, cfg.head_dim
    cache = f"[ {cfg.n_head}, {cfg.window}, {hd} ]"
    shapes = {f"{kv}_cache_{i}": ("TYPE_FP32", cache) for i in range(cfg.n_layer) for kv in "kv"}
    shapes["pos"] = ("TYPE_INT64", "[ 1 ]")
    shapes["prev_h"] = ("TYPE_FP32", f"[ {cfg.d_model} ]")
    states = ",\n".join(
        f'    {{\n      input_name: "INPUT_{n}"\n      output_name: "OUTPUT_{n}"\n'
        f"      data_type: {t}\n      dims: {dims}\n"
        f"      initial_state: {{ data_type: {t} dims: {dims} zero_data: true"
        f' name: "zero_{n}" }}\n'
        "    }"
        for n, (t, dims) in shapes.items()
    )
    return f"""name: "{TRITON_MODEL}"
backend: "onnxruntime"
max_batch_size: {max_batch}
input [
  {{ name: "codes" data_type: TYPE_INT64 dims: [ {m}, {q} ] }},
  {{ name: "presence" data_type: TYPE_BOOL dims: [ {m} ] }}
]
output [
  {{ name: "embedding" data_type: TYPE_FP32 dims: [ {cfg.d_model} ] }},
  {{ name: "stage_logits" data_type: TYPE_FP32 dims: [ {cfg.n_stages} ] }},
  {{ name: "surprise" data_type: TYPE_FP32 dims: [ ] }}
]
sequence_batching {{
  max_sequence_idle_microseconds: 120000000
  oldest {{
    max_candidate_sequences: {max_batch}
    preferred_batch_size: [ {max_batch} ]
    max_queue_delay_microseconds: 50000
  }}
  state [
{states}
  ]
}}
instance_group [ {{ kind: KIND_AUTO count: 1 }} ]
"""


def build_tensorrt(
    onnx_path: Path,
    plan: Path,
    *,
    fp16: bool,
    batches: tuple[int, int, int],
    workspace_mb: int = 4096,
) -> Path:
    """Build a TensorRT engine from the serving ONNX with one profile over the batch size."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise BackendUnavailableError(
            "TensorRT is not installed: pip install 'sleepstream[trt]' (the tensorrt package) "
            "on a machine with an NVIDIA GPU and driver"
        ) from exc
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx_path}: TensorRT cannot parse it: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    lo, opt, hi = batches
    for i in range(network.num_inputs):
        t = network.get_input(i)
        rest = tuple(t.shape)[1:]
        profile.set_shape(t.name, (lo, *rest), (opt, *rest), (hi, *rest))
    config.add_optimization_profile(profile)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise ModelError(f"{onnx_path}: TensorRT engine build failed (see the log above)")
    plan.write_bytes(bytes(blob))
    return plan


def export_random(out_dir: Path, *, tiny: bool, seed: int = 0) -> Path:
    """A randomly initialised model exported like a trained one (runtime files + serving form),
    for tests and for benchmarks when no trained model is installed. ``tiny`` is a small
    two-modality network; otherwise the shipped configuration's sizes."""
    import torch

    from sleepstream.models import bundle
    from sleepstream.models.bundle import Trained
    from sleepstream.models.config import ModelConfig, TokenizerConfig
    from sleepstream.models.export import export_runtime
    from sleepstream.models.rq_transformer import RQTransformer
    from sleepstream.models.tokenizer import Tokenizer

    torch.manual_seed(seed)
    if tiny:
        mods: tuple[str, ...] = ("resp", "hr")
        small = {"codes": 16, "channels": 8, "hidden": 32, "latent": 16}
        toks = {m: Tokenizer(TokenizerConfig.for_modality(m, **small)).eval() for m in mods}
        cfg = ModelConfig(modalities=mods, codes=16, d_model=32, n_layer=2, n_head=4, window=60)
    else:
        cfg = ModelConfig()
        toks = {m: Tokenizer(TokenizerConfig.for_modality(m)).eval() for m in cfg.modalities}
    model = RQTransformer(cfg).eval()
    trained = Trained(toks, model, {"random_init": True, "seed": seed})
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle.save(out_dir / "model.npz", trained, "model")
    export_runtime(trained, out_dir)
    export_serving(model, out_dir, trained.sha256)
    return out_dir
