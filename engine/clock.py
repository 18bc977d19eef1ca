"""The engine clock and the mapping of device clocks onto it.

Every sample carries a timestamp in engine seconds. When a file is replayed the engine clock reads
0 at the recording's first sample; live, it reads 0 when the engine starts and advances with
``time.monotonic``. ``time.time()`` is only used to stamp the absolute start in status events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol


class EngineClock(Protocol):
    def now(self) -> float: ...


@dataclass(slots=True)
class MonotonicClock:
    """Live engine clock: seconds since construction on the monotonic clock."""

    origin: float = field(default_factory=time.monotonic)
    wall_origin: float = field(default_factory=time.time)

    def now(self) -> float:
        return time.monotonic() - self.origin

    def to_engine(self, monotonic_t: float) -> float:
        return monotonic_t - self.origin


@dataclass(slots=True)
class ReplayClockState:
    """Replay engine clock: the data time reached so far (0 at the first sample)."""

    t: float = 0.0

    def now(self) -> float:
        return self.t

    def advance(self, t: float) -> None:
        if t > self.t:
            self.t = t


@dataclass(slots=True)
class ClockMapState:
    """Maps a device clock onto the engine clock as ``engine = device + offset + drift * device``.

    Fitted online by exponentially-weighted least squares over (device, engine) pairs, so slow
    drift is followed and a single late packet moves the map little. A jump larger than
    ``jump_s`` between prediction and observation resets the fit and is reported by ``update``.
    """

    alpha: float = 0.02
    jump_s: float = 2.0
    n: int = 0
    mean_d: float = 0.0
    mean_e: float = 0.0
    var_d: float = 0.0
    cov_de: float = 0.0

    def map(self, device_t: float) -> float:
        if self.n == 0:
            return device_t
        slope = self.cov_de / self.var_d if self.var_d > 1e-9 and self.n > 10 else 1.0
        return self.mean_e + slope * (device_t - self.mean_d)

    def update(self, device_t: float, engine_t: float) -> bool:
        """Add one observation; True if it was a clock jump (and the fit restarted)."""
        if self.n > 0 and abs(self.map(device_t) - engine_t) > self.jump_s:
            self.n = 0
            self.var_d = self.cov_de = 0.0
            jumped = True
        else:
            jumped = False
        if self.n == 0:
            self.mean_d, self.mean_e = device_t, engine_t
        else:
            a = max(self.alpha, 1.0 / (self.n + 1))
            dd, de = device_t - self.mean_d, engine_t - self.mean_e
            self.mean_d += a * dd
            self.mean_e += a * de
            self.var_d = (1 - a) * (self.var_d + a * dd * dd)
            self.cov_de = (1 - a) * (self.cov_de + a * dd * de)
        self.n += 1
        return jumped
