"""Tokenizer: window-at-once and second-by-second encoding give the same codes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from sleepstream.engine.inference.model_files import load_model_files  # noqa: E402
from sleepstream.engine.inference.tokenizer_runtime import (  # noqa: E402
    TokenizerRuntime,
    new_state,
    push_seconds,
)
from sleepstream.models.config import TokenizerConfig  # noqa: E402
from sleepstream.models.tokenizer import Tokenizer  # noqa: E402


def test_strides_multiply_to_one_second() -> None:
    for m in ("eeg", "resp", "hr"):
        cfg = TokenizerConfig.for_modality(m)
        assert int(np.prod(cfg.strides)) == cfg.fs
    with pytest.raises(ValueError):
        TokenizerConfig(modality="eeg", fs=100, strides=(4, 5))


def test_torch_window_equals_chunks() -> None:
    torch.manual_seed(0)
    tok = Tokenizer(TokenizerConfig.for_modality("resp", codes=16, channels=8, hidden=32)).eval()
    x = torch.randn(1, 25 * 40)
    v = torch.rand(1, 25 * 40) > 0.1
    full, pres = tok.encode(x, v)
    # encode seconds [20, 40) with one second of context in front
    part, ppart = tok.encode(x[:, 25 * 19 :], v[:, 25 * 19 :])
    assert torch.equal(full[:, 20:], part[:, 1:])
    assert torch.equal(pres[:, 20:], ppart[:, 1:])


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=1, max_size=8), st.floats(0.0, 0.6))
def test_runtime_streaming_equals_torch_window(tiny_model, chunks, drop) -> None:  # type: ignore[no-untyped-def]
    root, trained = tiny_model
    files = load_model_files(root)
    rt = TokenizerRuntime(files)
    rng = np.random.default_rng(len(chunks))
    for m, tok in trained.tokenizers.items():
        spec = files.tokenizers[m]
        n_s = sum(chunks)
        data = (rng.normal(size=n_s * spec.fs) * tok.cfg.scale + tok.cfg.center).astype(np.float32)
        valid = rng.random(n_s * spec.fs) >= drop
        data[~valid] = np.nan
        ref, ref_p = tok.encode(torch.from_numpy(data)[None], torch.from_numpy(valid)[None])
        state, got, got_p, a = new_state(spec), [], [], 0
        for c in chunks:  # random chunks of whole seconds
            fr, p = push_seconds(
                spec,
                state,
                data[a * spec.fs : (a + c) * spec.fs],
                valid[a * spec.fs : (a + c) * spec.fs],
            )
            got.append(rt.encode(m, fr))
            got_p.append(p)
            a += c
        np.testing.assert_array_equal(np.concatenate(got), ref[0].numpy())
        np.testing.assert_array_equal(np.concatenate(got_p), ref_p[0].numpy())
        whole, _ = rt.encode_window(m, data, valid)
        np.testing.assert_array_equal(whole, ref[0].numpy())


def test_rvq_usage_and_restart() -> None:
    torch.manual_seed(0)
    cfg = TokenizerConfig.for_modality("hr", codes=32, channels=8, hidden=32, latent=8)
    tok = Tokenizer(cfg).train()
    fr = torch.randn(256, 2, cfg.frame)
    fr[:, 1] = 1
    _, _, codes = tok(fr)
    assert bool(tok.rvq.initialized)
    assert codes.shape == (256, cfg.levels)
    # a codebook entry nobody uses (moved far from every latent) is restarted on a latent
    rvq = tok.rvq
    rvq.codebooks[0, 0] = 1e3
    rvq.ema_sum[0, 0] = 1e3
    rvq.ema_count[0, 0] = 0.0
    before = rvq.restarts
    z = torch.randn(256, cfg.latent)
    with torch.no_grad():
        _, _, codes = rvq.quantize(z)
        assert not (codes[:, 0] == 0).any()
        rvq._ema_update(z, codes)
    assert rvq.restarts > before
    fresh = rvq.codebooks[0, 0]
    assert float(fresh.abs().max()) < 100  # no longer the unused far-away entry
    assert bool((z == fresh).all(1).any())  # it now sits on one of the latents
    assert float(rvq.ema_count[0, 0]) == 1.0
