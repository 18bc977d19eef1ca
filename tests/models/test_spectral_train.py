"""Training streams and record-wise cross-validation of the EEG spectral model, on small
generated nights in the Sleep-EDF summary format (the real nights are measured by
``evaluate spectral``)."""

from __future__ import annotations

import numpy as np

from sleepstream.engine.inference.spectral_features import feature_names
from sleepstream.models import spectral_train as st
from sleepstream.models.spectral_data import DERIVATIONS, Night


def _night(record: str, subject: str, seed: int, n: int = 240) -> Night:
    rng = np.random.default_rng(seed)
    stages = np.zeros(n, np.int64)
    stages[40:200] = rng.integers(1, 5, 160)  # wake, a sleep period, wake
    slow = np.where(stages == 3, 30.0, 1.0)  # deep sleep: far more delta power
    summaries = {}
    for d in DERIVATIONS:
        bands = np.stack([slow, 2 + 0 * slow, 1.5 + 0 * slow, 0.5 + 0 * slow, 0.1 + 0 * slow], 1)
        bands = bands * rng.lognormal(0, 0.2, bands.shape) * 1e-12
        var = bands[:, :4].sum(1) * 40
        mob = np.where(stages == 0, 0.6, 0.3) + rng.normal(0, 0.02, n)
        summaries[d] = np.column_stack([bands, var, mob])
    return Night(record, subject, np.arange(n) * 30.0, stages, summaries)


NIGHTS = [_night(f"SC4{s}{k}", s, 10 * int(s) + k) for s in ("01", "02", "03") for k in (1, 2)]


def test_training_streams_add_one_mid_sleep_start_per_night_and_derivation() -> None:
    prior = st.fit_prior(NIGHTS)
    x, y = st.training_streams(NIGHTS, prior)
    whole = sum(len(n) for n in NIGHTS) * len(DERIVATIONS)
    assert x.shape[1] == len(feature_names()) and len(x) == len(y)
    assert whole < len(x) < 2 * whole  # each extra stream is a proper tail of its night
    again = st.training_streams(NIGHTS, prior)
    np.testing.assert_array_equal(x, again[0])  # seeded: the same streams every run
    rng = np.random.default_rng(5)
    for n in NIGHTS:
        r = st.mid_sleep_start(n, rng)
        assert 40 <= r < 200


def test_cross_validation_holds_out_subjects_and_scores_mid_sleep_excerpts() -> None:
    held = st.cross_validate(NIGHTS, 3)
    assert held.folds[0] == held.folds[1]  # both nights of a subject in one fold
    for h in ("full", "no_gamma"):
        for i, n in enumerate(NIGHTS):
            assert {d: v.shape for d, v in held.logits[h][i].items()} == {
                d: (len(n), 5) for d in DERIVATIONS}
            part = held.excerpts[h][i]
            assert all(v.shape == (len(held.excerpt_labels[i]), 5) for v in part.values())
            assert 0 < len(held.excerpt_labels[i]) <= st.EXCERPT_EPOCHS
    z = np.concatenate([v for per in held.logits["full"] for v in per.values()])
    y = np.concatenate([held.labels[i] for i, per in enumerate(held.logits["full"]) for _ in per])
    assert (z.argmax(1) == y).mean() > 0.5  # the generated stages are learnable
