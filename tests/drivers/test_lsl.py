"""LSL source and marker sink against real pylsl outlets and inlets (unique names per test)."""

from __future__ import annotations

import asyncio
import json
import uuid

import numpy as np
import pylsl
import pytest

from sleepstream.drivers.lsl import LslSource
from sleepstream.drivers.lsl_channels import channel_specs
from sleepstream.drivers.lsl_sink import LslMarkerSink
from sleepstream.engine.errors import SourceError
from sleepstream.engine.protocols import ChannelsAnnounced, SourceEvent
from sleepstream.engine.types import Frame

FS = 100.0


def _outlet(sid: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(f"psg-{sid[:8]}", "EEG", 3, FS, pylsl.cf_float32, sid)
    info.set_channel_labels(["C4-M1", "SpO2", "counter"])
    info.set_channel_units(["uV", "%", "count"])
    info.set_channel_types(["EEG", "SpO2", "MISC"])
    return pylsl.StreamOutlet(info)


def _chunk(k: int, n: int = 10, *, nan: bool = False) -> np.ndarray:
    x = np.zeros((n, 3), dtype=np.float32)
    x[:, 0] = np.nan if nan else 1.0
    x[:, 1] = 97.0
    x[:, 2] = np.arange(k * n, (k + 1) * n)
    return x


def _push(outlet: pylsl.StreamOutlet, k: int, origin: float, *, shift: float = 0.0,
          nan: bool = False) -> None:
    stamps = origin + shift + (k * 10 + np.arange(10)) / FS
    outlet.push_chunk(_chunk(k, nan=nan), timestamp=stamps.tolist())


async def _keep_pushing(outlet: pylsl.StreamOutlet, origin: float, first: int) -> None:
    """One 0.1-s chunk every 0.1 s, on from chunk ``first``, until cancelled."""
    k = first
    while True:
        _push(outlet, k, origin)
        k += 1
        await asyncio.sleep(0.1)


async def _drain(source: LslSource, until_counter: float, timeout_s: float = 10.0,
                 ) -> tuple[list[Frame], list[SourceEvent]]:
    frames: list[Frame] = []
    events: list[SourceEvent] = []
    async with asyncio.timeout(timeout_s):
        async for item in source.frames():
            if isinstance(item, Frame):
                frames.append(item)
                if item.data[-1, 2] >= until_counter:
                    break
            else:
                events.append(item)
    return frames, events


async def test_a_stream_missing_at_start_up_is_an_alarm_and_is_found_later() -> None:
    sid = f"late-{uuid.uuid4()}"
    source = LslSource(source_id=sid, timeout_s=0.2, lost_after_s=1.0)
    async with source:
        assert source.channels == ()
        outlet = _outlet(sid)
        origin = pylsl.local_clock()
        announced: list[ChannelsAnnounced] = []
        events: list[SourceEvent] = []
        frames: list[Frame] = []
        k = 0
        async with asyncio.timeout(10):
            async for item in source.frames():
                if isinstance(item, ChannelsAnnounced):
                    announced.append(item)
                elif isinstance(item, SourceEvent):
                    events.append(item)
                else:
                    frames.append(item)
                    if len(frames) >= 3:
                        break
                if announced:
                    _push(outlet, k, origin)
                    k += 1
                    await asyncio.sleep(0.05)
        assert source.channels == announced[0].channels
        del outlet
    assert [e.active for e in events if e.code == "stream_lost"] == [True, False]
    assert [c.name for c in announced[0].channels] == ["C4-M1", "SpO2", "counter"]


async def test_channels_counter_timeline_sensor_off_and_clock_jump() -> None:
    sid = str(uuid.uuid4())
    outlet = _outlet(sid)
    source = LslSource(source_id=sid, timeout_s=5.0, jump_s=1.0)
    async with source:
        specs = {s.name: s for s in source.channels}
        assert [(s.name, s.unit, s.fs) for s in source.channels] == [
            ("C4-M1", "uV", FS), ("SpO2", "%", FS), ("counter", "count", FS)]
        assert specs["C4-M1"].modality == "eeg" and specs["SpO2"].modality == "spo2"
        origin = pylsl.local_clock()
        for k in range(30):
            _push(outlet, k, origin, shift=(20.0 if k >= 20 else 0.0), nan=10 <= k < 13)
            await asyncio.sleep(0.005)
        frames, events = await _drain(source, until_counter=299)
    counter = np.concatenate([f.data[:, 2] for f in frames])
    np.testing.assert_array_equal(counter, np.arange(300))
    assert [int(f.seq) for f in frames] == list(np.cumsum([0] + [len(f) for f in frames[:-1]]))
    ts = np.concatenate([f.timestamps for f in frames])
    np.testing.assert_allclose(np.diff(ts), 1 / FS, atol=1e-5)  # the jump stays out
    t_at = dict(zip(counter.astype(int).tolist(), ts.tolist(), strict=True))
    got = [(e.code, e.active, e.channels) for e in events]
    assert ("sensor_off", True, ("C4-M1",)) in got and ("sensor_off", False, ("C4-M1",)) in got
    off = next(e for e in events if e.code == "sensor_off" and e.active)
    on = next(e for e in events if e.code == "sensor_off" and not e.active)
    assert off.t == pytest.approx(t_at[100]) and on.t == pytest.approx(t_at[130])
    jump = next(e for e in events if e.code == "clock_jump" and e.active)
    assert jump.t == pytest.approx(t_at[200]) and "+20" in jump.message
    del outlet


async def test_outlet_restart_is_lost_then_recovered_with_samples_accounted() -> None:
    sid = str(uuid.uuid4())
    outlet = _outlet(sid)
    source = LslSource(source_id=sid, timeout_s=5.0, lost_after_s=0.5)
    async with source:
        origin = pylsl.local_clock()
        for k in range(10):
            _push(outlet, k, origin)
            await asyncio.sleep(0.005)
        first, _ = await _drain(source, until_counter=99)
        del outlet  # the device restarts: its outlet goes away for a while
        await asyncio.sleep(0.3)
        outlet = _outlet(sid)

        async def pusher() -> None:
            # chunks 10..14 are never sent; the inlet joins later. It keeps sending until the
            # source has read enough: an inlet reopened late on a loaded machine misses what
            # was sent before it opened, not the data that follows.
            k = 15
            while True:
                _push(outlet, k, origin)
                k += 1
                await asyncio.sleep(0.02)

        sending = asyncio.create_task(pusher())
        try:
            frames, events = await _drain(source, until_counter=799, timeout_s=30.0)
        finally:
            sending.cancel()
    lost = [e for e in events if e.code == "stream_lost"]
    assert [e.active for e in lost] == [True, False]
    assert lost[0].t == pytest.approx(first[-1].timestamps[-1] + 1 / FS, abs=1e-6)
    back = frames[0]
    assert back.data[0, 2] >= 150
    assert all(f.seq == f.data[0, 2] for f in frames)  # seq accounts for every missed sample
    # one timeline across the restart (clock sync re-estimates its offset by microseconds)
    np.testing.assert_allclose(back.timestamps[0] - first[0].timestamps[0], back.seq / FS,
                               atol=1e-4)
    assert lost[1].t == pytest.approx(back.timestamps[0], abs=1e-6)
    assert source.reconnects == 1


async def test_marker_sink_carries_json_events() -> None:
    name = f"events-{uuid.uuid4().hex[:8]}"
    sink = LslMarkerSink(name=name)
    found = await asyncio.to_thread(pylsl.resolve_byprop, "name", name, 1, 5.0)
    inlet = pylsl.StreamInlet(found[0])
    await asyncio.to_thread(inlet.open_stream, 5.0)
    await asyncio.sleep(0.2)
    await sink.emit({"type": "alert", "bed": "b1", "code": "stream_lost", "onset": 12.5})
    await sink.emit({"type": "stage", "bed": "b1", "stage": "N2"})
    got = []
    for _ in range(20):
        sample, _ = await asyncio.to_thread(inlet.pull_sample, 0.5)
        if sample is not None:
            got.append(json.loads(sample[0]))
        if len(got) == 2:
            break
    await sink.aclose()
    assert got[0]["code"] == "stream_lost" and got[1]["stage"] == "N2"


async def test_float64_and_int_streams_are_taken() -> None:
    for fmt, dtype in ((pylsl.cf_double64, np.float64), (pylsl.cf_int8, np.int8),
                       (pylsl.cf_int16, np.int16), (pylsl.cf_int32, np.int32),
                       (pylsl.cf_int64, np.int64)):
        sid = f"fmt-{uuid.uuid4()}"
        info = pylsl.StreamInfo(f"p-{sid[:8]}", "EEG", 3, FS, fmt, sid)
        outlet = pylsl.StreamOutlet(info)
        source = LslSource(source_id=sid, timeout_s=2.0)
        async with source:
            origin = pylsl.local_clock()
            for k in range(3):
                stamps = origin + (k * 10 + np.arange(10)) / FS
                outlet.push_chunk(_chunk(k).astype(dtype), timestamp=stamps.tolist())
            frames, events = await _drain(source, until_counter=29)
        data = np.concatenate([f.data for f in frames])
        assert data.dtype == np.float32 and not events, (fmt, events)
        np.testing.assert_array_equal(data[:, 2], np.arange(30))
        del outlet


async def test_pull_errors_and_a_quiet_stream_are_lost_then_re_resolved() -> None:
    sid = f"quiet-{uuid.uuid4()}"
    outlet = _outlet(sid)
    source = LslSource(source_id=sid, timeout_s=2.0, lost_after_s=0.4)
    real_pull = pylsl.StreamInlet.pull_chunk
    calls = {"n": 0}

    def flaky(self, *a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # fault injection: one internal error mid-stream
            raise pylsl.util.InternalError("injected")
        return real_pull(self, *a, **kw)

    pylsl.StreamInlet.pull_chunk = flaky  # type: ignore[method-assign]
    try:
        async with source:
            origin = pylsl.local_clock()
            _push(outlet, 0, origin)
            await asyncio.sleep(1.2)  # the error, then quiet for longer than lost_after_s
            # data from then on, chunk after chunk: an inlet reopened late on a loaded
            # machine misses what was sent before it opened, not the data that follows
            pusher = asyncio.create_task(_keep_pushing(outlet, origin, first=12))
            try:
                frames, events = await _drain(source, until_counter=150, timeout_s=30.0)
            finally:
                pusher.cancel()
    finally:
        pylsl.StreamInlet.pull_chunk = real_pull  # type: ignore[method-assign]
    lost = [e for e in events if e.code == "stream_lost"]
    assert lost and lost[0].active and not lost[-1].active
    assert source.reconnects >= 1
    assert frames[-1].data[-1, 2] >= 150


async def test_types_and_units_come_from_the_description_volts_become_microvolts() -> None:
    sid = f"volts-{uuid.uuid4()}"
    info = pylsl.StreamInfo(f"v-{sid[:8]}", "EEG", 3, FS, pylsl.cf_float32, sid)
    info.set_channel_labels(["Ch1", "Ch2", "counter"])
    info.set_channel_units(["V", "mV", "count"])
    info.set_channel_types(["EEG", "EOG", "MISC"])
    outlet = pylsl.StreamOutlet(info)
    source = LslSource(source_id=sid, timeout_s=2.0)
    async with source:
        specs = {s.name: s for s in source.channels}
        origin = pylsl.local_clock()
        x = _chunk(0)
        x[:, 0], x[:, 1] = 20e-6, 0.05  # 20 uV in volts, 50 uV in millivolts
        outlet.push_chunk(x, timestamp=(origin + np.arange(10) / FS).tolist())
        frames, _ = await _drain(source, until_counter=9)
    assert (specs["Ch1"].modality, specs["Ch1"].unit) == ("eeg", "uV")
    assert (specs["Ch2"].modality, specs["Ch2"].unit) == ("eog", "uV")
    assert specs["counter"].modality is None
    np.testing.assert_allclose(frames[0].data[:, 0], 20.0, rtol=1e-5)
    np.testing.assert_allclose(frames[0].data[:, 1], 50.0, rtol=1e-5)
    del outlet


def test_the_simulated_device_writes_labels_types_and_units() -> None:
    from sleepstream.simulators.device import Group, LslDevice

    sid = f"sim-{uuid.uuid4()}"
    group = Group(10.0, ("EEG Fpz-Cz", "EOG horizontal", "counter-10Hz"), ("uV", "uV", "count"),
                  np.zeros((10, 3), dtype=np.float32))
    device = LslDevice(name=f"sim-{sid[:6]}", source_id=sid, groups=[group])
    found = pylsl.resolve_byprop("source_id", sid, 1, 2.0)
    inlet = pylsl.StreamInlet(found[0])
    full = inlet.info(2.0)
    assert full.get_channel_types() == ["EEG", "EOG", "MISC"]
    assert full.get_channel_units() == ["uV", "uV", "count"]
    del inlet, device


async def test_mne_lsl_player_float64_volts_stream_is_read_in_microvolts() -> None:
    mne = pytest.importorskip("mne")
    player_lsl = pytest.importorskip("mne_lsl.player")
    sid = f"mne-{uuid.uuid4().hex[:8]}"
    t = np.arange(500) / 100
    data = np.vstack([20e-6 * np.sin(2 * np.pi * 10 * t), np.full_like(t, 50e-6)])  # volts
    raw = mne.io.RawArray(data, mne.create_info(["Fpz-Cz", "EOG horizontal"], 100.0,
                                                ["eeg", "eog"]), verbose=False)
    player = player_lsl.PlayerLSL(raw, chunk_size=10, name=sid, source_id=sid)
    player.start()
    try:
        source = LslSource(source_id=sid, timeout_s=3.0)
        async with source:
            assert [(s.modality, s.unit) for s in source.channels] == [("eeg", "uV"),
                                                                       ("eog", "uV")]
            frames: list[Frame] = []
            async with asyncio.timeout(5):
                async for item in source.frames():
                    if isinstance(item, Frame):
                        frames.append(item)
                        if sum(len(f) for f in frames) > 100:
                            break
    finally:
        player.stop()
    x = np.concatenate([f.data for f in frames])
    assert 15.0 < float(np.abs(x[:, 0]).max()) <= 20.01  # uV, not V
    np.testing.assert_allclose(x[:, 1], 50.0, rtol=1e-4)


async def test_a_string_stream_is_refused_with_a_clear_error() -> None:
    sid = f"str-{uuid.uuid4()}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(f"s-{sid[:8]}", "EEG", 1, FS,
                                                 pylsl.cf_string, sid))
    with pytest.raises(SourceError, match="carries strings"):
        async with LslSource(source_id=sid, timeout_s=2.0):
            pass
    del outlet


