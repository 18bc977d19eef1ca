"""``sleepstream.analyze`` and ``sleepstream.stream`` on a real oximetry night: the same events
as ``sleepstream replay``, in a script and inside a running event loop, folders, subsets."""

from __future__ import annotations

import math
import subprocess
import sys

import edfio
import pandas as pd
import pytest

import sleepstream


def _key(events):
    return [(e["type"], e.get("epoch_start"), e.get("stage"), str(e.get("id")).split("/", 1)[-1],
             e.get("state"), e.get("onset"), e.get("confidence"))
            for e in events if e["type"] in ("stage", "alert")]


def test_analyze_gives_the_replay_events_as_tables(short_night, short_replay, capsys):
    _, _, replayed = short_replay
    night = sleepstream.analyze(short_night)
    assert isinstance(night, sleepstream.Night)
    assert _key(night.raw) == _key(replayed)  # the same engine path as `sleepstream replay`
    assert "replay" not in capsys.readouterr().out
    stages = night.stages
    assert list(stages.columns[:5]) == ["onset", "duration", "stage", "confidence", "modalities"]
    assert len(stages) == 90 and set(stages["modalities"]) <= {"spo2,hr", ""}
    assert len(night.hypnogram) == 90 and night.hypnogram.stages == tuple(
        None if pd.isna(s) else s for s in stages["stage"])
    alarms = night.alarms
    assert "technical" in set(alarms["kind"]) and alarms["onset"].is_monotonic_increasing
    desats = night.events  # scored events, whether emitted as events or as alarms
    n_desat3 = len({e["id"] for e in replayed if e.get("code") == "desat3"})
    assert (desats["code"] == "desat3").sum() == n_desat3 > 0
    stats = night.statistics()
    assert stats["TIB"] == 45.0 and 85 < stats["SpO2_mean"] < 100
    assert stats["ODI3"] > 0 and not math.isnan(stats["HR_mean"])
    fig = night.plot()
    assert len(fig.axes) >= 3


async def test_analyze_inside_a_running_event_loop(short_night):
    night = sleepstream.analyze(short_night, progress=False, modalities=["spo2"])
    assert set(night.stages["modalities"]) <= {"spo2", ""}
    assert math.isnan(night.statistics()["HR_mean"])  # the HR channel was left out


def test_analyze_folder_gives_one_row_per_night(short_night, tmp_path):
    for i, (a, b) in enumerate(((0, 600), (600, 1200))):
        edf = edfio.read_edf(short_night)
        edf.slice_between_seconds(a, b)
        edf.write(tmp_path / f"part{i}.edf")
    (tmp_path / "broken.edf").write_bytes(b"not an edf file")
    frame = sleepstream.analyze(tmp_path, progress=False, model="none")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.index) == ["part0.edf", "part1.edf"]
    assert frame.loc["part0.edf", "TIB"] == 10.0 and "ODI3" in frame.columns
    assert list(frame.attrs["skipped"]) == ["broken.edf"]


def test_progress_bar_on_stderr(short_night):
    code = ("import sleepstream, sys; n = sleepstream.analyze(sys.argv[1], model='none'); "
            "print(len(n.stages))")
    out = subprocess.run([sys.executable, "-c", code, str(short_night)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"  # no model: no stage events
    assert "2700/2700" in out.stderr  # tqdm's bar reached the end


async def test_stream_yields_events_and_stops_early(short_night):
    seen = []
    async for event in sleepstream.stream(short_night):
        seen.append(event)
        if event["type"] == "stage" and event["epoch_start"] >= 300:
            break
    assert seen[0]["type"] == "status" and seen[-1]["epoch_start"] == 300.0


def test_bad_modality_is_one_clear_error(short_night):
    from sleepstream.engine.errors import ConfigError

    with pytest.raises(ConfigError, match="eeg2"):
        sleepstream.analyze(short_night, modalities=["eeg2"], progress=False)


def test_import_sleepstream_stays_light():
    code = ("import sys, sleepstream; heavy = [m for m in ('pandas', 'matplotlib', 'tqdm', "
            "'onnxruntime', 'sleepstream.engine') if m in sys.modules]; "
            "print(heavy, callable(sleepstream.analyze), 'analyze' in dir(sleepstream))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "[] True True", out.stderr
