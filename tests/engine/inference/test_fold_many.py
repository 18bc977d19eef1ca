"""Replay folds a block's steps into epochs an epoch's run at a time (``_fold_many``); this
must give the estimates that folding second by second (``_fold``, as the live scheduler's
results arrive) gives: same epochs, stages, modalities and missing ones, probabilities and
confidences equal to float rounding. Blocks of several sizes cut epochs anywhere, and the
presence of each modality changes within epochs (dropouts)."""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.engine.inference.model_files import ModelFiles, load_model_files
from sleepstream.engine.inference.staging import StagingProcessor
from sleepstream.engine.types import StageEstimate


@pytest.fixture(scope="module")
def files() -> ModelFiles:
    return load_model_files()


def _estimates(proc: StagingProcessor, out: list[object]) -> list[StageEstimate]:
    return [e for e in out if isinstance(e, StageEstimate)]


@pytest.mark.parametrize("block", [1, 7, 30, 45, 95])
def test_fold_many_equals_second_by_second(files: ModelFiles, block: int) -> None:
    rng = np.random.default_rng(block)
    first, n = 13, 30 * 9 + 4  # starts mid-epoch, ends mid-epoch
    m = len(files.modalities)
    presence = rng.random((n, m)) < 0.7
    presence[:, 0] = False  # a modality never seen
    presence[100:160, 1] = False  # a dropout across an epoch boundary
    logits = rng.normal(0, 2, (n, 5)).astype(np.float32)

    single = StagingProcessor("a", files=files, spectral=None)
    single._eeg = None  # the token path alone: _estimate decides
    one: list[StageEstimate] = []
    for j in range(n):
        est = single._fold(first + j, presence[j], logits[j])
        if est is not None:
            one.append(est)

    many = StagingProcessor("a", files=files, spectral=None)
    many._eeg = None
    got: list[StageEstimate] = []
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        got += _estimates(many, many._fold_many(first + lo, presence[lo:hi], logits[lo:hi]))

    assert len(one) == 9 and len(got) == len(one)
    assert many.steps_total == single.steps_total == n
    for a, b in zip(one, got, strict=True):
        assert (a.epoch_start, a.stage, a.modalities, a.missing) == (
            b.epoch_start, b.stage, b.modalities, b.missing)
        assert a.confidence == pytest.approx(b.confidence, abs=1e-9)
        assert a.probs.keys() == b.probs.keys()
        for s in a.probs:
            assert a.probs[s] == pytest.approx(b.probs[s], abs=1e-9)
    # the epoch still open carries the same partial sums
    np.testing.assert_allclose(many._logit_sum, single._logit_sum, atol=1e-9)
    np.testing.assert_array_equal(many._presence_sum, single._presence_sum)
    assert many._steps == single._steps == (first + n) % 30
    assert many._seen.tolist() == single._seen.tolist()
