"""A scored apnea minute cites the real-data figures of the model that scored it; a model with
no figures that back a yes/no claim abstains and says so; the engine's beds share one read-only
copy of the models."""

from __future__ import annotations

import numpy as np
import pytest

from sleepstream.drivers.edf import read_recording
from sleepstream.engine.alerts import apnea_minutes as am
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.app.compose import build_engine
from sleepstream.engine.config import parse_config
from sleepstream.engine.protocols import Block, ChannelBlock

SECONDS = 1500  # 24 scored minutes of a real oximetry night


def _minutes(data_dir, engine: AlertEngine, with_spo2: bool = True) -> list[dict]:
    """One real night's first SECONDS through ``engine`` in 60-s blocks; its minute and index
    events."""
    rec = read_recording(data_dir / "oximetry-hugcdn" / "D5.edf")
    signals = [s for s in rec.signals if with_spo2 or s.spec.modality != "spo2"]
    out = []
    for t0 in range(0, SECONDS, 60):
        native = {s.label: ChannelBlock(s.label, s.spec.modality, s.spec.fs, float(t0),
                                        s.data[t0 : t0 + 60], s.valid[t0 : t0 + 60])
                  for s in signals}
        block = Block("b1", float(t0), float(t0 + 60), native, {}, frozenset())
        out += [e for e in engine.process(block) if isinstance(e, dict)]
    out.append(engine.index_event(float(SECONDS)))
    return out


def _scored(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "apnea_minute"]


def test_the_shipped_models_carry_their_figures_on_real_data():
    figures = am.load_validation()
    assert set(figures) == set(am.load_models()) == {"spo2_hr", "hr"}
    assert figures["spo2_hr"]["set"] == "oximetry-hugcdn"
    assert figures["hr"]["set"] == "apnea-ecg-hr"
    for f in figures.values():
        assert f["cv"].startswith("record-wise") and f["records"] >= 40
        assert f["claims"] is True and f["accuracy"] > f["majority_accuracy"]
        assert 0.5 < f["auroc"] <= 1.0 and 0.0 <= f["ece"] < 0.2
        assert 0.5 < f["index_pearson_r"] <= 1.0 and 0.0 < f["index_mae_per_h"] < 20.0
    assert figures["hr"]["external"]["slpdb"]["epochs"] > 1000  # never trained on


def test_each_minute_cites_the_model_that_scored_it(data_dir):
    figures = am.load_validation()
    both = _scored(_minutes(data_dir, AlertEngine("b1")))
    hr_only = _scored(_minutes(data_dir, AlertEngine("b1"), with_spo2=False))
    assert len(both) == len(hr_only) == (SECONDS - am.DELAY_S) // 60
    for events, key in ((both, "spo2_hr"), (hr_only, "hr")):
        scored = [e for e in events if e["prob"] is not None]
        assert len(scored) >= len(events) - 2  # the first minutes may lack usable signal
        for e in scored:
            assert e["model"] == key and isinstance(e["apnea"], bool) and "abstain" not in e
            assert e["validation"]["set"] == figures[key]["set"]
            assert e["validation"]["accuracy"] == figures[key]["accuracy"]
            assert e["validation"]["auroc"] == figures[key]["auroc"]
            assert e["validation"]["index_mae_per_h"] == figures[key]["index_mae_per_h"]


@pytest.mark.parametrize("validation", [{}, "no-claim"])
def test_a_model_without_backing_figures_abstains(data_dir, validation):
    if validation == "no-claim":  # figures exist but do not beat the larger class
        validation = {k: {**v, "claims": False} for k, v in am.load_validation().items()}
    engine = AlertEngine("b1", models=am.load_models(), validation=validation)
    events = _minutes(data_dir, engine)
    minutes = _scored(events)
    assert minutes and all(e["prob"] is None and e["apnea"] is None for e in minutes)
    usable = [e for e in minutes if "abstain" in e]
    assert len(usable) >= len(minutes) - 2
    assert all("spo2_hr model" in e["abstain"] for e in usable)
    assert events[-1]["type"] == "index" and events[-1]["apnea_minutes_per_hour"] is None
    backed = _minutes(data_dir, AlertEngine("b1"))
    assert backed[-1]["apnea_minutes_per_hour"] is not None
    assert np.isfinite(backed[-1]["apnea_minutes_per_hour"])


def test_beds_built_by_the_engine_share_one_read_only_copy_of_the_models():
    config = parse_config({"beds": [
        {"id": b, "sources": [{"kind": "mqtt", "channels": [{"name": "SpO2", "fs": 1.0}]}]}
        for b in ("a", "b")]})
    _, beds, _ = build_engine(config, live=False, drivers={"a": [object()], "b": [object()]})
    a, b = (next(p for p in bed.state.processors if isinstance(p, AlertEngine)) for bed in beds)
    assert a.minutes.models.keys() == {"spo2_hr", "hr"}
    for key, model in a.minutes.models.items():
        assert b.minutes.models[key] is model  # one copy of the trees for every bed
    assert b.minutes.validation is a.minutes.validation
    with pytest.raises(ValueError):
        a.minutes.models["spo2_hr"].value[0] = 1.0  # read-only: no bed can change another's
    alone = AlertEngine("c")  # outside the engine a bed reads its own copy
    assert alone.minutes.models["hr"] is not a.minutes.models["hr"]
