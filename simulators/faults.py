"""Fault schedules: what goes wrong with a simulated device, and when (TOML).

::

    [[fault]]
    kind = "sensor_off"       # samples become NaN (the device flags them)
    start_s = 30.0            # recording seconds
    duration_s = 10.0
    channels = ["SpO2"]       # optional; default every channel

    [[fault]]
    kind = "clock_jump"       # the device clock steps by offset_s from start_s on
    start_s = 60.0
    offset_s = 20.0

Kinds: ``sensor_off``, ``packet_loss`` (packets starting in the span are not sent),
``duplicate`` (sent twice), ``reorder`` (each swapped with the next), ``jitter`` (delayed by up to
``max_delay_s`` wall seconds), ``clock_jump``, ``broker_outage`` (the broker is stopped for the
span; needs a broker the simulator controls), ``outlet_restart`` (the device's LSL outlet or MQTT
connection goes away for the span and comes back; the data of the span is never sent).
Packet faults (loss, duplicate, reorder, jitter) and ``broker_outage`` apply to MQTT only: LSL
rides on TCP and has no packets to lose.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sleepstream.engine.errors import ConfigError
from sleepstream.engine.types import BoolArray, FloatArray

FAULT_KINDS = (
    "sensor_off", "packet_loss", "duplicate", "reorder", "jitter", "clock_jump",
    "broker_outage", "outlet_restart",
)
MQTT_ONLY = frozenset({"packet_loss", "duplicate", "reorder", "jitter", "broker_outage"})
_KEYS = {"kind", "start_s", "duration_s", "channels", "offset_s", "max_delay_s", "seed"}


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    start_s: float
    duration_s: float = 0.0
    channels: tuple[str, ...] = ()
    offset_s: float = 0.0
    max_delay_s: float = 0.0

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def covers(self, t: float) -> bool:
        return self.start_s <= t < self.end_s

    def applies_to(self, channel: str) -> bool:
        return not self.channels or channel in self.channels


@dataclass(frozen=True, slots=True)
class FaultSchedule:
    faults: tuple[Fault, ...] = ()
    seed: int = 0

    def of(self, kind: str) -> tuple[Fault, ...]:
        return tuple(f for f in self.faults if f.kind == kind)

    def sensor_off(self, channel: str, t: FloatArray) -> BoolArray:
        """(n,) True where ``channel``'s samples at times ``t`` are switched off."""
        off = np.zeros(t.shape[0], dtype=bool)
        for f in self.of("sensor_off"):
            if f.applies_to(channel):
                off |= (t >= f.start_s) & (t < f.end_s)
        return off

    def packet_fault(self, channel: str, t_start: float) -> Fault | None:
        """The packet fault (loss, duplicate, reorder, jitter) hitting a packet, if any."""
        for f in self.faults:
            if f.kind in ("packet_loss", "duplicate", "reorder", "jitter") and f.covers(
                t_start
            ) and f.applies_to(channel):
                return f
        return None

    def clock_offset(self, t: float) -> float:
        return sum(f.offset_s for f in self.of("clock_jump") if t >= f.start_s)

    def outage(self, t: float) -> Fault | None:
        for f in self.faults:
            if f.kind in ("broker_outage", "outlet_restart") and f.covers(t):
                return f
        return None

    def rng(self) -> random.Random:
        return random.Random(self.seed)

    def check_transport(self, transport: str) -> None:
        if transport == "lsl":
            bad = sorted({f.kind for f in self.faults} & MQTT_ONLY)
            if bad:
                raise ConfigError([("fault", f"{', '.join(bad)} apply to MQTT only; "
                                    "replay --to mqtt or drop them")])


NO_FAULTS = FaultSchedule()


def parse_faults(raw: dict[str, Any], where: str = "faults") -> FaultSchedule:
    problems: list[tuple[str, str]] = []
    faults: list[Fault] = []
    items = raw.get("fault", [])
    if not isinstance(items, list):
        raise ConfigError([(f"{where}.fault", "must be an array of tables ([[fault]])")])
    for i, item in enumerate(items):
        w = f"{where}.fault[{i}]"
        if not isinstance(item, dict):
            problems.append((w, "must be a table"))
            continue
        unknown = set(item) - _KEYS
        if unknown:
            problems.append((w, f"unknown keys {sorted(unknown)}; expected {sorted(_KEYS)}"))
        kind = item.get("kind")
        if kind not in FAULT_KINDS:
            problems.append((f"{w}.kind", f"{kind!r} is not one of {list(FAULT_KINDS)}"))
            continue
        nums = {k: item.get(k, 0.0) for k in ("start_s", "duration_s", "offset_s", "max_delay_s")}
        bad = [k for k, v in nums.items() if isinstance(v, bool) or not isinstance(v, int | float)]
        if bad or "start_s" not in item:
            problems.append((w, "start_s (required), duration_s, offset_s and max_delay_s "
                             "must be numbers"))
            continue
        if nums["start_s"] < 0 or nums["duration_s"] < 0:
            problems.append((w, "start_s and duration_s must be >= 0"))
        if kind != "clock_jump" and nums["duration_s"] <= 0:
            problems.append((f"{w}.duration_s", f"a {kind} fault needs a duration > 0"))
        if kind == "clock_jump" and nums["offset_s"] == 0:
            problems.append((f"{w}.offset_s", "a clock jump needs a non-zero offset_s"))
        if kind == "jitter" and nums["max_delay_s"] <= 0:
            problems.append((f"{w}.max_delay_s", "jitter needs max_delay_s > 0"))
        channels = item.get("channels", [])
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            problems.append((f"{w}.channels", "must be a list of channel labels"))
            channels = []
        faults.append(Fault(kind, float(nums["start_s"]), float(nums["duration_s"]),
                            tuple(channels), float(nums["offset_s"]), float(nums["max_delay_s"])))
    if problems:
        raise ConfigError(problems)
    seed = raw.get("seed", 0)
    return FaultSchedule(tuple(sorted(faults, key=lambda f: f.start_s)),
                         seed if isinstance(seed, int) else 0)


def load_faults(path: str | Path) -> FaultSchedule:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError([(str(path), "fault file not found; check the path")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([(str(path), f"not valid TOML: {exc}")]) from exc
    return parse_faults(raw, where=str(path))
