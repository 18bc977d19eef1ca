"""Causal and on time: the stage of epoch k leaves the bed within 1 s of engine time after the
epoch's end, never before it, and never as a revision.

A bed (``BedState``: ring buffers, resampling to model rates, signal quality, 1-s hops) with the
shipped model's ``StagingProcessor`` takes one-second frames of EEG at 256 Hz and heart rate
at 1 Hz, as a replay does; the engine clock is the replay clock (the data time reached).
"""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.engine.bed import BedState
from sleepstream.engine.clock import ReplayClockState
from sleepstream.engine.inference.model_files import DEFAULT_MODEL_DIR
from sleepstream.engine.types import ChannelSpec, Frame

pytestmark = pytest.mark.skipif(
    not (DEFAULT_MODEL_DIR / "spectral.json").exists(), reason="no shipped spectral model"
)

EEG = ChannelSpec("EEG C4-M1", 256.0, "eeg", "uV", -500.0, 500.0)
HR = ChannelSpec("HR", 1.0, "hr", "bpm", 0.0, 250.0, 20.0, 250.0)
EPOCHS = 4


def _frame(spec: ChannelSpec, second: int, rng: np.random.Generator) -> Frame:
    n = int(spec.fs)
    ts = second + np.arange(n) / spec.fs
    if spec.modality == "eeg":
        x = 40 * np.sin(2 * np.pi * 1.5 * ts) + rng.normal(0, 8, n)
    else:
        x = 60 + rng.normal(0, 1, n)
    return Frame((spec.name,), ts, x.astype(np.float32)[:, None], np.ones((n, 1), bool),
                 seq=second * n)


@pytest.mark.parametrize("with_eeg", [True, False])
def test_stage_of_each_epoch_within_one_engine_second_of_its_end(with_eeg: bool) -> None:
    from sleepstream.engine.inference.staging import StagingProcessor

    bed = BedState("bed", hop_s=1.0, ring_s=60.0, processors=(StagingProcessor("bed"),))
    specs = (EEG, HR) if with_eeg else (HR,)
    bed.add_channels(specs)
    clock = ReplayClockState()
    rng = np.random.default_rng(7)
    emitted: dict[float, float] = {}  # epoch start -> engine time its stage came out
    for second in range(EPOCHS * 30 + 5):
        for spec in specs:
            events = bed.push(_frame(spec, second, rng))
            clock.advance(second + 1.0)  # the data time reached: this frame's end
            for ev in events:
                if ev["type"] == "stage":
                    assert not ev["revision"]
                    assert ev["epoch_start"] not in emitted  # one causal figure per epoch
                    emitted[ev["epoch_start"]] = clock.now()
    assert sorted(emitted) == [30.0 * k for k in range(EPOCHS)]
    for start, t in emitted.items():
        delay = t - (start + 30.0)
        assert 0.0 <= delay <= 1.0, (start, t)
