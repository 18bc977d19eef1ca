"""A block processor that keeps every block the bed hands it (for tests of what reaches the
detectors)."""

from __future__ import annotations

from collections.abc import Sequence

from sleepstream.engine.protocols import Block


class Recorder:
    def __init__(self) -> None:
        self.blocks: list[Block] = []

    def process(self, block: Block) -> Sequence[object]:
        self.blocks.append(block)
        return []

    def finish(self, t_end: float) -> Sequence[object]:
        return []
