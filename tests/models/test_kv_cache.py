"""Ring KV-cache step == full causal forward (sliding window W), including after the ring wraps;
presence and per-sequence reset."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from sleepstream.models.config import ModelConfig  # noqa: E402
from sleepstream.models.kv_cache import new_cache, reset  # noqa: E402
from sleepstream.models.rq_transformer import RQTransformer, full_surprise  # noqa: E402

TOL = 1e-4  # float32, absolute, on embeddings / logits / surprise


def _model(window: int = 8) -> RQTransformer:
    torch.manual_seed(0)
    cfg = ModelConfig(
        modalities=("eeg", "hr", "spo2"), codes=16, d_model=32, n_layer=2, n_head=4, window=window
    )
    return RQTransformer(cfg).eval()


def _inputs(b: int, t: int, m: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 16, (b, t, m, 4), generator=g), torch.rand(b, t, m, generator=g) > 0.3


@torch.no_grad()
def test_step_equals_full_forward_after_wrap() -> None:
    model = _model(window=8)
    codes, pres = _inputs(3, 29)  # 29 steps through a ring of 8: wraps three times
    h = model(codes, pres)
    stage_full, _ = model.heads(h)
    surprise_full = full_surprise(model, h, codes, pres)
    st = new_cache(model.cfg, 3)
    for t in range(29):
        e, s, sp, st = model.step(codes[:, t], pres[:, t], st)
        assert (e - h[:, t]).abs().max() < TOL
        assert (s - stage_full[:, t]).abs().max() < TOL
        assert (sp - surprise_full[:, t]).abs().max() < TOL
    assert st.pos.tolist() == [29, 29, 29]


@torch.no_grad()
def test_per_sequence_reset() -> None:
    model = _model(window=8)
    codes, pres = _inputs(2, 20)
    st = new_cache(model.cfg, 2)
    for t in range(20):
        if t == 11:
            st = reset(st, torch.tensor([False, True]))
        e, _, _, st = model.step(codes[:, t], pres[:, t], st)
    full0 = model(codes[:1], pres[:1])[0, -1]
    fresh1 = model(codes[1:, 11:], pres[1:, 11:])[0, -1]  # sequence 1 restarted at t=11
    assert (e[0] - full0).abs().max() < TOL
    assert (e[1] - fresh1).abs().max() < TOL


@torch.no_grad()
def test_absent_codes_are_ignored_and_any_subset_runs() -> None:
    model = _model()
    codes, pres = _inputs(1, 10)
    pres[..., 1] = False
    other = codes.clone()
    other[..., 1, :] = (other[..., 1, :] + 5) % 16  # change only the absent modality's codes
    assert torch.allclose(model(codes, pres), model(other, pres))
    nothing = torch.zeros_like(pres)
    h = model(codes, nothing)
    assert torch.isfinite(h).all()
    assert not torch.allclose(model(codes, pres), h)


@torch.no_grad()
def test_chunked_prefill_equals_step() -> None:
    model = _model(window=8)
    codes, pres = _inputs(2, 31)
    st = new_cache(model.cfg, 2)
    steps = []
    for t in range(31):
        e, _, _, st = model.step(codes[:, t], pres[:, t], st)
        steps.append(e)
    ref = torch.stack(steps, 1)
    past, got, a = None, [], 0
    for c in (5, 3, 11, 12):  # chunks shorter and longer than W
        h, past = model.chunk(codes[:, a : a + c], pres[:, a : a + c], past, a)
        got.append(h)
        a += c
    assert (torch.cat(got, 1) - ref).abs().max() < TOL
