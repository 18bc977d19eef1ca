"""Per-period trends of one bed (a ``BlockProcessor``): SpO2, heart rate, respiratory rate and
signal quality, one ``{"type": "trend", ...}`` event every ``period_s`` (a minute by default).

- ``spo2``, ``hr``: the mean of the valid samples of the first ``spo2`` / ``hr`` channel in the
  period (None when it had no valid sample);
- ``rr``: breaths per minute from the first ``resp`` channel, the spectral peak between 6 and 42
  breaths/min of the period's samples, when at least 80 % of them are valid (else None);
- ``quality``: the fraction of valid samples over every channel of the bed; ``channels`` the same
  per channel.

Periods lie on the engine clock (``[k * period_s, (k + 1) * period_s)``); a period is emitted
when a block reaches its end, whatever the block length, so replay and live agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sleepstream.engine.protocols import Block, ChannelBlock

Event = dict[str, Any]
RR_BAND_HZ = (0.1, 0.7)  # 6..42 breaths per minute
RR_MIN_VALID = 0.8


@dataclass(slots=True)
class PeriodState:
    """Sums of the open period, per channel: valid count, sample count, sum of valid values."""

    valid: dict[str, int] = field(default_factory=dict)
    count: dict[str, int] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    resp: list[np.ndarray] = field(default_factory=list)  # pieces of the resp channel
    resp_valid: list[np.ndarray] = field(default_factory=list)


class TrendProcessor:
    """Trend events of one bed; see the module docstring."""

    def __init__(self, bed: str, *, period_s: float = 60.0) -> None:
        self.bed = bed
        self.period_s = period_s
        self.periods: dict[int, PeriodState] = {}
        self.picked: dict[str, str] = {}  # modality -> the channel its trend is read from
        self.resp_fs = 0.0

    def process(self, block: Block) -> Sequence[Event]:
        for name, ch in block.native.items():
            if ch.modality in ("spo2", "hr", "resp"):
                self.picked.setdefault(ch.modality, name)
            self._add(name, ch)
        return self._close(block.t_end)

    def finish(self, t_end: float) -> Sequence[Event]:
        """The last, partial period is emitted too (``t`` is where the data ended)."""
        events = self._close(t_end)
        for k in sorted(self.periods):
            events.append(self._event(k, self.periods.pop(k), t_end))
        return events

    def _add(self, name: str, ch: ChannelBlock) -> None:
        n = ch.data.shape[0]
        if n == 0:
            return
        idx = np.floor((ch.t0 + np.arange(n) / ch.fs) / self.period_s + 1e-9).astype(np.int64)
        first = int(idx[0])
        rel = idx - first  # (n,) period of each sample, counted from the block's first period
        counts = np.bincount(rel)
        valids = np.bincount(rel, weights=ch.valid.astype(np.float64))
        sums = np.bincount(rel, weights=np.where(ch.valid, ch.data, 0.0).astype(np.float64))
        is_resp = self.picked.get("resp") == name
        for k in np.flatnonzero(counts):
            st = self.periods.setdefault(first + int(k), PeriodState())
            st.count[name] = st.count.get(name, 0) + int(counts[k])
            st.valid[name] = st.valid.get(name, 0) + int(valids[k])
            st.total[name] = st.total.get(name, 0.0) + float(sums[k])
            if is_resp:
                sel = rel == k
                st.resp.append(ch.data[sel])
                st.resp_valid.append(ch.valid[sel])
                self.resp_fs = ch.fs

    def _close(self, t_end: float) -> list[Event]:
        """Emit every period that ends at or before ``t_end``."""
        done = [k for k in self.periods if (k + 1) * self.period_s <= t_end + 1e-9]
        return [self._event(k, self.periods.pop(k), (k + 1) * self.period_s)
                for k in sorted(done)]

    def _event(self, k: int, st: PeriodState, t: float) -> Event:
        def mean(modality: str) -> float | None:
            name = self.picked.get(modality)
            if name is None or not st.valid.get(name):
                return None
            return round(st.total[name] / st.valid[name], 2)

        count, valid = sum(st.count.values()), sum(st.valid.values())
        return {
            "type": "trend", "bed": self.bed, "t": round(t, 3),
            "start": round(k * self.period_s, 3), "period_s": self.period_s,
            "spo2": mean("spo2"), "hr": mean("hr"), "rr": self._rr(st),
            "quality": round(valid / count, 4) if count else None,
            "channels": {name: round(st.valid[name] / c, 4) for name, c in st.count.items() if c},
        }

    def _rr(self, st: PeriodState) -> float | None:
        if not st.resp:
            return None
        x = np.concatenate(st.resp)  # one period of one channel, at most period_s * fs samples
        ok = np.concatenate(st.resp_valid)
        if x.shape[0] < 16 or ok.mean() < RR_MIN_VALID:
            return None
        y = np.where(ok, x, np.nan).astype(np.float64)
        y = np.nan_to_num(y - np.nanmean(y))
        y *= np.hanning(y.shape[0])
        power = np.abs(np.fft.rfft(y)) ** 2
        freqs = np.fft.rfftfreq(y.shape[0], 1.0 / self.resp_fs)
        band = (freqs >= RR_BAND_HZ[0]) & (freqs <= RR_BAND_HZ[1])
        if not band.any() or not power[band].max() > 0:
            return None
        return round(float(freqs[band][np.argmax(power[band])] * 60.0), 1)
