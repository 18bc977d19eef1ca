"""sleepstream runtime: ring buffers, signal quality, resampling, pipeline, sinks, CLI.

Imports numpy/scipy only; torch is never needed here.
"""

__version__ = "0.1.0"
