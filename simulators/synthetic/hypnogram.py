"""A fitted generative model of whole-night hypnograms, and per-night hypnogram statistics.

The night is a sequence of NREM-REM cycles (Feinberg-Floyd style). Each cycle has an NREM
period and a REM period whose lengths are log-normal with parameters per cycle index. Inside an
NREM period stages follow a bout-level semi-Markov chain over W, N1, N2, N3 that depends on the
cycle (slow-wave sleep is front-loaded); a REM period is REM bouts broken by short W/N1/N2
interruptions. Bout lengths are log-normal per stage and context. ``hypnogram_fit`` estimates
every parameter from scored nights; the fitted values ship as ``hypnogram_model.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
W, N1, N2, N3, REM = 0, 1, 2, 3, 4
STAGE_NAMES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")
EPOCH_S = 30.0
N_CYCLE_GROUPS = 3  # cycle 1, cycle 2, cycles 3+
MAX_CYCLE_INDEX = 4  # period lengths fitted for cycles 1, 2, 3, 4+
MODEL_PATH = Path(__file__).with_name("hypnogram_model.json")


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Log-normal in epochs: exp(mu + sigma * z)."""

    mu: float
    sigma: float

    def draw(self, rng: np.random.Generator, scale: float = 1.0) -> int:
        return max(1, round(scale * np.exp(self.mu + self.sigma * rng.standard_normal())))


