"""Sustained hypoxemia episodes, their alarm coverage and the burden per bed-hour."""

from __future__ import annotations

import numpy as np

from sleepstream.models import alarm_burden as ab


def test_episodes_skip_invalid_seconds_and_need_min_valid_s():
    x = np.full(300, 97.0)
    x[100:120] = 88.0
    x[120:130] = np.nan  # probe off inside the episode: neither counts nor breaks it
    x[130:145] = 87.0
    x[200:220] = 85.0  # 20 s: not sustained
    [ep] = ab.episodes(x)
    assert (ep.onset, ep.end, ep.valid_s, ep.nadir) == (100.0, 145.0, 35, 87.0)


def test_coverage_and_burden():
    eps = [ab.Episode(100.0, 200.0, 100, 85.0), ab.Episode(500.0, 560.0, 60, 88.0),
           ab.Episode(900.0, 950.0, 50, 88.0)]
    events = [
        {"type": "alert", "id": "a/1", "code": "hypoxemia90", "kind": "physiological",
         "priority": "medium", "state": "active", "t": 160.0, "criterion_t": 130.0},
        {"type": "alert", "id": "a/1", "code": "hypoxemia90", "kind": "physiological",
         "priority": "medium", "state": "ended", "t": 600.0},
        {"type": "alert", "id": "t/1", "code": "signal_gap", "kind": "technical",
         "priority": "low", "state": "active", "t": 910.0},
    ]
    spans = ab.alarm_spans(events)
    # the first alarm covers episode 1 (30 s after onset) and, still standing, episode 2
    assert ab.coverage(eps, spans) == [30.0, 0.0, None]
    b = ab.burden(spans, 2.0)
    assert b["physiological_per_bed_hour"] == 0.5 and b["technical_per_bed_hour"] == 0.5
    assert b["physiological_by_priority_per_bed_hour"] == {"medium": 0.5}
