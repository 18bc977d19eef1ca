"""A private Mosquitto on a free loopback port, for simulations, benchmarks and tests.

Writes its own config (``listener <port> 127.0.0.1``, anonymous, no persistence) into a folder.
``Mosquitto.stop``/``start`` restart it on the same port (a broker outage). ``MosquittoMissing``
says how to install the broker when the binary is absent.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sleepstream.engine.errors import SourceError


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


def _wait_listening(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        time.sleep(0.05)
    return False


@dataclass
class Mosquitto:
    """One broker process on ``port``, its config in ``workdir``."""

    binary: str
    workdir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self) -> None:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
            "log_dest none\n"
        )
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not _wait_listening(self.port, 10.0):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{self.port}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5.0)
        self.proc = None


@contextlib.contextmanager
def running_broker(workdir: Path) -> Iterator[Mosquitto]:
    """A broker for the duration of the block, its config in ``workdir``."""
    binary = mosquitto_binary()
    if binary is None:
        raise MosquittoMissing("mosquitto is not installed; apt-get install -y mosquitto, "
                               "or pass --port of a running broker")
    broker = Mosquitto(binary=binary, workdir=workdir, port=free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.contextmanager
def local_mosquitto() -> Iterator[int]:
    """Run a broker in a temporary folder for the duration of the block; yields its port."""
    with tempfile.TemporaryDirectory(prefix="sleepstream-mosquitto-") as tmp, running_broker(
        Path(tmp)
    ) as broker:
        yield broker.port