def test_spo2_as_a_fraction_and_heart_rate_in_hertz_are_converted() -> None:
    info = pylsl.StreamInfo("u", "Oximeter", 4, 1.0, pylsl.cf_float32, "u")
    info.set_channel_labels(["SpO2", "HR", "Pleth", "C3"])
    info.set_channel_units(["fraction", "Hz", "au", "furlongs"])
    info.set_channel_types(["SpO2", "HR", "PPG", "EEG"])
    specs, scales = channel_specs(info)
    assert [(s.modality, s.unit) for s in specs] == [
        ("spo2", "%"), ("hr", "bpm"), ("ppg", "au"), ("eeg", "furlongs")]  # unknown: as declared
    np.testing.assert_allclose(scales, [100.0, 60.0, 1.0, 1.0])


async def test_stage_markers_carry_their_epoch_on_the_lsl_clock() -> None:
    from sleepstream.engine.clock import MonotonicClock

    name = f"events-{uuid.uuid4().hex[:8]}"
    clock = MonotonicClock()
    sink = LslMarkerSink(name=name, clock=clock)
    found = await asyncio.to_thread(pylsl.resolve_byprop, "name", name, 1, 5.0)
    inlet = pylsl.StreamInlet(found[0])
    await asyncio.to_thread(inlet.open_stream, 5.0)
    await asyncio.sleep(0.2)
    offset = pylsl.local_clock() - clock.now()
    await sink.emit({"type": "stage", "bed": "b1", "epoch_start": 30.0, "epoch_s": 30.0,
                     "stage": "N2"})
    await sink.emit({"type": "alert", "bed": "b1", "state": "ended", "onset": 12.5,
                     "end": 20.0, "code": "stream_lost"})
    got = []
    for _ in range(20):
        sample, stamp = await asyncio.to_thread(inlet.pull_sample, 0.5)
        if sample is not None:
            got.append((json.loads(sample[0]), stamp))
        if len(got) == 2:
            break
    await sink.aclose()
    (stage, t_stage), (alert, t_alert) = got
    assert stage["lsl_onset"] == pytest.approx(30.0 + offset, abs=0.01)
    assert stage["lsl_end"] - stage["lsl_onset"] == pytest.approx(30.0)
    assert t_stage == pytest.approx(stage["lsl_onset"], abs=1e-6)  # stamped at the epoch onset
    assert alert["lsl_onset"] == pytest.approx(12.5 + offset, abs=0.01)
    assert t_alert == pytest.approx(alert["lsl_end"], abs=1e-6)  # an ended alarm at its end


async def test_an_unexpected_error_in_the_puller_fails_the_source_visibly() -> None:
    sid = f"bug-{uuid.uuid4()}"
    outlet = _outlet(sid)
    real_pull = pylsl.StreamInlet.pull_chunk

    def broken(self, *a, **kw):  # type: ignore[no-untyped-def]
        raise KeyError("injected")  # not a pylsl error: a bug must not kill the thread silently

    source = LslSource(source_id=sid, timeout_s=2.0)
    pylsl.StreamInlet.pull_chunk = broken  # type: ignore[method-assign]
    try:
        async with source:
            with pytest.raises(SourceError, match="reading stopped"):
                async with asyncio.timeout(10):
                    async for _ in source.frames():
                        pass
    finally:
        pylsl.StreamInlet.pull_chunk = real_pull  # type: ignore[method-assign]
    del outlet
