"""Every inference backend against the PyTorch reference (``RQTransformer.step`` with the ring KV
cache), stepping random beds in random slot subsets past the ring's wrap, with resets.

Tolerances: onnxruntime (serving and full-state graphs, Triton state form) within 1e-4 absolute
on embeddings, stage logits and surprise (float32; measured about 1e-6); TensorRT FP32 within
1e-3, FP16 within 5e-2 (GPU only).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from sleepstream.engine.inference.backends import make_backend  # noqa: E402
from sleepstream.engine.inference.backends.onnx import (  # noqa: E402
    OnnxRingBackend,
    OnnxStepBackend,
)
from sleepstream.engine.inference.model_files import ModelFiles, load_model_files  # noqa: E402
from sleepstream.engine.protocols import InferenceBackend, StepBatch  # noqa: E402
from sleepstream.models.serving_export import export_random, export_triton  # noqa: E402

TOL_ORT = 1e-4
CAP = 5


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_random(tmp_path_factory.mktemp("random_model"), tiny=True)


def drive(backends: dict[str, InferenceBackend], files: ModelFiles, steps: int) -> dict[str, float]:
    """Step all backends identically; return the worst absolute error against ``torch``."""
    rng = np.random.default_rng(3)
    m, q = len(files.modalities), files.levels
    worst: dict[str, float] = {k: 0.0 for k in backends if k != "torch"}
    for t in range(steps):
        slots = np.sort(rng.choice(CAP, int(rng.integers(1, CAP + 1)), replace=False))
        batch = StepBatch(
            rng.integers(0, 16, (len(slots), m, q)),
            rng.random((len(slots), m)) > 0.3,
            slots.astype(np.int64),
        )
        if t in (40, 90):
            for be in backends.values():
                be.reset(np.array([1, 3], np.int64))
        ref = backends["torch"].step(batch)
        for name, be in backends.items():
            if name == "torch":
                continue
            out = be.step(batch)
            for a in ("embeddings", "stage_logits", "surprise"):
                err = float(np.abs(getattr(out, a) - getattr(ref, a)).max())
                worst[name] = max(worst[name], err)
    return worst


def test_onnxruntime_backends_match_torch(model_dir: Path) -> None:
    files = load_model_files(model_dir)
    backends = {
        "torch": make_backend("torch", files, CAP),
        "onnx_serving": make_backend("onnx", files, CAP),
        "onnx_full_state": OnnxStepBackend(files, capacity=CAP),
    }
    assert isinstance(backends["onnx_serving"], OnnxRingBackend)
    worst = drive(backends, files, steps=150)  # window 60: the ring wraps twice
    assert max(worst.values()) < TOL_ORT, worst


class TritonStateBackend:
    """The Triton state form run the way the sequence batcher runs it: state tensors gathered
    per sequence, fed as ``INPUT_*``, ``OUTPUT_*`` kept; zeroed at sequence start."""

    name = "triton-state"

    def __init__(self, path: Path, files: ModelFiles) -> None:
        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.names = [i.name[len("INPUT_"):] for i in self.sess.get_inputs()[2:]]
        shapes = {i.name[len("INPUT_"):]: i.shape[1:] for i in self.sess.get_inputs()[2:]}
        self.state = {
            n: np.zeros((CAP, *s), np.int64 if n == "pos" else np.float32)
            for n, s in shapes.items()
        }
        self.capacity = CAP

    def step(self, batch: StepBatch):  # type: ignore[no-untyped-def]
        s = batch.slots
        feeds = {"codes": batch.codes, "presence": batch.presence}
        feeds.update({f"INPUT_{n}": self.state[n][s] for n in self.names})
        outs = [o.name for o in self.sess.get_outputs()]
        res = dict(zip(outs, self.sess.run(outs, feeds), strict=True))
        for n in self.names:
            self.state[n][s] = res[f"OUTPUT_{n}"]
        from sleepstream.engine.protocols import StepOutput

        return StepOutput(res["embedding"], res["stage_logits"], res["surprise"])

    def reset(self, slots: np.ndarray) -> None:
        for a in self.state.values():
            a[slots] = 0


def test_triton_state_form_matches_torch_and_config(model_dir: Path, tmp_path: Path) -> None:
    files = load_model_files(model_dir)
    from sleepstream.models import bundle

    tr = bundle.load(model_dir / "model.npz")
    cfg_path = export_triton(tr.model, tmp_path / "repo", max_batch=64)
    onnx_path = cfg_path.parent / "1" / "model.onnx"
    backends = {
        "torch": make_backend("torch", files, CAP),
        "triton_state": TritonStateBackend(onnx_path, files),  # type: ignore[dict-item]
    }
    worst = drive(backends, files, steps=80)
    assert max(worst.values()) < TOL_ORT, worst
    text = cfg_path.read_text()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ins = {i.name for i in sess.get_inputs()}
    outs = {o.name for o in sess.get_outputs()}
    pairs = re.findall(r'input_name: "(\w+)"\s+output_name: "(\w+)"', text)
    assert len(pairs) == 2 * files.n_layer + 2
    for i_name, o_name in pairs:  # every state pair names a real graph input and output
        assert i_name in ins and o_name in outs
        assert i_name.startswith("INPUT_") and o_name == "OUTPUT_" + i_name[len("INPUT_"):]
    assert "max_batch_size: 64" in text and "zero_data: true" in text


def _gpu_ready() -> bool:
    if importlib.util.find_spec("tensorrt") is None:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_ready(), reason="needs an NVIDIA GPU and the tensorrt package")
@pytest.mark.parametrize(("fp16", "tol"), [(False, 1e-3), (True, 5e-2)])
def test_tensorrt_matches_torch(model_dir: Path, fp16: bool, tol: float) -> None:
    from sleepstream.engine.inference.model_files import SERVING_FILE
    from sleepstream.models.serving_export import build_tensorrt

    name = "step_serving.fp16.plan" if fp16 else "step_serving.plan"
    build_tensorrt(model_dir / SERVING_FILE, model_dir / name, fp16=fp16, batches=(1, 4, 64))
    files = load_model_files(model_dir)
    backends = {
        "torch": make_backend("torch", files, CAP),
        "tensorrt": make_backend("tensorrt", files, CAP, fp16=fp16),
    }
    worst = drive(backends, files, steps=150)
    assert max(worst.values()) < tol, worst


def test_unavailable_tensorrt_says_what_to_install(model_dir: Path) -> None:
    if _gpu_ready():
        pytest.skip("TensorRT is available here")
    from sleepstream.engine.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="pip install"):
        make_backend("tensorrt", load_model_files(model_dir), CAP)
