"""Parsing of the [alerts] table and per-bed overrides."""

from __future__ import annotations

from sleepstream.engine.alerts.config import DEFAULT, parse_alerts_table
from sleepstream.engine.types import Priority


def test_defaults_and_override():
    cfg, problems = parse_alerts_table(
        {"bradycardia": {"threshold": 35, "priority": "medium"}, "escalate_after_s": 30}, "alerts"
    )
    assert problems == []
    assert cfg.bradycardia.threshold == 35.0 and cfg.bradycardia.priority is Priority.MEDIUM
    assert cfg.bradycardia.delay_s == DEFAULT.bradycardia.delay_s
    assert cfg.escalate_after_s == 30.0
    bed, problems = parse_alerts_table({"desat3": {"enabled": False}}, "beds.b2.alerts", base=cfg)
    assert problems == [] and not bed.desat3.enabled and bed.bradycardia.threshold == 35.0


def test_problems_name_the_key():
    _, problems = parse_alerts_table(
        {"bradycardia": {"priority": "urgent", "delay_s": -1, "colour": 1}, "spo2": 3}, "alerts"
    )
    wheres = {w for w, _ in problems}
    assert wheres == {"alerts.bradycardia.priority", "alerts.bradycardia.delay_s",
                      "alerts.bradycardia.colour", "alerts.spo2"}
