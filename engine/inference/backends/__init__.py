"""Inference backends behind the ``InferenceBackend`` port, chosen by name.

``onnx`` (default, onnxruntime on CPU, its CUDA provider when asked for and present),
``tensorrt`` (a TensorRT engine on an NVIDIA GPU; the ``trt`` extra) and ``torch`` (the
reference PyTorch model; the ``train`` extra). Optional runtimes are imported only when chosen.
A layer above the runtime may add a kind with ``register_backend`` (the cluster's ``pooled``
backend, which steps through a shared inference service); the runtime never imports it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sleepstream.engine.errors import BackendUnavailableError, ConfigError
from sleepstream.engine.inference.model_files import ModelFiles
from sleepstream.engine.protocols import InferenceBackend

BACKENDS = ("onnx", "tensorrt", "torch")
_REGISTERED: dict[str, Callable[..., InferenceBackend]] = {}


def register_backend(kind: str, make: Callable[..., Any]) -> None:
    """Add (or replace) a backend kind: ``make(files, capacity, threads=..., fp16=...)``."""
    _REGISTERED[kind] = make


def make_backend(
    kind: str, files: ModelFiles, capacity: int, *, threads: int = 1, fp16: bool = False
) -> InferenceBackend:
    """A backend with ``capacity`` KV slots for the model in ``files``."""
    if kind in _REGISTERED:
        return _REGISTERED[kind](files, capacity, threads=threads, fp16=fp16)
    if kind == "onnx":
        from sleepstream.engine.inference.backends.onnx import make_onnx_backend

        return make_onnx_backend(files, capacity, threads=threads)
    if kind == "tensorrt":
        from sleepstream.engine.inference.backends.tensorrt import TensorRTBackend

        return TensorRTBackend(files, capacity, fp16=fp16)
    if kind == "torch":
        try:
            mod = importlib.import_module("sleepstream.engine.inference.backends.torch")
        except ImportError as exc:
            raise BackendUnavailableError(
                "the torch backend needs PyTorch: pip install 'sleepstream[train]' (torch)"
            ) from exc
        backend: InferenceBackend = mod.TorchBackend.from_dir(files.root, capacity, threads=threads)
        return backend
    known = [*BACKENDS, *_REGISTERED]
    raise ConfigError([("model.backend", f"{kind!r} is not one of {known}")])
