"""Ground-truth events of a night: respiratory events, desaturations, arousals, AF episodes.

Events are placed on the hypnogram first; every signal is then drawn from them, so the
annotations are exact. Rules follow the AASM scoring manual: apneas and hypopneas last at least
10 s; every hypopnea carries a desaturation of at least 3 %; desaturations trail their event by
the circulation delay: SpO2 starts to fall 20-30 s after the event starts and bottoms out the
same delay after it ends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from sleepstream.simulators.synthetic.hypnogram import EPOCH_S, REM, IntArray, W
from sleepstream.simulators.synthetic.profiles import Profile

log = logging.getLogger(__name__)

OBSTRUCTIVE, CENTRAL, HYPOPNEA = "Obstructive apnea", "Central apnea", "Hypopnea"
DESATURATION, AROUSAL, AF = "Desaturation", "Arousal", "AF"
RESPIRATORY = (OBSTRUCTIVE, CENTRAL, HYPOPNEA)
# how likely an event lands in each stage, per epoch (W, N1, N2, N3, REM): OSA is worst in REM
_EVENT_WEIGHT = np.array([0.0, 1.0, 0.9, 0.3, 1.8])
_AROUSAL_WEIGHT = np.array([0.0, 1.3, 1.0, 0.4, 1.0])
_AROUSAL_AFTER = {OBSTRUCTIVE: 0.95, CENTRAL: 0.7, HYPOPNEA: 0.8}
_RECOVERY_S = (16.0, 40.0)  # breathing between consecutive events


@dataclass(frozen=True, slots=True)
class Event:
    """One annotated event; ``value`` is the desaturation depth in % (0 for other kinds)."""

    onset: float
    duration: float
    kind: str
    value: float = 0.0

    @property
    def end(self) -> float:
        return self.onset + self.duration


@dataclass(frozen=True, slots=True)
class NightEvents:
    respiratory: tuple[Event, ...]
    desaturations: tuple[Event, ...]
    arousals: tuple[Event, ...]
    af: tuple[Event, ...]
    circulation_delay_s: float

    def all(self) -> list[Event]:
        events = [*self.respiratory, *self.desaturations, *self.arousals, *self.af]
        return sorted(events, key=lambda e: (e.onset, e.kind))

    def of(self, *kinds: str) -> list[Event]:
        return [e for e in self.all() if e.kind in kinds]


def _draw_onsets(
    stages: IntArray, weight: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    p = weight[stages].astype(np.float64)
    if p.sum() <= 0:
        return np.zeros(0)
    epochs = rng.choice(stages.size, size=k, p=p / p.sum())
    return (epochs + rng.random(k)) * EPOCH_S


def _respiratory(
    stages: IntArray, profile: Profile, rng: np.random.Generator
) -> list[Event]:
    tst_h = float((stages != W).sum()) * EPOCH_S / 3600.0
    target = round(profile.ahi * tst_h)
    night_s = stages.size * EPOCH_S
    busy = np.zeros(int(night_s) + 1, dtype=bool)
    kinds = rng.choice(3, size=target, p=np.asarray(profile.event_mix) / sum(profile.event_mix))
    events: list[Event] = []
    for attempt in range(40):
        if len(events) >= target:
            break
        weight = _EVENT_WEIGHT if attempt < 20 else np.minimum(_EVENT_WEIGHT, 1.0)
        for onset in _draw_onsets(stages, weight, 4 * (target - len(events)), rng):
            kind = RESPIRATORY[kinds[len(events)]]
            stage = stages[int(onset // EPOCH_S)]
            dur = float(np.clip(np.exp(np.log(21.0) + 0.35 * rng.standard_normal()), 12, 75))
            dur *= 1.25 if stage == REM else 1.0
            end = onset + dur
            guard = rng.uniform(*_RECOVERY_S)
            a, b = int(onset - 8), int(end + guard)
            if a < 0 or b >= busy.size or stages[int(end // EPOCH_S)] == W or busy[a:b].any():
                continue
            busy[a:b] = True
            events.append(Event(round(onset, 2), round(dur, 2), kind))
            if len(events) >= target:
                break
    if len(events) < target:
        log.warning("placed %d of %d respiratory events; the night is too short", len(events),
                    target)
    return sorted(events, key=lambda e: e.onset)


def _desaturation(event: Event, stage: int, profile: Profile, delay: float,
                  rng: np.random.Generator) -> Event:
    lo, hi = profile.desat_depth
    depth = rng.uniform(lo, hi) * np.sqrt(event.duration / 21.0)
    depth *= 1.2 if stage == REM else 1.0
    depth *= 0.6 if event.kind == HYPOPNEA else 1.0
    depth = float(np.clip(depth, 3.5, 30.0))
    # SpO2 starts falling one circulation delay after the event starts, bottoms out one delay
    # after it ends and recovers within about 12 s
    return Event(round(event.onset + delay, 2), round(event.duration + 12.0, 2), DESATURATION,
                 round(depth, 1))


def _arousals(
    stages: IntArray, resp: list[Event], profile: Profile, rng: np.random.Generator
) -> list[Event]:
    out = []
    busy = np.zeros(stages.size * int(EPOCH_S) + 1, dtype=bool)
    for e in resp:
        if rng.random() < _AROUSAL_AFTER[e.kind]:
            dur = float(np.clip(rng.lognormal(np.log(7.0), 0.35), 3.5, 14.0))
            out.append(Event(round(e.end - 1.0, 2), round(dur, 2), AROUSAL))
            busy[int(e.onset) : int(e.end + dur + 10)] = True
    tst_h = float((stages != W).sum()) * EPOCH_S / 3600.0
    n = rng.poisson(profile.arousal_index * tst_h)
    for onset in _draw_onsets(stages, _AROUSAL_WEIGHT, n, rng):
        dur = float(np.clip(rng.lognormal(np.log(6.0), 0.4), 3.5, 14.0))
        a, b = int(onset) - 10, int(onset + dur) + 10
        if a < 0 or b >= busy.size or busy[a:b].any():
            continue
        if stages[min(int((onset + dur) // EPOCH_S), stages.size - 1)] == W:
            continue
        busy[a:b] = True
        out.append(Event(round(float(onset), 2), round(dur, 2), AROUSAL))
    return sorted(out, key=lambda e: e.onset)


def _af_episodes(n_epochs: int, profile: Profile, rng: np.random.Generator) -> list[Event]:
    if profile.af_episodes <= 0 or profile.af_fraction <= 0:
        return []
    night_s = n_epochs * EPOCH_S
    total = profile.af_fraction * night_s
    lengths = rng.dirichlet(np.full(profile.af_episodes, 3.0)) * total
    gaps = rng.dirichlet(np.ones(profile.af_episodes + 1)) * (night_s - total)
    onsets = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    return [Event(round(float(a), 2), round(float(d), 2), AF) for a, d in
            zip(onsets, lengths, strict=True)]


def schedule_events(stages: IntArray, profile: Profile, rng: np.random.Generator) -> NightEvents:
    """Every ground-truth event of the night, consistent with the hypnogram."""
    resp = _respiratory(stages, profile, rng)
    delay = float(rng.uniform(20.0, 30.0))
    desats = [
        _desaturation(e, int(stages[int(e.onset // EPOCH_S)]), profile,
                      delay + float(rng.uniform(-2, 2)), rng)
        for e in resp
    ]
    return NightEvents(
        respiratory=tuple(resp),
        desaturations=tuple(desats),
        arousals=tuple(_arousals(stages, resp, profile, rng)),
        af=tuple(_af_episodes(stages.size, profile, rng)),
        circulation_delay_s=round(delay, 2),
    )


def event_arrays(events: list[Event]) -> tuple[np.ndarray, np.ndarray]:
    """(onsets, durations) in seconds."""
    return (np.array([e.onset for e in events], dtype=np.float64),
            np.array([e.duration for e in events], dtype=np.float64))

