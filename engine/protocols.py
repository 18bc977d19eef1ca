"""Ports of the engine: what a source, a sink, an inference backend and a block processor are.

A new device, output or runtime is one new module implementing one of these protocols.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from sleepstream.engine.types import Alert, BoolArray, ChannelSpec, F32Array, Frame, StageEstimate

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """Something a driver knows about its source that is not samples: a stream lost or back,
    a clock jump, a sequence gap. ``active`` False ends a condition raised earlier."""

    code: str
    channels: tuple[str, ...]
    t: float
    active: bool
    message: str


@runtime_checkable
class Driver(Protocol):
    """A source of frames for one bed.

    Used as ``async with driver: ... async for item in driver.frames(): ...``. ``channels`` is
    known once the context is entered. ``frames`` yields ``Frame`` values (and ``SourceEvent``
    values for conditions of the source itself) until the source ends or the task is cancelled.
    """

    @property
    def channels(self) -> tuple[ChannelSpec, ...]: ...

    async def __aenter__(self) -> Driver: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    def frames(self) -> AsyncIterator[Frame | SourceEvent | ChannelsAnnounced]:
        """Frames and events; a ``ChannelsAnnounced`` when channels become known later (an LSL
        stream that was missing at start-up)."""
        ...


@runtime_checkable
class Sink(Protocol):
    """A consumer of engine events (one JSON-able dict per event)."""

    async def emit(self, event: Event) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ChannelBlock:
    """Samples of one channel over a processed block, after signal quality.

    ``t0`` is the engine time of row 0; row i lies at ``t0 + i / fs``. ``valid`` is the quality
    mask: False for gaps, NaN, flatline, clipping, out-of-range and device-flagged samples.
    """

    name: str
    modality: str | None
    fs: float
    t0: float
    data: F32Array
    valid: BoolArray


@dataclass(frozen=True, slots=True)
class Block:
    """One processed span ``[t_start, t_end)`` of a bed, a whole number of hops long.

    ``native`` holds each channel at its own rate, ``model`` each mapped channel resampled to its
    modality's model rate (the resampler's delay already removed, so rows line up with time).
    ``model`` may end before ``t_end`` by the resampler delay; its blocks say where they start.
    """

    bed: str
    t_start: float
    t_end: float
    native: Mapping[str, ChannelBlock]
    model: Mapping[str, ChannelBlock]
    technical: frozenset[str]  # channels under an active technical alarm at t_end


class BlockProcessor(Protocol):
    """Reads processed blocks of one bed and returns events (alerts, stages). Streaming state
    lives inside the processor; one instance per bed."""

    def process(self, block: Block) -> Sequence[Alert | StageEstimate | Event]: ...

    def finish(self, t_end: float) -> Sequence[Alert | StageEstimate | Event]: ...


@runtime_checkable
class DeferredProcessor(Protocol):
    """A block processor some of whose events come back later, off the bed's task (live staging
    through the shared scheduler). The engine binds ``deliver`` to the bed's queue, so those
    events reach the sinks through the bed's task like every other event."""

    def bind(self, deliver: Callable[[Event], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class ChannelsAnnounced:
    """Queue item: a driver that has connected tells its bed which channels it carries."""

    channels: tuple[ChannelSpec, ...]


@dataclass(frozen=True, slots=True)
class StepBatch:
    """One model step for B beds: ``codes`` (B, M, Q) int64 token codes per modality and level,
    ``presence`` (B, M) bool, ``slots`` (B,) int64 KV-cache slot of each bed."""

    codes: npt.NDArray[np.int64]
    presence: BoolArray
    slots: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class StepOutput:
    """Model outputs: ``embeddings`` (B, D), ``stage_logits`` (B, 5), ``surprise`` (B,)."""

    embeddings: F32Array
    stage_logits: F32Array
    surprise: F32Array


class InferenceBackend(Protocol):
    """Runs the streaming step of the temporal transformer with a per-bed KV cache slot."""

    name: str
    capacity: int  # number of KV slots

    def step(self, batch: StepBatch) -> StepOutput: ...

    def reset(self, slots: npt.NDArray[np.int64]) -> None: ...
