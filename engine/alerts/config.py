"""Alert limits: threshold, condition delay, priority and latching per detector, per bed.

Clinical defaults (adult sleep monitoring; every one can be changed in the ``[alerts]`` table of
the engine TOML and per bed under ``[beds.<id>.alerts]``):

Alarms (they need a person; IEC 60601-1-8 priorities):

| code | criterion | delay | priority | latching | basis |
|---|---|---|---|---|---|
| hypoxemia90 | SpO2 < 90 % (30 valid s, or 100 % s) | 30 s | medium | no | T90; SatSeconds |
| hypoxemia88 | SpO2 < 88 %, integrated the same way | 30 s | high | yes | home-oxygen level |
| bradycardia | heart rate < 40 bpm | 10 s | high | yes | AASM scoring manual (sleep HR < 40) |
| tachycardia | heart rate > 130 bpm | 10 s | medium | no | sustained sinus tachycardia in sleep |
| asystole | no beat for >= 4 s (ECG/PPG) | 0 s | high | yes | AASM asystole (> 3 s pause) |
| af | RR irregularity score >= 0.1 over 64 beats | 30 s | medium | no | RMSSD/mean-RR AF screens |

Scored events (``{"type": "event"}``, never alarms; ``delay`` is the minimum duration):

| code | criterion | delay | basis |
|---|---|---|---|
| desat3 | SpO2 >= 3 % below the pre-event baseline | 3 s | AASM 2012 rule 1A, ODI-3 |
| desat4 | SpO2 >= 4 % below the pre-event baseline | 3 s | AASM rule 1B / CMS, ODI-4 |
| apnea | airflow amplitude drop >= 90 % | 10 s | AASM apnea |
| hypopnea | airflow drop >= 30 %, + >= 3 % desat or arousal | 10 s | AASM 1A |
| af | the AF alarm's episode, scored when it ends | 30 s | as above |
| apnea_minutes | per-minute apnea probability >= 0.5 | 0 s | sleepstream classifier |

The 30-s hypoxemia delay is the sustained-hypoxemia definition (SpO2 < 90 % for >= 30 s); the
SatSeconds area (% x s below the limit; Nellcor offers 10-100, 100 for adults) alarms a deep fall
early (10 s at 80 %) and a brief shallow dip never; the 60-s hold keeps the cyclic dips of one
apnea cluster as one alarm instead of one per dip. ``satseconds`` 0 disables the area criterion,
``hold_s`` 0 ends the alarm at the first reading back above the limit.

The desaturation delay (AASM sets no minimum duration) was chosen among 0, 3, 5 and 10 s on all 56
oximetry nights: per-minute ODI-3 rule AUROC 0.891 / 0.884 / 0.824 / 0.624, night ODI-3 vs scored
index r 0.881 / 0.922 / 0.870 / 0.706; 3 s keeps the ODI closest to the scored index while
ignoring 1-2 s artefact dips.

``delay_s`` is the alarm-condition delay: the criterion must hold that long before the condition
is announced; the announced onset is the time the criterion started. An unacknowledged
high-priority alarm escalates after ``escalate_after_s``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sleepstream.engine.types import Priority


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One detector's limit. ``threshold`` is in the detector's unit (see the table above)."""

    threshold: float
    delay_s: float
    priority: Priority
    latching: bool = False
    enabled: bool = True
    satseconds: float = 0.0  # SpO2: also announce once the area below the limit (% s) reaches it
    hold_s: float = 0.0  # the criterion must stay unmet this long before the condition ends


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Every detector's rule for one bed, plus engine-wide alarm-system settings."""

    desat3: RuleConfig = RuleConfig(3.0, 3.0, Priority.LOW)
    desat4: RuleConfig = RuleConfig(4.0, 3.0, Priority.LOW)
    hypoxemia90: RuleConfig = RuleConfig(90.0, 30.0, Priority.MEDIUM, satseconds=100.0,
                                         hold_s=60.0)
    hypoxemia88: RuleConfig = RuleConfig(88.0, 30.0, Priority.HIGH, latching=True,
                                         satseconds=100.0, hold_s=60.0)
    bradycardia: RuleConfig = RuleConfig(40.0, 10.0, Priority.HIGH, latching=True)
    tachycardia: RuleConfig = RuleConfig(130.0, 10.0, Priority.MEDIUM)
    asystole: RuleConfig = RuleConfig(4.0, 0.0, Priority.HIGH, latching=True)
    af: RuleConfig = RuleConfig(0.1, 30.0, Priority.MEDIUM)
    apnea: RuleConfig = RuleConfig(0.9, 10.0, Priority.LOW)
    hypopnea: RuleConfig = RuleConfig(0.3, 10.0, Priority.LOW)
    apnea_minutes: RuleConfig = RuleConfig(0.5, 0.0, Priority.LOW)
    escalate_after_s: float = 60.0  # unacknowledged high-priority alarm -> escalated
    baseline_s: float = 120.0  # pre-event baseline window for desaturation and airflow
    hypopnea_desat_window_s: float = 30.0  # desaturation must start within this after the drop
    index_every_s: float = 60.0  # running AHI/ODI event period

    def rules(self) -> dict[str, RuleConfig]:
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), RuleConfig)
        }


DEFAULT = AlertConfig()
_RULE_KEYS = {"threshold": float, "delay_s": float, "priority": str, "latching": bool,
              "enabled": bool, "satseconds": float, "hold_s": float}
_SCALAR_KEYS = ("escalate_after_s", "baseline_s", "hypopnea_desat_window_s", "index_every_s")


def _parse_rule(
    base: RuleConfig, table: Any, where: str, problems: list[tuple[str, str]]
) -> RuleConfig:
    if not isinstance(table, dict):
        problems.append((where, "must be a table of threshold, delay_s, priority, latching"))
        return base
    changes: dict[str, Any] = {}
    for key, value in table.items():
        kind = _RULE_KEYS.get(key)
        if kind is None:
            problems.append((f"{where}.{key}", f"unknown key; use one of {sorted(_RULE_KEYS)}"))
        elif kind is bool:
            if not isinstance(value, bool):
                problems.append((f"{where}.{key}", "must be true or false"))
            else:
                changes[key] = value
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                problems.append((f"{where}.{key}", "must be a number"))
            elif key in ("delay_s", "satseconds", "hold_s") and value < 0:
                problems.append((f"{where}.{key}", "must be >= 0"))
            else:
                changes[key] = float(value)
        else:
            try:
                changes[key] = Priority(str(value).lower())
            except ValueError:
                problems.append((f"{where}.{key}", "must be 'high', 'medium' or 'low'"))
    return dataclasses.replace(base, **changes)


def parse_alerts_table(
    table: dict[str, Any], where: str, base: AlertConfig = DEFAULT
) -> tuple[AlertConfig, list[tuple[str, str]]]:
    """Read an ``[alerts]`` TOML table (or a bed's override of it) on top of ``base``.

    Returns the config and every ``(where, what to fix)`` problem found; on problems the
    offending keys keep their ``base`` value.
    """
    problems: list[tuple[str, str]] = []
    rules = base.rules()
    changes: dict[str, Any] = {}
    for key, value in table.items():
        if key in rules:
            changes[key] = _parse_rule(rules[key], value, f"{where}.{key}", problems)
        elif key in _SCALAR_KEYS:
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                problems.append((f"{where}.{key}", "must be a number of seconds > 0"))
            else:
                changes[key] = float(value)
        else:
            known = sorted([*rules, *_SCALAR_KEYS])
            problems.append((f"{where}.{key}", f"unknown alert setting; use one of {known}"))
    return dataclasses.replace(base, **changes), problems
