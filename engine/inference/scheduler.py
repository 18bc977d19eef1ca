"""Many beds, one model: the due steps of every bed go to the backend in one call per tick.

Ticks lie on a fixed grid of ``max_wait_s`` (the bounded wait): a step queued at loop time ``t``
runs in the tick at the next grid point after ``t``, or earlier when every expected bed has
queued one (then at once, taking the steps queued within one grid width of the first). A tick
takes only steps queued before its grid point, so a tick that runs late (the inference thread
was busy) does not swallow the next tick's beds. A bed that misses a tick is marked *late* and
is not waited for again until it queues a step, so a bed that stalls or drops out never delays
the others beyond the grid. One step per bed enters a batch (a bed's next step waits for the
next tick, keeping its steps in order); batches are capped at ``max_batch`` beds.

KV slots are laid out by *phase bucket*: beds step once per ``period_s`` (one token per second),
so a bed whose first step falls in grid cell ``g`` will keep landing in cells ``g mod K``
(``K = period_s / max_wait_s``). The backend's slots are cut into K regions and a bed gets the
lowest free slot of its bucket's region (another region's when that one is full), so the beds of
one tick occupy a contiguous slot run and the backend hands the cache over as a view. The slot
is given on the bed's first step and reset before it; ``leave`` gives it back. A bed whose steps
drift into another bucket's ticks would break the run (and make the backend copy every bed's
cache): with ``layout="compact"`` (default, where the backend can ``swap_slots``) the strays are
swapped into the run before the call (``slot_layout.plan_swaps``); ``layout="masked"`` steps the
whole span between the lowest and the highest slot with the others masked (``step_span``);
``layout="copy"`` leaves the gather to the backend.

``submit`` queues a step without waiting and calls ``done(result)`` on the event loop when it is
back (``done(error)`` when the call failed or the bed left); ``await step(...)`` is the same with
a future. Model calls and slot resets run on one dedicated inference thread, never on the event
loop, in the order the ticks were formed.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from sleepstream.engine.errors import ModelError
from sleepstream.engine.inference.slot_layout import LAYOUTS, is_run, plan_swaps
from sleepstream.engine.protocols import InferenceBackend, StepBatch, StepOutput
from sleepstream.engine.types import BoolArray, F32Array

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepResult:
    """One bed's step: ``embedding`` (D,), ``stage_logits`` (S,), ``surprise`` (nats)."""

    embedding: F32Array
    stage_logits: F32Array
    surprise: float


Done = Callable[[StepResult | BaseException], None]
"""Gets a step's result, or the error that ended it: ``ModelError`` when the backend call failed,
``asyncio.CancelledError`` when the bed left first."""


@dataclass(slots=True)
class _Request:
    codes: np.ndarray  # (M, Q) int64
    presence: BoolArray  # (M,)
    queued: float  # loop time
    done: Done


@dataclass(slots=True)
class BedSlotState:
    """A joined bed: its KV slot (None until its first step), queued steps, whether it missed a
    tick, its last step time."""

    slot: int | None = None
    queue: deque[_Request] = field(default_factory=deque)
    late: bool = False
    last_t: float | None = None


@dataclass(slots=True)
class SchedulerStats:
    ticks: int = 0
    calls: int = 0
    steps: int = 0
    batch_max: int = 0
    backend_s: float = 0.0  # time inside backend calls (inference thread)
    waited_out: int = 0  # ticks that ran on the grid while some expected bed was missing
    all_in: int = 0  # ticks that ran at once because every expected bed's step was in
    contiguous_calls: int = 0  # calls whose slots were one contiguous run (no cache copy)
    failed: int = 0  # steps whose backend call failed
    swaps: int = 0  # slot swaps made to keep calls contiguous (layout "compact")
    masked_rows: int = 0  # rows stepped and dropped (layout "masked")


