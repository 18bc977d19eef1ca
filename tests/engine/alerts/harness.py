"""Run tracks through the engine's quality stage and an AlertEngine, one 1-s block at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sleepstream.drivers.edf import VALID_RANGES
from sleepstream.engine import quality
from sleepstream.engine.alerts.engine import AlertEngine
from sleepstream.engine.protocols import Block, ChannelBlock
from sleepstream.engine.types import Alert, AlertKind, AlertState, ChannelSpec
from sleepstream.models.alert_replay import Track


@dataclass
class Run:
    technical: list[Alert] = field(default_factory=list)
    physiological: list[Alert] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)


def run(tracks: Sequence[Track], seconds: int, bed: str = "b1") -> Run:
    q = {}
    for tr in tracks:
        lo, hi = VALID_RANGES.get(str(tr.modality), (None, None))
        q[tr.name] = quality.new_state(ChannelSpec(tr.name, tr.fs, tr.modality, valid_min=lo,
                                                   valid_max=hi))  # type: ignore[arg-type]
    engine = AlertEngine(bed)
    active: set[str] = set()
    out = Run()
    for k in range(seconds):
        t0, t1 = float(k), float(k + 1)
        native = {}
        for tr in tracks:
            a, b = round(t0 * tr.fs), round(t1 * tr.fs)
            res = quality.step(q[tr.name], bed, t0, tr.data[a:b], tr.valid[a:b])
            for al in res.alerts:
                out.technical.append(al)
                if al.state == AlertState.ENDED:
                    active.discard(tr.name)
                else:
                    active.add(tr.name)
            native[tr.name] = ChannelBlock(tr.name, tr.modality, tr.fs, t0, tr.data[a:b],
                                           res.valid)
        block = Block(bed, t0, t1, native, {}, frozenset(active))
        for ev in engine.process(block):
            if isinstance(ev, Alert):
                assert ev.kind == AlertKind.PHYSIOLOGICAL
                out.physiological.append(ev)
            elif isinstance(ev, dict):
                out.events.append(ev)
    return out
