"""EDF/EDF+ reading: own rates, EDF+D gaps as invalid samples, labels, annotations, replay."""

from __future__ import annotations

import asyncio

import edfio
import numpy as np
import pytest

from sleepstream.drivers.edf import EdfSource, parse_stage, read_recording
from sleepstream.engine.channel_map import ChannelRule
from sleepstream.engine.errors import RecordingError
from sleepstream.engine.types import Frame


def _write_edf(path, *, seconds=20, discontinuous_after=None, gap_s=0):
    """An EDF+ file with EEG at 100 Hz and SpO2 at 1 Hz; optionally turned into EDF+D with a
    ``gap_s`` hole after record ``discontinuous_after`` by rewriting the timekeeping TALs."""
    t = np.arange(seconds * 100) / 100
    eeg = (50 * np.sin(2 * np.pi * 10 * t)).astype(np.float64)
    spo2 = np.full(seconds, 95.0)
    edf = edfio.Edf(
        [
            edfio.EdfSignal(eeg, 100, label="EEG Fpz-Cz", physical_dimension="uV",
                            physical_range=(-200, 200)),
            edfio.EdfSignal(spo2, 1, label="SpO2", physical_dimension="%",
                            physical_range=(0, 100)),
        ],
        annotations=[edfio.EdfAnnotation(0, 30, "Sleep stage W")],
    )
    edf.write(path)
    if discontinuous_after is None:
        return eeg, spo2
    raw = bytearray(path.read_bytes())
    ns = int(raw[252:256])
    samples = [int(raw[256 + ns * 216 + 8 * i : 256 + ns * 216 + 8 * i + 8]) for i in range(ns)]
    header = 256 * (ns + 1)
    record = 2 * sum(samples)
    tal_at = 2 * sum(samples[:-1])
    tal_len = 2 * samples[-1]
    raw[192:236] = b"EDF+D".ljust(44)
    for k in range(discontinuous_after + 1, seconds):
        start = header + k * record + tal_at
        tal = f"+{k + gap_s}\x14\x14\x00".encode()
        raw[start : start + tal_len] = tal.ljust(tal_len, b"\x00")
    path.write_bytes(bytes(raw))
    return eeg, spo2


def test_signals_keep_their_own_rates_units_and_modalities(tmp_path):
    path = tmp_path / "night.edf"
    eeg, _ = _write_edf(path)
    rec = read_recording(path)
    by_label = {s.label: s for s in rec.signals}
    assert by_label["EEG Fpz-Cz"].spec.fs == 100.0 and by_label["SpO2"].spec.fs == 1.0
    assert by_label["EEG Fpz-Cz"].spec.modality == "eeg"
    assert by_label["SpO2"].spec.modality == "spo2" and by_label["SpO2"].spec.unit == "%"
    np.testing.assert_allclose(by_label["EEG Fpz-Cz"].data, eeg, atol=0.01)
    assert not rec.discontinuous and rec.duration == 20.0
    assert rec.stages() == [(0.0, "W")]


def test_edf_plus_d_gaps_become_invalid_samples_not_zeros(tmp_path):
    path = tmp_path / "gappy.edf"
    eeg, _ = _write_edf(path, seconds=20, discontinuous_after=9, gap_s=5)
    rec = read_recording(path)
    assert rec.discontinuous and rec.duration == 25.0
    sig = rec.signal("EEG Fpz-Cz")
    assert sig.data.shape == (2500,)
    assert sig.valid[:1000].all() and not sig.valid[1000:1500].any() and sig.valid[1500:].all()
    assert np.isnan(sig.data[1000:1500]).all()
    np.testing.assert_allclose(sig.data[1500:], eeg[1000:], atol=0.01)


def test_config_rules_override_the_label_map_and_scale(tmp_path):
    path = tmp_path / "night.edf"
    eeg, _ = _write_edf(path)
    rules = (ChannelRule("eeg fpz*", "eog", 2.0),)
    sig = read_recording(path, rules).signal("EEG Fpz-Cz")
    assert sig.spec.modality == "eog"
    np.testing.assert_allclose(sig.data, 2 * eeg, atol=0.02)


