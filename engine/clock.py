"""The engine clock (device clocks are mapped onto it by each driver's timeline).

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
