"""A private Mosquitto on a free loopback port, for simulations and benchmarks.

Writes its own config (``listener <port> 127.0.0.1``, anonymous, no persistence) into a temporary
folder. ``MosquittoMissing`` says how to install the broker when the binary is absent.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from engine.errors import SourceError


class MosquittoMissing(SourceError):
    """The mosquitto binary is not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )


@contextlib.contextmanager
def local_mosquitto() -> Iterator[int]:
    """Run a broker for the duration of the block; yields its port."""
    binary = mosquitto_binary()
    if binary is None:
        raise MosquittoMissing("mosquitto is not installed; apt-get install -y mosquitto, "
                               "or pass --port of a running broker")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sleepstream-mosquitto-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "max_queued_messages 100000\nlog_dest none\n")
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                             0.2):
                    break
                time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
