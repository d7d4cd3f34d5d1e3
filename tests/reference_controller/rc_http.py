"""A local aiohttp endpoint that records requests and answers from a handler."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Endpoint:
    """A running endpoint: its URL and what it received."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def free_port() -> int:
    """A port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.asynccontextmanager
async def serve(
    handler: Handler | None = None, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[Endpoint]:
    """Serve on 127.0.0.1; every request is recorded (headers, JSON body) before ``handler``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    scheme = "https" if ssl_context is not None else "http"
    endpoint = Endpoint(url=f"{scheme}://127.0.0.1:{port}/hook")

    async def record(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        endpoint.requests.append(
            {"headers": dict(request.headers), "body": body, "path": request.path}
        )
        if handler is None:
            return web.Response(text="ok")
        return await handler(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock, ssl_context=ssl_context)
    await site.start()
    try:
        yield endpoint
    finally:
        await runner.cleanup()
