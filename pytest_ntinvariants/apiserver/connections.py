"""Connection limits: kube-apiserver's read timeouts, and a bound on open connections.

kube-apiserver serves with Go's ``net/http`` configured in ``secure_serving.go``
(``ReadHeaderTimeout`` 32 s, ``IdleTimeout`` 90 s, the TLS handshake bounded by the same
32 s) and ends a non-long-running request that has not finished ``--request-timeout``
(60 s) after it arrived with a 504 ``Timeout`` Status. aiohttp on its own has only its
keep-alive timer, so a client could hold a connection forever by sending part of a
request head, or a body that never ends; and a flood of idle connections could use up
the process's file descriptors, after which no connection is accepted at all (not even
a health check). This module adds what is missing without touching aiohttp's request
handling:

- ``GuardedSite`` listens like aiohttp's ``SockSite`` but builds every connection's
  protocol through a ``ConnectionGuard``, which wraps aiohttp's ``RequestHandler`` in a
  ``_Connection``: the same protocol with a watchdog, one loop timer per connection that
  is re-armed only when it fires early (not per request).
- The guard keeps the open connections ordered by when they last received bytes; when a
  new one makes more than ``max_connections``, the least recently active connections that
  wait for a request (idle keep-alive, silent, half-sent heads) are closed first.
  Connections serving a request, watches among them, are never closed for the bound.

aiohttp keeps no public hook for "a request head is complete" or "this connection waits
for a request", so ``_Connection`` reads four of ``RequestHandler``'s private fields
(``_request_count``, ``_messages``, ``_waiter``, ``_request_in_progress``: what aiohttp's
own keep-alive timer reads); ``tests/apiserver/test_connections.py`` checks that they exist,
so an aiohttp that renames them fails a test instead of silently dropping the limits.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from . import errors

if TYPE_CHECKING:
    from ssl import SSLContext

__all__ = ["BODY_TIMEOUT_MESSAGE", "ConnectionGuard", "ConnectionLimits", "GuardedSite"]

# kube's timeout filter: apierrors.NewTimeoutError("request did not complete within
# requested timeout - " + ctx.Err()), whose message gains the "Timeout: " prefix.
BODY_TIMEOUT_MESSAGE = (
    "Timeout: request did not complete within requested timeout - context deadline exceeded"
)
_NEVER = math.inf


def _fd_soft_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on POSIX: no limit to derive the bound from
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send a request, and how many connections may stay open.

    - ``header_timeout``: seconds for a complete request head: from the connection's start
      (after the TLS handshake, which gets as long) for its first request, from the first
      byte of each later one. Then the connection is closed without an answer, as Go does.
      kube-apiserver: ``ReadHeaderTimeout`` 32 s.
    - ``idle_timeout``: seconds a keep-alive connection may wait for its next request after
      a response. kube-apiserver: ``IdleTimeout`` 90 s. aiohttp's keep-alive timer enforces
      it; that timer also runs from the connection's start and counts until the head is
      complete, so a first head must arrive within ``min(header_timeout, idle_timeout)``
      and a later one within ``idle_timeout`` of the previous response.
    - ``body_timeout``: seconds for a request body to arrive completely, counted from its
      head: after that the request is answered 504 ``Timeout`` (kube's Status) and the
      connection closed. kube-apiserver: ``--request-timeout`` 60 s, which bounds every
      non-long-running request, body included. Requests without a body (watches) are
      never affected; a slow body that completes in time is not either.
    - ``max_connections``: open connections before the least recently active ones that
      wait for a request are closed to make room; ``None`` is half the process's
      open-file soft limit (``ulimit -n``), which leaves the other half for its files,
      the connections serving requests (never closed for the bound, so they may exceed
      it) and those just accepted, not yet counted. Without it a flood of idle
      connections used up the descriptors and nothing more was accepted, health checks
      included. kube-apiserver has no such bound (it limits requests in flight instead).

    Every timeout must be positive and finite; ``max_connections`` at least 1.
    """

    header_timeout: float = 32.0
    idle_timeout: float = 90.0
    body_timeout: float = 60.0
    max_connections: int | None = None

    def __post_init__(self) -> None:
        for name in ("header_timeout", "idle_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value < _NEVER):
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        if self.max_connections is not None and not (
            isinstance(self.max_connections, int) and self.max_connections >= 1
        ):
            raise ValueError(f"max_connections must be at least 1, not {self.max_connections!r}")

    def connection_bound(self) -> int:
        """``max_connections``, or half the open-file soft limit when it is ``None``."""
        if self.max_connections is not None:
            return self.max_connections
        soft = _fd_soft_limit()
        return max(1, soft // 2) if soft is not None else 1_000_000  # unlimited: no bound


class _Connection(asyncio.Protocol):
    """aiohttp's ``RequestHandler`` with a watchdog: every callback goes to it unchanged.

    ``_deadline`` is when the watchdog acts (``inf``: nothing pending). The timer is re-armed
    only when a nearer deadline appears or when it fires early, so a connection whose
    requests arrive whole (the usual case) costs no timer operation per request.
    """

    __slots__ = ("_body", "_deadline", "_guard", "_inner", "_timer")

    def __init__(self, guard: ConnectionGuard, inner: RequestHandler) -> None:
        self._guard = guard
        self._inner = inner
        self._deadline = _NEVER
        self._timer: asyncio.TimerHandle | None = None
        self._body: StreamReader | None = None  # a request body still arriving

    # ----------------------------------------------------------- protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)
        guard = self._guard
        self._arm(guard.loop.time() + guard.limits.header_timeout)
        guard.opened(self)

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        heads = inner._request_count
        inner.data_received(data)
        guard = self._guard
        try:
            guard.connections.move_to_end(self)
        except KeyError:  # being closed (evicted): aiohttp ignores its data too
            return
        if inner._request_count != heads:
            # A head is complete. Only the last message of a pipelined batch can still be
            # receiving its body: the parser finishes one message before the next.
            body = inner._messages[-1][1] if inner._messages else None
            if body is not None and not body.is_eof():
                self._body = body
                self._arm(guard.loop.time() + guard.limits.body_timeout)
            else:
                self._body = None
                self._deadline = _NEVER
        elif self._body is not None:
            # Body bytes: its deadline counts from the head (Go and kube time the request
            # as a whole), so only its completion changes anything.
            if self._body.is_eof():
                self._body = None
                self._deadline = _NEVER
        elif self._deadline == _NEVER and data:
            # The first bytes of a new head: Go starts ReadHeaderTimeout here.
            self._arm(guard.loop.time() + guard.limits.header_timeout)

    def eof_received(self) -> bool | None:
        # aiohttp returns None: the transport closes on the client's EOF.
        self._inner.eof_received()
        return None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._guard.connections.pop(self, None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._body = None
        self._inner.connection_lost(exc)

    # --------------------------------------------------------------------- watchdog

    def waiting(self) -> bool:
        """True while the connection waits for a request head (idle, silent or half-sent).

        Before its first head that is the whole life of the connection (even before aiohttp
        started reading it, so a burst of new connections can make room at once). After,
        it is aiohttp's own test of idleness: ``start()`` awaits ``_waiter`` only between
        requests; it is ``None`` while a request (a watch too) is served.
        """
        inner = self._inner
        if inner._request_count == 0:
            return True
        waiter = inner._waiter
        return waiter is not None and not waiter.done()

    def close(self) -> None:
        """Close the connection now, without an answer (as Go closes an idle one)."""
        self._inner.force_close()

    def _arm(self, deadline: float) -> None:
        self._deadline = deadline
        timer = self._timer
        if timer is None or timer.when() > deadline:
            if timer is not None:
                timer.cancel()
            self._timer = self._guard.loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline == _NEVER or self._inner.transport is None:
            return
        if self._guard.loop.time() < deadline:  # the deadline moved on since arming
            self._timer = self._guard.loop.call_at(deadline, self._expire)
            return
        self._deadline = _NEVER
        body, self._body = self._body, None
        if body is not None:
            self._end_body(body)
        elif self.waiting():
            self.close()
        # Otherwise a request is being served (bytes of a pipelined head came during it):
        # aiohttp's keep-alive timer takes over once it is answered.

    def _end_body(self, body: StreamReader) -> None:
        inner = self._inner
        if body.is_eof():
            return
        queued = any(payload is body for _, payload in inner._messages)
        if not (queued or inner._request_in_progress):
            # Its handler already answered and aiohttp is discarding the rest of the body;
            # it closes the connection when its lingering time runs out.
            return
        # The handler's read raises kube's Timeout, which it answers as a Status. Ending the
        # stream as well keeps aiohttp from lingering on it; close() ends the connection
        # after that answer, since the rest of the body would arrive where a head belongs.
        inner.close()
        body.set_exception(errors.Timeout(BODY_TIMEOUT_MESSAGE))
        body.feed_eof()


class ConnectionGuard:
    """The protocol factory of a ``GuardedSite``, and the registry of its open connections.

    ``connections`` is ordered from least to most recently active (bytes received).
    """

    def __init__(
        self,
        limits: ConnectionLimits,
        loop: asyncio.AbstractEventLoop,
        handler_factory: Callable[[], RequestHandler],
    ) -> None:
        self.limits = limits
        self.loop = loop
        self.bound = limits.connection_bound()
        self.connections: OrderedDict[_Connection, None] = OrderedDict()
        self._handler_factory = handler_factory

    def __call__(self) -> asyncio.Protocol:
        """A protocol for one new connection (``loop.create_server``'s factory)."""
        return _Connection(self, self._handler_factory())

    def opened(self, conn: _Connection) -> None:
        """Register a new connection; close waiting ones while over the bound."""
        connections = self.connections
        connections[conn] = None
        excess = len(connections) - self.bound
        if excess <= 0:
            return
        # Busy connections met on the way go to the back, so each is passed over once per
        # round instead of on every accept. One round covers every connection but the new
        # one, which is never closed for the bound: when every other connection serves a
        # request, a new client is still served, over the bound (kube bounds requests in
        # flight, never connections).
        for _ in range(len(connections) - 1):
            oldest = next(iter(connections))
            if oldest.waiting():
                del connections[oldest]
                oldest.close()
                excess -= 1
                if excess == 0:
                    return
            else:
                connections.move_to_end(oldest)


class GuardedSite(web.BaseSite):
    """aiohttp's ``SockSite`` with ``ConnectionLimits``: serve a bound socket through a guard.

    The runner's ``Server`` still makes every ``RequestHandler`` and shuts them down; the
    guard only wraps each one. A TLS handshake gets ``header_timeout`` (Go bounds it by
    ``ReadHeaderTimeout``); asyncio's default would be 60 s.

    The kernel's accept queue is the system's maximum (``somaxconn``), as Go listens:
    with aiohttp's 128 a flood fills it, and a real client's connection then waits for SYN
    retransmits (a second, then two, ...). ``accept_batch`` is what asyncio passes as the
    backlog, and also how many connections it accepts per wake-up; a connection counts
    toward the bound only a loop turn or two after that, so a small batch keeps the
    descriptors a burst takes before room is made small.
    """

    __slots__ = ("_limits", "_name", "_sock", "guard")

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: socket.socket,
        limits: ConnectionLimits,
        *,
        ssl_context: SSLContext | None = None,
        accept_batch: int = 32,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=accept_batch)
        self._sock = sock
        self._limits = limits
        host, port = sock.getsockname()[:2]
        self._name = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        self.guard: ConnectionGuard | None = None

    @property
    def name(self) -> str:
        """The URL served."""
        return self._name

    async def start(self) -> None:
        """Listen on the socket, every connection through the guard."""
        await super().start()
        server = self._runner.server
        assert server is not None  # BaseSite refuses a runner that was not set up
        loop = asyncio.get_running_loop()
        self.guard = ConnectionGuard(self._limits, loop, server)
        if self._ssl_context is None:
            self._server = await loop.create_server(
                self.guard, sock=self._sock, backlog=self._backlog
            )
        else:
            self._server = await loop.create_server(
                self.guard,
                sock=self._sock,
                ssl=self._ssl_context,
                backlog=self._backlog,
                ssl_handshake_timeout=self._limits.header_timeout,
            )
        # Listening again only resizes the kernel's queue (see the class docstring).
        self._sock.listen(socket.SOMAXCONN)
