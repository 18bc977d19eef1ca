"""Quality detectors at their edges, fed 1-s blocks on the engine clock as the bed feeds them
(and one-shot where chunk invariance is the point): a flatline run after a gap, the technical
alarms' priority and message, the implausible-amplitude verdict (unit scaling, a DC offset, its
inclusive bounds, how many valid samples a segment needs, several segments in one block), and
channels whose flatline detection is off or whose repeats are too short to count."""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.engine import quality
from sleepstream.engine.types import AlertState, ChannelSpec, Priority

EEG10 = ChannelSpec("EEG", 10.0, "eeg", "uV", -500.0, 500.0)
SPO2 = ChannelSpec("SpO2", 1.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)


def _run(spec, x, valid=None, block=None):
    """(valid mask, alerts) of a run in blocks of ``block`` samples (default 1 s)."""
    valid = np.ones(x.shape[0], bool) if valid is None else valid
    n = round(spec.fs) if block is None else block
    st = quality.new_state(spec, "b")
    masks, alerts = [], []
    for i in range(0, x.shape[0], n):
        r = quality.step(st, "b", i / spec.fs, x[i:i + n].astype(np.float32), valid[i:i + n])
        masks.append(r.valid)
        alerts += r.alerts
    return np.concatenate(masks), alerts


def _alternating(n, amp, offset=0.0):
    return (offset + amp * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)).astype(np.float32)


@pytest.mark.parametrize("gap_at", [9, 14])  # a gap at a block's end, and inside a block
def test_a_flat_run_restarts_after_a_gap_and_chunking_does_not_change_it(gap_at) -> None:
    x = np.full(100, 5.0, np.float32)
    v = np.ones(100, bool)
    v[gap_at] = False
    one_mask, one = _run(EEG10, x, v, block=100)
    mask, alerts = _run(EEG10, x, v)
    assert np.array_equal(one_mask, mask)
    [on] = [a for a in alerts if a.code == "flatline"]
    [on1] = [a for a in one if a.code == "flatline"]
    assert on.onset == on1.onset == pytest.approx((gap_at + 1) / 10.0)
    assert on.emitted_at == pytest.approx(np.ceil(on.onset + 5.0))  # window 5 s, 1-s blocks
    assert not mask[gap_at + 1 + 50:].any() and mask[gap_at + 1:gap_at + 1 + 50].all()


def test_technical_alarms_carry_their_priority_and_name_the_channel() -> None:
    _, gap = _run(EEG10, np.zeros(200, np.float32), np.zeros(200, bool))
    [g] = [a for a in gap if a.code == "signal_gap"]
    assert g.priority == Priority.LOW and g.message == "no samples from EEG"
    assert g.channels == ("EEG",)
    _, off = _run(SPO2, np.zeros(20, np.float32))
    [p] = [a for a in off if a.code == "probe_off"]
    assert p.priority == Priority.MEDIUM
    assert p.message == "SpO2 reads 0 %: check the sensor on the finger"


def _implausible_mask(spec, x):
    mask, alerts = _run(spec, x)
    return mask, [a for a in alerts if a.code == "implausible_amplitude"]


def test_an_eeg_declared_in_millivolts_is_judged_in_millivolts() -> None:
    spec = ChannelSpec("EEG", 100.0, "eeg", "mV")
    mask, _ = _implausible_mask(spec, _alternating(600, 10.0))  # 10 mV = 10000 uV: implausible
    assert mask[:200].all() and not mask[200:].any()
    mask, _ = _implausible_mask(spec, _alternating(600, 0.05))  # 50 uV: real EEG
    assert mask.all()


def test_a_dc_offset_does_not_make_a_real_eeg_implausible() -> None:
    spec = ChannelSpec("EEG", 100.0, "eeg", "uV")
    mask, alerts = _implausible_mask(spec, _alternating(1200, 10.0, offset=3000.0))
    assert mask.all() and alerts == []


