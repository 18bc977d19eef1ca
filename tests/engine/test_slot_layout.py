"""Contiguous calls for drifting beds: the swap plan, and the scheduler on the shipped model's
onnxruntime backend with each layout (compact, masked, copy) giving every bed the outputs of
stepping it alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sleepstream.engine.inference.backends.onnx import OnnxRingBackend
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR, ModelFiles, load_model_files
from sleepstream.engine.inference.scheduler import StepScheduler
from sleepstream.engine.inference.slot_layout import LAYOUTS, best_run, is_run, plan_swaps
from sleepstream.engine.protocols import StepBatch

TOL = 1e-4  # batch composition changes float rounding in the graph's matrix products


def test_plan_swaps_makes_one_run_moving_only_strays() -> None:
    rng = np.random.default_rng(5)
    for _ in range(300):
        cap = int(rng.integers(2, 64))
        n = int(rng.integers(1, cap + 1))
        slots = np.sort(rng.choice(cap, n, replace=False)).astype(np.int64)
        outside, holes = plan_swaps(slots, cap)
        moved = dict(zip(outside.tolist(), holes.tolist(), strict=True))
        after = np.sort([moved.get(s, s) for s in slots.tolist()])
        assert is_run(after) and after[0] >= 0 and after[-1] < cap
        assert not set(holes.tolist()) & set(slots.tolist())
        lo = best_run(slots, cap)  # no run of n slots holds more of them
        kept = int(((slots >= lo) & (slots < lo + n)).sum())
        assert len(outside) == n - kept
        assert all(((slots >= a) & (slots < a + n)).sum() <= kept for a in range(cap - n + 1))
        if is_run(slots):
            assert len(outside) == 0


@pytest.fixture(scope="module")
def files() -> ModelFiles:
    return load_model_files(DEFAULT_MODEL_DIR)


def _inputs(files: ModelFiles, bed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(100 * bed + k)
    m = len(files.modalities)
    return rng.integers(0, 256, (m, files.levels)), rng.random(m) > 0.3


def _alone(files: ModelFiles, bed: int, steps: int) -> np.ndarray:
    be = OnnxRingBackend(files, 1)
    out = []
    for k in range(steps):
        c, p = _inputs(files, bed, k)
        out.append(be.step(StepBatch(c[None], p[None], np.zeros(1, np.int64))).stage_logits[0])
    return np.stack(out)


async def _drifting_beds(files: ModelFiles, layout: str, beds: int, steps: int
                         ) -> tuple[np.ndarray, StepScheduler, list[int | None]]:
    """Half the beds start in one phase bucket, the other half 0.35 s later (another bucket);
    then every bed steps together, so each tick mixes two slot regions."""
    backend = OnnxRingBackend(files, 40)
    got = np.zeros((beds, steps, 5), np.float32)
    async with StepScheduler(backend, max_wait_s=0.1, layout=layout) as sched:

        async def one(b: int, k: int) -> None:
            c, p = _inputs(files, b, k)
            got[b, k] = (await sched.step(f"bed{b}", c, p)).stage_logits

        half = beds // 2
        await asyncio.gather(*(one(b, 0) for b in range(half)))
        await asyncio.sleep(0.35)
        await asyncio.gather(*(one(b, 0) for b in range(half, beds)))
        for k in range(1, steps):
            await asyncio.gather(*(one(b, k) for b in range(beds)))
        slots = [sched.slot_of(f"bed{b}") for b in range(beds)]
    return got, sched, slots


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_equals_each_bed_stepped_alone(files: ModelFiles, layout: str) -> None:
    beds, steps = 8, 6
    got, sched, slots = asyncio.run(_drifting_beds(files, layout, beds, steps))
    for b in range(beds):
        np.testing.assert_allclose(got[b], _alone(files, b, steps), rtol=0, atol=TOL)
    st = sched.stats
    assert sched.layout == layout and st.steps == beds * steps
    if layout == "compact":
        assert st.swaps > 0 and st.contiguous_calls == st.calls
        assert None not in slots and len(set(slots)) == beds
    elif layout == "masked":
        assert st.masked_rows > 0 and st.swaps == 0
    else:
        assert st.swaps == 0 and st.masked_rows == 0 and st.contiguous_calls < st.calls