@dataclass(frozen=True, slots=True)
class HypnogramModel:
    """Fitted parameters. Matrices are row-stochastic, rows are "from", columns "to".

    ``nrem_chain[g]`` (4, 4) over W, N1, N2, N3 for cycle group g with a zero diagonal;
    ``nrem_start[g]`` the first stage of the NREM period; ``rem_interrupt`` the stage of an
    interruption inside a REM period (W, N1, N2, N3); ``bouts`` maps "nrem<g>:<stage>" and
    "rem:<stage>" to bout-length distributions.
    """

    nrem_period: tuple[LogNormal, ...]
    rem_period: tuple[LogNormal, ...]
    nrem_chain: tuple[tuple[tuple[float, ...], ...], ...]
    nrem_start: tuple[tuple[float, ...], ...]
    rem_interrupt: tuple[float, ...]
    bouts: dict[str, LogNormal]
    source: str = ""
    n_nights: int = 0
    fit_report: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "nrem_period": [[d.mu, d.sigma] for d in self.nrem_period],
            "rem_period": [[d.mu, d.sigma] for d in self.rem_period],
            "nrem_chain": [list(map(list, m)) for m in self.nrem_chain],
            "nrem_start": [list(r) for r in self.nrem_start],
            "rem_interrupt": list(self.rem_interrupt),
            "bouts": {k: [d.mu, d.sigma] for k, d in sorted(self.bouts.items())},
            "source": self.source,
            "n_nights": self.n_nights,
            "fit_report": self.fit_report,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> HypnogramModel:
        return cls(
            nrem_period=tuple(LogNormal(*p) for p in obj["nrem_period"]),
            rem_period=tuple(LogNormal(*p) for p in obj["rem_period"]),
            nrem_chain=tuple(tuple(tuple(r) for r in m) for m in obj["nrem_chain"]),
            nrem_start=tuple(tuple(r) for r in obj["nrem_start"]),
            rem_interrupt=tuple(obj["rem_interrupt"]),
            bouts={k: LogNormal(*v) for k, v in obj["bouts"].items()},
            source=obj.get("source", ""),
            n_nights=int(obj.get("n_nights", 0)),
            fit_report=obj.get("fit_report", {}),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")


def load_model(path: Path = MODEL_PATH) -> HypnogramModel:
    """The shipped (or a given) fitted model."""
    return HypnogramModel.from_json(json.loads(path.read_text()))


@dataclass(frozen=True, slots=True)
class HypnogramModifiers:
    """How a profile departs from the fitted (young healthy) sleep.

    ``into`` multiplies the probability of entering each stage (W, N1, N2, N3, REM);
    ``bout_scale`` multiplies bout lengths per stage; ``latency_min`` is the median sleep-onset
    latency (not in the Sleep-EDF scoring, which has no lights-off marker).
    """

    into: tuple[float, float, float, float, float] = (1.0, 1.0, 1.0, 1.0, 1.0)
    bout_scale: tuple[float, float, float, float, float] = (1.0, 1.0, 1.0, 1.0, 1.0)
    latency_min: float = 12.0
    final_wake_min: float = 6.0


def _pick(p: npt.ArrayLike, rng: np.random.Generator) -> int:
    q = np.asarray(p, dtype=np.float64)
    return int(rng.choice(q.size, p=q / q.sum()))


def _nrem_period(
    model: HypnogramModel, group: int, length: int, rng: np.random.Generator,
    mods: HypnogramModifiers, first: bool,
) -> list[int]:
    into = np.asarray(mods.into[:4])
    chain = np.asarray(model.nrem_chain[group]) * into[None, :]
    stage = N1 if first else _pick(np.asarray(model.nrem_start[group]) * into, rng)
    out: list[int] = []
    while len(out) < length:
        key = f"nrem{group}:{STAGE_NAMES[stage]}"
        out.extend([stage] * model.bouts[key].draw(rng, mods.bout_scale[stage]))
        stage = _pick(chain[stage], rng)
    return out[:length]


def _rem_period(
    model: HypnogramModel, length: int, rng: np.random.Generator, mods: HypnogramModifiers
) -> list[int]:
    into = np.asarray(mods.into[:4])
    out: list[int] = []
    while len(out) < length:
        out.extend([REM] * model.bouts["rem:REM"].draw(rng, mods.bout_scale[REM]))
        if len(out) >= length:
            break
        s = _pick(np.asarray(model.rem_interrupt) * into, rng)
        out.extend([s] * model.bouts[f"rem:{STAGE_NAMES[s]}"].draw(rng, mods.bout_scale[s]))
    # a period ends inside its last REM bout: split the overshoot (truncating it all shortens REM
    # bouts, keeping it all lengthens REM periods)
    return out[: (length + len(out)) // 2]


def generate_hypnogram(
    model: HypnogramModel,
    n_epochs: int,
    rng: np.random.Generator,
    mods: HypnogramModifiers | None = None,
    latency_epochs: int | None = None,
    final_wake_epochs: int | None = None,
) -> IntArray:
    """Stage codes (0=W .. 4=REM) for ``n_epochs`` 30-s epochs, lights-off to lights-on."""
    mods = mods or HypnogramModifiers()
    if latency_epochs is None:
        latency_epochs = max(1, LogNormal(np.log(mods.latency_min * 2), 0.5).draw(rng))
    if final_wake_epochs is None:
        final_wake_epochs = max(1, LogNormal(np.log(mods.final_wake_min * 2), 0.5).draw(rng))
    spt = max(n_epochs - latency_epochs - final_wake_epochs, 10)
    rem_scale = mods.into[REM]
    sleep: list[int] = []
    cycle = 1
    while len(sleep) < spt:
        ci = min(cycle, MAX_CYCLE_INDEX) - 1
        group = min(cycle, N_CYCLE_GROUPS) - 1
        nrem_len = model.nrem_period[ci].draw(rng, 1.0 / max(rem_scale, 0.2) ** 0.5)
        sleep.extend(_nrem_period(model, group, nrem_len, rng, mods, first=cycle == 1))
        sleep.extend(_rem_period(model, model.rem_period[ci].draw(rng, rem_scale), rng, mods))
        cycle += 1
    sleep = sleep[:spt]
    if sleep[-1] == W:  # the sleep period ends on the last sleep epoch
        sleep[-1] = N1
    stages = np.array([W] * latency_epochs + sleep + [W] * final_wake_epochs, dtype=np.int64)
    return stages[:n_epochs] if stages.size >= n_epochs else np.pad(
        stages, (0, n_epochs - stages.size), constant_values=W
    )


def sleep_period(stages: IntArray) -> IntArray:
    """The epochs from sleep onset to the last sleep epoch (empty if no sleep)."""
    asleep = np.flatnonzero(stages != W)
    if asleep.size == 0:
        return stages[:0]
    return stages[asleep[0] : asleep[-1] + 1]


def runs(stages: IntArray) -> tuple[IntArray, IntArray]:
    """(stage, length) of every run of equal stages."""
    if stages.size == 0:
        return stages[:0], stages[:0]
    change = np.flatnonzero(np.diff(stages)) + 1
    starts = np.concatenate([[0], change])
    lengths = np.diff(np.concatenate([starts, [stages.size]]))
    return stages[starts], lengths.astype(np.int64)


def rem_periods(spt: IntArray, max_gap: int = 30) -> list[tuple[int, int]]:
    """[start, end) of REM periods: REM epochs joined across gaps of at most ``max_gap`` epochs."""
    idx = np.flatnonzero(spt == REM)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]]) + 1
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def transition_matrix(spt: IntArray) -> npt.NDArray[np.float64]:
    """Epoch-to-epoch transition probabilities (5, 5) inside the sleep period."""
    counts = np.zeros((5, 5))
    np.add.at(counts, (spt[:-1], spt[1:]), 1.0)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def night_stats(stages: IntArray) -> dict[str, float]:
    """Summary statistics of one hypnogram, computed on its sleep period."""
    spt = sleep_period(stages)
    n = max(spt.size, 1)
    hours = n * EPOCH_S / 3600.0
    stats: dict[str, float] = {"spt_min": spt.size / 2.0, "tst_min": float((spt != W).sum()) / 2}
    for code, name in enumerate(STAGE_NAMES):
        stats[f"pct_{name}"] = 100.0 * float((spt == code).sum()) / n
    rem = np.flatnonzero(spt == REM)
    stats["rem_latency_min"] = rem[0] / 2.0 if rem.size else spt.size / 2.0
    periods = rem_periods(spt)
    stats["rem_periods"] = float(len(periods))
    stats["cycle_min"] = (
        float(np.mean(np.diff([a for a, _ in periods]))) / 2.0 if len(periods) > 1 else np.nan
    )
    run_stage, run_len = runs(spt)
    stats["transitions_per_h"] = (run_stage.size - 1) / hours
    stats["awakenings_per_h"] = float((run_stage == W).sum()) / hours
    for code, name in enumerate(STAGE_NAMES):
        sel = run_len[run_stage == code]
        stats[f"bout_{name}_min"] = float(sel.mean()) / 2.0 if sel.size else 0.0
    first_third = spt[: n // 3]
    stats["n3_first_third_pct"] = 100.0 * float((first_third == N3).sum()) / max(
        float((spt == N3).sum()), 1.0
    )
    return stats