class StepScheduler:
    """See the module docstring. Use as ``async with StepScheduler(backend) as s: ...``."""

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        max_wait_s: float = 0.1,
        max_batch: int = 4096,
        reset_gap_s: float = 120.0,
        period_s: float = 1.0,
        layout: str = "compact",
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
        need = {"compact": "swap_slots", "masked": "step_span"}.get(layout)
        self.layout = layout if need is None or hasattr(backend, need) else "copy"
        self.backend = backend
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self.reset_gap_s = reset_gap_s
        self.stats = SchedulerStats()
        self._beds: dict[str, BedSlotState] = {}
        self._queued: dict[str, BedSlotState] = {}  # beds with a queued step, in queue order
        self._late = 0  # beds marked late
        self.buckets = max(1, min(backend.capacity, round(period_s / max_wait_s)))
        self._region = math.ceil(backend.capacity / self.buckets)  # slots per phase bucket
        self._free = [
            list(range(r * self._region, min(backend.capacity, (r + 1) * self._region)))
            for r in range(self.buckets)
        ]  # one heap per region: lowest slot first
        self._resets: list[int] = []  # slots to reset before the next call
        self._owner: dict[int, str] = {}  # slot -> bed holding it
        self._wake = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> StepScheduler:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inference")
        self._task = asyncio.create_task(self._run(), name="step-scheduler")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for bed in list(self._beds):
            self.leave(bed)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    @property
    def beds(self) -> int:
        return len(self._beds)

    def join(self, bed: str) -> None:
        """Admit ``bed``; its KV slot is chosen (and reset) on its first step."""
        if bed in self._beds:
            return
        if len(self._beds) >= self.backend.capacity:
            raise ModelError(
                f"all {self.backend.capacity} KV slots are in use; raise the backend capacity"
            )
        self._beds[bed] = BedSlotState()

    def slot_of(self, bed: str) -> int | None:
        return self._beds[bed].slot

    def leave(self, bed: str) -> None:
        """Drop ``bed``: its queued steps end with ``CancelledError`` and its slot is freed."""
        st = self._beds.pop(bed, None)
        if st is None:
            return
        self._queued.pop(bed, None)
        self._late -= st.late
        for req in st.queue:
            req.done(asyncio.CancelledError())
        st.queue.clear()
        if st.slot is not None:
            heapq.heappush(self._free[st.slot // self._region], st.slot)
            del self._owner[st.slot]
        self._wake.set()  # a tick may have been waiting for this bed

    def reset(self, bed: str) -> None:
        """Restart ``bed``'s stream state (a long break, time going back) before its next step."""
        st = self._beds.get(bed)
        if st is not None and st.slot is not None:  # otherwise its first step starts fresh
            self._resets.append(st.slot)

    def _take_slot(self, now: float) -> int:
        r = int(now // self.max_wait_s) % self.buckets
        for k in range(self.buckets):  # the bucket's region, else the next one with room
            free = self._free[(r + k) % self.buckets]
            if free:
                slot = heapq.heappop(free)
                self._resets.append(slot)
                return slot
        raise ModelError(f"all {self.backend.capacity} KV slots are in use")  # join prevents it

    def submit(
        self, bed: str, codes: np.ndarray, presence: BoolArray, done: Done,
        t: float | None = None,
    ) -> None:
        """Queue one step of ``bed`` (joining it if needed) without waiting; ``done`` gets its
        result on the event loop. ``t`` (engine seconds) resets the bed's state first when it
        lies more than ``reset_gap_s`` after or before its previous step."""
        st = self._beds.get(bed)
        if st is None:
            self.join(bed)
            st = self._beds[bed]
        now = asyncio.get_running_loop().time()
        if st.slot is None:
            st.slot = self._take_slot(now)
            self._owner[st.slot] = bed
        if t is not None:
            if st.last_t is not None and not 0 <= t - st.last_t <= self.reset_gap_s:
                self._resets.append(st.slot)
            st.last_t = t
        st.queue.append(_Request(codes, presence, now, done))
        if st.late:
            st.late, self._late = False, self._late - 1
        first = bed not in self._queued
        if first:
            self._queued[bed] = st
        if first and (len(self._queued) == 1 or self._all_in()):
            self._wake.set()

    async def step(
        self, bed: str, codes: np.ndarray, presence: BoolArray, t: float | None = None
    ) -> StepResult:
        """``submit`` and wait for the result (cancelled when the bed leaves first)."""
        fut: asyncio.Future[StepResult] = asyncio.get_running_loop().create_future()

        def done(res: StepResult | BaseException) -> None:
            if fut.done():
                return
            if isinstance(res, asyncio.CancelledError):
                fut.cancel()
            elif isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)

        self.submit(bed, codes, presence, done, t)
        return await fut

    def _all_in(self) -> bool:
        """Every bed that is expected (not late) has a step queued."""
        return len(self._queued) >= len(self._beds) - self._late

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queued:
                continue
            first = min(st.queue[0].queued for st in self._queued.values())
            boundary = (math.floor(first / self.max_wait_s) + 1) * self.max_wait_s
            all_in = self._all_in()
            while not all_in and (left := boundary - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        await self._wake.wait()
                except TimeoutError:
                    break
                self._wake.clear()
                all_in = self._all_in()
            # all in: run now, with every step queued within one grid width of the first
            self.stats.all_in += all_in
            await self._tick(first + self.max_wait_s if all_in else boundary)

    async def _tick(self, boundary: float) -> None:
        due: list[tuple[int, str, _Request]] = []
        stepped: set[str] = set()
        for bed, st in list(self._queued.items()):
            if st.queue[0].queued >= boundary:
                continue  # queued after this tick's grid point: the next tick takes it
            assert st.slot is not None
            due.append((st.slot, bed, st.queue.popleft()))
            stepped.add(bed)
            if not st.queue:
                del self._queued[bed]
        missed = False
        for bed, st in self._beds.items():
            if not st.queue and not st.late and bed not in stepped:
                st.late, missed = True, True
                self._late += 1
        if self._queued:
            self._wake.set()  # steps left over go into the next tick
        due.sort(key=lambda x: x[0])
        self.stats.ticks += 1
        self.stats.waited_out += missed
        for i in range(0, len(due), self.max_batch):
            await self._call(due[i : i + self.max_batch])

    def _slot(self, bed: str) -> int:
        slot = self._beds[bed].slot
        assert slot is not None, "a bed with a queued step holds a slot"
        return slot

    def _compact(self, due: list[tuple[int, str, _Request]]) -> tuple[np.ndarray, np.ndarray]:
        """Swap the strays of ``due`` (sorted by slot) into one run; the slot map follows now,
        the caches when the inference thread runs the swaps (after this call's resets, which
        name the slots as they were when queued). Returns the swapped pairs."""
        slots = np.fromiter((s for s, _, _ in due), np.int64, len(due))
        outside, holes = plan_swaps(slots, self.backend.capacity)
        for a, b in zip(outside.tolist(), holes.tolist(), strict=True):
            bed_a, bed_b = self._owner.pop(a), self._owner.pop(b, None)
            self._beds[bed_a].slot, self._owner[b] = b, bed_a
            if bed_b is not None:
                self._beds[bed_b].slot, self._owner[a] = a, bed_b
            else:  # a free slot: ``a`` becomes free in its place
                free = self._free[b // self._region]
                free.remove(b)
                heapq.heapify(free)
                heapq.heappush(self._free[a // self._region], a)
        moved = dict(zip(outside.tolist(), holes.tolist(), strict=True))
        due[:] = sorted(((moved.get(s, s), bed, r) for s, bed, r in due), key=lambda x: x[0])
        self.stats.swaps += len(outside)
        return outside, holes

    async def _call(self, due: list[tuple[int, str, _Request]]) -> None:
        left = [r for _, bed, r in due if bed not in self._beds]  # left during an earlier call
        for r in left:
            r.done(asyncio.CancelledError())
        # slots as they are now (an earlier call of this tick may have swapped some)
        due = sorted(((self._slot(bed), bed, r) for _, bed, r in due if bed in self._beds),
                     key=lambda x: x[0])
        if not due:
            return
        resets = np.array(sorted(set(self._resets)), np.int64)
        self._resets.clear()
        swaps = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        if self.layout == "compact":
            swaps = self._compact(due)
        batch = StepBatch(
            np.stack([r.codes for _, _, r in due]).astype(np.int64, copy=False),
            np.stack([r.presence for _, _, r in due]).astype(bool, copy=False),
            np.fromiter((s for s, _, _ in due), np.int64, len(due)),
        )
        loop = asyncio.get_running_loop()
        assert self._executor is not None, "use the scheduler inside `async with`"
        try:
            out, took = await loop.run_in_executor(
                self._executor, self._infer, resets, swaps, batch)
        except Exception as exc:  # one failed call fails its steps, never the scheduler
            log.exception("backend call failed for %d beds", len(due))
            self.stats.failed += len(due)
            err = ModelError(f"inference failed: {exc}")
            for _, _, r in due:
                r.done(err)
            return
        self.stats.calls += 1
        self.stats.steps += len(due)
        self.stats.batch_max = max(self.stats.batch_max, len(due))
        self.stats.backend_s += took
        contiguous = is_run(batch.slots)
        self.stats.contiguous_calls += contiguous
        if self.layout == "masked" and not contiguous:
            self.stats.masked_rows += int(batch.slots[-1] - batch.slots[0] + 1) - len(due)
        surprise = out.surprise.tolist()
        for j, (_, _, r) in enumerate(due):
            r.done(StepResult(out.embeddings[j], out.stage_logits[j], surprise[j]))

    def _infer(
        self, resets: np.ndarray, swaps: tuple[np.ndarray, np.ndarray], batch: StepBatch
    ) -> tuple[StepOutput, float]:
        t0 = time.perf_counter()
        if len(resets):
            self.backend.reset(resets)
        if len(swaps[0]):
            self.backend.swap_slots(*swaps)  # type: ignore[attr-defined]  # layout checked it
        if self.layout == "masked" and not is_run(batch.slots):
            out = self.backend.step_span(batch)  # type: ignore[attr-defined]
        else:
            out = self.backend.step(batch)
        return out, time.perf_counter() - t0
