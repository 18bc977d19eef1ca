"""Per-night context of the apnea-minute features: running means, deviation and percentile."""

from __future__ import annotations

import numpy as np

from sleepstream.engine.alerts import apnea_features as af


def test_running_percentile_by_hand():
    base = np.array([[3.0], [1.0], [2.0], [2.0], [5.0]])
    x = af.with_context(base)
    pct = x[:, -1]
    # row i against rows 0..i, itself included, ties half: 3 -> 0.5; 1 among {3,1} -> 0.25;
    # 2 among {3,1,2} -> (1 + 0.5) / 3; 2 among {3,1,2,2} -> (1 + 1) / 4; 5 -> 4.5 / 5
    np.testing.assert_allclose(pct, [0.5, 0.25, 0.5, 0.5, 0.9])
    rel = x[:, -2]
    np.testing.assert_allclose(rel, base[:, 0] - np.cumsum(base[:, 0]) / np.arange(1, 6))


def test_streaming_rows_equal_batch():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(70, 4))
    base[::7, 1] = 0.0  # ties
    batch = af.with_context(base)
    for i in range(base.shape[0]):
        one = af.with_context(base[i : i + 1], base[:i])
        np.testing.assert_allclose(one[0], batch[i], rtol=1e-12, atol=1e-12)
    split = af.with_context(base[40:], base[:40])
    np.testing.assert_allclose(split, batch[40:], rtol=1e-12, atol=1e-12)


def test_names_match_columns():
    for with_spo2 in (True, False):
        n_base = len(af.base_names(with_spo2))
        names = af.feature_names(with_spo2)
        assert len(names) == n_base * (2 + len(af.CONTEXTS) + 1)
        assert names[-n_base:] == tuple(f"pct_{n}" for n in af.base_names(with_spo2))
        assert len(set(names)) == len(names)