def test_unreadable_files_raise_a_recording_error(tmp_path):
    bad = tmp_path / "bad.edf"
    bad.write_bytes(b"not an edf file at all" * 20)
    with pytest.raises(RecordingError, match="not a valid EDF"):
        read_recording(bad)
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "absent.edf")


@pytest.mark.parametrize(
    ("text", "stage"),
    [("Sleep stage W", "W"), ("Sleep stage 1", "N1"), ("Sleep stage 2", "N2"),
     ("Sleep stage 3", "N3"), ("Sleep stage 4", "N3"), ("Sleep stage R", "REM"),
     ("Stage 2 sleep|2", "N2"), ("REM sleep|5", "REM"), ("Wake|0", "W"),
     ("Stage 4 sleep|4", "N3"), ("Unscored|9", None), ("N3", "N3"), ("Sleep stage ?", None),
     ("Movement time", None)],
)
def test_stage_labels(text, stage):
    assert parse_stage(text) == stage


def test_real_recordings_read_with_annotations(data_dir):
    slp = read_recording(data_dir / "slpdb" / "slp01a.edf")
    assert slp.signals[0].spec.fs == 4.0 and slp.signals[0].spec.modality == "hr"
    stages = slp.stages()
    assert len(stages) >= 200
    assert {s for _, s in stages} <= {"W", "N1", "N2", "N3", "REM"}
    hyp = read_recording(data_dir / "sleep-edf-hypnograms" / "SC4001EC-Hypnogram.edf")
    assert len(hyp.stages()) > 800


def test_source_yields_every_sample_once_in_time_order(tmp_path):
    path = tmp_path / "night.edf"
    _write_edf(path, seconds=20, discontinuous_after=9, gap_s=5)

    async def collect():
        counts: dict[str, int] = {}
        last: dict[str, float] = {}
        async with EdfSource(path, speed=None, chunk_s=3.0) as src:
            async for frame in src.frames():
                assert isinstance(frame, Frame)
                for name in frame.channels:
                    counts[name] = counts.get(name, 0) + len(frame)
                    assert frame.timestamps[0] > last.get(name, -1.0)
                    last[name] = float(frame.timestamps[-1])
        return counts

    counts = asyncio.run(collect())
    assert counts == {"EEG Fpz-Cz": 2500, "SpO2": 25}


def test_paced_replay_follows_a_drift_free_schedule(tmp_path):
    path = tmp_path / "night.edf"
    _write_edf(path, seconds=20)

    async def run():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        async with EdfSource(path, speed=40.0, chunk_s=1.0) as src:
            async for _ in src.frames():
                pass
        return loop.time() - t0

    elapsed = asyncio.run(run())
    assert elapsed >= 0.45  # 20 s of data at 40x is 0.5 s: frames were not released early


@pytest.mark.parametrize("chunk_s", [0.7, 3.0, 30.0])
def test_streamed_frames_equal_the_whole_recording(tmp_path, chunk_s):
    """Read from the file chunk by chunk, EDF+D gaps included, equals read_recording."""
    path = tmp_path / "gappy.edf"
    _write_edf(path, seconds=20, discontinuous_after=6, gap_s=3)
    rec = read_recording(path, (ChannelRule("spo2", "spo2", 0.5),))

    async def collect():
        parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        async with EdfSource(path, speed=None, chunk_s=chunk_s,
                             rules=(ChannelRule("spo2", "spo2", 0.5),)) as src:
            assert src.channels == tuple(s.spec for s in rec.signals)
            async for frame in src.frames():
                for j, name in enumerate(frame.channels):
                    parts.setdefault(name, []).append((frame.data[:, j], frame.valid[:, j]))
        return parts

    parts = asyncio.run(collect())
    for sig in rec.signals:
        data = np.concatenate([d for d, _ in parts[sig.label]])
        valid = np.concatenate([v for _, v in parts[sig.label]])
        np.testing.assert_array_equal(valid, sig.valid)
        np.testing.assert_array_equal(data, sig.data)  # NaN where not valid, on both
