"""Prometheus metrics of a running engine (prometheus-client, one registry per engine).

Counters that the engine already keeps (frames, samples, drops, queue depths, reconnects, store
rows) are read at scrape time by ``RuntimeCollector``, so the hot path is not instrumented twice.
``MetricsSink`` counts stage and alarm events as they pass; two histograms time the backend step
(``TimedBackend`` around the shared inference backend) and the store's batch writes.

Names: ``sleepstream_<what>_<unit>``, ``_total`` for counters; labels are bed ids, queue names,
codes, priorities and reasons, never free text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sleepstream.engine.clock import EngineClock
from sleepstream.engine.pipeline import BedRuntime, EventBus
from sleepstream.engine.protocols import Event, InferenceBackend, StepBatch, StepOutput

STEP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
WRITE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0)
CONNECTED_WITHIN_S = 10.0  # a bed whose newest sample is younger than this is connected


class EngineMetrics:
    """The registry of one engine and the instruments written to from outside a scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.step_seconds = Histogram(
            "sleepstream_backend_step_seconds", "duration of one batched backend step",
            buckets=STEP_BUCKETS, registry=self.registry)
        self.store_write_seconds = Histogram(
            "sleepstream_store_write_seconds", "duration of one batch write to the event store",
            buckets=WRITE_BUCKETS, registry=self.registry)
        self.stages = Counter("sleepstream_stages", "staged epochs by bed and stage",
                              ["bed", "stage"], registry=self.registry)
        self.alarms = Counter(
            "sleepstream_alarm_transitions", "alarm transitions by code, kind, priority, state",
            ["bed", "code", "kind", "priority", "state"], registry=self.registry)

    def store_written(self, seconds: float, rows: int) -> None:
        self.store_write_seconds.observe(seconds)


class MetricsSink:
    """Counts stages and alarm transitions (a ``Sink`` on the engine's bus)."""

    def __init__(self, metrics: EngineMetrics) -> None:
        self.metrics = metrics

    async def emit(self, event: Event) -> None:
        kind = event.get("type")
        if kind == "stage":
            self.metrics.stages.labels(str(event.get("bed")), str(event.get("stage"))).inc()
        elif kind == "alert":
            self.metrics.alarms.labels(*(str(event.get(k)) for k in
                                         ("bed", "code", "kind", "priority", "state"))).inc()

    async def aclose(self) -> None:
        return None


class TimedBackend:
    """An ``InferenceBackend`` that times every ``step`` of the one it wraps."""

    def __init__(self, inner: InferenceBackend, observe: Callable[[float], None]) -> None:
        self.inner = inner
        self.observe = observe
        self.name = inner.name
        self.capacity = inner.capacity

    def step(self, batch: StepBatch) -> StepOutput:
        import time

        t0 = time.perf_counter()
        out = self.inner.step(batch)
        self.observe(time.perf_counter() - t0)
        return out

    def reset(self, slots: Any) -> None:
        self.inner.reset(slots)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RuntimeCollector(Collector):
    """Reads the engine's own counters at scrape time."""

    def __init__(self, beds: Sequence[BedRuntime], bus: EventBus, clock: EngineClock,
                 store: Any | None = None, view: Any | None = None) -> None:
        self.beds, self.bus, self.clock, self.store, self.view = beds, bus, clock, store, view

    def collect(self) -> Iterator[Metric]:
        frames = CounterMetricFamily("sleepstream_frames", "frames taken in", labels=["bed"])
        samples = CounterMetricFamily("sleepstream_samples", "samples taken in", labels=["bed"])
        drops = CounterMetricFamily("sleepstream_dropped", "items dropped, by queue and reason",
                                    labels=["queue", "reason", "owner"])
        depth = GaugeMetricFamily("sleepstream_queue_depth", "items waiting in a queue",
                                  labels=["queue", "owner"])
        reconnects = CounterMetricFamily("sleepstream_source_reconnects",
                                         "source reconnections", labels=["bed"])
        now = self.clock.now()
        connected = 0
        for bed in self.beds:
            name = bed.state.bed
            frames.add_metric([name], bed.frames_in)
            chans = bed.state.channels.values()
            samples.add_metric([name], sum(c.counters.samples_in for c in chans))
            drops.add_metric(["frames", "full", name], bed.frames_dropped)
            drops.add_metric(["frames", "undeclared_channel", name], bed.state.rejected_frames)
            depth.add_metric(["frames", name], bed.queue.qsize() if bed.queue else 0)
            ends = [c.end_time for c in chans if not math.isnan(c.t0)]
            connected += bool(ends) and now - max(ends) < CONNECTED_WITHIN_S
            n_reconnects = 0
            for driver in bed.drivers:
                inner = getattr(driver, "inner", driver)  # a wrapping driver (tests)
                stats = getattr(inner, "stats", None)
                for reason, n in getattr(stats, "rejected", {}).items():
                    drops.add_metric(["payload", str(reason), name], n)
                n_reconnects += max(0, getattr(stats, "connects", 0) - 1)
                n_reconnects += getattr(inner, "reconnects", 0)
            reconnects.add_metric([name], n_reconnects)
        for ch in self.bus.channels:
            sink = type(ch.sink).__name__
            drops.add_metric(["events", "full", sink], ch.dropped)
            drops.add_metric(["events", "sink_error", sink], ch.failed)
            depth.add_metric(["events", sink], ch.queue.qsize())
        yield from (frames, samples, reconnects)
        yield GaugeMetricFamily("sleepstream_beds_connected",
                                f"beds with a sample in the last {CONNECTED_WITHIN_S:g} s",
                                value=connected)
        yield GaugeMetricFamily("sleepstream_beds", "beds configured", value=len(self.beds))
        yield from self._store(drops, depth)
        if self.view is not None:
            drops.add_metric(["stream", "full", "web"], self.view.stream_dropped)
            active = GaugeMetricFamily("sleepstream_alarms_active", "open alarms",
                                       labels=["bed", "priority"])
            for (bed, prio), n in sorted(self.view.active_counts().items()):
                active.add_metric([bed, prio], n)
            yield active
        yield drops
        yield depth

    def _store(self, drops: CounterMetricFamily, depth: GaugeMetricFamily) -> Iterator[Metric]:
        if self.store is None:
            return
        st = self.store.stats
        drops.add_metric(["store", "full", "store"], st.dropped)
        depth.add_metric(["store", "store"], self.store.pending)
        yield CounterMetricFamily("sleepstream_store_rows", "rows written to the event store",
                                  value=st.rows)
        yield CounterMetricFamily("sleepstream_store_failures",
                                  "failed batch writes to the event store", value=st.failures)
        yield GaugeMetricFamily("sleepstream_store_failing", "1 while the store cannot write",
                                value=int(st.failing))
