"""Technical alarms at their boundaries, fed one 1-s block at a time as the bed does.

For every quality condition: a fault one sample shorter than its condition delay raises
nothing (its samples are still invalid), a fault that lasts the delay is announced in the block
where the delay is reached, and the alarm's ``t`` (``emitted_at``) is the end of the block it
came out of (the engine time it was announced), not a time computed from its onset. The
condition ends ``hold_s`` after the last bad sample, and a good stretch shorter than the hold
does not end it. Plausible-range limits are valid at the limit itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from sleepstream.engine import quality
from sleepstream.engine.types import Alert, AlertState, ChannelSpec

FS = 10.0
EEG = ChannelSpec("EEG", FS, "eeg", "uV", -500.0, 500.0)
SPO2 = ChannelSpec("SpO2", FS, "spo2", "%", 0.0, 100.0, 50.0, 100.5)
HR = ChannelSpec("HR", FS, "hr", "bpm", 0.0, 250.0, 20.0, 250.0)
Inject = Callable[[np.ndarray, np.ndarray, slice], None]


def _gap(x: np.ndarray, v: np.ndarray, sl: slice) -> None:
    v[sl] = False


def _nan(x: np.ndarray, v: np.ndarray, sl: slice) -> None:
    x[sl] = np.nan


def _zero(x: np.ndarray, v: np.ndarray, sl: slice) -> None:
    x[sl] = 0.0


def _low(x: np.ndarray, v: np.ndarray, sl: slice) -> None:
    x[sl] = 49.0  # below SpO2's plausible 50 %


def _rail(x: np.ndarray, v: np.ndarray, sl: slice) -> None:
    x[sl] = 500.0  # EEG at its physical maximum


@dataclass(frozen=True)
class Case:
    code: str
    spec: ChannelSpec
    inject: Inject
    delay_s: float
    hold_s: float
    lead_s: float = 0.0  # the condition starts this long after the fault (clipping: a run)


CASES = [
    Case("signal_gap", EEG, _gap, 2.0, 2.0),
    Case("nan", EEG, _nan, 2.0, 2.0),
    Case("probe_off", SPO2, _zero, 10.0, 5.0),
    Case("no_reading", HR, _zero, 10.0, 5.0),
    Case("out_of_range", SPO2, _low, 10.0, 5.0),
    Case("clipping", EEG, _rail, 1.0, 2.0, lead_s=1 / FS),  # runs of >= 2 samples at 10 Hz
]


def _signal(spec: ChannelSpec, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    n = round(seconds * spec.fs)
    if spec.modality == "eeg":
        x = np.random.default_rng(0).normal(0, 20, n)
    else:  # slow vitals that move (a constant value would be a flatline after its window)
        x = (96.0 if spec.modality == "spo2" else 60.0) + np.arange(n) % 3
    return x.astype(np.float32), np.ones(n, bool)


def _feed(spec: ChannelSpec, x: np.ndarray, valid: np.ndarray, block_s: float = 1.0
          ) -> tuple[list[tuple[float, Alert]], np.ndarray]:
    """Quality block by block; each alert with the end of the block it came out of."""
    state = quality.new_state(spec, "b1")
    per = round(block_s * spec.fs)
    out: list[tuple[float, Alert]] = []
    masks = []
    for a in range(0, x.size, per):
        r = quality.step(state, "b1", a / spec.fs, x[a:a + per], valid[a:a + per])
        out += [((a + per) / spec.fs, al) for al in r.alerts]
        masks.append(r.valid)
    return out, np.concatenate(masks)


def _fault(case: Case, start_s: float, length_s: float, total_s: float = 60.0
           ) -> tuple[list[tuple[float, Alert]], np.ndarray]:
    x, v = _signal(case.spec, total_s)
    sl = slice(round(start_s * case.spec.fs), round((start_s + length_s) * case.spec.fs))
    case.inject(x, v, sl)
    return _feed(case.spec, x, v)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.code)
def test_a_fault_one_sample_short_of_the_delay_raises_nothing(case: Case) -> None:
    out, mask = _fault(case, 20.0, case.lead_s + case.delay_s - 1 / FS)
    assert [a for _, a in out if a.code == case.code] == []
    lead = round(case.lead_s * FS)
    assert not mask[200 + lead:200 + lead + round(case.delay_s * FS) - 1].any()  # invalid


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.code)
def test_a_fault_lasting_the_delay_is_announced_when_the_delay_is_reached(case: Case) -> None:
    out, _ = _fault(case, 20.0 - case.lead_s, case.lead_s + case.delay_s)
    seen = [(t, a) for t, a in out if a.code == case.code]
    assert [a.state for _, a in seen] == [AlertState.ACTIVE, AlertState.ENDED]
    (t_on, on), (t_off, off) = seen
    assert on.onset == pytest.approx(20.0)
    assert t_on == pytest.approx(20.0 + case.delay_s) == on.emitted_at
    assert on.extra["criterion_t"] == pytest.approx(20.0 + case.delay_s)
    assert off.end == pytest.approx(20.0 + case.delay_s)  # the first good sample
    assert t_off == pytest.approx(20.0 + case.delay_s + case.hold_s) == off.emitted_at


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.code)
def test_the_announced_time_is_the_block_it_came_out_of(case: Case) -> None:
    """A fault starting mid-block: the delay is met at 20.5 + delay, inside a block; the
    alarm is announced when that block is seen, at its end."""
    out, _ = _fault(case, 20.5 - case.lead_s, case.delay_s + 3.0)
    on = [(t, a) for t, a in out if a.code == case.code and a.state == AlertState.ACTIVE]
    assert len(on) == 1
    t_on, alert = on[0]
    assert alert.onset == pytest.approx(20.5)
    assert alert.extra["criterion_t"] == pytest.approx(20.5 + case.delay_s)
    assert t_on == pytest.approx(21.0 + case.delay_s) == alert.emitted_at


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.code)
def test_a_good_stretch_shorter_than_the_hold_does_not_end_the_alarm(case: Case) -> None:
    x, v = _signal(case.spec, 80.0)
    good = case.hold_s - 1.0  # whole seconds, so clipping's runs stay as long as before
    first = slice(200, 200 + round((case.delay_s + 2.0) * FS))
    second = slice(first.stop + round(good * FS), first.stop + round((good + 4.0) * FS))
    case.inject(x, v, first)
    case.inject(x, v, second)
    out, _ = _feed(case.spec, x, v)
    seen = [(t, a) for t, a in out if a.code == case.code]
    assert [a.state for _, a in seen] == [AlertState.ACTIVE, AlertState.ENDED]
    t_off, off = seen[1]
    assert off.end == pytest.approx(second.stop / FS)
    assert t_off == pytest.approx(second.stop / FS + case.hold_s) == off.emitted_at


@pytest.mark.parametrize(("spec", "value", "valid"), [
    (SPO2, 50.0, True), (SPO2, 49.9, False), (SPO2, 100.5, True), (SPO2, 100.6, False),
    (HR, 20.0, True), (HR, 19.9, False), (HR, 250.0, True), (HR, 250.1, False),
    (SPO2, 0.5, False), (HR, 0.5, False),  # a zero reading (<= 0.5) is no reading
    (SPO2, 1.0, False), (HR, 1.0, False),  # above 0.5: out of range, not a zero reading
])
def test_plausible_range_is_inclusive_at_its_limits(spec: ChannelSpec, value: float,
                                                    valid: bool) -> None:
    x, v = _signal(spec, 30.0)
    x[100:200] = value  # 10 s at the value (moving slightly would leave the limit)
    out, mask = _feed(spec, x, v)
    assert bool(mask[100:200].all()) is valid and (not valid or mask.all())
    codes = {a.code for _, a in out}
    if valid:
        assert codes == set()
    else:
        expected = "out_of_range" if value > 0.5 else (
            "probe_off" if spec.modality == "spo2" else "no_reading")
        assert codes == {expected}


def test_flatline_is_announced_after_its_window_dated_to_the_first_repeat() -> None:
    """EEG's flatline window is 5 s: a flat stretch just under it raises nothing (and only the
    samples beyond the window would be invalid), one of 6 s is announced at the block where the
    window is reached, dated back to the run's start."""
    window = quality.FLATLINE_S["eeg"]
    for length, alarms in ((window - 0.2, 0), (window + 1.0, 1)):
        x, v = _signal(EEG, 40.0)
        x[200:200 + round(length * FS)] = 3.0
        out, mask = _feed(EEG, x, v)
        on = [(t, a) for t, a in out if a.code == "flatline" and a.state == AlertState.ACTIVE]
        assert len(on) == alarms, length
        if alarms:
            t_on, alert = on[0]
            assert alert.onset == pytest.approx(20.0, abs=1 / FS)
            assert alert.extra["criterion_t"] == pytest.approx(20.0 + window, abs=1 / FS)
            assert t_on == alert.emitted_at == pytest.approx(np.ceil(20.0 + window))
            assert not mask[200 + round(window * FS) + 1:200 + round(length * FS)].any()
        else:
            assert mask.all()


