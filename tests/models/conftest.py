"""A tiny trained model (two modalities, minutes of synthetic signal) shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sleepstream.models import bundle  # noqa: E402
from sleepstream.models.config import ModelConfig, TokenizerConfig  # noqa: E402
from sleepstream.models.data import Night  # noqa: E402
from sleepstream.models.export import export_runtime  # noqa: E402
from sleepstream.models.train import pretrain, tokenize, train_stage, train_tokenizer  # noqa: E402

MODS = ("resp", "hr")


def synthetic_night(seed: int, minutes: int = 20) -> Night:
    """Stage-dependent heart rate (1 Hz) and breathing (25 Hz) with a known hypnogram."""
    rng = np.random.default_rng(seed)
    epochs = minutes * 2
    stages = np.repeat(rng.integers(0, 5, epochs // 4 + 1), 4)[:epochs]
    sec_stage = np.repeat(stages, 30)
    t = np.arange(len(sec_stage))
    hr = 70 - 4 * sec_stage + rng.normal(0, 1, len(t))
    fs = 25
    tt = np.arange(len(t) * fs) / fs
    amp = 1 + 0.3 * np.repeat(sec_stage, fs)
    resp = amp * np.sin(2 * np.pi * 0.25 * tt) + rng.normal(0, 0.1, len(tt))
    signals = {
        "hr": (hr.astype(np.float32), np.ones(len(t), bool)),
        "resp": (resp.astype(np.float32), np.ones(len(tt), bool)),
    }
    return Night(f"syn{seed}", len(t), signals, stages.astype(np.int64))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bundle.Trained]:
    torch.set_num_threads(1)
    nights = [synthetic_night(s) for s in range(2)]
    toks = {
        m: train_tokenizer(
            TokenizerConfig.for_modality(m, codes=16, channels=8, hidden=32, latent=16),
            nights,
            steps=20,
            batch=128,
        )
        for m in MODS
    }
    cfg = ModelConfig(modalities=MODS, codes=16, d_model=32, n_layer=2, n_head=4, window=60)
    torch.manual_seed(0)
    from sleepstream.models.rq_transformer import RQTransformer

    model = RQTransformer(cfg)
    data = [tokenize(toks, n, MODS, cfg.levels) for n in nights]
    pretrain(model, data, steps=3, batch=2, crop=120)
    train_stage(model, data, steps=3, batch=2, crop=120)
    trained = bundle.Trained(toks, model, {"test": True})
    out = tmp_path_factory.mktemp("tiny_model")
    bundle.save(out / "model.npz", trained, "model")
    export_runtime(trained, out)
    return out, trained
