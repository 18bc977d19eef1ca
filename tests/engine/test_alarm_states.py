"""One alarm state machine for every alarm: technical alarms acknowledge and escalate, counter
channels never alarm, SpO2 alarms integrate, and scored events are not alarms."""

from __future__ import annotations

import numpy as np

from sleepstream.engine.alerts import spo2
from sleepstream.engine.alerts.config import DEFAULT
from sleepstream.engine.bed import BedState
from sleepstream.engine.protocols import SourceEvent
from sleepstream.engine.types import ChannelSpec, Command, Frame


def _bed() -> BedState:
    bed = BedState("b1", hop_s=1.0, ring_s=60.0)
    bed.add_channels([ChannelSpec("SpO2", 1.0, "spo2", valid_min=50, valid_max=100),
                      ChannelSpec("counter-1Hz", 1.0, None)])
    return bed


def _frame(t0: int, n: int, valid: bool) -> Frame:
    t = np.arange(t0, t0 + n, dtype=np.float64)
    data = np.column_stack([np.full(n, 97.0), np.arange(t0, t0 + n)]).astype(np.float32)
    return Frame(("SpO2", "counter-1Hz"), t, data, np.full((n, 2), valid))


def test_source_alarm_is_acknowledged_and_the_receipt_says_so():
    bed = _bed()
    bed.push(_frame(0, 5, True))
    assert bed.source_event(SourceEvent("stream_lost", ("SpO2",), 5.0, True, "lost")) == []
    assert bed.tick(6.5) == []  # the condition delay (2 s) gathers every symptom
    [active] = bed.tick(7.0)
    assert (active["code"], active["causes"], active["channels"]) == (
        "source_fault", ["stream_lost"], ["SpO2"])
    assert active["onset"] == 5.0 and active["priority"] == "high"
    out = bed.command(Command("b1", "ack", 6.0, alert_id=active["id"], by="n"))
    assert [e["state"] for e in out if e["type"] == "alert"] == ["acknowledged"]
    assert out[-1]["matched"] is True and out[-1]["acknowledged"] == [active["id"]]
    again = bed.command(Command("b1", "ack", 7.0, alert_id="b1/none/1", by="n"))
    assert again[-1]["matched"] is False and "no announced alarm matched" in again[-1]["message"]
    assert bed.source_event(SourceEvent("stream_lost", ("SpO2",), 9.0, False, "back")) == []
    assert bed.tick(10.0) == []  # ends HOLD_S after its last symptom
    [ended] = bed.tick(11.0)
    assert ended["state"] == "ended" and ended["id"] == active["id"] and ended["end"] == 9.0


def test_unacknowledged_high_priority_technical_alarm_escalates():
    bed = _bed()
    bed.push(_frame(0, 5, True))
    bed.source_event(SourceEvent("stream_lost", ("SpO2",), 5.0, True, "lost"))
    out = [e for t0 in range(5, 85, 20) for e in bed.push(_frame(t0, 20, True))]
    assert [e["state"] for e in out if e.get("code") == "source_fault"] == ["active",
                                                                           "escalated"]


def test_quality_alarm_acknowledged_and_counter_channel_never_alarms():
    bed = _bed()
    out = bed.push(_frame(0, 5, True)) + bed.push(_frame(5, 10, False))
    gaps = [e for e in out if e["type"] == "alert"]
    assert [(e["code"], e["causes"], e["channels"]) for e in gaps] == [
        ("source_fault", ["signal_gap"], ["SpO2"])]
    acked = bed.command(Command("b1", "ack", 16.0, by="n"))
    assert [e["state"] for e in acked if e["type"] == "alert"] == ["acknowledged"]
    assert bed.summary()["counter-1Hz"]["invalid_by_reason"]["signal_gap"] == 10


def test_hypoxemia_alarm_integrates_and_desaturations_are_events():
    st = spo2.new_state("b1", DEFAULT)
    x = np.concatenate([np.full(200, 97.0), np.full(20, 80.0), np.full(200, 97.0),
                        np.full(20, 89.5), np.full(100, 97.0)])
    t = np.arange(x.size, dtype=np.float64)
    alarms, desats = spo2.step(st, t, x, float(x.size))
    hyp90 = [a for a in alarms if a.code == "hypoxemia90" and a.state == "active"]
    # 80 %: 10 % x s a second reaches the 100 % s SatSeconds area at 10 s, before the 30-s delay;
    # a 20-s dip to 89.5 % reaches neither
    assert [(a.onset, a.extra["criterion_t"]) for a in hyp90] == [(200.0, 210.0)]
    assert {a.code for a in desats} == {"desat3", "desat4"}


def test_source_fault_on_counter_channels_names_only_signal_channels():
    bed = _bed()
    bed.push(_frame(0, 5, True))
    assert bed.source_event(SourceEvent("packet_loss", ("counter-1Hz",), 5.0, True, "x")) == []
    assert bed.tick(8.0) == []
    bed.source_event(SourceEvent("packet_loss", ("SpO2", "counter-1Hz"), 5.0, True, "x"))
    [a] = bed.tick(8.0)
    assert a["channels"] == ["SpO2"]