@pytest.mark.parametrize("amp", [1.0, 20000.0])  # ECG's plausible MAD range, both ends
def test_the_amplitude_bounds_are_plausible_themselves(amp) -> None:
    spec = ChannelSpec("ECG", 100.0, "ecg", "uV")
    mask, _ = _implausible_mask(spec, _alternating(600, amp))
    assert mask.all()


@pytest.mark.parametrize(("fs", "finite", "judged"), [
    (100.0, 100, True),  # exactly half of a 200-sample segment valid: judged
    (12.5, 12, True),  # 25-sample segment: 12 valid is its half, rounded down
    (100.0, 70, False),  # 35 %: mostly gaps, not judged
])
def test_a_segment_needs_half_its_samples_to_be_judged(fs, finite, judged) -> None:
    spec = ChannelSpec("EEG", fs, "eeg", "uV")
    seg = round(2 * fs)
    x = _alternating(3 * seg, 5000.0)
    x[finite:seg] = np.nan
    mask, _ = _run(spec, x, block=seg)
    second = mask[seg:2 * seg]
    assert (not second.any()) if judged else second.all()


def test_several_segments_in_one_block_are_judged_each_on_its_own() -> None:
    spec = ChannelSpec("EEG", 100.0, "eeg", "uV")
    seg = 200
    plausible, loud = _alternating(seg, 10.0), _alternating(seg, 5000.0)
    pairs = np.arange(seg) // 2  # NaN in whole +/- pairs keeps the median in the middle
    some_nan = pairs % 3 == 0  # a third of the samples NaN: still judged
    mostly_nan = pairs % 5 != 0  # 80 % NaN: not judged
    parts = [plausible, loud, np.where(some_nan, np.nan, plausible + 40.0),
             np.where(some_nan, np.nan, loud - 100.0), plausible,
             np.where(mostly_nan, np.nan, loud), plausible]
    x = np.concatenate(parts).astype(np.float32)
    expected = np.isfinite(x)
    expected[2 * seg:3 * seg] = False  # judged by segment 1
    expected[4 * seg:5 * seg] = False  # judged by segment 3
    one_shot, _ = _run(spec, x, block=x.shape[0])
    chunked, _ = _run(spec, x)
    assert np.array_equal(one_shot, expected) and np.array_equal(chunked, expected)


@pytest.mark.parametrize("spec", [
    ChannelSpec("counter", 10.0, None), ChannelSpec("ACC", 10.0, "acc", "g"),
])
def test_flatline_detection_is_off_without_a_window(spec) -> None:
    mask, alerts = _run(spec, np.full(300, 1.0, np.float32))
    assert mask.all() and alerts == []


def _staircase(fs, flat_s, step, n_steps):
    flat = np.full(int(flat_s * fs), 7.0)
    stairs = np.repeat(np.arange(n_steps, dtype=float) * 3.0 + 10.0, step)
    return np.concatenate([flat, stairs]).astype(np.float32)


@pytest.mark.parametrize(("fs", "step", "ends"), [
    (100.0, 4, True),  # 0.04-s repeats (a quantised signal): the signal moves, the alarm ends
    (100.0, 50, False),  # stuck for 0.5 s at a time: still flat
    (10.0, 3, False),  # 3 equal samples at 10 Hz: at least 2 repeats count
])
def test_repeats_count_towards_flatline_from_a_tenth_of_a_second(fs, step, ends) -> None:
    spec = ChannelSpec("EEG", fs, "eeg", "uV")
    n_steps = int(6 * fs) // step
    _, alerts = _run(spec, _staircase(fs, 8.0, step, n_steps))
    flat = [a for a in alerts if a.code == "flatline"]
    assert flat[0].state == AlertState.ACTIVE and flat[0].onset == 0.0
    assert flat[0].emitted_at == 5.0
    ended = [a for a in flat if a.state == AlertState.ENDED]
    if ends:
        assert len(ended) == 1 and ended[0].emitted_at == 10.0
    else:
        assert ended == []
