"""sleepstream: real-time sleep staging and physiological alarms from biosignal streams.

The package maps the repository's folders into one namespace: ``sleepstream.engine`` (the
runtime, its inference layer and, in ``sleepstream.engine.app``, the composition root and the
command line), ``sleepstream.drivers`` (I/O), ``sleepstream.models`` (PyTorch training,
evaluation and export) and ``sleepstream.simulators``.
"""

__version__ = "0.1.0"
