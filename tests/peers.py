"""Real peers for integration tests: a Mosquitto broker on a free loopback port.

The broker itself is ``simulators.broker``; here it is wrapped so tests skip with a clear reason
when the ``mosquitto`` binary is missing (the test command installs it with apt-get).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleepstream.simulators.broker import Mosquitto, MosquittoMissing, free_port, running_broker

__all__ = ["Mosquitto", "free_port", "running_mosquitto"]


@contextlib.contextmanager
def running_mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    try:
        with running_broker(workdir) as broker:
            yield broker
    except MosquittoMissing:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
