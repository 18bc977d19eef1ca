"""``sleepstream bench beds``: how many beds one machine stages in real time.

N simulated beds each produce one model step per second of wall time, their phases spread over
the second (devices are not synchronised). Every bed awaits its step through the
``StepScheduler`` on the chosen backend (one inference thread, one call per tick). A run keeps up
when its p99 latency from a step's due time to its stage event stays under 1 s (a backlog would
grow without bound otherwise). N doubles from ``--start`` until a run falls behind, then a
bisection narrows the largest N that keeps up. Every simulated second is treated as an epoch
end, so each step's latency is one "epoch end to stage event" sample.

Reported for the largest N: p50/p99 latency, memory per bed (KV cache and staging buffers,
counted, and the process RSS growth per bed), and a profile of a tick: time in the backend call,
the batched tokenizers for N beds (measured apart, per modality, in the same run) and the rest
(scheduling, Python). The baseline for the ratios is one bed stepped alone.

The scheduler keeps each call's KV slots contiguous by ``--layout`` (``compact``: swap beds that
drifted into another phase bucket's tick into one run; ``masked``: step the span between the
lowest and highest slot, the rest masked; ``copy``: let the backend gather). Every layout is
also run at ``--at`` beds (1,000) in the same process, side by side, and the p99 goal is read
there.

Without ``--checkpoint`` the shipped model is used when installed, else a randomly initialised
network of the shipped configuration (labelled so; needs torch to export).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.errors import BackendUnavailableError
from sleepstream.engine.inference.model_files import (
    DEFAULT_MODEL_DIR,
    RUNTIME_MANIFEST,
    SERVING_MANIFEST,
    ModelFiles,
    load_model_files,
)
from sleepstream.engine.inference.scheduler import StepScheduler
from sleepstream.engine.inference.slot_layout import LAYOUTS
from sleepstream.engine.inference.tokenizer_runtime import TokenizerRuntime, new_state, push_seconds
from sleepstream.engine.report import print_figures

GOAL_BEDS_CPU, GOAL_P99_CPU_MS, GOAL_MB_PER_BED = 2000, 200.0, 2.0
GOAL_AT_BEDS = 1000  # the p99 goal holds at this many beds
GOAL_BEDS_GPU, GOAL_P99_GPU_MS = 20000, 50.0
RING_S = 16  # seconds of model-rate samples a staging processor buffers per modality


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("onnx", "tensorrt", "torch"), default="onnx")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="model directory (default: the shipped model, else a random one)")
    p.add_argument("--seconds", type=float, default=10.0, help="simulated seconds per trial")
    p.add_argument("--start", type=int, default=64, help="first number of beds")
    p.add_argument("--max-beds", type=int, default=8192)
    p.add_argument("--max-wait", type=float, default=0.1,
                   help="scheduler tick grid = bounded wait (s)")
    p.add_argument("--threads", type=int, default=1,
                   help="backend threads (1, as the engine runs it: the other core serves the "
                        "event loop and the tokenizers)")
    p.add_argument("--layout", choices=LAYOUTS, default="compact",
                   help="how a call's KV slots are kept contiguous (see slot_layout)")
    p.add_argument("--at", type=int, default=GOAL_AT_BEDS,
                   help="bed count at which every layout is compared")
    p.add_argument("--fp16", action="store_true", help="TensorRT FP16 engine")
    p.add_argument("--quick", action="store_true", help="a short run for tests")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def resolve_model(checkpoint: Path | None, label: dict[str, Any]) -> Path:
    """The model directory to benchmark, with its serving graph; ``label`` says which it is."""
    root = checkpoint or DEFAULT_MODEL_DIR
    if (root / RUNTIME_MANIFEST).is_file():
        label["model"] = str(root.name)
        if (root / SERVING_MANIFEST).is_file():
            return root
        # the serving graph, written into a scratch copy
        from sleepstream.models import bundle
        from sleepstream.models.serving_export import export_serving

        tr = bundle.load(root / "model.npz")
        tmp = Path(tempfile.mkdtemp(prefix="sleepstream-bench-"))
        for f in root.iterdir():
            if f.is_file():
                (tmp / f.name).write_bytes(f.read_bytes())
        export_serving(tr.model, tmp, tr.sha256)
        return tmp
    if checkpoint is not None:
        raise SystemExit(f"{checkpoint}: no runtime.json; not a model directory")
    from sleepstream.models.serving_export import export_random

    label["model"] = "random-init network of the shipped configuration (no trained model found)"
    return export_random(Path(tempfile.mkdtemp(prefix="sleepstream-bench-")), tiny=False)


def bed_buffer_bytes(files: ModelFiles) -> int:
    """Per-bed staging buffers: sample rings (value + valid) and tokenizer histories."""
    return sum(RING_S * s.fs * 5 + 2 * s.frame * 4 for s in files.tokenizers.values())


async def trial(backend: Any, files: ModelFiles, n: int, seconds: float,
                max_wait: float, layout: str = "compact") -> dict[str, Any]:
    """N beds, one step each per second at phase ``b / n``: one simulator task submits the due
    steps of all beds (no task or future per bed); each result is folded into its bed's epoch
    estimate in the scheduler's callback, where the latency from the due time is taken."""
    rng = np.random.default_rng(n)
    m, q = len(files.modalities), files.levels
    codes = rng.integers(0, 16, (n, 4, m, q))
    presence = rng.random((n, 4, m)) > 0.1
    steps = int(seconds)
    lat = np.full(n * steps, np.nan)
    logit_sum = np.zeros((n, 5))
    left = n * steps
    finished = asyncio.Event()
    async with StepScheduler(backend, max_wait_s=max_wait, max_batch=n, layout=layout) as sched:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.2
        names = [f"bed{b}" for b in range(n)]
        for name in names:
            sched.join(name)

        def done(i: int, due: float) -> Any:
            def cb(res: Any) -> None:
                nonlocal left
                if isinstance(res, BaseException):  # cancelled at the end of a late trial
                    return
                b = i % n
                logit_sum[b] += res.stage_logits
                p = np.exp(logit_sum[b] - logit_sum[b].max())  # the epoch's stage estimate
                _ = p / p.sum()
                lat[i] = loop.time() - due
                left -= 1
                if left == 0:
                    finished.set()
            return cb

        due = t0 + np.arange(n) / n  # (N,) next due time of every bed
        for k in range(steps):
            for b in range(n):
                wait = due[b] + k - loop.time()
                if wait > 0.002:  # submit whatever is due, then sleep to the next due bed
                    await asyncio.sleep(wait)
                sched.submit(names[b], codes[b, k % 4], presence[b, k % 4],
                             done(k * n + b, float(due[b] + k)))
        try:  # a run that keeps up is done within 1 s of its last due step
            async with asyncio.timeout(max(0.0, t0 + steps + 2.0 - loop.time())):
                await finished.wait()
        except TimeoutError:
            pass
        st = sched.stats
        ends = np.repeat(np.arange(steps), n) + np.tile(due, steps)  # (N*steps,) due times
        unfinished = np.isnan(lat)
        lat[unfinished] = loop.time() - ends[unfinished]  # still waiting: at least this long
    a = lat * 1e3
    return {
        "beds": n,
        "unfinished": int(unfinished.sum()),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "ok": bool(np.percentile(a, 99) < 1000.0 and not unfinished.any()),
        "calls_per_s": st.calls / seconds,
        "mean_batch": st.steps / max(st.calls, 1),
        "contiguous_calls": st.contiguous_calls / max(st.calls, 1),
        "layout": sched.layout,
        "swaps_per_s": st.swaps / seconds,
        "masked_rows_per_s": st.masked_rows / seconds,
        "backend_ms_per_s": 1e3 * st.backend_s / seconds,
    }