def test_clipping_needs_a_run_at_the_rail() -> None:
    """Clipping counts runs of at least max(2, 0.05 fs) samples at the physical limits: at
    100 Hz, 4-sample touches of the rail are not clipping, 5-sample ones are."""
    spec = ChannelSpec("EEG", 100.0, "eeg", "uV", -500.0, 500.0)
    for run, clipped in ((4, False), (5, True)):
        x = np.random.default_rng(1).normal(0, 20, 3000).astype(np.float32)
        for k in range(1000, 1300, 10):
            x[k:k + run] = 500.0
        state = quality.new_state(spec, "b1")
        r = quality.step(state, "b1", 0.0, x, np.ones(x.size, bool))
        assert ("clipping" in r.bad_counts) is clipped


def test_a_sample_the_driver_flagged_counts_only_as_a_gap() -> None:
    """A gap's samples carry whatever the driver left (0 here): they are signal_gap samples,
    never also out of range, a zero reading or a flatline."""
    x, v = _signal(SPO2, 30.0)
    x[100:150] = 0.0
    v[100:150] = False
    state = quality.new_state(SPO2, "b1")
    r = quality.step(state, "b1", 0.0, x, v)
    assert dict(r.bad_counts) == {"signal_gap": 50}
    assert {a.code for a in r.alerts} == {"signal_gap"}
