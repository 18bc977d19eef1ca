"""Repeated source faults as one condition, so one fault is one technical alarm.

A flood of packets that loses half of them in a queue makes thousands of small gaps; a second
publisher on a channel makes a conflict per packet. Announced one by one, each would be its own
alarm. ``HeldFaultsState`` keeps one condition per (code, channels): the first occurrence is its
onset; later ones extend it; it ends once ``hold_s`` passed after the last occurrence, in wall
time (monotonic seconds) or in the channels' data time (what a replay faster than real time
reaches first), at that occurrence's end on the sample timeline, with the count in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[[tuple[str, ...]], float | None]  # data time the channels have reached

Emit = Callable[[str, tuple[str, ...], float, bool, str], None]  # code, channels, t, active, msg


@dataclass(slots=True)
class HeldFault:
    onset_t: float  # sample time of the first occurrence
    end_t: float  # sample time where the last occurrence ended
    last_seen: float  # monotonic seconds of the last occurrence
    count: int = 1
    amount: int = 0  # what the occurrences sum to (samples lost, packets), for the message
    message: str = ""


@dataclass(slots=True)
class HeldFaultsState:
    emit: Emit
    hold_s: float = 5.0
    active: dict[tuple[str, tuple[str, ...]], HeldFault] = field(default_factory=dict)
    occurrences: int = 0  # every occurrence, announced or folded into an active condition

    def hit(self, code: str, channels: tuple[str, ...], t: float, end_t: float, now: float,
            message: str, amount: int = 0) -> None:
        """One occurrence on ``channels`` spanning ``[t, end_t]`` of the sample timeline."""
        self.occurrences += 1
        key = (code, channels)
        held = self.active.get(key)
        if held is None:
            self.active[key] = HeldFault(t, end_t, now, 1, amount, message)
            self.emit(code, channels, t, True, message)
            return
        held.end_t = max(held.end_t, end_t)
        held.last_seen = now
        held.count += 1
        held.amount += amount

    def expire(self, now: float, *, force: bool = False, progress: Progress | None = None
               ) -> None:
        """End the conditions quiet for ``hold_s`` of wall time or of the data time that
        ``progress`` says their channels reached (every one with ``force``)."""
        for key, held in list(self.active.items()):
            reached = progress(key[1]) if progress is not None else None
            if (force or now - held.last_seen >= self.hold_s
                    or (reached is not None and reached - held.end_t >= self.hold_s)):
                del self.active[key]
                more = f"; {held.count} occurrences" if held.count > 1 else ""
                amount = f", {held.amount} in all" if held.amount and held.count > 1 else ""
                self.emit(key[0], key[1], held.end_t, False, f"{held.message}{more}{amount}")
