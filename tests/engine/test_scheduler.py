"""The step scheduler: one backend call per tick for every due bed, per-bed KV semantics equal to
stepping each bed alone, beds joining and leaving, and a stalled bed costing the others at most
the bounded wait."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import numpy.typing as npt

from sleepstream.engine.inference.scheduler import StepScheduler
from sleepstream.engine.protocols import StepBatch, StepOutput

M, Q = 2, 3


class RecurrentBackend:
    """A backend with per-slot state like a KV cache: each slot accumulates a running sum and a
    step count; outputs depend on the whole history of the slot. Records every call."""

    name = "fake"

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.acc = np.zeros(capacity)
        self.pos = np.zeros(capacity, np.int64)
        self.calls: list[npt.NDArray[np.int64]] = []
        self.threads: set[int] = set()

    def step(self, batch: StepBatch) -> StepOutput:
        s = batch.slots
        assert len(set(s.tolist())) == len(s), "a slot twice in one batch"
        self.calls.append(s.copy())
        self.threads.add(threading.get_ident())
        x = (batch.codes.reshape(len(s), -1) * batch.presence.repeat(Q, 1)).sum(1)
        self.acc[s] = 0.5 * self.acc[s] + x + self.pos[s]
        self.pos[s] += 1
        emb = np.stack([self.acc[s], self.pos[s]], 1).astype(np.float32)
        return StepOutput(emb, emb[:, :1] * 2, self.acc[s].astype(np.float32))

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        self.acc[slots] = 0
        self.pos[slots] = 0


def inputs(bed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 * bed + k)
    return rng.integers(0, 9, (M, Q)), rng.random(M) > 0.3


def alone(bed: int, steps: range) -> list[float]:
    """The bed stepped on its own backend from a fresh state."""
    be = RecurrentBackend(1)
    out = []
    for k in steps:
        c, p = inputs(bed, k)
        out.append(float(be.step(StepBatch(c[None], p[None], np.zeros(1, np.int64))).surprise[0]))
    return out


async def test_one_call_per_tick_and_results_equal_sequential() -> None:
    n, steps = 40, 6
    be = RecurrentBackend(64)
    got: dict[int, list[float]] = {b: [] for b in range(n)}
    async with StepScheduler(be, max_wait_s=0.5) as sched:
        for b in range(n):
            sched.join(f"bed{b}")

        async def bed(b: int) -> None:
            for k in range(steps):
                c, p = inputs(b, k)
                got[b].append((await sched.step(f"bed{b}", c, p)).surprise)

        async with asyncio.TaskGroup() as tg:
            for b in range(n):
                tg.create_task(bed(b))
    assert len(be.calls) == steps  # every tick: one call holding all 40 beds
    assert all(len(c) == n for c in be.calls)
    assert sched.stats.waited_out == 0
    for b in range(n):
        assert got[b] == alone(b, range(steps))
    assert len(be.threads) == 1 and threading.get_ident() not in be.threads


async def test_join_leave_rejoin_keeps_kv_semantics() -> None:
    """Beds join and leave at random ticks; a freed slot is reused; a bed that comes back starts
    a fresh stream. Every bed's outputs equal stepping it alone from its (re)join."""
    rng = np.random.default_rng(7)
    be = RecurrentBackend(8)  # fewer slots than beds over the run: slots must be recycled
    got: dict[tuple[int, int], list[float]] = {}
    async with StepScheduler(be, max_wait_s=0.02) as sched:

        async def session(b: int, life: int, delay: float) -> None:
            await asyncio.sleep(delay)
            name = f"bed{b}"
            out = got.setdefault((b, life), [])
            sched.join(name)
            for k in range(int(rng.integers(2, 6))):
                c, p = inputs(b, k)
                out.append((await sched.step(name, c, p)).surprise)
                await asyncio.sleep(float(rng.uniform(0, 0.01)))
            sched.leave(name)

        async with asyncio.TaskGroup() as tg:
            for b in range(6):
                for life in range(2):
                    tg.create_task(session(b, life, life * 0.25 + float(rng.uniform(0, 0.1))))
    for (b, _), out in got.items():
        assert out == alone(b, range(len(out)))
    assert max(len(c) for c in be.calls) > 1  # steps of different beds did share calls


async def test_stalled_bed_does_not_delay_the_others() -> None:
    be = RecurrentBackend(16)
    # a wide grid (1 s): only the stalled bed is ever waited for, however loaded the machine
    async with StepScheduler(be, max_wait_s=1.0) as sched:
        for b in range(10):
            sched.join(f"bed{b}")
        sched.join("stalled")  # joins, then never sends a step

        async def bed(b: int) -> None:
            for k in range(8):
                c, p = inputs(b, k)
                await sched.step(f"bed{b}", c, p)

        async with asyncio.TaskGroup() as tg:
            for b in range(10):
                tg.create_task(bed(b))
    # the first tick waits out its grid for the stalled bed, which is then late: every later
    # tick runs as soon as the ten live beds are in, and none waits for it again
    assert sched.stats.waited_out == 1
    assert sched.stats.all_in == sched.stats.ticks - 1
    assert sched.stats.steps == 80


async def test_leaving_mid_tick_and_reset_on_gap() -> None:
    be = RecurrentBackend(4)
    async with StepScheduler(be, max_wait_s=0.05, reset_gap_s=10) as sched:
        c, p = inputs(0, 0)
        a = await sched.step("a", c, p, t=0.0)
        await sched.step("a", c, p, t=1.0)
        again = await sched.step("a", c, p, t=100.0)  # a long break: a fresh stream
        assert again.surprise == a.surprise
        sched.join("gone")
        pending = asyncio.create_task(sched.step("gone", c, p))
        await asyncio.sleep(0)
        sched.leave("gone")
        await asyncio.gather(pending, return_exceptions=True)
        assert pending.cancelled()
        assert sched.beds == 1


async def test_phase_buckets_give_contiguous_slots_on_the_grid() -> None:
    """Beds spread over the step period: each grid tick holds the beds of one phase bucket, and
    their slots are one contiguous run (the backend gets views, no copies); results still equal
    stepping each bed alone."""
    period, tick, n, steps = 0.2, 0.05, 24, 5
    be = RecurrentBackend(32)
    got: dict[int, list[float]] = {b: [] for b in range(n)}
    async with StepScheduler(be, max_wait_s=tick, period_s=period) as sched:
        loop = asyncio.get_running_loop()
        t0 = (loop.time() // period + 2) * period

        async def bed(b: int) -> None:
            for k in range(steps):  # phases at the middle of the bed's bucket (b % 4)
                await asyncio.sleep(t0 + (b % 4 + 0.5) * tick + k * period - loop.time())
                c, p = inputs(b, k)
                got[b].append((await sched.step(f"bed{b}", c, p)).surprise)

        async with asyncio.TaskGroup() as tg:
            for b in range(n):
                tg.create_task(bed(b))
    assert sched.buckets == 4
    assert all(len(c) == n // 4 for c in be.calls) and len(be.calls) == 4 * steps
    assert all(c[-1] - c[0] == len(c) - 1 for c in be.calls)  # one contiguous run each
    assert sched.stats.contiguous_calls == sched.stats.calls
    for b in range(n):
        assert got[b] == alone(b, range(steps))
