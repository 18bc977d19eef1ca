"""The console and the run summary tell the truth on a replayed synthetic night: every event and
alarm type is counted (hypopneas too), console lines are in time order, no alarm message repeats
its code, and an abstaining stage carries no probabilities."""

from __future__ import annotations

import asyncio
import io
import re
from collections import Counter
from dataclasses import replace

from sleepstream.drivers.edf import EdfSource
from sleepstream.engine.app.compose import build_engine, replay_config
from sleepstream.engine.config import Config, ModelSection
from sleepstream.engine.sinks import ConsoleSink, MemorySink, TallySink

NIGHT = ("osa-severe", 1.0, 2)


def _replay(rec):
    config = replay_config(rec.path, base=replace(Config(), model=ModelSection(checkpoint="none")))
    out, memory, tally = io.StringIO(), MemorySink(), TallySink()
    source = EdfSource(rec.path, speed=None, chunk_s=5.0, recording=rec)
    engine, _, _ = build_engine(config, live=False, drivers={"replay": [source]},
                                extra_sinks=[ConsoleSink(stream=out), memory, tally])
    asyncio.run(engine.run())
    return out.getvalue().splitlines(), memory.events, tally


def test_console_and_summary_tell_the_truth(synthetic):
    lines, events, tally = _replay(synthetic(*NIGHT).rec)
    assert tally.types == Counter(e["type"] for e in events)  # every event type counted
    scored = Counter(e["code"] for e in events if e["type"] == "event")
    assert {"apnea", "hypopnea", "desat3"} <= set(scored)
    bed = events[0]["bed"]
    assert tally.events(bed) == scored  # hypopneas included
    for kind in ("physiological", "technical"):
        ids = {(e["code"], e["id"]) for e in events if e["type"] == "alert" and e["kind"] == kind}
        assert tally.alarms(bed, kind) == Counter(code for code, _ in ids)
    assert tally.alarms(bed, "physiological")  # the night does raise alarms
    stamps = [m.group(1) for line in lines if (m := re.match(r"\[(\d\d:\d\d:\d\d)\]", line))]
    assert len(stamps) > 100 and stamps == sorted(stamps)  # lines in time order
    for e in events:
        if e["type"] == "alert":
            words = e["code"].replace("_", " ")
            assert e["code"] not in e["message"] and words not in e["message"], e
        if e["type"] == "stage" and e["stage"] is None:
            assert e["probs"] == {} and e["confidence"] == 0
