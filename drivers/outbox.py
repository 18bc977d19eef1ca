"""The bounded hand-over between a driver's reader (task or thread) and its ``frames()`` consumer.

Overflow policy: at most ``max_frames`` frames wait; when the consumer falls that far behind, the
*newest* frame is dropped and counted (``dropped_frames``, ``dropped_samples``); the consumer sees
the hole as a jump in ``Frame.seq``. Source events (stream lost/back, gaps) are state changes, rare
by construction, and are kept up to ``max_events``; beyond that they are dropped and counted too.
A reader error is handed over once and re-raised in the consumer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from sleepstream.engine.protocols import ChannelsAnnounced, SourceEvent
from sleepstream.engine.types import Frame

Item = Frame | SourceEvent | ChannelsAnnounced


class Outbox:
    def __init__(self, *, max_frames: int = 1024, max_events: int = 4096) -> None:
        self.max_frames = max_frames
        self.max_events = max_events
        self._items: deque[Item] = deque()
        self._n_frames = 0
        self._n_events = 0
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._closed = False
        self.dropped_frames = 0
        self.dropped_samples = 0
        self.dropped_events = 0

    def put(self, item: Item) -> None:
        """Hand one item over (never blocks; call on the event loop thread)."""
        if isinstance(item, Frame):
            if self._n_frames >= self.max_frames:
                self.dropped_frames += 1
                self.dropped_samples += len(item)
                return
            self._n_frames += 1
        else:
            if self._n_events >= self.max_events:
                self.dropped_events += 1
                return
            self._n_events += 1
        self._items.append(item)
        self._ready.set()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._items)

    async def items(self) -> AsyncIterator[Item]:
        while True:
            while self._items:
                item = self._items.popleft()
                if isinstance(item, Frame):
                    self._n_frames -= 1
                else:
                    self._n_events -= 1
                yield item
            if self._error is not None:
                raise self._error
            if self._closed:
                return
            self._ready.clear()
            await self._ready.wait()
