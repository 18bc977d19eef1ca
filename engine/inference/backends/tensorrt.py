"""The streaming step on a TensorRT engine, with the ring KV cache resident on the GPU.

The engine is built from the serving graph by ``sleepstream export tensorrt [--fp16]``
(``step_serving.plan`` / ``step_serving.fp16.plan`` in the model directory), with one
optimization profile over the batch size. The cache lives in GPU memory, slot-major per layer
(C, H, W, Dh); a step hands the batch's slots to the engine (a view when they are contiguous)
and writes the returned key/value rows at slot ``pos % W``. GPU buffers are managed with
PyTorch's CUDA allocator, so this backend needs the ``tensorrt`` package and a CUDA build of
torch; both are imported only here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from sleepstream.engine.errors import BackendUnavailableError, ModelError
from sleepstream.engine.inference.kv_ring import write_rows
from sleepstream.engine.inference.model_files import ModelFiles
from sleepstream.engine.protocols import StepBatch, StepOutput

PLAN = "step_serving.plan"
PLAN_FP16 = "step_serving.fp16.plan"


def require_tensorrt() -> tuple[Any, Any]:
    """The tensorrt and torch modules, or BackendUnavailableError saying what is missing."""
    try:
        import tensorrt as trt
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(
            "the tensorrt backend needs the tensorrt package and a CUDA build of torch: "
            "pip install 'sleepstream[trt]' torch (on a machine with an NVIDIA GPU)"
        ) from exc
    if not torch.cuda.is_available():
        raise BackendUnavailableError(
            "the tensorrt backend needs an NVIDIA GPU with a working CUDA driver; none was found "
            '(use [model] backend = "onnx" on this machine)'
        )
    return trt, torch


class TensorRTBackend:
    """``InferenceBackend`` on a TensorRT engine; ``capacity`` KV slots on the GPU."""

    name = "tensorrt"

    def __init__(self, files: ModelFiles, capacity: int, *, fp16: bool = False) -> None:
        trt, torch = require_tensorrt()
        self._torch = torch
        plan = files.root / (PLAN_FP16 if fp16 else PLAN)
        if not plan.is_file():
            flag = " --fp16" if fp16 else ""
            raise ModelError(f"{plan}: missing; run sleepstream export tensorrt{flag}")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan.read_bytes())
        if self._engine is None:
            raise ModelError(f"{plan}: TensorRT could not load it; rebuild it on this machine")
        self._ctx = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        is_in = trt.TensorIOMode.INPUT
        self._inputs = [n for n in names if self._engine.get_tensor_mode(n) == is_in]
        self._outputs = [n for n in names if n not in self._inputs]
        dtype = self._engine.get_tensor_dtype
        self._dtypes = {n: _torch_dtype(torch, trt, dtype(n)) for n in names}
        self.files, self.capacity = files, capacity
        dev = torch.device("cuda")
        shape = (capacity, files.n_head, files.window, files.head_dim)  # (C, H, W, Dh)
        self.k = [torch.zeros(shape, device=dev) for _ in range(files.n_layer)]
        self.v = [torch.zeros(shape, device=dev) for _ in range(files.n_layer)]
        self.pos = torch.zeros(capacity, dtype=torch.int64, device=dev)
        self.prev_h = torch.zeros(capacity, files.d_model, device=dev)

    def step(self, batch: StepBatch) -> StepOutput:
        torch = self._torch
        n = len(batch.slots)
        lo = int(batch.slots[0])
        contiguous = bool(np.all(batch.slots == np.arange(lo, lo + n)))
        s_idx = torch.from_numpy(np.asarray(batch.slots, np.int64)).cuda()

        def take(a: Any) -> Any:
            return a[lo : lo + n] if contiguous else a.index_select(0, s_idx)

        feeds: dict[str, Any] = {
            "codes": torch.from_numpy(np.asarray(batch.codes, np.int64)).cuda(),
            "presence": torch.from_numpy(np.asarray(batch.presence, bool)).cuda(),
            "pos": take(self.pos).contiguous(),
            "prev_h": take(self.prev_h).contiguous(),
        }
        for i in range(self.files.n_layer):
            feeds[f"k_cache_{i}"] = take(self.k[i])
            feeds[f"v_cache_{i}"] = take(self.v[i])
        for name in self._inputs:
            t = feeds[name].to(self._dtypes[name])
            feeds[name] = t
            self._ctx.set_input_shape(name, tuple(t.shape))
            self._ctx.set_tensor_address(name, t.data_ptr())
        outs = {}
        for name in self._outputs:
            shape = tuple(self._ctx.get_tensor_shape(name))
            outs[name] = torch.empty(shape, dtype=self._dtypes[name], device="cuda")
            self._ctx.set_tensor_address(name, outs[name].data_ptr())
        stream = torch.cuda.current_stream()
        if not self._ctx.execute_async_v3(stream.cuda_stream):
            raise ModelError("TensorRT step failed (see the TensorRT log)")
        rows = [outs[f"{kv}_new_{i}"].float() for i in range(self.files.n_layer) for kv in "kv"]
        write_rows(self.k, self.v, s_idx, feeds["pos"].long(), rows, self.files.window)
        self.pos[s_idx] += 1
        self.prev_h[s_idx] = outs["embedding"].float()
        return StepOutput(
            outs["embedding"].float().cpu().numpy(),
            outs["stage_logits"].float().cpu().numpy(),
            outs["surprise"].float().cpu().numpy(),
        )

    def reset(self, slots: npt.NDArray[np.int64]) -> None:
        s = self._torch.from_numpy(np.asarray(slots, np.int64)).cuda()
        for a in (*self.k, *self.v, self.pos, self.prev_h):
            a[s] = 0

    @property
    def bytes_per_slot(self) -> int:
        per = sum(a[0].numel() * a.element_size() for a in (*self.k, *self.v))
        return int(per + 8 + self.prev_h[0].numel() * 4)


def _torch_dtype(torch: Any, trt: Any, dt: Any) -> Any:
    table = {
        trt.float32: torch.float32,
        trt.float16: torch.float16,
        trt.int64: torch.int64,
        trt.int32: torch.int32,
        trt.bool: torch.bool,
    }
    if dt not in table:
        raise ModelError(f"TensorRT tensor type {dt} is not supported by this backend")
    return table[dt]
