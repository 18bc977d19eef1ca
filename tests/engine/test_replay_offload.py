"""A replay with the bed's staging on a worker thread (``replay_offload``, what ``sleepstream
replay`` and ``bench replay`` run at full speed) gives exactly the events of the in-line replay:
the same events, each type in the same order, on a real EEG nap, a real oximetry night and a
synthetic PSG stretch with dropouts; only a stage event's place in the stream moves (one block)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sleepstream.drivers.edf import EdfSource, Recording, read_recording
from sleepstream.engine.app.compose import build_engine, replay_config
from sleepstream.engine.app.replay_offload import (
    OffloadedProcessor,
    offload_staging,
    staging_of,
)
from sleepstream.engine.config import Config
from sleepstream.engine.protocols import Event
from sleepstream.engine.sinks import MemorySink


def _cut(rec: Recording, seconds: float) -> Recording:
    sigs = [replace(s, data=s.data[: int(seconds * s.spec.fs)],
                    valid=s.valid[: int(seconds * s.spec.fs)]) for s in rec.signals]
    return replace(rec, duration=seconds, signals=tuple(sigs))


def _replay(rec: Recording, offload: bool) -> tuple[list[Event], int]:
    config = replay_config(rec.path, base=Config())
    sink = MemorySink()
    source = EdfSource(rec.path, speed=None, chunk_s=30.0, recording=rec)
    engine, beds, _ = build_engine(config, live=False, extra_sinks=[sink],
                                   drivers={"replay": [source]})
    if offload:
        offload_staging(beds[0])
        assert any(isinstance(p, OffloadedProcessor) for p in beds[0].state.processors)
    asyncio.run(engine.run())
    assert beds[0].failed is None
    staging = staging_of(beds[0])
    assert staging is not None
    return list(sink.events), staging.steps_total


def _assert_same(rec: Recording) -> list[Event]:
    inline, steps_inline = _replay(rec, offload=False)
    off, steps_off = _replay(rec, offload=True)
    assert steps_off == steps_inline > 0
    key = lambda e: json.dumps(e, sort_keys=True, default=str)  # noqa: E731
    for kind in {e["type"] for e in inline} | {e["type"] for e in off}:
        assert [key(e) for e in off if e["type"] == kind] == [
            key(e) for e in inline if e["type"] == kind], kind
    return inline


def test_real_eeg_nap(data_dir: Path) -> None:
    events = _assert_same(read_recording(data_dir / "nap-eeg" / "nap-eeg.edf"))
    stages = [e for e in events if e["type"] == "stage"]
    assert len(stages) >= 45 and all("eeg" in e["modalities"] for e in stages)


def test_real_oximetry_night(data_dir: Path) -> None:
    rec = _cut(read_recording(data_dir / "oximetry-hugcdn" / "D3.edf"), 1800.0)
    events = _assert_same(rec)
    assert sum(e["type"] == "stage" for e in events) == 60


def test_synthetic_psg_with_dropouts(tmp_path: Path) -> None:
    from sleepstream.simulators.synthetic.night import simulate_night, write_night
    from sleepstream.simulators.synthetic.profiles import get_profile

    path = tmp_path / "night.edf"
    write_night(simulate_night(get_profile("osa-moderate"), 0.3, 4), path)
    rec = read_recording(path)
    sigs = []
    for i, s in enumerate(rec.signals):  # each channel loses a different stretch
        v = s.valid.copy()
        a = int((100 + 37 * i) * s.spec.fs)
        v[a : a + int(90 * s.spec.fs)] = False
        sigs.append(replace(s, valid=v, data=np.where(v, s.data, np.nan)))
    events = _assert_same(replace(rec, signals=tuple(sigs)))
    assert sum(e["type"] == "stage" for e in events) == 36
    assert any(e["type"] == "alert" and e["kind"] == "technical" for e in events)


def test_a_failing_staging_fails_the_bed_not_the_run(tmp_path: Path) -> None:
    """An error on the worker thread surfaces in the bed's task like one in line."""

    class Broken:
        def process(self, block: object) -> list[Event]:
            raise RuntimeError("staging broke")

        def finish(self, t_end: float) -> list[Event]:
            return []

    proc = OffloadedProcessor(Broken())  # type: ignore[arg-type]
    assert proc.process(object()) == []  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="staging broke"):
        proc.process(object())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="staging broke"):
        proc.finish(0.0)
