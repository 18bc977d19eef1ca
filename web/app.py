"""The central-station web view: a Starlette app over one running engine.

Routes
- ``/`` (every bed at a glance), ``/bed/<id>`` (one bed), ``/alarms`` (the alarm list): one page
  from ``web/static`` (no CDN); it reads ``/api/snapshot`` and then follows ``/api/events``.
- ``GET /api/snapshot``, ``GET /api/beds/<id>``: the view as JSON.
- ``GET /api/events``: server-sent events (``stage``, ``trend``, ``alarm``, ``status`` as they
  happen; ``health`` every second: per-bed last data time).
- ``POST /api/beds/<id>/ack`` ``{"id": ALERT_ID | null, "by": NAME}``: an acknowledgement, routed
  like MQTT and CLI acknowledgements; the result arrives on the event stream.
- ``/metrics`` (Prometheus), ``/healthz`` (the engine runs), ``/readyz`` (every bed's sources are
  open and the store writes).

With a token every request needs ``Authorization: Bearer TOKEN``, or the cookie that opening
``/?token=TOKEN`` once sets (HttpOnly, SameSite=Strict) so that a browser can follow the event
stream; without one a 401 is the answer.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from sleepstream.engine.clock import EngineClock
from sleepstream.engine.types import Command
from sleepstream.web.metrics import EngineMetrics
from sleepstream.web.view import ViewState, WebCommands

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "sleepstream_token"
HEALTH_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class WebContext:
    """Everything the app reads: built by the composition root."""

    view: ViewState
    metrics: EngineMetrics
    commands: WebCommands
    clock: EngineClock
    live: Callable[[], Mapping[str, Mapping[str, Any]]]  # bed -> last data time, counters
    alive: Callable[[], tuple[bool, str]]
    ready: Callable[[], tuple[bool, list[str]]]
    token: str | None = None


class BearerAuth:
    """ASGI middleware: a bearer token (header or cookie) on every request when one is set."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    def _ok(self, given: str | None) -> bool:
        return given is not None and self.token is not None and hmac.compare_digest(
            given.encode(), self.token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        header = request.headers.get("authorization", "")
        bearer = header[7:] if header.lower().startswith("bearer ") else None
        if self._ok(bearer) or self._ok(request.cookies.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        response: Response
        if self._ok(request.query_params.get("token")):
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(COOKIE, self.token or "", httponly=True, samesite="strict")
        else:
            response = PlainTextResponse(
                "401: a bearer token is required (Authorization: Bearer TOKEN, or open "
                "/?token=TOKEN once in a browser)", status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="sleepstream"'})
        await response(scope, receive, send)


def create_app(ctx: WebContext) -> Starlette:
    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def snapshot(request: Request) -> Response:
        return JSONResponse(_plain(ctx.view.snapshot(ctx.live())))

    async def bed(request: Request) -> Response:
        name = request.path_params["bed"]
        if name not in ctx.view.beds:
            return JSONResponse({"error": f"no bed {name!r}"}, status_code=404)
        return JSONResponse(_plain(ctx.view.bed_view(name, ctx.live().get(name))))

    async def ack(request: Request) -> Response:
        name = request.path_params["bed"]
        if name not in ctx.view.beds:
            return JSONResponse({"error": f"no bed {name!r}"}, status_code=404)
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        alert_id, by = (body.get("id"), body.get("by", "web")) if isinstance(body, dict) else (
            0, 0)
        if not (alert_id is None or isinstance(alert_id, str)) or not isinstance(by, str) or (
                len(by) > 64 or (alert_id is not None and len(alert_id) > 200)):
            return JSONResponse({"error": "expected {\"id\": string or null, \"by\": string "
                                 "(at most 64 characters)}"}, status_code=400)
        cmd = Command(bed=name, kind="ack", t=ctx.clock.now(), alert_id=alert_id,
                      by=by.strip() or "web")
        if not ctx.commands.submit(cmd):
            return JSONResponse({"error": "too many acknowledgements queued; retry"},
                                status_code=503)
        return JSONResponse({"queued": True, "bed": name, "id": alert_id, "by": cmd.by,
                             "t": cmd.t}, status_code=202)

    async def events(request: Request) -> Response:
        return StreamingResponse(_stream(ctx), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        ok, why = ctx.alive()
        return PlainTextResponse(f"{'ok' if ok else 'failing'}: {why}\n",
                                 status_code=200 if ok else 503)

    async def readyz(request: Request) -> Response:
        ok, waiting = ctx.ready()
        text = "ready\n" if ok else "not ready: " + "; ".join(waiting) + "\n"
        return PlainTextResponse(text, status_code=200 if ok else 503)

    routes = [
        Route("/", page), Route("/bed/{bed}", page), Route("/alarms", page),
        Route("/api/snapshot", snapshot), Route("/api/beds/{bed}", bed),
        Route("/api/beds/{bed}/ack", ack, methods=["POST"]), Route("/api/events", events),
        Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(BearerAuth, token=ctx.token)
    return app


async def _stream(ctx: WebContext) -> AsyncIterator[str]:
    """One subscriber's event stream; ends when the client goes away."""
    q = ctx.view.subscribe()
    try:
        yield "retry: 2000\n\n"
        yield _sse("health", _health(ctx))
        next_health = time.monotonic() + HEALTH_EVERY_S
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_health - time.monotonic())):
                    name, data = await q.get()
                yield f"event: {name}\ndata: {data}\n\n"
            except TimeoutError:
                yield _sse("health", _health(ctx))
                next_health = time.monotonic() + HEALTH_EVERY_S
    finally:
        ctx.view.unsubscribe(q)


def _health(ctx: WebContext) -> dict[str, Any]:
    return {"wall": round(time.time(), 3), "beds": ctx.live()}


def _sse(name: str, payload: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(_plain(payload), separators=(',', ':'))}\n\n"


def _plain(x: Any) -> Any:
    """JSON-safe: NaN and infinities become null."""
    if isinstance(x, float):
        return x if x == x and abs(x) != float("inf") else None
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x
