"""sleepstream: real-time sleep staging and physiological alarms from biosignal streams.

The package maps the repository's folders into one namespace: ``sleepstream.engine`` (the
runtime, its inference layer and, in ``sleepstream.engine.app``, the composition root and the
command line), ``sleepstream.drivers`` (I/O), ``sleepstream.models`` (PyTorch training,
evaluation and export), ``sleepstream.simulators`` and ``sleepstream.report`` (night tables,
statistics, plots, the night report).

The Python API is imported on first use, so ``import sleepstream`` stays light::

    night = sleepstream.analyze("night.edf")      # a Night: tables, statistics(), plot()
    async for event in sleepstream.stream(cfg):   # every event of a running engine
        ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Hypnogram", "Night", "analyze", "stream"]

_LAZY = {
    "analyze": "sleepstream.api",
    "stream": "sleepstream.api",
    "Night": "sleepstream.report.night",
    "Hypnogram": "sleepstream.report.hypnogram",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sleepstream' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
