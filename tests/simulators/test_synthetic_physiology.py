"""The physiology of generated nights, measured from the signals read back from EDF+."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sleepstream.drivers.edf import Recording, read_recording
from sleepstream.simulators.synthetic import measure
from sleepstream.simulators.synthetic.hypnogram import STAGE_NAMES
from sleepstream.simulators.synthetic.night import Night, simulate_night, write_night
from sleepstream.simulators.synthetic.profiles import PROFILES


def _night(tmp: Path, profile: str, hours: float, seed: int) -> tuple[Night, Recording]:
    night = simulate_night(PROFILES[profile], hours, seed)
    path, _ = write_night(night, tmp / f"{profile}.edf")
    return night, read_recording(path)


def _stages(rec: Recording) -> np.ndarray:
    return np.array([STAGE_NAMES.index(s) for _, s in rec.stages()], dtype=np.int64)


def _data(rec: Recording, label: str) -> np.ndarray:
    return rec.signal(label).data.astype(np.float64)


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Night, Recording]:
    return _night(tmp_path_factory.mktemp("healthy"), "healthy", 3.0, 5)


@pytest.fixture(scope="module")
def severe(tmp_path_factory: pytest.TempPathFactory) -> tuple[Night, Recording]:
    return _night(tmp_path_factory.mktemp("severe"), "osa-severe", 2.0, 2)


def test_all_stages_present(healthy: tuple[Night, Recording]) -> None:
    stages = _stages(healthy[1])
    assert set(np.unique(stages)) == {0, 1, 2, 3, 4}


def test_band_power_ordering(healthy: tuple[Night, Recording]) -> None:
    _, rec = healthy
    stages = _stages(rec)
    fpz = measure.band_powers(_data(rec, "EEG Fpz-Cz"), 100.0, stages)
    pz = measure.band_powers(_data(rec, "EEG Pz-Oz"), 100.0, stages)
    for name, bp in (("Fpz-Cz", fpz), ("Pz-Oz", pz)):
        delta = {s: v["delta"] for s, v in bp.items()}
        alpha = {s: v["alpha"] for s, v in bp.items()}
        print(name, "delta", {s: round(v) for s, v in delta.items()})
        print(name, "alpha", {s: round(v) for s, v in alpha.items()})
        assert delta["N3"] > delta["N2"] > max(delta["N1"], delta["W"], delta["REM"])
        assert alpha["W"] == max(alpha.values())


def test_slow_waves_fill_n3(healthy: tuple[Night, Recording]) -> None:
    _, rec = healthy
    stages = _stages(rec)
    cover = measure.slow_wave_coverage(_data(rec, "EEG Fpz-Cz"), 100.0, stages)
    print("N3 epochs with >= 20 % slow waves:", (cover[stages == 3] >= 0.2).mean())
    assert (cover[stages == 3] >= 0.2).mean() >= 0.9
    assert (cover[stages == 2] >= 0.2).mean() < 0.2


def test_spindle_density_in_n2(healthy: tuple[Night, Recording]) -> None:
    _, rec = healthy
    stages = _stages(rec)
    for label in ("EEG Fpz-Cz", "EEG Pz-Oz"):
        density = measure.spindles(_data(rec, label), 100.0, stages)
        print(label, "spindles/min in N2:", round(density, 2))
        assert 2.0 <= density <= 6.0
    assert measure.spindles(_data(rec, "EEG Pz-Oz"), 100.0, stages, stage=4) < 1.0


def test_rapid_eye_movements_concentrate_in_rem(healthy: tuple[Night, Recording]) -> None:
    _, rec = healthy
    rate = measure.eye_movements(_data(rec, "EOG horizontal"), 100.0, _stages(rec))
    print("eye movements/min:", {k: round(v, 2) for k, v in rate.items()})
    assert rate["REM"] > 2.0 * rate["W"]
    assert rate["REM"] > 10.0 * max(rate["N2"], rate["N3"], 0.1)


def test_heart_rate_and_hrv_follow_stage(healthy: tuple[Night, Recording]) -> None:
    _, rec = healthy
    beats = measure.r_peaks(_data(rec, "ECG"), 200.0)
    hr = measure.hr_by_stage(beats, _stages(rec))
    print({s: {k: round(v, 1) for k, v in d.items()} for s, d in hr.items()})
    assert hr["N3"]["hr"] < hr["N2"]["hr"] < min(hr["W"]["hr"], hr["REM"]["hr"])
    assert hr["N3"]["rmssd_ms"] > hr["N2"]["rmssd_ms"] > hr["REM"]["rmssd_ms"]
    # the 1 Hz HR channel agrees with the ECG
    hr_channel = _data(rec, "HR")
    assert abs(np.median(hr_channel) - 60.0 / np.median(np.diff(beats))) < 3.0


def test_ahi_matches_target(severe: tuple[Night, Recording]) -> None:
    night, rec = severe
    stages = _stages(rec)
    events = measure.respiratory_events(
        _data(rec, "Resp airflow"), _data(rec, "Resp thorax"), _data(rec, "SpO2"), 25.0
    )
    measured = len(events) / measure.sleep_hours(stages)
    target = night.profile.ahi
    print(f"AHI target {target}, annotated {night.ahi:.1f}, scored from signals {measured:.1f}")
    assert abs(night.ahi - target) <= 0.1 * target
    assert abs(measured - target) <= 0.1 * target
    kinds = {k for *_, k in events}
    assert {"Obstructive apnea", "Hypopnea"} <= kinds


def test_odi_consistent_with_events(severe: tuple[Night, Recording]) -> None:
    night, rec = severe
    hours = measure.sleep_hours(_stages(rec))
    odi = len(measure.desaturations(_data(rec, "SpO2"))) / hours
    print(f"ODI scored {odi:.1f}, annotated {night.odi:.1f}, AHI {night.ahi:.1f}")
    assert abs(odi - night.odi) <= 0.15 * night.odi
    desats = [a for a in rec.annotations if a.text == "Desaturation"]
    resp = [a for a in rec.annotations if a.text in ("Obstructive apnea", "Central apnea",
                                                     "Hypopnea")]
    assert len(desats) == len(resp)
    lags = np.array([d.onset - r.onset for d, r in zip(desats, resp, strict=True)])
    assert lags.min() >= 18.0 and lags.max() <= 40.0


def test_obstructive_vs_central_effort(severe: tuple[Night, Recording]) -> None:
    night, rec = severe
    flow, effort = _data(rec, "Resp airflow"), _data(rec, "Resp abdomen")

    def amp(x: np.ndarray, a: float, b: float) -> float:
        return float(np.std(x[int(a * 25) : int(b * 25)]))

    for e in night.events.respiratory:
        mid_a, mid_b = e.onset + 3, e.end - 3
        before = amp(flow, e.onset - 60, e.onset - 20)
        if e.kind == "Obstructive apnea":
            assert amp(flow, mid_a, mid_b) < 0.1 * before
            assert amp(effort, mid_a, mid_b) > 0.5 * amp(effort, e.onset - 60, e.onset - 20)
        elif e.kind == "Central apnea":
            assert amp(effort, mid_a, mid_b) < 0.1 * amp(effort, e.onset - 60, e.onset - 20)
        else:
            assert amp(flow, mid_a, mid_b) < 0.7 * before


def test_af_rr_irregularity(tmp_path: Path) -> None:
    night, rec = _night(tmp_path, "af-paroxysmal", 2.0, 4)
    assert night.events.af
    beats = measure.r_peaks(_data(rec, "ECG"), 200.0)
    irr = measure.rr_irregularity(beats, [(e.onset, e.end) for e in night.events.af])
    print("normalised RMSSD, AF vs sinus:", irr)
    assert irr["af"] > 0.15 > 0.08 > irr["sinus"]
