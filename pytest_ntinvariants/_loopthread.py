"""An asyncio event loop in a background thread, started ready and stopped deterministically.

Both the fake API server and the fake delivery endpoints serve from one of these, so a
plain synchronous test (or a test that runs its own loop, like pytest-asyncio's) can use
them. Errors raised in the thread are kept and re-raised by ``stop()``: a server that
failed in the background must fail the test that used it, not vanish into a log
(the attitude of ``_pytest/threadexception.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundError", "GuestThread", "LoopThread", "ServerLoop", "unstarted_coroutines"]

T = TypeVar("T")


class BackgroundError(RuntimeError):
    """Raised by ``LoopThread.stop()`` when the background loop saw unhandled errors."""

    def __init__(self, name: str, errors: list[BaseException]) -> None:
        lines = "\n".join(f"  - {type(e).__name__}: {e}" for e in errors)
        super().__init__(f"{name}: {len(errors)} error(s) in the background thread:\n{lines}")
        self.errors = errors


class ServerLoop(asyncio.SelectorEventLoop):
    """A loop that can cut every connection it still holds once its server is done.

    Stopping an aiohttp server closes its connections gracefully, but over TLS a closed
    connection first waits for the peer's close_notify (asyncio allows it 30 s), and one
    still in its handshake belongs to no server yet. A loop closed under either leaves its
    socket to the garbage collector: a ResourceWarning in whichever test runs then, an error
    under ``filterwarnings = error``. Python 3.13's ``Server.abort_clients()`` would do;
    before it, the loop remembers each socket transport it makes (asyncio's own factory
    method, overridden as its subclasses do) and aborts what is left at the end.
    """

    def __init__(self) -> None:
        super().__init__()
        self._socket_transports: weakref.WeakSet[asyncio.BaseTransport] = weakref.WeakSet()

    def _make_socket_transport(self, *args: Any, **kwargs: Any) -> asyncio.Transport:
        transport: asyncio.Transport = super()._make_socket_transport(  # type: ignore[misc]
            *args, **kwargs
        )
        self._socket_transports.add(transport)
        return transport

    def _make_ssl_transport(self, *args: Any, **kwargs: Any) -> asyncio.Transport:
        # (asyncio makes a TLS connection's socket transport itself, not through the method
        # above: the TLS transport is what can be aborted)
        transport: asyncio.Transport = super()._make_ssl_transport(  # type: ignore[misc]
            *args, **kwargs
        )
        self._socket_transports.add(transport)
        return transport

    def abort_connections(self) -> None:
        """Abort every socket transport still open (their sockets close on the next turn)."""
        for transport in list(self._socket_transports):
            if isinstance(transport, asyncio.Transport):
                transport.abort()


def unstarted_coroutines(
    coro: Coroutine[Any, Any, Any] | None, held: list[Coroutine[Any, Any, Any]]
) -> list[Coroutine[Any, Any, Any]]:
    """``held`` (those still unstarted) plus the unstarted coroutines ``coro`` (a task's
    coroutine, about to start) was handed as arguments.

    kopf wraps its background coroutines in guard tasks that first wait for the operator
    to start; when startup fails or the replica crashes before that, the guard is cancelled
    and the wrapped coroutine is dropped un-awaited, which warns ("coroutine ... was never
    awaited") when it is collected: an error under ``filterwarnings = error``, in whichever
    test runs then. A task factory that keeps them (this helper) lets the replica close them
    when it ends; a never-started coroutine closes silently.
    """
    kept = [c for c in held if _unstarted(c)]
    frame = getattr(coro, "cr_frame", None)
    if frame is not None:
        kept.extend(v for v in frame.f_locals.values() if _unstarted(v))
    return kept


def _unstarted(value: object) -> bool:
    return inspect.iscoroutine(value) and inspect.getcoroutinestate(value) == "CORO_CREATED"


class LoopThread:
    """Run ``setup`` on a fresh event loop in a daemon thread; ``teardown`` on stop.

    ``start()`` returns once ``setup`` has completed (or re-raises what it raised);
    ``stop()`` is idempotent, runs ``teardown``, joins the thread within ``timeout`` and
    raises ``BackgroundError`` for anything the loop's exception handler caught.
    """

    def __init__(
        self,
        name: str,
        setup: Callable[[], Awaitable[None]],
        teardown: Callable[[], Awaitable[None]],
        loop_factory: Callable[[], ServerLoop] = ServerLoop,
    ) -> None:
        self.name = name
        self._loop_factory = loop_factory
        self._setup = setup
        self._teardown = teardown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._startup_error: BaseException | None = None
        self._errors: list[BaseException] = []
        self._stopped = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The background loop (only valid between ``start()`` and ``stop()``)."""
        if self._loop is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._loop

    @property
    def running(self) -> bool:
        """Whether the thread is up and not yet stopped."""
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def in_loop_thread(self) -> bool:
        """Whether the caller is running on the background loop's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def start(self, timeout: float = 10.0) -> None:
        """Start the thread and return when ``setup`` finished; re-raise its error."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was already started")
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.name} did not become ready within {timeout}s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            raise self._startup_error

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (idempotent) and raise ``BackgroundError`` for background errors."""
        if self._stopped or self._thread is None:
            return
        self._stopped = True
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            # The loop may close between the check and the call.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._errors.append(TimeoutError(f"{self.name} did not stop within {timeout}s"))
        if self._errors:
            errors, self._errors = self._errors, []
            raise BackgroundError(self.name, errors)

    def call(self, fn: Callable[[], T], timeout: float | None = 10.0) -> T:
        """Run a plain callable on the loop thread and return its result."""
        if self.in_loop_thread():
            return fn()

        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        """Run a coroutine on the loop from another thread and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def report(self, error: BaseException) -> None:
        """Record an error so that ``stop()`` raises it (for handlers that must not crash)."""
        self._errors.append(error)

    def _main(self) -> None:
        loop = self._loop_factory()
        self._loop = loop
        loop.set_exception_handler(self._on_loop_error)
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # only reachable if _serve itself is broken
            self._errors.append(e)
            self._ready.set()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.abort_connections()
                loop.run_until_complete(asyncio.sleep(0))  # the aborts close their sockets
            finally:
                loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        try:
            await self._setup()
        except BaseException as e:
            self._startup_error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            try:
                await self._teardown()
            except Exception as e:
                self._errors.append(e)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, (ConnectionResetError, BrokenPipeError)):
            return  # a client went away; that is the client's business, not a server failure
        if error is None:
            error = RuntimeError(context.get("message", "unknown error in event loop"))
        self._errors.append(error)


