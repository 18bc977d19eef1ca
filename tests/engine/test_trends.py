"""Trend rows: per-minute SpO2, heart rate, respiratory rate and quality; blocks of any length
give the same rows (streaming equivalence), and a known breathing rate is found."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sleepstream.engine.protocols import Block, ChannelBlock
from sleepstream.engine.trends import TrendProcessor


def _signals(seconds: int, rng: np.random.Generator):
    spo2 = (95 + rng.normal(0, 1, seconds)).astype(np.float32)
    spo2_ok = rng.random(seconds) > 0.1
    hr = (60 + rng.normal(0, 3, seconds)).astype(np.float32)
    t = np.arange(seconds * 25) / 25.0
    flow = np.sin(2 * np.pi * 0.25 * t).astype(np.float32)  # 15 breaths/min
    return [("SpO2", "spo2", 1.0, spo2, spo2_ok), ("HR", "hr", 1.0, hr, np.ones(seconds, bool)),
            ("Flow", "resp", 25.0, flow, np.ones(flow.shape[0], bool))]


def _run(cuts: list[int], signals) -> list[dict]:
    proc = TrendProcessor("bed", period_s=60.0)
    out: list[dict] = []
    for a, b in itertools.pairwise(cuts):
        native = {}
        for name, mod, fs, data, ok in signals:
            i, j = round(a * fs), round(b * fs)
            native[name] = ChannelBlock(name, mod, fs, float(a), data[i:j],
                                        ok[i:j])
        out += proc.process(Block("bed", float(a), float(b), native, {}, frozenset()))
    out += proc.finish(float(cuts[-1]))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_block_split_gives_the_same_rows(seed):
    rng = np.random.default_rng(seed)
    seconds = 330
    signals = _signals(seconds, rng)
    whole = _run([0, seconds], signals)
    inner = sorted(rng.choice(np.arange(1, seconds), size=12, replace=False).tolist())
    chunked = _run([0, *inner, seconds], signals)
    assert chunked == whole
    assert [r["t"] for r in whole] == [60.0, 120.0, 180.0, 240.0, 300.0, 330.0]
    spo2, ok = signals[0][3], signals[0][4]
    assert whole[0]["spo2"] == pytest.approx(float(spo2[:60][ok[:60]].mean()), abs=0.01)
    assert whole[0]["quality"] == pytest.approx((ok[:60].sum() + 60 + 1500) / 1620, abs=1e-4)
    assert all(r["rr"] == pytest.approx(15.0, abs=1.0) for r in whole[:5])
