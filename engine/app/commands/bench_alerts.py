"""``sleepstream bench alerts``: alert latency through the real pipeline, on engine time.

Nights are replayed at maximum speed through ``build_engine`` (EDF source, ring buffers, quality,
AlertEngine, event bus) into a memory sink. For every alarm condition the moment its criterion is
met in the data is computed offline, and the latency is the sink event's ``t`` (engine time of
emission) minus that moment. Two references:

- ``pipeline``: the detector's own criterion (threshold held for the condition delay) computed on
  the whole night in one pass (SpO2 desaturation 3 %/4 %, hypoxemia 90 %/88 %, apnea): what the
  streaming path adds (hop boundaries, chunking, buffering);
- ``truth`` (synthetic nights only): from the generator's exact annotations: an apnea's criterion
  is met the rule delay after the generator's airflow (its ramped event level) is 90 % down; a
  desaturation's when the generator's SpO2 fall (linear from the annotated onset to the annotated
  depth over the duration less 12 s of recovery) has reached 3 %, + the rule delay. This adds
  what the detector needs to see the event (the airflow envelope, the SpO2 baseline estimate), so
  it can also be negative (a baseline estimate above the generator's pre-event level sees the 3 %
  earlier); an announcement is matched to the nearest criterion from ``EARLY_S`` before to
  ``MATCH_S`` after it.

Synthetic nights come from ``simulators.synthetic`` (written as EDF+ and read back); real nights
from ``--data`` (SpO2 nights of a folder such as oximetry-hugcdn).

``--beds N`` also starts N beds' ``AlertEngine`` as ``build_engine`` does (the apnea-minute
models read once and handed to every bed) and, as the baseline in the same run, N that each read
their own copy of ``apnea_minutes.json``: memory (traced allocations) and start-up time per bed,
and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.drivers.edf import EdfSource, Recording, read_recording
from sleepstream.engine.alerts import apnea_minutes as am
from sleepstream.engine.alerts import respiration
from sleepstream.engine.alerts.config import DEFAULT
from sleepstream.engine.app.commands.evaluate_alerts import reference_times
from sleepstream.engine.app.compose import (
    ModelChoice,
    build_engine,
    make_processors,
    replay_config,
)
from sleepstream.engine.config import Config, ModelSection, parse_config
from sleepstream.engine.protocols import BlockProcessor
from sleepstream.engine.report import print_figures
from sleepstream.engine.sinks import MemorySink
from sleepstream.engine.types import FloatArray

GOAL_P99_S = 1.0
MATCH_S = 60.0  # an emission more than this after the criterion is counted as missed
EARLY_S = 15.0  # ... or more than this before it
DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared/data/oximetry-hugcdn"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--synthetic", nargs="*", default=["osa-moderate", "osa-severe"],
                   metavar="PROFILE", help="synthetic profiles to replay (default: both OSA)")
    p.add_argument("--hours", type=float, default=2.0, help="length of each synthetic night")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder of real SpO2 nights (default: the shared oximetry set)")
    p.add_argument("--real", type=int, default=4, metavar="N", help="real nights (0: none)")
    p.add_argument("--chunk-s", type=float, default=1.0,
                   help="source frame length in s (default 1: a live device's frames)")
    p.add_argument("--beds", type=int, default=100, metavar="N",
                   help="AlertEngines to start, shared models against private copies (0: none)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def _start(n: int, private: bool) -> tuple[float, float]:
    """(MB traced, seconds) per bed to start ``n`` AlertEngines; ``private``: each bed parses
    its own models (the baseline)."""
    config = parse_config({"beds": [{"id": "bench", "sources": [{"kind": "mqtt", "channels": [
        {"name": "SpO2", "fs": 1.0}, {"name": "HR", "fs": 1.0}]}]}]})
    shared = am.load_shipped()  # read once, as build_engine does, outside the figures
    none = ModelChoice(None, "no staging")

    def make(i: int) -> BlockProcessor:
        return make_processors(config, replace(config.beds[0], id=f"bench-{i}"), none,
                               None if private else shared)[0]

    t = time.perf_counter()
    beds = [make(i) for i in range(n)]
    seconds = (time.perf_counter() - t) / n
    del beds
    tracemalloc.start()
    beds = [make(i) for i in range(n)]
    traced = tracemalloc.get_traced_memory()[0]  # while every bed is still held
    tracemalloc.stop()
    return traced / len(beds) / 2**20, seconds


def bench_beds(n: int) -> dict[str, Any]:
    shared_mb, shared_s = _start(n, private=False)
    private_mb, private_s = _start(n, private=True)
    return {"beds": n, "mb_per_bed": shared_mb, "ms_per_bed": 1e3 * shared_s,
            "baseline_mb_per_bed": private_mb, "baseline_ms_per_bed": 1e3 * private_s,
            "ratio_mb": private_mb / max(shared_mb, 1e-9),
            "ratio_ms": private_s / max(shared_s, 1e-12)}


def replay(rec: Recording, *, chunk_s: float = 5.0) -> list[dict[str, Any]]:
    """Every event of one recording replayed through the real pipeline (no staging model)."""
    config = replay_config(rec.path, base=replace(Config(), model=ModelSection(checkpoint="none")))
    sink = MemorySink()
    source = EdfSource(rec.path, speed=None, chunk_s=chunk_s, recording=rec)
    engine, _, _ = build_engine(config, live=False, extra_sinks=[sink],
                                drivers={"replay": [source]})
    asyncio.run(engine.run())
    return list(sink.events)


def announcements(events: Sequence[dict[str, Any]], code: str) -> list[dict[str, Any]]:
    """The first announcement of each alarm of ``code`` (ACTIVE with no end yet)."""
    seen: set[str] = set()
    out = []
    for e in events:
        if e["type"] == "event" and e["code"] == code and e["id"] not in seen:
            seen.add(e["id"])  # a scored event: when the detector saw it
            out.append({**e, "t": e["detected_at"]})
        elif (e["type"] == "alert" and e["code"] == code and e["state"] == "active"
                and e["end"] is None and e["id"] not in seen):
            seen.add(e["id"])
            out.append(e)
    return out


def _runs_held(met: np.ndarray, delay: float, lookback: float = 0.0) -> list[float]:
    """Per run of True seconds, the end of the second at which it has held ``delay`` s."""
    m = np.concatenate([[False], met.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts, stops = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    need = max(delay - lookback, 0.0)
    return [float(s + need) for s, e in zip(starts, stops, strict=True) if e - s >= need]


def apnea_criterion(flow: FloatArray, fs: float) -> list[float]:
    """The apnea detector's criterion over the whole airflow trace in one call."""
    st = respiration.new_state("offline", DEFAULT, "flow")
    n = int(flow.size // round(fs))
    ok = np.isfinite(flow)
    amp = respiration.amplitude(st, fs, np.nan_to_num(flow), ok, n)
    base = respiration._baseline(st.history, amp)
    with np.errstate(invalid="ignore", divide="ignore"):
        met = np.nan_to_num(amp / base, nan=1.0) <= 1.0 - DEFAULT.apnea.threshold
    return _runs_held(met, DEFAULT.apnea.delay_s, st.apnea.lookback_s)


def pipeline_reference(rec: Recording) -> dict[str, list[float]]:
    ref: dict[str, list[float]] = {}
    for s in rec.signals:
        if s.spec.modality == "spo2" and "desat3" not in ref:
            ref.update(reference_times(am.clean_spo2(s.data, s.valid), rec.duration))
    flow = next((s for s in rec.signals if s.spec.modality == "resp"
                 and any(k in s.label.lower() for k in ("flow", "nasal"))), None)
    if flow is not None:
        ref["apnea"] = apnea_criterion(flow.data.astype(np.float64), flow.spec.fs)
    return ref


def _flow_down(onset: float, duration: float, depth: float) -> float:
    """When the generator's airflow gain (1 - depth x ramped event level) first reaches the
    apnea threshold (a 90 % drop)."""
    from sleepstream.simulators.synthetic.noise import interval_level
    from sleepstream.simulators.synthetic.respiration import FS

    n = int((duration + 10.0) * FS)
    level = interval_level(np.array([5.0]), np.array([duration]), np.array([1.0]), FS, n, 2.0)
    k = np.flatnonzero(depth * level >= DEFAULT.apnea.threshold)
    return onset - 5.0 + (float(k[0]) / FS if k.size else 5.0)


def truth_reference(night: Any) -> dict[str, list[float]]:
    """Criterion times from the synthetic night's exact annotations (see the module doc)."""
    ev = night.events
    out: dict[str, list[float]] = {"apnea": [
        _flow_down(e.onset, e.duration, 0.96 if e.kind == "Obstructive apnea" else 0.97)
        + DEFAULT.apnea.delay_s
        for e in ev.of("Obstructive apnea", "Central apnea")
    ]}
    drop = DEFAULT.desat3.threshold
    out["desat3"] = [
        e.onset + max(e.duration - 12.0, 1.0) * drop / e.value + DEFAULT.desat3.delay_s
        for e in ev.desaturations if e.value >= drop
    ]
    return out


def _ongoing(events: Sequence[dict[str, Any]], code: str) -> list[tuple[float, float]]:
    """(announced, ended) engine times of each alarm of ``code``: a criterion met again while its
    alarm is still announced (e.g. a latching alarm whose criterion went unknown and came back)
    is not a new alarm, so it has no latency."""
    start: dict[str, float] = {}
    stop: dict[str, float] = {}
    for e in events:
        if e["type"] == "event" and e["code"] == code:
            start.setdefault(e["id"], float(e["detected_at"]))
            stop.setdefault(e["id"], float(e["end"]))
        elif e["type"] == "alert" and e["code"] == code:
            start.setdefault(e["id"], float(e["t"]))
            if e["end"] is not None:
                stop.setdefault(e["id"], float(e["t"]))
    return [(a, stop.get(i, np.inf)) for i, a in start.items()]


Latencies = dict[str, tuple[list[float], int]]  # per code: (signed latencies, missed)


def latencies(
    events: Sequence[dict[str, Any]], ref: dict[str, list[float]], t_stop: float
) -> Latencies:
    """Criterion times and announcements of each code paired closest first (each used once,
    within ``[-EARLY_S, MATCH_S]``); signed latencies and the criteria left unpaired."""
    out: Latencies = {}
    for code, times in ref.items():
        emitted = np.sort([float(e["t"]) for e in announcements(events, code)])
        ongoing = _ongoing(events, code)
        crit = np.asarray([c for c in sorted(times) if c <= t_stop - MATCH_S and not any(
            a < c - EARLY_S and c < b for a, b in ongoing)])
        lo = np.searchsorted(emitted, crit - EARLY_S - 1e-9)
        hi = np.searchsorted(emitted, crit + MATCH_S + 1e-9)
        pairs = sorted((abs(emitted[j] - c), i, j) for i, c in enumerate(crit.tolist())
                       for j in range(int(lo[i]), int(hi[i])))
        taken_c = np.zeros(crit.size, dtype=bool)
        taken_e = np.zeros(emitted.size, dtype=bool)
        lat: list[float] = []
        for _, i, j in pairs:  # closest pairs first, each side used once
            if not taken_c[i] and not taken_e[j]:
                taken_c[i] = taken_e[j] = True
                lat.append(float(emitted[j] - crit[i]))
        missed = int((~taken_c).sum())
        out[code] = lat, missed
    return out


def merge(into: Latencies, more: Latencies) -> Latencies:
    for code, (lat, missed) in more.items():
        a, b = into.get(code, ([], 0))
        into[code] = a + lat, b + missed
    return into


def _stats(lat: list[float], missed: int) -> dict[str, Any]:
    arr = np.asarray(lat if lat else [np.nan])
    return {"alerts": len(lat), "missed": missed, "p50_s": float(np.percentile(arr, 50)),
            "p99_s": float(np.percentile(arr, 99)), "max_s": float(np.max(arr))}


def summary(per_code: Latencies) -> dict[str, Any]:
    """All codes together (p50/p99 against the goal), then each code."""
    lat = [x for v, _ in per_code.values() for x in v]
    missed = sum(m for _, m in per_code.values())
    return {**_stats(lat, missed), "goal_p99_s": GOAL_P99_S,
            "by_code": {code: _stats(*v) for code, v in per_code.items()}}


def synthetic_night(profile: str, hours: float, seed: int, folder: Path) -> tuple[Any, Recording]:
    """Generate a night, write it as EDF+ and read it back."""
    from sleepstream.simulators.synthetic.night import simulate_night, write_night
    from sleepstream.simulators.synthetic.profiles import get_profile

    night = simulate_night(get_profile(profile), hours, seed)
    path = folder / f"{profile}-{seed}.edf"
    write_night(night, path)
    return night, read_recording(path)


ALERT_LABELS = ("SpO2", "HR", "ECG", "Pleth", "Resp airflow")


def bench_synthetic(
    profiles: Sequence[str], hours: float, seed: int, chunk_s: float
) -> dict[str, Any]:
    pipe: Latencies = {}
    truth: Latencies = {}
    with tempfile.TemporaryDirectory() as tmp:
        for profile in profiles:
            night, rec = synthetic_night(profile, hours, seed, Path(tmp))
            rec = replace(rec, signals=tuple(s for s in rec.signals if s.label in ALERT_LABELS))
            events = replay(rec, chunk_s=chunk_s)
            merge(pipe, latencies(events, pipeline_reference(rec), rec.duration))
            merge(truth, latencies(events, truth_reference(night), rec.duration))
    return {"nights": len(profiles), "hours": hours, "pipeline": summary(pipe),
            "truth": summary(truth)}


def bench_real(folder: Path, nights: int, chunk_s: float) -> dict[str, Any]:
    files = sorted(folder.glob("*.edf"), key=lambda p: (not p.name.startswith("D"), p.name))
    per_code: Latencies = {}
    used = 0
    for path in files:
        if used >= nights:
            break
        rec = read_recording(path)
        if not any(s.spec.modality == "spo2" for s in rec.signals):
            continue
        used += 1
        merge(per_code, latencies(replay(rec, chunk_s=chunk_s), pipeline_reference(rec),
                                  rec.duration))
    return {"nights": used, **summary(per_code)}


def main(args: argparse.Namespace) -> int:
    figures: dict[str, Any] = {"chunk_s": args.chunk_s}
    if args.beds > 0:
        b = figures["start"] = bench_beds(args.beds)
        print(f"start-up, {b['beds']} beds: {b['mb_per_bed']:.3f} MB and {b['ms_per_bed']:.2f} ms "
              f"per bed with shared models; {b['baseline_mb_per_bed']:.3f} MB and "
              f"{b['baseline_ms_per_bed']:.2f} ms each parsing its own (x{b['ratio_mb']:.0f} "
              f"memory, x{b['ratio_ms']:.0f} time)")
    if args.synthetic:
        figures["synthetic"] = bench_synthetic(args.synthetic, args.hours, args.seed,
                                               args.chunk_s)
        s = figures["synthetic"]
        for ref in ("pipeline", "truth"):
            print(f"synthetic ({ref}): p50={s[ref]['p50_s']:.2f} s p99={s[ref]['p99_s']:.2f} s "
                  f"alerts={s[ref]['alerts']} missed={s[ref]['missed']}")
    if args.real and args.data.is_dir():
        figures["real"] = bench_real(args.data, args.real, args.chunk_s)
        r = figures["real"]
        print(f"real ({r['nights']} nights, pipeline): p50={r['p50_s']:.2f} s "
              f"p99={r['p99_s']:.2f} s alerts={r['alerts']} missed={r['missed']}")
    print_figures(figures, as_json=args.json)
    return 0
