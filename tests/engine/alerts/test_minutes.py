"""The live per-minute classifier scores a real night exactly as the offline evaluation does."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sleepstream.drivers.edf import read_recording
from sleepstream.engine.alerts import apnea_minutes as am


def _night(data_dir, seconds=2400):
    rec = read_recording(data_dir / "oximetry-hugcdn" / "D5.edf")
    sig = {s.spec.modality: s for s in rec.signals}
    return (am.clean_spo2(sig["spo2"].data[:seconds], sig["spo2"].valid[:seconds]),
            am.clean_hr(sig["hr"].data[:seconds], sig["hr"].valid[:seconds]))


def test_streaming_equals_offline(data_dir):
    spo2, hr = _night(data_dir)
    model = am.load_models()["spo2_hr"]
    n = (spo2.size - am.DELAY_S) // 60
    x = am.with_context(am.minute_features(am.minute_windows(spo2, n, am.DELAY_S),
                                           am.minute_windows(hr, n, am.DELAY_S)))
    offline = model.predict(x)

    @settings(max_examples=3, deadline=None)
    @given(st.lists(st.integers(20, 400), min_size=1, max_size=40))
    def check(sizes):
        state = am.new_classifier({"spo2_hr": model})
        out, i = [], 0
        while i < spo2.size:
            k = sizes[len(out) % len(sizes)] if sizes else 1
            out += am.classify_step(state, spo2[i : i + k], hr[i : i + k])
            i += k
        assert [m for m, _, _ in out][:n] == list(range(n))
        same = [m for m, p, key in out[:n] if key == "spo2_hr" and p is not None]
        assert len(same) >= n - 3
        probs = np.array([out[m][1] for m in same], dtype=float)
        np.testing.assert_allclose(probs, offline[same], rtol=1e-9, atol=1e-9)

    check()
