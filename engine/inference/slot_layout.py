"""Keeping a tick's beds on one contiguous run of KV slots (slot compaction).

A backend hands its cache to the step graph as a view when a call's slots are one contiguous
run, and copies every bed's cache otherwise. The scheduler lays slots out by phase bucket, but
a bed whose steps drift across a tick boundary (a late device, a busy event loop) lands in a
tick of another bucket. ``plan_swaps`` picks the run of ``n`` slots that already holds the most
of a tick's ``n`` slots and pairs each slot outside it with a slot inside it that the tick does
not use; swapping their contents (``OnnxRingBackend.swap_slots``: one bed's cache moved each
way) makes the call contiguous at the cost of the strays alone.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]

LAYOUTS = ("compact", "masked", "copy")
"""How a non-contiguous call is served: ``compact`` swaps the strays into one run before the
call; ``masked`` steps the whole span between the lowest and highest slot with the slots not due
masked out (outputs dropped, cache untouched); ``copy`` gathers the due slots' caches (a copy of
every bed's cache per call)."""


def is_run(slots: I64) -> bool:
    """``slots`` (ascending) is one contiguous run."""
    return bool(len(slots) == 0 or slots[-1] - slots[0] == len(slots) - 1)


def best_run(slots: I64, capacity: int) -> int:
    """Start of the run of ``len(slots)`` slots within ``[0, capacity)`` that holds the most of
    ``slots`` (ascending, distinct)."""
    n = len(slots)
    inside = np.searchsorted(slots, slots + n) - np.arange(n)  # (n,) slots in [s, s + n)
    lo = int(slots[int(np.argmax(inside))])
    return min(lo, capacity - n)


def plan_swaps(slots: I64, capacity: int) -> tuple[I64, I64]:
    """Pairs (outside, inside) to swap so that ``slots`` (ascending, distinct) become one run:
    every slot outside the chosen run with a slot inside it that is not in ``slots``."""
    n = len(slots)
    if is_run(slots):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    lo = best_run(slots, capacity)
    inside = (slots >= lo) & (slots < lo + n)
    run = np.arange(lo, lo + n, dtype=np.int64)
    holes = run[~np.isin(run, slots[inside])]  # run slots this call does not use
    outside = slots[~inside]
    assert len(holes) == len(outside)
    return outside, holes
