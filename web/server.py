"""Serving the web app with uvicorn inside the engine's event loop.

``WebServer`` binds its socket when built (so a busy port fails at start-up, with one line), runs
uvicorn as a task of the caller's loop for the lifetime of ``async with``, and leaves signal
handling to the engine (``sleepstream run`` stops on SIGINT/SIGTERM and then stops the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from sleepstream.engine.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"


def parse_listen(listen: str) -> tuple[str, int]:
    """``"HOST:PORT"``, ``":PORT"`` or ``"PORT"`` (loopback); ``[::1]:PORT`` for IPv6."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigError([("http.listen", f"{listen!r} is not HOST:PORT (e.g. 127.0.0.1:8080)")])
    return host, number


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the engine owns SIGINT/SIGTERM
        yield


class WebServer:
    """uvicorn serving ``app`` on ``listen`` while the ``async with`` block runs."""

    def __init__(self, app: ASGIApp, listen: str) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise ConfigError([("http.listen", f"cannot listen on {host}:{port}: "
                                f"{exc.strerror or exc}; choose another port")]) from exc
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False,
                                timeout_graceful_shutdown=1)
        self.server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> WebServer:
        self._task = asyncio.create_task(self.server.serve(sockets=[self.sock]), name="web")
        while not self.server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("the web server stopped before it started")
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            try:
                async with asyncio.timeout(3.0):
                    await self._task
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        self.sock.close()
