"""Map device channel labels to model modalities.

Rules are ``(pattern, modality)`` pairs matched case-insensitively with shell-style wildcards
against the label; the first match wins. Config rules come before the defaults. A modality of
``None`` means "carry the channel but feed no model input".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from sleepstream.engine.types import Modality


@dataclass(frozen=True, slots=True)
class ChannelRule:
    pattern: str
    modality: Modality | None
    scale: float = 1.0


DEFAULT_RULES: tuple[ChannelRule, ...] = tuple(
    ChannelRule(p, m)  # type: ignore[arg-type]
    for m, patterns in (
        ("spo2", ("spo2*", "sao2*", "*oxygen sat*", "sat*", "*spo2*")),
        ("hr", ("hr", "hr *", "heart rate*", "pulse*", "pr", "*heart rate*", "hr_*")),
        ("ppg", ("pleth*", "ppg*", "*photopleth*")),
        ("ecg", ("ecg*", "ekg*", "*ecg*", "*ekg*", "lead *")),
        ("eog", ("eog*", "*eog*", "e1*", "e2*", "loc*", "roc*", "horizontal*")),
        ("emg", ("emg*", "*chin*", "*emg*")),
        (
            "resp",
            (
                "resp*", "*airflow*", "flow*", "*nasal*", "*therm*", "thor*", "abdo*", "*effort*",
                "*resp*", "*cannula*", "*pressure*",
            ),
        ),
        ("acc", ("acc*", "*accel*", "*acc_*", "*acc x*", "*acc y*", "*acc z*")),
        (
            "eeg",
            (
                "eeg*", "*fpz*", "*pz-oz*", "c3*", "c4*", "f3*", "f4*", "o1*", "o2*", "fp1*",
                "fp2*", "cz*", "*-m1", "*-m2", "*-a1", "*-a2",
            ),
        ),
    )
    for p in patterns
)


def modality_of(label: str, rules: Sequence[ChannelRule] = ()) -> ChannelRule | None:
    """The first rule matching ``label`` among ``rules`` then the defaults, or None."""
    key = label.strip().lower()
    for rule in (*rules, *DEFAULT_RULES):
        if fnmatch.fnmatchcase(key, rule.pattern.lower()):
            return rule
    return None
