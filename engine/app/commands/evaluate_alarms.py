"""``sleepstream evaluate alarms``: the alarm burden of real nights, and whether the alarms that
matter were raised.

Every ``*.edf`` of ``--data`` is replayed at maximum speed through the real engine
(``build_engine``: EDF source, ring buffers, quality, AlertEngine; no staging model) with the
alarm settings of ``--config`` (its first bed's ``[alerts]``, else the defaults). Reported
(``models.alarm_burden``): physiological alarms per bed-hour by code and priority, technical
alarms per bed-hour, scored events per bed-hour (they are not alarms), the share of sustained
hypoxemia episodes (``--limit`` %, ``--min-s`` valid seconds) that got a medium- or
high-priority alarm before they ended, and the alarm delay from episode onset.
Goals: at most 1.0 physiological alarm per bed-hour and every sustained episode alarmed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.drivers.edf import EdfSource, read_recording
from sleepstream.engine.alerts import apnea_minutes as am
from sleepstream.engine.app.compose import build_engine, replay_config
from sleepstream.engine.config import Config, ModelSection, load_config
from sleepstream.engine.errors import RecordingError
from sleepstream.engine.report import print_figures
from sleepstream.engine.sinks import MemorySink
from sleepstream.models import alarm_burden as ab

GOAL_PHYS_PER_BED_HOUR = 1.0
GOAL_EPISODES_ALARMED = 1.0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="folder of EDF recordings")
    p.add_argument("--config", type=Path, help="engine TOML whose alarm settings are used")
    p.add_argument("--limit", type=float, default=90.0, help="hypoxemia limit, %% (default 90)")
    p.add_argument("--min-s", type=float, default=30.0,
                   help="valid seconds below the limit that make an episode (default 30)")
    p.add_argument("--nights", type=int, default=0, help="only the first N recordings (0: all)")
    p.add_argument("--json", action="store_true", help="end with one JSON line of figures")


def replay_night(path: Path, base: Config) -> tuple[list[dict[str, Any]], float, Any]:
    """Every event of one night through the engine, its duration (s) and the recording."""
    rec = read_recording(path)
    config = replay_config(path, base=base)
    sink = MemorySink()
    source = EdfSource(path, speed=None, chunk_s=30.0, recording=rec)
    engine, _, _ = build_engine(config, live=False, extra_sinks=[sink],
                                drivers={"replay": [source]})
    asyncio.run(engine.run())
    return sink.events, rec.duration, rec


def _night(path: Path, base: Config, args: argparse.Namespace
           ) -> tuple[list[ab.AlarmSpan], list[float | None], Counter[str], float]:
    events, duration, rec = replay_night(path, base)
    spans = ab.alarm_spans(events)
    s = next((s for s in rec.signals if s.spec.modality == "spo2"), None)
    eps = [] if s is None else ab.episodes(
        am.clean_spo2(s.data[:: max(1, round(s.spec.fs))], s.valid[:: max(1, round(s.spec.fs))]),
        limit=args.limit, min_s=args.min_s)
    delays = ab.coverage(eps, spans)
    scored = Counter(str(e["code"]) for e in events if e.get("type") == "event")
    missed = [round(ep.onset) for ep, d in zip(eps, delays, strict=True) if d is None]
    print(f"{path.stem}: {duration / 3600:.2f} h, {sum(sp.kind == 'physiological' for sp in spans)}"
          f" physiological / {sum(sp.kind == 'technical' for sp in spans)} technical alarms, "
          f"{len(eps)} sustained episodes, missed at {missed or '-'}", file=sys.stderr)
    return spans, delays, scored, duration


def main(args: argparse.Namespace) -> int:
    files = sorted(args.data.glob("*.edf"))
    if args.nights:
        files = files[: args.nights]
    if not files:
        raise RecordingError(f"{args.data}: no *.edf recordings")
    base = load_config(args.config) if args.config else Config()
    base = replace(base, model=ModelSection(checkpoint="none", backend=base.model.backend))
    spans: list[ab.AlarmSpan] = []
    delays: list[float | None] = []
    scored: Counter[str] = Counter()
    seconds = 0.0
    for path in files:
        sp, de, sc, dur = _night(path, base, args)
        spans += sp
        delays += de
        scored += sc
        seconds += dur
    hours = seconds / 3600.0
    got = np.asarray([d for d in delays if d is not None], dtype=np.float64)
    figures: dict[str, Any] = {"nights": len(files), "bed_hours": hours}
    figures.update(ab.burden(spans, hours))
    figures["goal_physiological_per_bed_hour"] = GOAL_PHYS_PER_BED_HOUR
    figures["scored_events_per_bed_hour"] = {k: v / hours for k, v in sorted(scored.items())}
    figures["sustained_episodes"] = len(delays)
    figures["episodes_alarmed"] = int(got.size)
    figures["episodes_alarmed_share"] = got.size / len(delays) if delays else float("nan")
    figures["goal_episodes_alarmed_share"] = GOAL_EPISODES_ALARMED
    for q in (50, 95):
        figures[f"alarm_delay_p{q}_s"] = float(np.percentile(got, q)) if got.size else None
    figures["alarm_delay_max_s"] = float(got.max()) if got.size else None
    print(f"{hours:.1f} bed-hours: {figures['physiological_per_bed_hour']:.2f} physiological "
          f"alarms per bed-hour (goal <= {GOAL_PHYS_PER_BED_HOUR}), "
          f"{figures['technical_per_bed_hour']:.2f} technical; {got.size}/{len(delays)} "
          f"sustained hypoxemia episodes alarmed")
    print_figures(figures, as_json=args.json)
    return 0
