"""A biopotential whose amplitude cannot be real in its declared unit (EEG sent in volts but
declared µV, or a 1e6 µV scale) is a technical alarm and an invalid channel, so nothing stages
it; a real night in its right unit raises nothing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sleepstream.drivers.edf import read_recording
from sleepstream.engine import quality
from sleepstream.engine.bed import BedState
from sleepstream.engine.types import ChannelSpec, Frame
from tests.e2e.harness import NAP


@pytest.fixture(scope="module")
def nap_eeg() -> tuple[ChannelSpec, np.ndarray]:
    if not NAP.exists():
        pytest.skip("the shared nap recording (../shared/data/nap-eeg) is not present")
    sig = read_recording(NAP).signals[0]  # EEG F3, uV, 256 Hz
    return sig.spec, sig.data[: round(120 * sig.spec.fs)].astype(np.float32)


def _run(spec: ChannelSpec, x: np.ndarray, cuts=()):
    state = quality.new_state(spec)
    masks, alerts = [], []
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(x)), len(x)]
    for a, b in itertools.pairwise(bounds):
        r = quality.step(state, "bed", a / spec.fs, x[a:b], np.ones(b - a, bool))
        masks.append(r.valid)
        alerts.extend(r.alerts)
    return np.concatenate(masks), alerts


def test_real_eeg_in_its_unit_raises_nothing(nap_eeg):
    spec, x = nap_eeg
    assert spec.unit == "uV"
    mask, alerts = _run(spec, x)
    assert mask.all() and alerts == []


@pytest.mark.parametrize("scale", [1e-6, 1e6])  # volts declared as µV; a 1e6 µV scale
def test_implausible_scale_is_one_alarm_and_an_invalid_channel(nap_eeg, scale):
    edf, x = nap_eeg
    spec = ChannelSpec(edf.name, edf.fs, "eeg", "uV")  # a stream's declaration: no range
    mask, alerts = _run(spec, (x * scale).astype(np.float32), cuts=range(97, x.size, 1000))
    seg = round(quality.SEGMENT_S * spec.fs)
    assert mask[:seg].all() and not mask[seg:].any()  # judged from the first full segment on
    [active] = [a for a in alerts if a.state == "active"]
    assert active.code == "implausible_amplitude" and active.kind == "technical"
    assert active.channels == (spec.name,) and active.onset == pytest.approx(quality.SEGMENT_S)
    assert active.extra["criterion_t"] == pytest.approx(quality.SEGMENT_S + 10.0, abs=0.01)
    assert "uV" in active.message and active.code not in active.message


def test_right_scale_in_another_unit_is_plausible(nap_eeg):
    spec, x = nap_eeg
    volts = ChannelSpec(spec.name, spec.fs, "eeg", "V")
    mask, alerts = _run(volts, (x * 1e-6).astype(np.float32))
    assert mask.all() and alerts == []
    unknown = ChannelSpec(spec.name, spec.fs, "eeg", "")  # no unit: not judged
    assert _run(unknown, (x * 1e-6).astype(np.float32))[0].all()


def test_bed_marks_the_channel_invalid_for_staging(nap_eeg):
    edf, x = nap_eeg
    spec = ChannelSpec(edf.name, edf.fs, "eeg", "uV")
    bed = BedState("b1", hop_s=1.0, ring_s=60.0)
    bed.add_channels([spec])
    seen = []

    class Keep:
        def process(self, block):
            seen.append(block)
            return []

        def finish(self, t_end):
            return []

    bed.processors = (Keep(),)
    n = round(spec.fs)
    events = []
    for k in range(60):
        t = k + np.arange(n) / spec.fs
        data = (x[k * n : (k + 1) * n] * 1e-6).reshape(n, 1).astype(np.float32)
        events += bed.push(Frame((spec.name,), t, data, np.ones((n, 1), bool)))
    model = [b.model[spec.name] for b in seen if spec.name in b.model]
    assert not np.concatenate([m.valid for m in model[5:]]).any()  # the stager gets no sample
    assert [e["code"] for e in events if e["type"] == "alert" and e["state"] == "active"] == [
        "implausible_amplitude"]
    assert spec.name in seen[-1].technical
