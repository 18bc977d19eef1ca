"""Subject profiles: what differs between a healthy sleeper, OSA, paroxysmal AF and old age."""

from __future__ import annotations

from dataclasses import dataclass, field

from sleepstream.engine.errors import ConfigError
from sleepstream.simulators.synthetic.hypnogram import HypnogramModifiers


@dataclass(frozen=True, slots=True)
class Profile:
    """One kind of night.

    ``ahi`` is the target apnea-hypopnea index (events per hour of sleep); ``event_mix`` the
    fractions of obstructive apneas, central apneas and hypopneas. ``arousal_index`` counts
    spontaneous arousals per hour of sleep (respiratory arousals come on top). ``af_fraction`` is
    the share of the night spent in atrial fibrillation, in ``af_episodes`` episodes.
    """

    name: str
    description: str
    age: int
    ahi: float = 2.0
    event_mix: tuple[float, float, float] = (0.3, 0.1, 0.6)
    desat_depth: tuple[float, float] = (3.5, 7.0)
    spo2_baseline: float = 96.5
    arousal_index: float = 10.0
    heart_rate: float = 60.0
    hrv_scale: float = 1.0
    af_fraction: float = 0.0
    af_episodes: int = 0
    slow_wave_scale: float = 1.0
    hypnogram: HypnogramModifiers = field(default_factory=HypnogramModifiers)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("healthy", "healthy young adult, stage statistics as fitted", age=30),
        Profile(
            "osa-moderate",
            "moderate obstructive sleep apnea (AHI 22), events worst in REM",
            age=52,
            ahi=22.0,
            event_mix=(0.4, 0.05, 0.55),
            desat_depth=(3.5, 10.0),
            spo2_baseline=95.5,
            heart_rate=64.0,
            hrv_scale=0.8,
            hypnogram=HypnogramModifiers(into=(1.4, 1.3, 1.0, 0.7, 0.9)),
        ),
        Profile(
            "osa-severe",
            "severe obstructive sleep apnea (AHI 48), deep desaturations, little N3",
            age=58,
            ahi=48.0,
            event_mix=(0.6, 0.05, 0.35),
            desat_depth=(4.0, 16.0),
            spo2_baseline=94.5,
            heart_rate=68.0,
            hrv_scale=0.7,
            slow_wave_scale=0.85,
            hypnogram=HypnogramModifiers(
                into=(1.8, 1.6, 1.0, 0.45, 0.8), bout_scale=(1.2, 1.2, 0.9, 0.7, 0.8)
            ),
        ),
        Profile(
            "af-paroxysmal",
            "paroxysmal atrial fibrillation: 2-4 episodes, about a quarter of the night",
            age=66,
            ahi=6.0,
            spo2_baseline=95.5,
            heart_rate=62.0,
            hrv_scale=0.7,
            af_fraction=0.25,
            af_episodes=3,
            slow_wave_scale=0.85,
            hypnogram=HypnogramModifiers(into=(1.4, 1.3, 1.0, 0.6, 0.9)),
        ),
        Profile(
            "elderly-fragmented",
            "older adult: frequent awakenings and arousals, more N1, little N3",
            age=75,
            ahi=9.0,
            spo2_baseline=94.5,
            arousal_index=22.0,
            heart_rate=62.0,
            hrv_scale=0.55,
            slow_wave_scale=0.8,
            hypnogram=HypnogramModifiers(
                into=(3.0, 1.8, 1.0, 0.35, 0.8),
                bout_scale=(2.2, 1.3, 0.9, 0.6, 0.8),
                latency_min=20.0,
                final_wake_min=15.0,
            ),
        ),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError as exc:
        raise ConfigError(
            [("--profile", f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")]
        ) from exc
