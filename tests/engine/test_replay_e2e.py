"""End to end: real recordings from ../shared/data replayed through the engine.

Every sample read from the file must come out of the engine exactly once (counted by a block
processor at the end of the pipeline), and a probe-off stretch must show as a technical alarm.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
import pytest

from sleepstream.drivers.edf import EdfSource, read_recording
from sleepstream.engine.app.cli import main as cli_main
from sleepstream.engine.app.compose import build_engine, replay_config
from sleepstream.engine.config import Config, ModelSection
from sleepstream.engine.sinks import MemorySink


class CountingProcessor:
    """Counts the native and model-rate samples that reach the processors, per channel."""

    def __init__(self) -> None:
        self.native: dict[str, int] = defaultdict(int)
        self.model: dict[str, int] = defaultdict(int)
        self.next_t: dict[str, float] = {}
        self.blocks = 0

    def process(self, block):
        self.blocks += 1
        for name, ch in block.native.items():
            expected = self.next_t.get(name, ch.t0)
            assert abs(ch.t0 - expected) < 1e-6, "blocks must tile time without gaps or overlaps"
            self.next_t[name] = ch.t0 + ch.data.shape[0] / ch.fs
            self.native[name] += ch.data.shape[0]
        for name, ch in block.model.items():
            self.model[name] += ch.data.shape[0]
        return []

    def finish(self, t_end):
        return []


def _replay(path, *, chunk_s=30.0):
    rec = read_recording(path)
    config = replay_config(path, base=replace(Config(), model=ModelSection(checkpoint="none")))
    sink = MemorySink()
    source = EdfSource(path, speed=None, chunk_s=chunk_s, recording=rec)
    engine, beds, _ = build_engine(config, live=False, extra_sinks=[sink],
                                   drivers={"replay": [source]})
    counter = CountingProcessor()
    beds[0].state.processors = (*beds[0].state.processors, counter)
    asyncio.run(engine.run())
    return rec, beds[0], counter, sink.events


@pytest.mark.parametrize(
    ("folder", "name", "chunk_s"),
    [("nap-eeg", "nap-eeg.edf", 30.0), ("slpdb", "slp02b.edf", 7.0),
     ("oximetry-hugcdn", "C4.edf", 1.0), ("apnea-ecg-hr", "a04.edf", 60.0)],
)
def test_every_sample_in_is_accounted_for(data_dir, folder, name, chunk_s):
    rec, bed, counter, events = _replay(data_dir / folder / name, chunk_s=chunk_s)
    assert bed.failed is None
    summary = bed.state.summary()
    for sig in rec.signals:
        s = summary[sig.label]
        n = sig.data.shape[0]
        assert s["samples_in"] == n
        assert s["processed"] == n and s["filled"] == 0 and s["overrun"] == 0
        assert counter.native[sig.label] == n
        # model-rate output: every second resampled, minus the resampler's pending delay
        model_fs = {"eeg": 100, "eog": 100, "emg": 100, "spo2": 1, "hr": 1}[sig.spec.modality]
        produced = counter.model[sig.label]
        expected = round(rec.duration * model_fs)
        assert expected - 2 * model_fs - 1 <= produced <= expected
        invalid = int((~sig.valid).sum())
        assert s["invalid"] >= invalid
    assert events[0]["type"] == "status" and "without sleep stages" in events[0]["message"]
    assert sum(1 for e in events if e["type"] == "status") == 1  # said once


def test_spo2_zero_in_a_real_night_is_a_technical_alarm_not_data(data_dir):
    path = data_dir / "oximetry-hugcdn" / "D2.edf"
    rec, bed, _, events = _replay(path)
    spo2 = rec.signal("SpO2").data
    zero = spo2 <= 0.5
    # the first stretch of zeros longer than the 10-s condition delay
    runs = np.flatnonzero(np.diff(np.concatenate([[0], zero.astype(int), [0]])))
    starts, ends = runs[::2], runs[1::2]
    first = next(s for s, e in zip(starts, ends, strict=True) if e - s >= 10)
    alarms = [e for e in events if e["type"] == "alert" and e["code"] == "probe_off"]
    assert alarms and alarms[0]["kind"] == "technical" and alarms[0]["state"] == "active"
    assert alarms[0]["onset"] == float(first)
    assert alarms[0]["criterion_t"] == float(first) + 10.0  # emitted at its block's end
    assert any(a["state"] == "ended" for a in alarms)
    assert bed.state.summary()["SpO2"]["invalid_by_reason"]["probe_off"] >= int(zero.sum()) - 1


def test_replay_command_writes_jsonl_and_a_summary(data_dir, tmp_path, capsys):
    out = tmp_path / "events.jsonl"
    path = data_dir / "slpdb" / "slp01a.edf"
    code = cli_main(["replay", str(path), "--max-speed", "--no-model", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "== replay summary ==" in captured.out
    assert "speed-up" in captured.out and "HR" in captured.out
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["type"] == "status"
    assert all(e["bed"] == "replay" for e in lines)


def test_progress_bar_counts_the_recording_and_lifts_off_for_console_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import io

    from sleepstream.engine.app.commands.replay import Progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    term = Terminal()
    progress = Progress(term)

    class Night:
        duration = 120.0

    progress.start(Night())  # type: ignore[arg-type]
    progress(None, 60.4)  # type: ignore[arg-type]
    progress.write("[00:01:00] replay an event line")
    progress(None, 500.0)  # type: ignore[arg-type]  (never past the end)
    progress.close()
    assert progress.bar is not None and progress.bar.n == 120
    assert capsys.readouterr().out == "[00:01:00] replay an event line\n"  # a whole line
    drawn = term.getvalue()
    assert "100%" in drawn and "120/120" in drawn


def test_replay_summary_counts_stage_events_by_stage(data_dir, tmp_path, capsys):
    """The real nap (256-Hz EEG) through the shipped model: the summary's stage line gives the
    stage events per stage, abstentions apart, exactly as the JSONL holds them."""
    out = tmp_path / "events.jsonl"
    code = cli_main(["replay", str(data_dir / "nap-eeg" / "nap-eeg.edf"), "--max-speed",
                     "--quiet", "--out", str(out)])
    assert code == 0
    stages = [json.loads(line) for line in out.read_text().splitlines()]
    counts = Counter(e["stage"] or "abstained" for e in stages if e["type"] == "stage")
    assert sum(counts.values()) >= 45 and set(counts) - {"abstained"}  # staged from the EEG
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("stage events"))
    listed = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    assert line.split(None, 2)[2] == f"{sum(counts.values())}: {listed}"


def test_replay_summary_counts_apnea_minutes_by_outcome(data_dir, tmp_path, capsys):
    """A real oximetry night's first 40 minutes: the summary's apnea-minute line gives the
    minutes per outcome (apnea, no apnea, not scored) exactly as the JSONL holds them."""
    import edfio

    edf = edfio.read_edf(data_dir / "oximetry-hugcdn" / "D5.edf")
    edf.slice_between_seconds(0, 2400)
    night, out = tmp_path / "d5-40min.edf", tmp_path / "events.jsonl"
    edf.write(night)
    assert cli_main(["replay", str(night), "--max-speed", "--quiet", "--no-model",
                     "--out", str(out)]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    counts = Counter("not scored" if e["apnea"] is None else "apnea" if e["apnea"]
                     else "no apnea" for e in events if e["type"] == "apnea_minute")
    assert sum(counts.values()) == (2400 - 30) // 60 and counts["apnea"] > 0
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if x.startswith("apnea minutes"))
    listed = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items()))
    assert line.split(None, 2)[2] == f"{sum(counts.values())}: {listed}"
    assert not any("apnea_minute" in x for x in lines if x.startswith("other events"))
