"""Operator commands reach the bed's processors, the receipt says exactly what they did, and
the bed's summary counts every sample."""

from __future__ import annotations

import numpy as np

from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.bed import BedState
from sleepstream.engine.types import ChannelSpec, Command, Frame

SPO2 = ChannelSpec("SpO2", 1.0, "spo2", "%", 0.0, 100.0, 50.0, 100.5)


def _bed_with_hypoxemia() -> tuple[BedState, list[dict]]:
    bed = BedState("b1", hop_s=1.0, ring_s=120.0, processors=(AlertEngine("b1"),))
    bed.add_channels([SPO2])
    x = np.concatenate([np.full(60, 96.0) + np.arange(60) % 2, np.full(40, 85.0)])
    t = np.arange(x.size, dtype=np.float64)
    events = bed.push(Frame(("SpO2",), t, x[:, None].astype(np.float32),
                            np.ones((x.size, 1), bool)))
    return bed, [e for e in events if e.get("type") == "alert"]


def test_ack_by_id_goes_to_the_processor_and_the_receipt_names_it() -> None:
    bed, alerts = _bed_with_hypoxemia()
    ids = {e["code"]: e["id"] for e in alerts if e["state"] == "active"}
    assert set(ids) == {"hypoxemia90", "hypoxemia88"}
    out = bed.command(Command("b1", "ack", 101.0, alert_id=ids["hypoxemia90"], by="nurse"))
    acked, status = out[:-1], out[-1]
    assert [(e["id"], e["state"], e["acknowledged_at"]) for e in acked] == [
        (ids["hypoxemia90"], "acknowledged", 101.0)]
    assert status == {
        "type": "status", "bed": "b1", "t": 101.0, "command": "ack",
        "alert_id": ids["hypoxemia90"], "by": "nurse", "matched": True,
        "acknowledged": [ids["hypoxemia90"]],
        "message": f"ack {ids['hypoxemia90']} by nurse: done",
    }
    again = bed.command(Command("b1", "ack", 102.0, alert_id=ids["hypoxemia90"], by="nurse"))
    assert len(again) == 1 and again[0]["matched"] is False


def test_ack_all_acknowledges_every_announced_alarm_of_the_bed() -> None:
    bed, _ = _bed_with_hypoxemia()
    out = bed.command(Command("b1", "ack", 101.0))
    status = out[-1]
    assert sorted(e["code"] for e in out[:-1]) == ["hypoxemia88", "hypoxemia90"]
    assert status["matched"] is True and len(status["acknowledged"]) == 2
    assert status["message"] == "ack all by unknown: done"


def test_a_command_that_is_not_ack_matches_nothing() -> None:
    bed, _ = _bed_with_hypoxemia()
    out = bed.command(Command("b1", "silence", 101.0, by="nurse"))
    assert len(out) == 1
    assert out[0]["matched"] is False and out[0]["acknowledged"] == []
    assert out[0]["message"] == "silence all by nurse: no announced alarm matched"


def test_summary_counts_samples_per_channel() -> None:
    bed = BedState("b1", hop_s=1.0, ring_s=60.0)
    bed.add_channels([SPO2])
    x = np.full(10, 96.0, np.float32)
    x[3:5] = 0.0  # probe off: invalid
    bed.push(Frame(("SpO2",), np.arange(10.0), x[:, None], np.ones((10, 1), bool)))
    bed.push(Frame(("SpO2",), np.arange(13.0, 20.0), np.full((7, 1), 96.0, np.float32),
                   np.ones((7, 1), bool)))  # 3 s missing
    s = bed.summary()["SpO2"]
    assert s == {
        "fs": 1.0, "modality": "spo2", "samples_in": 17, "filled": 3, "dropped_overlap": 0,
        "overrun": 0, "processed": 20, "invalid": 5,
        "invalid_by_reason": {"probe_off": 2, "signal_gap": 3},
    }