def tokenizer_ms_per_s(files: ModelFiles, n: int, repeat: int = 3) -> float:
    """Encoding one second of every modality for n beds, batched per modality (ms)."""
    rt = TokenizerRuntime(files, threads=1)
    frames = {}
    for mod, spec in files.tokenizers.items():
        x = np.random.default_rng(0).normal(size=spec.fs).astype(np.float32)
        fr, _ = push_seconds(spec, new_state(spec), x, np.ones(spec.fs, bool))
        frames[mod] = np.repeat(fr, n, 0)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for mod, fr in frames.items():
            rt.encode(mod, fr)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def search(make: Any, files: ModelFiles, args: argparse.Namespace) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []

    def run(n: int) -> dict[str, Any]:
        r = asyncio.run(trial(make(n), files, n, args.seconds, args.max_wait, args.layout))
        runs.append(r)
        print(f"  {n:6d} beds: p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  "
              f"{r['mean_batch']:7.1f} beds/call  backend {r['backend_ms_per_s']:6.0f} ms/s  "
              f"{'keeps up' if r['ok'] else 'falls behind'}", flush=True)
        return r

    n, good, bad = args.start, 0, 0
    while n <= args.max_beds:
        if run(n)["ok"]:
            good, n = n, n * 2
        else:
            bad = n
            break
    if bad:
        for _ in range(0 if args.quick else 3):  # bisection between the last good and first bad
            mid = (good + bad) // 2
            if mid <= good or bad - good <= max(16, good // 16):
                break
            if run(mid)["ok"]:
                good = mid
            else:
                bad = mid
    return runs


def main(args: argparse.Namespace) -> int:
    if args.quick:
        args.seconds, args.start, args.max_beds = 3.0, 8, 16
    if args.backend == "tensorrt":  # fail before any export work when there is no GPU
        from sleepstream.engine.inference.backends.tensorrt import require_tensorrt

        try:
            require_tensorrt()
        except BackendUnavailableError as exc:
            print(f"bench beds --backend tensorrt: unavailable here: {exc}")
            print_figures({"backend": "tensorrt", "available": False, "reason": str(exc)},
                          as_json=args.json)
            return 3
    label: dict[str, Any] = {}
    files = load_model_files(resolve_model(args.checkpoint, label))
    rss0 = rss_mb()
    make = _backend_maker(args, files)
    print(f"bench beds: backend {args.backend}, model {label['model']}, "
          f"{args.seconds:.0f} s per trial, bounded wait {args.max_wait * 1e3:.0f} ms")
    base = asyncio.run(trial(make(1), files, 1, min(args.seconds, 5.0), args.max_wait))
    runs = search(make, files, args)
    figures = _figures(args, label["model"], files, base, runs, make(1), rss0)
    figures.update(compare_layouts(make, files, args))
    _summarise(figures)
    print_figures(figures, as_json=args.json)
    return 0


def compare_layouts(make: Any, files: ModelFiles, args: argparse.Namespace) -> dict[str, Any]:
    """Every layout at ``args.at`` beds, one after another in this process."""
    n = min(args.at, args.max_beds)
    by: dict[str, Any] = {}
    print(f"layouts at {n} beds:")
    for layout in LAYOUTS:
        r = asyncio.run(trial(make(n), files, n, args.seconds, args.max_wait, layout))
        by[layout] = r
        print(f"  {layout:8s} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  contiguous "
              f"{100 * r['contiguous_calls']:5.1f} % of calls  swaps {r['swaps_per_s']:6.1f}/s  "
              f"masked rows {r['masked_rows_per_s']:7.1f}/s  backend "
              f"{r['backend_ms_per_s']:6.0f} ms/s", flush=True)
    chosen = by[args.layout]
    return {"at_beds": n, "layouts": by, f"p99_ms_at_{n}": chosen["p99_ms"],
            "goal_p99_ms_at_beds": GOAL_AT_BEDS,
            "best_layout_at_beds": min(by, key=lambda k: by[k]["p99_ms"])}


def _backend_maker(args: argparse.Namespace, files: Any) -> Callable[[int], Any]:
    """``make(n)``: a backend with room for n beds; the largest one so far is reused, its cache
    pages touched once before timing (first-touch page faults are a start-up cost, not a
    step's)."""
    from sleepstream.engine.inference.backends import make_backend

    made: dict[str, Any] = {}

    def make(n: int) -> Any:
        spare = 2 * max(1, round(1.0 / args.max_wait))  # room for uneven phase buckets
        be = made.get("backend")
        if be is None or be.capacity < n + spare:
            made.pop("backend", None)
            be = make_backend(args.backend, files, n + spare, threads=args.threads,
                              fp16=args.fp16)
            be.reset(np.arange(be.capacity, dtype=np.int64))
            made["backend"] = be
        return be

    return make


def _figures(args: argparse.Namespace, model: str, files: Any, base: dict[str, Any],
             runs: list[dict[str, Any]], probe: Any, rss0: float) -> dict[str, Any]:
    kept = [r for r in runs if r["ok"]]
    best = max(kept, key=lambda r: r["beds"]) if kept else runs[0]
    n = best["beds"]
    kv_bytes = int(getattr(probe, "bytes_per_slot", 0))
    buf = bed_buffer_bytes(files)
    tok_ms = tokenizer_ms_per_s(files, n)
    cpu = args.backend != "tensorrt"
    return {
        "backend": args.backend,
        "layout": args.layout,
        "model": model,
        "max_beds_realtime": n if kept else 0,
        "goal_max_beds_realtime": GOAL_BEDS_CPU if cpu else GOAL_BEDS_GPU,
        "p50_ms": best["p50_ms"],
        "p99_ms": best["p99_ms"],
        "goal_p99_ms": GOAL_P99_CPU_MS if cpu else GOAL_P99_GPU_MS,
        "mb_per_bed": (kv_bytes + buf) / 2**20,
        "goal_mb_per_bed": GOAL_MB_PER_BED,
        "kv_mb_per_bed": kv_bytes / 2**20,
        "buffers_mb_per_bed": buf / 2**20,
        # the largest backend made so far holds every slot's cache: growth over its slots
        "rss_growth_mb_per_bed": max(0.0, rss_mb() - rss0) / max(int(probe.capacity), 1),
        "single_bed_p50_ms": base["p50_ms"],
        "ratio_p50_vs_single_bed": best["p50_ms"] / max(base["p50_ms"], 1e-9),
        "beds_per_call": best["mean_batch"],
        "profile_ms_per_s": {
            "backend": best["backend_ms_per_s"],
            "tokenizers_batched": tok_ms,
            "scheduler_python_and_idle": 1e3 - best["backend_ms_per_s"] - tok_ms,
        },
        "trials": runs,
    }


def _summarise(f: dict[str, Any]) -> None:
    prof = f["profile_ms_per_s"]
    print(f"largest real-time N: {f['max_beds_realtime']} beds "
          f"(goal {f['goal_max_beds_realtime']}); p50 {f['p50_ms']:.1f} ms, "
          f"p99 {f['p99_ms']:.1f} ms (goal < {f['goal_p99_ms']:.0f}); "
          f"{f['mb_per_bed']:.2f} MB per bed (KV {f['kv_mb_per_bed']:.2f} + buffers "
          f"{f['buffers_mb_per_bed']:.2f}; goal <= {f['goal_mb_per_bed']})")
    print(f"profile per second of wall time: backend {prof['backend']:.0f} ms, tokenizers "
          f"(batched, measured apart) {prof['tokenizers_batched']:.0f} ms, rest "
          f"{prof['scheduler_python_and_idle']:.0f} ms")
    if (f["max_beds_realtime"] < f["goal_max_beds_realtime"]
            or f["p99_ms"] >= f["goal_p99_ms"]):
        top = max(prof, key=lambda k: prof[k])
        print(f"goal missed; the largest share of a second goes to: {top} ({prof[top]:.0f} ms)")
