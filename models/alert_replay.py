"""Cut a recording into the engine's ``Block``s, for evaluations and tests of the alert engine.

This stands in for the pipeline's quality stage only as far as the alert engine needs: samples
outside each modality's plausible range (SpO2 0 = probe off, HR 0 = no beat) are invalid, and a
channel invalid for its whole block is listed in ``technical``. The engine's own quality module
(gap, flatline, clipping, NaN, range with condition delays) replaces this in the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sleepstream.engine.protocols import Block, ChannelBlock
from sleepstream.engine.types import BoolArray, F32Array

RANGES: dict[str, tuple[float, float]] = {"spo2": (50.0, 100.5), "hr": (25.0, 220.0)}


@dataclass(frozen=True, slots=True)
class Track:
    """One channel of a recording on a regular grid from engine time 0."""

    name: str
    modality: str | None
    fs: float
    data: F32Array
    valid: BoolArray


def range_valid(modality: str | None, data: F32Array, valid: BoolArray) -> BoolArray:
    ok = valid & np.isfinite(data)
    lim = RANGES.get(str(modality))
    if lim is not None:
        ok &= (data >= lim[0]) & (data <= lim[1])
    return np.asarray(ok)


def blocks(
    bed: str,
    tracks: Sequence[Track],
    *,
    hop_s: int = 1,
    t_end: float | None = None,
    technical: Mapping[str, Sequence[tuple[float, float]]] | None = None,
) -> Iterator[Block]:
    """Blocks of ``hop_s`` seconds. ``technical`` optionally names, per channel, spans during
    which a technical alarm is active (as the quality stage would report)."""
    dur = t_end if t_end is not None else min(len(tr.data) / tr.fs for tr in tracks)
    n_blocks = int(dur // hop_s)
    ok = {tr.name: range_valid(tr.modality, tr.data, tr.valid) for tr in tracks}
    for k in range(n_blocks):
        t0, t1 = float(k * hop_s), float((k + 1) * hop_s)
        native: dict[str, ChannelBlock] = {}
        tech: set[str] = set()
        for tr in tracks:
            a, b = round(t0 * tr.fs), round(t1 * tr.fs)
            v = ok[tr.name][a:b]
            native[tr.name] = ChannelBlock(tr.name, tr.modality, tr.fs, t0, tr.data[a:b], v)
            spans = (technical or {}).get(tr.name, ())
            if (v.size and not v.any()) or any(s <= t1 and t1 < e for s, e in spans):
                tech.add(tr.name)
        yield Block(bed=bed, t_start=t0, t_end=t1, native=native, model={},
                    technical=frozenset(tech))
