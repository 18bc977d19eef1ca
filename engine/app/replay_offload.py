"""Replay only: a bed's staging runs on a worker thread, one block behind the rest of the bed.

A recorded night is read far faster than real time, so the bed's task is CPU-bound. Staging's
work is mostly onnxruntime calls (tokenizers and the chunked step), which release the GIL, so
it can run beside the bed's quality, resampling and alerts of the next block on a second core.
``OffloadedProcessor`` wraps one block processor: ``process(block k)`` hands block k to the
worker and returns the events of block k-1 (waiting for them if the worker is still busy);
``finish`` returns the last block's events, then the processor's own closing events.

The events are the very events the processor computes in line (the same processor, the same
blocks in the same order, one thread at a time); only where they enter the stream moves: an
epoch's stage event comes out with the next block's events, one block (30 s of the file) later
than in line. Live engines never use it (their staging goes through the shared scheduler).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from sleepstream.engine.inference.staging import StagingProcessor
from sleepstream.engine.pipeline import BedRuntime
from sleepstream.engine.protocols import Block, BlockProcessor, Event
from sleepstream.engine.types import Alert, StageEstimate

Out = Sequence[Alert | StageEstimate | Event]


class OffloadedProcessor:
    """``inner`` run on its own worker thread, one block behind (see module docstring)."""

    def __init__(self, inner: BlockProcessor) -> None:
        self.inner = inner
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="replay-staging")
        self._pending: Future[Out] | None = None

    def bind(self, deliver: Callable[[Event], None]) -> None:
        """Forwarded to a deferred processor (in replay its steps are never deferred)."""
        bind = getattr(self.inner, "bind", None)
        if bind is not None:
            bind(deliver)

    def process(self, block: Block) -> Out:
        ahead = self._pool.submit(self.inner.process, block)
        previous, self._pending = self._pending, ahead
        return [] if previous is None else previous.result()

    def finish(self, t_end: float) -> Out:
        try:
            last = list(self._pending.result()) if self._pending is not None else []
            self._pending = None
            return [*last, *self.inner.finish(t_end)]
        finally:
            self._pool.shutdown(wait=True)


def offload_staging(bed: BedRuntime) -> None:
    """Put the bed's staging processor (if any) on a worker thread for a replay."""
    state = bed.state
    state.processors = tuple(
        OffloadedProcessor(p) if isinstance(p, StagingProcessor) else p
        for p in state.processors
    )


def staging_of(bed: BedRuntime) -> StagingProcessor | None:
    """The bed's staging processor, offloaded or not."""
    for p in bed.state.processors:
        inner = p.inner if isinstance(p, OffloadedProcessor) else p
        if isinstance(inner, StagingProcessor):
            return inner
    return None
