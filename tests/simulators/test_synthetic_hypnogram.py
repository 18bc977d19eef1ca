"""The hypnogram model: fitted to the real Sleep-EDF hypnograms, compared with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sleepstream.simulators.synthetic.hypnogram import (
    N3,
    REM,
    W,
    generate_hypnogram,
    load_model,
    night_stats,
)
from sleepstream.simulators.synthetic.hypnogram_fit import (
    distance,
    fit_model,
    generate_like,
    read_folder,
)


def test_generated_statistics_close_to_real(data_dir: Path) -> None:
    real = read_folder(data_dir / "sleep-edf-hypnograms")
    assert len(real) == 20
    model = fit_model(real)
    d = distance(real, generate_like(model, real, seed=1))
    print(f"\n{'statistic':22s} {'real':>8s} {'generated':>9s} {'SMD':>5s}")
    for k, smd in d["smd"].items():
        print(f"{k:22s} {d['real_mean'][k]:8.2f} {d['generated_mean'][k]:9.2f} {smd:5.2f}")
    print(f"mean SMD {d['smd_mean']:.3f}  max SMD {d['smd_max']:.3f}  "
          f"transition L1 {d['transition_l1']:.3f}")
    assert d["smd_mean"] < 0.4 and d["smd_max"] < 1.0 and d["transition_l1"] < 0.2


def test_shipped_model_is_the_fit(data_dir: Path) -> None:
    real = read_folder(data_dir / "sleep-edf-hypnograms")
    fitted, shipped = fit_model(real), load_model()
    assert shipped.n_nights == 20
    assert np.allclose(fitted.nrem_chain, shipped.nrem_chain, atol=1e-4)
    assert fitted.bouts == shipped.bouts


def test_cycle_structure() -> None:
    model, rng = load_model(), np.random.default_rng(0)
    stats = [night_stats(generate_hypnogram(model, 960, rng)) for _ in range(20)]
    assert 3.0 <= np.mean([s["rem_periods"] for s in stats]) <= 6.0
    assert 80.0 <= np.nanmean([s["cycle_min"] for s in stats]) <= 120.0
    assert np.mean([s["n3_first_third_pct"] for s in stats]) > 45.0  # N3 is front-loaded


def test_elderly_profile_fragments_sleep() -> None:
    from sleepstream.simulators.synthetic.profiles import PROFILES

    model, rng = load_model(), np.random.default_rng(3)
    young = [generate_hypnogram(model, 960, rng) for _ in range(10)]
    old = [generate_hypnogram(model, 960, rng, PROFILES["elderly-fragmented"].hypnogram)
           for _ in range(10)]
    pct = lambda nights, code: np.mean([(n == code).mean() for n in nights])  # noqa: E731
    assert pct(old, W) > 1.5 * pct(young, W)
    assert pct(old, N3) < 0.7 * pct(young, N3)
    assert pct(old, REM) > 0.05