class GuestThread(LoopThread):
    """A ``LoopThread`` that lives on another one's loop (a deterministic world's).

    ``setup`` runs on the host's loop at ``start()``, ``teardown`` at ``stop()``; errors
    reported to the guest are raised by the guest's ``stop()``. The host outlives it.
    """

    def __init__(
        self,
        host: LoopThread,
        name: str,
        setup: Callable[[], Awaitable[None]],
        teardown: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(name, setup, teardown)
        self.host = host
        self._started = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The host's loop."""
        return self.host.loop

    @property
    def running(self) -> bool:
        """Whether the guest was started, not yet stopped, and its host runs."""
        return self._started and not self._stopped and self.host.running

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the host's loop thread."""
        return self.host.in_loop_thread()

    def start(self, timeout: float = 10.0) -> None:
        """Run ``setup`` on the host's loop; re-raise its error."""
        if self._started:
            raise RuntimeError(f"{self.name} was already started")
        self._started = True

        async def setup() -> None:
            await self._setup()

        self.host.run(setup(), timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Run ``teardown`` on the host's loop (idempotent); raise background errors."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        if self.host.running:
            try:
                self.host.run(self._teardown_now(), timeout)
            except BaseException as e:
                self._errors.append(e)
        if self._errors:
            errors, self._errors = self._errors, []
            raise BackgroundError(self.name, errors)

    async def _teardown_now(self) -> None:
        await self._teardown()
