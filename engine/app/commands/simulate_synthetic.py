"""``sleepstream simulate synthetic``: write a synthetic night (EDF+ and JSON truth).

With ``--measure`` the written file is read back through the replay path's reader and scored from
its signals (band powers, spindles, eye movements, HR/HRV, AF irregularity, AHI, ODI).
With ``--fit-hypnograms DIR`` the hypnogram model is fitted to a folder of scored nights and the
distance between generated and real hypnogram statistics is printed.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.report import print_figures
from sleepstream.simulators.synthetic import measure
from sleepstream.simulators.synthetic.hypnogram import MODEL_PATH, STAGE_NAMES
from sleepstream.simulators.synthetic.night import simulate_night, write_night
from sleepstream.simulators.synthetic.profiles import PROFILES, get_profile

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="healthy", choices=sorted(PROFILES))
    parser.add_argument("--hours", type=float, default=8.0, help="night length (default 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="EDF+ file to write (sidecar: same name .json)")
    parser.add_argument("--measure", action="store_true", help="score the written night")
    parser.add_argument("--fit-hypnograms", type=Path, metavar="DIR",
                        help="fit the hypnogram model to the scored nights in DIR and report")
    parser.add_argument("--save-model", action="store_true",
                        help="with --fit-hypnograms: replace the shipped model")
    parser.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _fit(args: argparse.Namespace) -> dict[str, Any]:
    from sleepstream.simulators.synthetic.hypnogram_fit import fit_folder

    model = fit_folder(args.fit_hypnograms, seed=args.seed)
    rep = model.fit_report
    print(f"fitted on {model.n_nights} nights from {args.fit_hypnograms}")
    print(f"{'statistic':22s} {'real':>9s} {'generated':>9s}")
    for k, real in rep["real_mean"].items():
        print(f"{k:22s} {real:9.2f} {rep['generated_mean'][k]:9.2f}")
    print(f"distance: mean SMD {rep['smd_mean']:.3f}, max SMD {rep['smd_max']:.3f}, "
          f"transition-matrix L1 {rep['transition_l1']:.3f}")
    if args.save_model:
        model.save(MODEL_PATH)
        print(f"saved {MODEL_PATH.name}")
    return {"nights": model.n_nights, "smd_mean": rep["smd_mean"], "smd_max": rep["smd_max"],
            "transition_l1": rep["transition_l1"]}


def _measure(path: Path, af: list[tuple[float, float]]) -> dict[str, Any]:
    from sleepstream.drivers.edf import read_recording

    rec = read_recording(path)
    stages = np.array([STAGE_NAMES.index(s) for _, s in rec.stages()], dtype=np.int64)
    sig = {s.label: s.data.astype(np.float64) for s in rec.signals}
    hours = measure.sleep_hours(stages)
    beats = measure.r_peaks(sig["ECG"], rec.signal("ECG").spec.fs)
    af_epochs = np.zeros(stages.size, dtype=bool)
    for a, b in af:
        af_epochs[int(a // 30) : int(b // 30) + 1] = True
    cov = measure.slow_wave_coverage(sig["EEG Fpz-Cz"], 100.0, stages)
    events = measure.respiratory_events(sig["Resp airflow"], sig["Resp thorax"], sig["SpO2"], 25.0)
    return {
        "band_power_fpz_cz": measure.band_powers(sig["EEG Fpz-Cz"], 100.0, stages),
        "band_power_pz_oz": measure.band_powers(sig["EEG Pz-Oz"], 100.0, stages),
        "spindles_per_min_n2": measure.spindles(sig["EEG Fpz-Cz"], 100.0, stages),
        "n3_epochs_sw20": float((cov[stages == 3] >= 0.2).mean()) if (stages == 3).any() else None,
        "eye_movements_per_min": measure.eye_movements(sig["EOG horizontal"], 100.0, stages),
        "heart": measure.hr_by_stage(beats, stages, exclude=af_epochs),
        "rr_irregularity": measure.rr_irregularity(beats, af),
        "ahi_measured": len(events) / hours,
        "odi_measured": len(measure.desaturations(sig["SpO2"])) / hours,
    }


def main(args: argparse.Namespace) -> int:
    if args.fit_hypnograms is not None:
        print_figures(_fit(args), as_json=args.json)
        return 0
    if args.out is None:
        raise SystemExit("sleepstream simulate synthetic: give --out NIGHT.edf")
    profile = get_profile(args.profile)
    t0 = time.perf_counter()
    night = simulate_night(profile, args.hours, args.seed)
    t1 = time.perf_counter()
    edf, side = write_night(night, args.out)
    t2 = time.perf_counter()
    ratio = args.hours * 3600.0 / (t1 - t0)
    print(f"{profile.name}: {args.hours:g} h, seed {args.seed} -> {edf} and {side}")
    print(f"generated in {t1 - t0:.2f} s ({ratio:.0f}x real time), written in {t2 - t1:.2f} s")
    print(f"AHI {night.ahi:.1f} (target {profile.ahi:g}), ODI {night.odi:.1f}, "
          f"arousals {len(night.events.arousals)}, AF episodes {len(night.events.af)}")
    figures: dict[str, Any] = {
        "profile": profile.name, "hours": args.hours, "seed": args.seed,
        "generate_s": t1 - t0, "write_s": t2 - t1, "ratio": ratio,
        "ahi": night.ahi, "goal_ahi": profile.ahi, "odi": night.odi,
    }
    if args.measure:
        measured = _measure(edf, [(e.onset, e.end) for e in night.events.af])
        for k, v in measured.items():
            print(f"{k}: {v}")
        figures.update(measured)
    print_figures(figures, as_json=args.json)
    return 0
