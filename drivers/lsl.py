"""Lab Streaming Layer source: one stream of one bed (the marker sink is ``drivers.lsl_sink``).

Source: resolves a stream by name / type / source_id; one missing after ``timeout_s`` is a
``stream_lost`` technical alarm and is looked for again with capped backoff (its channels are
announced through ``frames()`` once found). Every numeric channel format is taken (float32/64,
int8/16/32/64; strings and irregular rates are refused with ``SourceError``). It reads the full
description to split it into channels (label, unit, type from ``desc/channels/channel``;
``drivers.lsl_channels`` converts units to the engine's), and pulls chunks in a dedicated thread
into a preallocated array; the event loop only receives finished frames (through
``drivers.outbox``, bounded). Resolving is done in short waves (see ``LslSource._resolve``).

Time: pylsl's clock sync (``proc_clocksync``) maps the sender's clock onto this host's
``local_clock``, which is mapped onto the engine clock by one constant offset (both are
monotonic). Dejitter has two modes. ``"engine"`` (default): every sample lies on a nominal-rate
timeline ``a + seq / fs``, ``a`` following the synced timestamps slowly (drift) while a step larger
than ``jump_s`` is reported as a ``clock_jump`` and kept out of the timeline. ``"liblsl"``: pylsl's
``proc_dejitter`` (smooth, but it smears a sender clock jump over about a minute). ``"none"``: raw.

Loss: no sample for ``lost_after_s`` or any pylsl error in the pull (lost, timeout, internal)
raises ``stream_lost``; the thread then re-resolves the stream by source_id and opens a new inlet
(a quiet stream too, every ``lost_after_s``); the first sample back ends the condition, and the
samples missed meanwhile advance ``Frame.seq`` (the bed fills them as invalid by timestamp).
Device NaN samples are invalid and raise ``sensor_off``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pylsl

from sleepstream.drivers.lsl_channels import channel_specs
from sleepstream.drivers.outbox import Item, Outbox
from sleepstream.drivers.runs import sensor_off_events
from sleepstream.engine.channel_map import ChannelRule
from sleepstream.engine.clock import EngineClock, MonotonicClock
from sleepstream.engine.errors import SourceError, SourceNotFoundError
from sleepstream.engine.protocols import ChannelsAnnounced, SourceEvent
from sleepstream.engine.types import ChannelSpec, Frame

log = logging.getLogger(__name__)

_RESOLVE_WAVE_S = 0.2  # one resolve wave while a lost stream is awaited
_BACKOFF_MAX_S = 5.0  # a stream missing at start-up is looked for at least this often
# LSL channel formats the source takes, as the numpy dtype pylsl pulls them into.
_DTYPES: dict[int, type[np.generic]] = {
    pylsl.cf_float32: np.float32, pylsl.cf_double64: np.float64, pylsl.cf_int8: np.int8,
    pylsl.cf_int16: np.int16, pylsl.cf_int32: np.int32, pylsl.cf_int64: np.int64,
}
# Any of these from pylsl in the pull thread is a lost stream: reported, then re-resolved.
_PULL_ERRORS = (pylsl.util.LostError, pylsl.util.TimeoutError, pylsl.util.InternalError,
                RuntimeError, ValueError, OSError)

Dejitter = Literal["engine", "liblsl", "none"]


@dataclass(slots=True)
class TimelineState:
    """Nominal-rate timeline of one stream: sample ``seq`` lies at ``a + seq / fs`` (LSL clock)."""

    fs: float
    jump_s: float = 1.0
    alpha: float = 0.05
    a: float | None = None
    shift: float = 0.0  # sum of the sender clock jumps seen, kept out of the timeline

    def place(self, seq: int, ts: np.ndarray) -> tuple[np.ndarray, list[tuple[int, float]]]:
        """Timestamps for samples ``seq..`` given their synced stamps, and the sender clock
        jumps found in them as (row, size in seconds)."""
        idx = seq + np.arange(ts.shape[0], dtype=np.float64)
        resid = ts - idx / self.fs - self.shift  # (n,) offset of each stamp from the timeline
        if self.a is None:
            self.a = float(np.median(resid[:32]))
        jumps: list[tuple[int, float]] = []
        while len(jumps) < 4:
            off = np.abs(resid - self.a) > self.jump_s
            if not off.any():
                break
            row = int(np.argmax(off))
            step = float(np.median(resid[row:])) - self.a
            if abs(step) <= self.jump_s:  # isolated late stamps, not a step
                break
            jumps.append((row, step))
            resid[row:] -= step
            self.shift += step
        self.a += self.alpha * (float(np.median(resid)) - self.a)
        return self.a + idx / self.fs, jumps

    def missing_before(self, seq: int, first_ts: float) -> int:
        """Samples lost before a stamp seen after an outage (0 when none or unknown)."""
        if self.a is None:
            return 0
        return max(0, round((first_ts - self.shift - self.a) * self.fs) - seq)


@dataclass(slots=True)
class _PullState:
    """What the puller thread carries from one chunk to the next."""

    names: tuple[str, ...]
    timeline: TimelineState
    buf: np.ndarray  # reused for every pull
    off: list[bool]
    last_data: float
    seq: int = 0
    lost: bool = False


class LslSource:
    """One LSL stream as a Driver. ``async with`` resolves and starts the puller thread."""

    def __init__(
        self,
        *,
        name: str | None = None,
        stream_type: str | None = None,
        source_id: str | None = None,
        timeout_s: float = 10.0,
        lost_after_s: float = 2.0,
        clocksync: bool = True,
        dejitter: Dejitter = "engine",
        jump_s: float = 1.0,
        rules: Sequence[ChannelRule] = (),
        clock: EngineClock | None = None,
        max_chunk: int = 1024,
        max_frames: int = 1024,
    ) -> None:
        if not (name or stream_type or source_id):
            raise ValueError("an LSL source needs at least one of name, stream_type, source_id")
        self.query = {k: v for k, v in (("name", name), ("type", stream_type),
                                         ("source_id", source_id)) if v}
        if not (0 <= timeout_s <= 3600 and 0 < lost_after_s <= 3600):
            raise ValueError("an LSL source needs 0 <= timeout_s <= 3600 and "
                             "0 < lost_after_s <= 3600")
        self.timeout_s = timeout_s
        self.lost_after_s = lost_after_s
        self.dejitter = dejitter
        self.flags = (pylsl.proc_clocksync if clocksync else 0) | (
            pylsl.proc_dejitter if dejitter == "liblsl" else 0
        )
        self.jump_s = jump_s
        self.rules = tuple(rules)
        self.clock: EngineClock = clock or MonotonicClock()
        self.max_chunk = max_chunk
        self._max_frames = max_frames
        self._specs: tuple[ChannelSpec, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outbox = Outbox(max_frames=max_frames)
        self.samples = 0
        self.chunks = 0
        self.reconnects = 0
        self.clock_jumps = 0

    @property
    def channels(self) -> tuple[ChannelSpec, ...]:
        """The stream's channels; empty while a stream missing at start-up is awaited (they
        are announced through ``frames()`` once it is found)."""
        if self._thread is None:
            raise RuntimeError("enter the source (async with) before asking for its channels")
        return self._specs

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def _predicate(self) -> str:
        return " and ".join(f"{k}='{v}'" for k, v in self.query.items())

    def _resolve(self, timeout_s: float, *, by_source_id: str = "") -> pylsl.StreamInfo | None:
        """The stream, or None after ``timeout_s``: short resolve waves until the deadline.
        One long ``resolve_*`` call is avoided: with a 0.5-s timeout it returned after 5.5 s
        in 6 of 40 tries (its query-wave timer races the timeout); 0.2-s waves never did."""
        deadline = time.monotonic() + timeout_s
        while True:
            wave = max(0.0, min(_RESOLVE_WAVE_S, deadline - time.monotonic()))
            if by_source_id:
                found = pylsl.resolve_byprop("source_id", by_source_id, 1, wave)
            else:
                found = pylsl.resolve_bypred(self._predicate(), 1, wave)
            if found:
                return found[0]
            if time.monotonic() >= deadline or self._stop.is_set():
                return None

    def _open(self, info: pylsl.StreamInfo) -> tuple[pylsl.StreamInlet, pylsl.StreamInfo]:
        inlet = pylsl.StreamInlet(info, max_buflen=60, recover=False,
                                  processing_flags=self.flags)
        full = inlet.info(self.timeout_s)
        inlet.open_stream(self.timeout_s)
        return inlet, full

    def _reopen(self) -> pylsl.StreamInlet | None:
        """An inlet on the stream's outlet once it answers again, else None. Short resolve
        waves: the new outlet is found within a few hundred ms of its return, and data it
        sends before an inlet is open is lost."""
        try:
            info = self._resolve(_RESOLVE_WAVE_S, by_source_id=self._source_id)
            if info is None:
                return None
            inlet, _ = self._open(info)
        except Exception:  # a failed wave, or gone again before we could open it: retried
            return None
        self.reconnects += 1
        return inlet

    async def __aenter__(self) -> LslSource:
        self._outbox = Outbox(max_frames=self._max_frames)
        self._specs = ()
        self._lsl_to_engine = self.clock.now() - pylsl.local_clock()
        self._stop.clear()
        try:  # cancelled (SIGINT, --seconds): the resolving thread stops after its wave
            info = await asyncio.to_thread(self._resolve, self.timeout_s)
            inlet = None if info is None else await asyncio.to_thread(self._first_inlet, info)
        except asyncio.CancelledError:
            self._stop.set()
            raise
        if info is None:
            msg = (f"no LSL stream with {self._predicate()} within {self.timeout_s:g} s; "
                   "retrying (start the device or simulator, or check name/type/source_id)")
            log.warning("%s", msg)
            self._outbox.put(SourceEvent("stream_lost", (), self.clock.now(), True, msg))
        loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._pull_loop, args=(inlet, loop), name=f"lsl-{self._predicate()}",
            daemon=True,
        )
        self._thread.start()
        return self

    def _first_inlet(self, info: pylsl.StreamInfo) -> pylsl.StreamInlet:
        """Open the stream found; learn its channels and source_id. ``SourceError`` for a stream
        the engine cannot take (irregular rate, strings, an unknown format)."""
        if info.nominal_srate() <= 0 or info.channel_format() not in _DTYPES:
            raise SourceError(
                f"LSL stream {info.name()!r} is irregular or carries strings; a source needs a "
                "regular-rate numeric stream (float32/64, int8/16/32/64)"
            )
        try:
            inlet, full = self._open(info)
        except _PULL_ERRORS as exc:
            raise SourceNotFoundError(f"LSL stream {info.name()!r} vanished while opening "
                                      f"({exc})") from None
        specs, self._scales = channel_specs(full, self.rules)
        self._specs = tuple(specs)
        self._source_id = full.source_id()
        self._dtype = _DTYPES[info.channel_format()]
        return inlet

    def _await_first(self, post: Any) -> pylsl.StreamInlet | None:
        """The puller's wait for a stream missing at start-up: resolve waves with capped
        backoff; once found, its channels are announced and the loss ends."""
        delay = _RESOLVE_WAVE_S
        refused = ""
        while not self._stop.is_set():
            info = self._resolve(_RESOLVE_WAVE_S)
            if info is not None:
                try:
                    inlet = self._first_inlet(info)
                except SourceError as exc:
                    if str(exc) != refused:  # said once, not at every wave
                        refused = str(exc)
                        log.warning("%s", exc)
                else:
                    post(ChannelsAnnounced(self._specs))
                    post(SourceEvent("stream_lost", (), self.clock.now(), False,
                                     f"LSL stream {info.name()!r} found"))
                    return inlet
            self._stop.wait(delay)
            delay = min(_BACKOFF_MAX_S, delay * 2)
        return None

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None
        self._outbox.close()

    def frames(self) -> AsyncIterator[Frame | SourceEvent | ChannelsAnnounced]:
        return self._outbox.items()

    # -- the puller thread --------------------------------------------------------------------

    def _pull_loop(self, inlet: pylsl.StreamInlet | None, loop: asyncio.AbstractEventLoop) -> None:
        def post(item: Item) -> None:
            loop.call_soon_threadsafe(self._outbox.put, item)

        try:
            self._pull(inlet, post)
        except Exception as exc:  # never a silent death: the bed fails with the reason
            log.exception("LSL source %s: the puller thread stopped", self._predicate())
            error = SourceError(f"LSL stream {self._predicate()}: reading stopped ({exc!r})")
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._outbox.fail, error)

    def _pull(self, inlet: pylsl.StreamInlet | None, post: Any) -> None:
        if not self._specs:
            inlet = self._await_first(post)
            if inlet is None:
                return
        st = _PullState(names=tuple(s.name for s in self._specs),
                        timeline=TimelineState(self._specs[0].fs, jump_s=self.jump_s),
                        buf=np.empty((self.max_chunk, len(self._specs)), dtype=self._dtype),
                        off=[False] * len(self._specs), last_data=time.monotonic())
        while not self._stop.is_set():
            if inlet is None:
                inlet = self._reopen()
                if inlet is not None:
                    st.last_data = time.monotonic()  # a quiet stream gets lost_after_s again
                continue
            inlet = self._pull_chunk(inlet, st, post)

    def _pull_chunk(self, inlet: pylsl.StreamInlet, st: _PullState,
                    post: Any) -> pylsl.StreamInlet | None:
        """One pull; the inlet to go on with (None: lost or quiet, resolve it again)."""
        try:
            _, stamps = inlet.pull_chunk(timeout=0.1, max_samples=self.max_chunk,
                                         dest_obj=st.buf, as_numpy=True)
        except _PULL_ERRORS as exc:
            self._mark_lost(st, post, f"LSL stream lost ({exc!r})")
            return None
        now = time.monotonic()
        if stamps.shape[0] == 0:
            if now - st.last_data <= self.lost_after_s:
                return inlet
            self._mark_lost(st, post, f"no LSL samples for {self.lost_after_s:g} s")
            return None  # quiet without closing: resolve it again
        st.last_data = now
        self._deliver(st, stamps.astype(np.float64), post)
        return inlet

    def _mark_lost(self, st: _PullState, post: Any, why: str) -> None:
        if not st.lost:
            st.lost = True
            t = self._engine_t(st.timeline, st.seq)
            post(SourceEvent("stream_lost", st.names, t, True, why))

    def _deliver(self, st: _PullState, ts: np.ndarray, post: Any) -> None:
        n = int(ts.shape[0])
        data = st.buf[:n].astype(np.float32)
        if (self._scales != 1.0).any():
            data *= self._scales
        if back := st.lost:
            st.seq += st.timeline.missing_before(st.seq, float(ts[0]))
            st.lost = False
        t = self._timestamps(st.timeline, st.seq, ts, post)
        if back:  # ends at the first sample back, as placed on the (updated) timeline
            post(SourceEvent("stream_lost", st.names, float(t[0]), False, "LSL stream back"))
        valid = ~np.isnan(data)
        for ev in sensor_off_events(st.off, valid, t, st.names):
            post(ev)
        post(Frame(channels=st.names, timestamps=t, data=data, valid=valid, seq=st.seq))
        st.seq += n
        self.samples += n
        self.chunks += 1

    def _timestamps(self, timeline: TimelineState, seq: int, ts: np.ndarray,
                    post: Any) -> np.ndarray:
        if self.dejitter != "engine":
            return ts + self._lsl_to_engine
        placed, jumps = timeline.place(seq, ts)
        names = tuple(s.name for s in self._specs)
        for row, size in jumps:
            self.clock_jumps += 1
            t = float(placed[row]) + self._lsl_to_engine
            msg = f"sender clock jumped by {size:+.3f} s"
            post(SourceEvent("clock_jump", names, t, True, msg))
            post(SourceEvent("clock_jump", names, t, False, msg))
        return placed + self._lsl_to_engine

    def _engine_t(self, timeline: TimelineState, seq: int) -> float:
        if timeline.a is None:
            return self.clock.now()
        return timeline.a + seq / timeline.fs + self._lsl_to_engine


def source_from_config(opts: Mapping[str, Any], *, bed: Any, config: Any,
                       clock: EngineClock | None = None) -> LslSource:
    """Build a source from a ``[[beds.sources]]`` table of kind ``lsl``."""
    return LslSource(
        name=opts.get("name"),
        stream_type=opts.get("type"),
        source_id=opts.get("source_id"),
        timeout_s=float(opts.get("timeout_s", 10.0)),
        lost_after_s=float(opts.get("lost_after_s", 2.0)),
        clocksync=bool(opts.get("clocksync", True)),
        dejitter=opts.get("dejitter", "engine"),
        rules=tuple(getattr(bed, "channel_rules", ())),
        clock=clock,
    )
