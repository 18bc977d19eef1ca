"""The engine's staging path: onnxruntime step == torch step, one stage per 30-s epoch, lower
confidence (and the missing modality named) when a channel drops out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sleepstream.engine.inference.backends.onnx import OnnxStepBackend  # noqa: E402
from sleepstream.engine.inference.model_files import ModelFilesError, load_model_files  # noqa: E402
from sleepstream.engine.inference.staging import StagingProcessor  # noqa: E402
from sleepstream.engine.protocols import Block, ChannelBlock, StepBatch  # noqa: E402
from sleepstream.models.kv_cache import new_cache  # noqa: E402
from tests.models.conftest import synthetic_night  # noqa: E402

ORT_TOL = 1e-4  # absolute, float32, onnxruntime vs torch


@torch.no_grad()
def test_onnx_step_matches_torch_after_wrap(tiny_model) -> None:  # type: ignore[no-untyped-def]
    root, trained = tiny_model
    model = trained.model
    files = load_model_files(root)
    backend = OnnxStepBackend(files, capacity=3)
    whole = OnnxStepBackend(files, capacity=2)  # every slot stepped: state arrays adopted
    g = torch.Generator().manual_seed(3)
    slots = np.array([2, 0], np.int64)
    st = new_cache(model.cfg, 2)
    for _ in range(75):  # the ring holds 60 steps
        codes = torch.randint(0, model.cfg.codes, (2, 2, model.cfg.levels), generator=g)
        pres = torch.rand(2, 2, generator=g) > 0.3
        h, logits, surprise, st = model.step(codes, pres, st)
        out = backend.step(StepBatch(codes.numpy(), pres.numpy(), slots))
        out2 = whole.step(StepBatch(codes.numpy(), pres.numpy(), np.arange(2)))
        np.testing.assert_allclose(out2.embeddings, h.numpy(), atol=ORT_TOL)
        np.testing.assert_allclose(out.embeddings, h.numpy(), atol=ORT_TOL)
        np.testing.assert_allclose(out.stage_logits, logits.numpy(), atol=ORT_TOL)
        np.testing.assert_allclose(out.surprise, surprise.numpy(), atol=ORT_TOL)
    assert backend.pos.tolist() == [75, 0, 75]
    backend.reset(np.array([2]))
    assert backend.pos.tolist() == [75, 0, 0]


def _blocks(drop_resp_after: float | None = None, minutes: int = 10) -> list[Block]:
    night = synthetic_night(7, minutes)
    blocks = []
    for s in range(night.seconds):
        model = {}
        for label, m in (("Flow", "resp"), ("HR", "hr")):
            d, v = night.signals[m]
            fs = 25 if m == "resp" else 1
            data, valid = d[s * fs : (s + 1) * fs].copy(), v[s * fs : (s + 1) * fs].copy()
            if m == "resp" and drop_resp_after is not None and s >= drop_resp_after:
                data[:], valid[:] = np.nan, False
            model[label] = ChannelBlock(label, m, float(fs), float(s), data, valid)
        blocks.append(Block("bed1", float(s), float(s + 1), {}, model, frozenset()))
    return blocks


def _run(proc: StagingProcessor, blocks: list[Block]) -> list:  # type: ignore[type-arg]
    out = []
    for b in blocks:
        out.extend(proc.process(b))
    out.extend(proc.finish(blocks[-1].t_end))
    return out


def test_one_stage_per_epoch_and_dropout(tiny_model) -> None:  # type: ignore[no-untyped-def]
    root, _ = tiny_model
    full = _run(StagingProcessor("bed1", model_dir=root), _blocks())
    assert [e.epoch_start for e in full] == [30.0 * k for k in range(20)]
    assert all(e.modalities == ("resp", "hr") and e.missing == () for e in full)
    assert all(abs(sum(e.probs.values()) - 1) < 1e-5 for e in full)
    dropped = _run(StagingProcessor("bed1", model_dir=root), _blocks(drop_resp_after=300))
    assert len(dropped) == 20
    assert dropped[3].missing == () and dropped[12].missing == ("resp",)
    assert all(e.modalities == ("hr",) for e in dropped[10:])
    assert np.mean([e.confidence for e in dropped[10:]]) < np.mean(
        [e.confidence for e in full[10:]]
    )
    assert all(e.confidence <= 0.5 + 1e-6 for e in dropped[10:])
    event = dropped[12].to_event()
    assert event["type"] == "stage" and event["missing"] == ["resp"]


def test_chunked_blocks_equal_one_second_blocks(tiny_model) -> None:  # type: ignore[no-untyped-def]
    root, _ = tiny_model
    blocks = _blocks(minutes=3)
    merged = []
    for a in range(0, len(blocks), 7):  # 7-s blocks
        part = blocks[a : a + 7]
        model = {
            k: ChannelBlock(
                k,
                part[0].model[k].modality,
                part[0].model[k].fs,
                part[0].model[k].t0,
                np.concatenate([b.model[k].data for b in part]),
                np.concatenate([b.model[k].valid for b in part]),
            )
            for k in part[0].model
        }
        merged.append(Block("bed1", part[0].t_start, part[-1].t_end, {}, model, frozenset()))
    one = _run(StagingProcessor("bed1", model_dir=root), blocks)
    many = _run(StagingProcessor("bed1", model_dir=root), merged)
    assert [e.stage for e in one] == [e.stage for e in many]
    for a, b in zip(one, many, strict=True):
        assert abs(a.confidence - b.confidence) < 1e-4


def test_tampered_runtime_files_are_refused(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, _ = tiny_model
    for f in root.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    step = tmp_path / "step.onnx"
    step.write_bytes(step.read_bytes() + b"x")
    with pytest.raises(ModelFilesError, match="checksum"):
        load_model_files(tmp_path)


def test_engine_imports_without_torch() -> None:
    root = Path(__file__).resolve().parents[2]
    mods = [
        "sleepstream.engine.inference.staging",
        "sleepstream.engine.inference.tokenizer_runtime",
    ]
    if (root / "engine" / "pipeline.py").exists():
        mods.append("sleepstream.engine.pipeline")
    # a finder that refuses torch (sys.modules['torch'] = None would trip scipy's torch probe)
    code = (
        "import sys\n"
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('torch is blocked')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
    )
    code += "".join(f"import {m}\n" for m in mods)
    code += "assert not any(m.split('.')[0] == 'torch' for m in sys.modules)\n"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


def test_processor_factory(tiny_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sleepstream.engine.inference.staging import processor_factory

    root, _ = tiny_model
    factory, text = processor_factory(str(root), "onnx")
    assert factory is not None and "onnxruntime" in text
    a, b = factory("bed-a"), factory("bed-b")
    assert a.bed == "bed-a" and a.tokenizers is b.tokenizers
    none, why = processor_factory(str(tmp_path), "onnx")
    assert none is None and "runtime.json" in why
