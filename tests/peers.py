"""Real peers for integration tests: a Mosquitto broker on a free loopback port.

The broker itself is ``simulators.broker``; here it is wrapped so tests skip with a clear reason
when the ``mosquitto`` binary is missing (the test command installs it with apt-get).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sleepstream.simulators.broker import Mosquitto, MosquittoMissing, free_port, running_broker

__all__ = ["Mosquitto", "free_port", "refusing_broker", "running_mosquitto"]


@contextlib.contextmanager
def running_mosquitto(workdir: Path) -> Iterator[Mosquitto]:
    try:
        with running_broker(workdir) as broker:
            yield broker
    except MosquittoMissing:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")


def refusing_broker(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A Mosquitto that knows only user ``device`` with password ``right`` (so any other
    credentials are refused), listening on a free loopback port: (process, port)."""
    passwd = shutil.which("mosquitto_passwd")
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if passwd is None or not Path(binary).exists():
        pytest.skip("mosquitto and mosquitto_passwd are needed (apt-get install -y mosquitto)")
    subprocess.run([passwd, "-b", "-c", str(tmp_path / "pw"), "device", "right"], check=True)
    port = free_port()
    (tmp_path / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                                     f"password_file {tmp_path / 'pw'}\nlog_dest none\n"
                                     "user root\n")  # as root it would drop to 'mosquitto'
    proc = subprocess.Popen([binary, "-c", str(tmp_path / "m.conf")])
    for _ in range(200):  # until it listens
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return proc, port
