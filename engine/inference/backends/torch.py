"""The streaming step in PyTorch behind the ``InferenceBackend`` port: the reference backend
every other runtime is checked against (``RQTransformer.step`` with the ring KV cache).

Needs the ``train`` extra; importing this module without torch raises ``ImportError``, which
``make_backend`` turns into ``BackendUnavailableError``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from sleepstream.engine.protocols import StepBatch, StepOutput
from sleepstream.models import bundle
from sleepstream.models.kv_cache import KVCacheState, new_cache, reset
from sleepstream.models.rq_transformer import RQTransformer


class TorchBackend:
    name = "torch"

    def __init__(self, model: RQTransformer, capacity: int) -> None:
        self.model = model.eval()
        self.capacity = capacity
        self.state = new_cache(model.cfg, capacity)

    @classmethod
    def from_dir(cls, root: Path, capacity: int, *, threads: int = 1) -> TorchBackend:
        torch.set_num_threads(threads)
        trained = bundle.load(root / "model.npz")
        if trained.model is None:
            raise ValueError(f"{root}: the checkpoint holds no transformer")
        return cls(trained.model, capacity)

    @torch.no_grad()
    def step(self, batch: StepBatch) -> StepOutput:
        s = torch.from_numpy(np.asarray(batch.slots, np.int64))
        st = self.state
        sub = KVCacheState(st.k[:, s], st.v[:, s], st.pos[s], st.prev_h[s])
        h, stage, surprise, new = self.model.step(
            torch.from_numpy(np.asarray(batch.codes, np.int64)),
            torch.from_numpy(np.asarray(batch.presence, bool)),
            sub,
        )
        st.k[:, s], st.v[:, s], st.pos[s], st.prev_h[s] = new.k, new.v, new.pos, new.prev_h
        return StepOutput(h.numpy(), stage.numpy(), surprise.numpy())

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        mask = torch.zeros(self.capacity, dtype=torch.bool)
        mask[torch.from_numpy(np.asarray(slots, np.int64))] = True
        self.state = reset(self.state, mask)
