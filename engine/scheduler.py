"""Many beds, one model: the due steps of every bed go to the backend in one call per tick.

Each bed that joins gets a KV-cache slot of the shared ``InferenceBackend`` (the lowest free one,
so busy slots stay packed and the backend can hand the cache over as a view), reset before its
first step; it gives the slot back when it leaves. ``await scheduler.step(bed, codes, presence)``
queues one step and returns its result.

A tick opens with the first queued step and runs when every bed that is expected has queued one,
or ``max_wait_s`` after the tick opened, whichever comes first. A bed that misses a tick is
marked *late* and is not waited for again until it queues a step, so a bed that stalls or drops
out delays the others by at most ``max_wait_s``, once. One step per bed enters a batch (a bed's
next step waits for the next tick, keeping its steps in order); batches are capped at
``max_batch`` beds.

Model calls and slot resets run on one dedicated inference thread, never on the event loop, in
the order the ticks were formed.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from engine.errors import ModelError
from engine.protocols import InferenceBackend, StepBatch, StepOutput
from engine.types import BoolArray, F32Array

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StepResult:
    """One bed's step: ``embedding`` (D,), ``stage_logits`` (S,), ``surprise`` (nats)."""

    embedding: F32Array
    stage_logits: F32Array
    surprise: float


@dataclass(slots=True)
class _Request:
    codes: np.ndarray  # (M, Q) int64
    presence: BoolArray  # (M,)
    queued: float  # loop time
    future: asyncio.Future[StepResult]


@dataclass(slots=True)
class BedSlotState:
    """A joined bed: its KV slot, queued steps, whether it missed a tick, its last step time."""

    slot: int
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
    waited_out: int = 0  # ticks that ran on the bounded wait (some expected bed was missing)


class StepScheduler:
    """See the module docstring. Use as ``async with StepScheduler(backend) as s: ...``."""

    def __init__(
        self,
        backend: InferenceBackend,
        *,
        max_wait_s: float = 0.05,
        max_batch: int = 4096,
        reset_gap_s: float = 120.0,
    ) -> None:
        self.backend = backend
        self.max_wait_s = max_wait_s
        self.max_batch = max_batch
        self.reset_gap_s = reset_gap_s
        self.stats = SchedulerStats()
        self._beds: dict[str, BedSlotState] = {}
        self._free = list(range(backend.capacity))  # a heap: lowest slot first
        self._resets: list[int] = []  # slots to reset before the next call
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

    def join(self, bed: str) -> int:
        """Give ``bed`` a fresh (reset) KV slot; return it. A bed already joined keeps its own."""
        if bed in self._beds:
            return self._beds[bed].slot
        if not self._free:
            raise ModelError(
                f"all {self.backend.capacity} KV slots are in use; raise the backend capacity"
            )
        slot = heapq.heappop(self._free)
        self._resets.append(slot)
        self._beds[bed] = BedSlotState(slot)
        return slot

    def leave(self, bed: str) -> None:
        """Drop ``bed``: its queued steps are cancelled and its slot is freed."""
        st = self._beds.pop(bed, None)
        if st is None:
            return
        for req in st.queue:
            req.future.cancel()
        heapq.heappush(self._free, st.slot)
        self._wake.set()  # a tick may have been waiting for this bed

    def reset(self, bed: str) -> None:
        """Restart ``bed``'s stream state (a long break, time going back) before its next step."""
        self._resets.append(self._beds[bed].slot)

    async def step(
        self, bed: str, codes: np.ndarray, presence: BoolArray, t: float | None = None
    ) -> StepResult:
        """Queue one step of ``bed`` (joining it if needed) and wait for its result. ``t`` (engine
        seconds) resets the bed's state first when it lies more than ``reset_gap_s`` after or
        before its previous step."""
        if bed not in self._beds:
            self.join(bed)
        st = self._beds[bed]
        if t is not None:
            if st.last_t is not None and not 0 <= t - st.last_t <= self.reset_gap_s:
                self._resets.append(st.slot)
            st.last_t = t
        loop = asyncio.get_running_loop()
        req = _Request(codes, presence, loop.time(), loop.create_future())
        st.queue.append(req)
        st.late = False
        self._wake.set()
        return await req.future

    def _waiting_for_someone(self) -> bool:
        return any(not st.queue and not st.late for st in self._beds.values())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            heads = [st.queue[0].queued for st in self._beds.values() if st.queue]
            if not heads:
                continue
            deadline = min(heads) + self.max_wait_s
            while self._waiting_for_someone() and (left := deadline - loop.time()) > 0:
                try:
                    async with asyncio.timeout(left):
                        await self._wake.wait()
                except TimeoutError:
                    break
                self._wake.clear()
            await self._tick()

    async def _tick(self) -> None:
        due: list[tuple[int, _Request]] = []
        missed = False
        for st in self._beds.values():
            if st.queue:
                due.append((st.slot, st.queue.popleft()))
            elif not st.late:
                st.late, missed = True, True
        if any(st.queue for st in self._beds.values()):
            self._wake.set()  # beds with further queued steps go into the next tick
        due.sort(key=lambda x: x[0])
        self.stats.ticks += 1
        self.stats.waited_out += missed
        for i in range(0, len(due), self.max_batch):
            await self._call(due[i : i + self.max_batch])

    async def _call(self, due: list[tuple[int, _Request]]) -> None:
        resets = np.array(sorted(set(self._resets)), np.int64)
        self._resets.clear()
        batch = StepBatch(
            np.stack([r.codes for _, r in due]).astype(np.int64, copy=False),
            np.stack([r.presence for _, r in due]).astype(bool, copy=False),
            np.array([s for s, _ in due], np.int64),
        )
        loop = asyncio.get_running_loop()
        assert self._executor is not None, "use the scheduler inside `async with`"
        try:
            out, took = await loop.run_in_executor(self._executor, self._infer, resets, batch)
        except Exception as exc:  # one failed call fails its steps, never the scheduler
            log.exception("backend call failed for %d beds", len(due))
            for _, r in due:
                if not r.future.done():
                    r.future.set_exception(ModelError(f"inference failed: {exc}"))
            return
        self.stats.calls += 1
        self.stats.steps += len(due)
        self.stats.batch_max = max(self.stats.batch_max, len(due))
        self.stats.backend_s += took
        for j, (_, r) in enumerate(due):
            if not r.future.done():
                res = StepResult(out.embeddings[j], out.stage_logits[j], float(out.surprise[j]))
                r.future.set_result(res)

    def _infer(self, resets: np.ndarray, batch: StepBatch) -> tuple[StepOutput, float]:
        t0 = time.perf_counter()
        if len(resets):
            self.backend.reset(resets)
        out = self.backend.step(batch)
        return out, time.perf_counter() - t0
