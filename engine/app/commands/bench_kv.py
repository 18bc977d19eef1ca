"""``sleepstream bench kv``: one streaming step with the ring KV cache vs recomputing the window.

For each window W (1, 5, 10, 30 min by default) the network is built with ring capacity W (RoPE
positions carry no learned weights, so a checkpoint's weights serve any W) and timed, at batch 1,
two ways in the same run:

- step: the serving graph (one new step attending over the cached W-1 steps, plus the in-place
  ring write), on onnxruntime; and ``RQTransformer.step`` on torch;
- baseline: the full causal forward over the W steps of the window (what a model without a cache
  recomputes every second), on the same runtime.

The ratio baseline/step is the speed-up of the cache (goal >= 50x at 10 min). Needs torch (to
build and export the graphs); weights are the shipped model's when installed, else random of the
shipped configuration (timings do not depend on the weights' values).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR, SERVING_FILE
from sleepstream.engine.report import print_figures

GOAL_RATIO_10MIN = 50.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model directory with model.npz (default: shipped, else random)")
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 5, 10, 30])
    p.add_argument("--runtime", nargs="+", choices=("onnx", "torch"), default=["onnx", "torch"])
    p.add_argument("--repeat", type=int, default=20, help="timed runs of the step per window")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a short run for tests")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def timed(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _base_model(checkpoint: Path | None) -> tuple[Any, str]:
    from sleepstream.models import bundle
    from sleepstream.models.config import ModelConfig
    from sleepstream.models.rq_transformer import RQTransformer

    root = checkpoint or DEFAULT_MODEL_DIR
    path = root / "model.npz" if root.is_dir() else root
    if path.is_file():
        tr = bundle.load(path)
        if tr.model is not None:
            return tr.model, root.name
    if checkpoint is not None:
        raise SystemExit(f"{checkpoint}: no transformer checkpoint")
    return RQTransformer(ModelConfig()).eval(), "random-init network of the shipped configuration"


def _with_window(base: Any, window: int) -> Any:
    from sleepstream.models.rq_transformer import RQTransformer

    model = RQTransformer(replace(base.cfg, window=window)).eval()
    model.load_state_dict(base.state_dict())
    return model


def _onnx_case(model: Any, window: int, repeat: int, threads: int, tmp: Path) -> dict[str, float]:
    import onnxruntime as ort
    import torch

    from sleepstream.models.export import onnx_export as _onnx_export
    from sleepstream.models.serving_export import export_serving

    cfg = model.cfg
    m, q = len(cfg.modalities), cfg.levels
    d = tmp / f"w{window}"
    man = export_serving(model, d)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    cpu = ["CPUExecutionProvider"]
    step = ort.InferenceSession(str(d / SERVING_FILE), opts, providers=cpu)
    rng = np.random.default_rng(0)
    shape = (1, cfg.n_head, window, cfg.head_dim)
    caches = [rng.normal(size=shape).astype(np.float32) for _ in range(2 * cfg.n_layer)]
    feeds: dict[str, Any] = {
        "codes": rng.integers(0, cfg.codes, (1, m, q)),
        "presence": np.ones((1, m), bool),
        "pos": np.array([window + 7], np.int64),
        "prev_h": np.zeros((1, cfg.d_model), np.float32),
    }
    names = list(json.loads(man.read_text())["inputs"][4:])
    feeds.update(dict(zip(names, caches, strict=True)))
    slot = (window + 7) % window

    def one_step() -> None:
        out = step.run(None, feeds)
        for i, c in enumerate(caches):  # the ring write the backend does
            c[0, :, slot] = out[3 + i][0]

    class Full(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, codes: Any, presence: Any) -> Any:
            h = self.model(codes, presence)  # (1, T, D)
            return self.model.heads(h[:, -1])[0]  # stage logits of the last step

    codes = torch.from_numpy(rng.integers(0, cfg.codes, (1, window, m, q)))
    pres = torch.ones(1, window, m, dtype=torch.bool)
    full_path = d / "full.onnx"
    with torch.no_grad():
        _onnx_export(Full(model).eval(), (codes, pres), full_path, ["codes", "presence"],
                     ["stage_logits"], {})
    full = ort.InferenceSession(str(full_path), opts, providers=cpu)
    ffeeds = {"codes": codes.numpy(), "presence": pres.numpy()}
    t_step = timed(one_step, repeat)
    t_full = timed(lambda: full.run(None, ffeeds), max(3, repeat // 5))
    return {"step_ms": t_step * 1e3, "full_ms": t_full * 1e3, "ratio": t_full / t_step}


def _torch_case(model: Any, window: int, repeat: int) -> dict[str, float]:
    import torch

    from sleepstream.models.kv_cache import new_cache

    cfg = model.cfg
    m, q = len(cfg.modalities), cfg.levels
    st = new_cache(cfg, 1)
    st.k.normal_()
    st.v.normal_()
    st.pos[:] = window + 7
    codes = torch.randint(0, cfg.codes, (1, m, q))
    pres = torch.ones(1, m, dtype=torch.bool)
    wcodes = torch.randint(0, cfg.codes, (1, window, m, q))
    wpres = torch.ones(1, window, m, dtype=torch.bool)
    with torch.inference_mode():
        t_step = timed(lambda: model.step(codes, pres, st), repeat)
        t_full = timed(lambda: model.heads(model(wcodes, wpres)[:, -1]), max(3, repeat // 5))
    return {"step_ms": t_step * 1e3, "full_ms": t_full * 1e3, "ratio": t_full / t_step}


def main(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    if args.quick:
        args.minutes, args.repeat = [1, 5], 5
    base, label = _base_model(args.checkpoint)
    cfg = base.cfg
    print(f"bench kv: model {label} (d={cfg.d_model}, L={cfg.n_layer}, H={cfg.n_head}, "
          f"{len(cfg.modalities)} modalities), batch 1, {args.threads} thread(s)")
    figures: dict[str, Any] = {"model": label, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="sleepstream-kv-") as tmp:
        for minutes in args.minutes:
            w = round(minutes * 60)
            model = _with_window(base, w)
            for rt in args.runtime:
                r = (_onnx_case(model, w, args.repeat, args.threads, Path(tmp)) if rt == "onnx"
                     else _torch_case(model, w, args.repeat))
                key = f"{rt}_{minutes:g}min"
                figures[key] = r
                print(f"  {rt:5s} window {minutes:4g} min ({w:5d} steps): "
                      f"step {r['step_ms']:7.3f} ms  full window {r['full_ms']:8.2f} ms  "
                      f"ratio {r['ratio']:7.1f}x")
    for rt in args.runtime:
        if f"{rt}_10min" in figures:
            figures[f"ratio_{rt}_10min"] = figures[f"{rt}_10min"]["ratio"]
            figures[f"goal_ratio_{rt}_10min"] = GOAL_RATIO_10MIN
    print_figures(figures, as_json=args.json)
    return 0
