"""A shared inference tier: shards send their model steps to one pooled service on the cluster.

With ``[cluster] inference = "pooled"`` the coordinator starts one ``InferenceService`` (a Ray
actor; on a GPU node it asks Ray for the GPU and runs the configured backend there) and every
shard steps through a ``PooledBackend`` instead of a local one. The service holds the KV cache of
every bed (slot ``s`` of a shard's backend is the service's slot for the key ``(backend, s)``,
allocated on first use), so a shard keeps only its beds' tokens. Requests from different
shards that arrive within ``max_wait_s`` of each other are joined into one backend call (request
batching, as Ray Serve's ``serve.batch`` or Triton's dynamic batcher would), and every request
gets back its own rows. A shard that is lost is ``forget``-ed: its slots return to the pool.

Parity: a bed stepped through the service gives the outputs of the same backend stepped locally
(``tests/cluster/test_serving.py``; the same onnxruntime graph, so equal within float rounding of
the batch composition, 1e-5 absolute).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import ray

from sleepstream.engine.errors import ModelError
from sleepstream.engine.inference.backends import make_backend
from sleepstream.engine.inference.model_files import ModelFiles, load_model_files
from sleepstream.engine.protocols import StepBatch, StepOutput

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    shard: str
    batch: StepBatch
    done: asyncio.Future[StepOutput] = field(default_factory=asyncio.Future)


class InferenceService:
    """The pooled backend (``backend`` kind on the model in ``model_dir``, ``capacity`` slots)."""

    def __init__(self, model_dir: str, capacity: int, *, backend: str = "onnx",
                 max_wait_s: float = 0.01) -> None:
        self.files = load_model_files(model_dir)
        self.backend = make_backend(backend, self.files, capacity)
        self.capacity, self.max_wait_s = capacity, max_wait_s
        self.slots: dict[tuple[str, int], int] = {}
        self.free = list(range(capacity - 1, -1, -1))
        self.pending: list[_Pending] = []
        self.calls = 0  # backend calls
        self.requests = 0  # step requests served
        self._flush: asyncio.Task[None] | None = None

    def _slot(self, shard: str, local: int) -> int:
        key = (shard, local)
        if key not in self.slots:
            if not self.free:
                raise ModelError(f"the inference service's {self.capacity} KV slots are in use")
            self.slots[key] = self.free.pop()
        return self.slots[key]

    async def step(self, shard: str, codes: npt.NDArray[np.int64], presence: Any,
                   slots: npt.NDArray[np.int64]) -> StepOutput:
        """One shard's step for its beds (its own slot numbers); answered when the joined
        batch it went into has run."""
        mapped = np.array([self._slot(shard, int(s)) for s in slots], dtype=np.int64)
        req = _Pending(shard, StepBatch(codes, presence, mapped))
        self.pending.append(req)
        if self._flush is None:
            self._flush = asyncio.create_task(self._run_after_wait())
        return await req.done

    async def _run_after_wait(self) -> None:
        await asyncio.sleep(self.max_wait_s)
        batch, self.pending, self._flush = self.pending, [], None
        try:
            out = await asyncio.to_thread(self._step_joined, [r.batch for r in batch])
        except Exception as exc:  # every waiting request gets the error
            for r in batch:
                r.done.set_exception(ModelError(f"pooled inference failed: {exc}"))
            return
        start = 0
        for r in batch:
            n = len(r.batch.slots)
            r.done.set_result(StepOutput(out.embeddings[start:start + n],
                                         out.stage_logits[start:start + n],
                                         out.surprise[start:start + n]))
            start += n
        self.requests += len(batch)

    def _step_joined(self, batches: list[StepBatch]) -> StepOutput:
        joined = StepBatch(np.concatenate([b.codes for b in batches]),
                           np.concatenate([b.presence for b in batches]),
                           np.concatenate([b.slots for b in batches]))
        self.calls += 1
        return self.backend.step(joined)

    async def reset(self, shard: str, slots: npt.NDArray[np.int64]) -> None:
        mapped = np.array([self._slot(shard, int(s)) for s in slots], dtype=np.int64)
        self.backend.reset(mapped)

    async def forget(self, shard: str) -> int:
        """Give a lost shard's slots back to the pool; returns how many."""
        keys = [k for k in self.slots if k[0] == shard or k[0].startswith((shard + ".",
                                                                            shard + "/"))]
        for k in keys:
            self.free.append(self.slots.pop(k))
        return len(keys)

    async def stats(self) -> dict[str, int]:
        return {"calls": self.calls, "requests": self.requests, "slots_used": len(self.slots),
                "capacity": self.capacity}


def start_service(model_dir: str, capacity: int, *, backend: str = "onnx",
                  max_wait_s: float = 0.01, gpu: bool = False) -> Any:
    """The service actor, on a node with a GPU when ``gpu`` (Ray places it)."""
    remote = ray.remote(InferenceService)
    return remote.options(num_cpus=0, num_gpus=1 if gpu else 0, max_restarts=0,
                          max_concurrency=1000).remote(
        model_dir, capacity, backend=backend, max_wait_s=max_wait_s)


class PooledBackend:
    """``InferenceBackend`` on a shard: each step and reset goes to the service (blocking: the
    scheduler calls it on its inference thread, never on the event loop)."""

    name = "pooled"

    def __init__(self, service: Any, shard: str, files: ModelFiles, capacity: int,
                 *, timeout_s: float = 10.0) -> None:
        self.service, self.files = service, files
        self.shard = f"{shard}/{uuid.uuid4().hex[:8]}"  # this backend's slots on the service
        self.capacity, self.timeout_s = capacity, timeout_s

    def step(self, batch: StepBatch) -> StepOutput:
        ref = self.service.step.remote(self.shard, batch.codes, batch.presence, batch.slots)
        return self._get(ref)

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        self._get(self.service.reset.remote(self.shard, np.asarray(slots, dtype=np.int64)))

    def _get(self, ref: Any) -> Any:
        try:
            return ray.get(ref, timeout=self.timeout_s)
        except (ray.exceptions.RayError, TimeoutError) as exc:
            raise ModelError(f"the pooled inference service did not answer: {exc}") from exc


def pooled_factory(service: Any, shard: str) -> Any:
    """``make_backend``'s constructor for the ``pooled`` kind on this shard."""
    def make(files: ModelFiles, capacity: int, **_: Any) -> PooledBackend:
        return PooledBackend(service, shard, files, capacity)

    return make
