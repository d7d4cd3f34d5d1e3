"""``WorldLoop``: the one event loop of a deterministic world, on virtual time.

The fake API server, the fake endpoints and every in-process controller replica of a
deterministic test run on this loop, in one thread. They still talk over real sockets on
127.0.0.1 (fidelity is the product), but nothing they do can overlap: the loop runs one
callback at a time, and the ``Engine`` attached to it decides, whenever the loop has
nothing left to do, what happens next.

"Nothing left to do" is decided exactly, where asyncio itself decides to block: the loop
asks its selector to wait only when its ready queue is empty. The selector here first
polls without waiting; if no socket is readable then, no byte is in flight between the
parts of the world either, because on Linux a write on loopback is queued at the reading
end before ``send()`` returns (measured: 0 misses in 100,000 writes of 1-3,000 bytes). Only
jobs in executor threads (kopf's sync handlers, ``asyncio.to_thread``) run outside the
loop; the loop counts them, and holds each one's result until the engine releases it, so
that a thread finishing early or late cannot reorder what the loop does.

Every task remembers the actor (replica identity) it was created for, through the
``ACTOR`` context variable, so a replica's tasks can be cancelled and its connections cut
without touching the rest of the world. For the same reason ``asyncio.all_tasks()``, called
by an actor's code on a world's loop, returns that actor's tasks only, as if each replica
had a process of its own: kopf cancels every task of "its" loop that it did not start when
it stops, which on a shared loop would be the other replicas' and the server's.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import socket
import time
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._loopthread import ServerLoop, unstarted_coroutines
from . import entropy

if TYPE_CHECKING:
    import selectors

    from .engine import Engine

__all__ = ["ACTOR", "WorldLoop"]

#: The actor (replica identity) the running code belongs to; None for the server, the
#: endpoints and the test.
ACTOR: contextvars.ContextVar[str | None] = contextvars.ContextVar("ntinv_actor", default=None)


@dataclass(eq=False)
class Job:
    """One call handed to an executor thread by an actor's code."""

    seq: int
    actor: str | None
    name: str
    finished: bool = False  # its result reached the loop (and waits to be released)


class _IdleSelector:
    """The loop's selector, asking the engine what to do whenever the loop would block."""

    def __init__(self, inner: selectors.BaseSelector, loop: WorldLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        loop = self._loop
        engine = loop.engine
        if engine is not None and engine.quiet is not None:
            return engine.idle_real(timeout, self._inner)  # actors outside the loop
        if timeout == 0 or not loop.virtual:
            return self._inner.select(timeout)
        events = self._inner.select(0)
        if events:
            return events
        if loop.engine is not None:
            return loop.engine.idle(timeout, self._inner)
        # Virtual time with nobody deciding (a world shutting down): the next timer is due
        # at once, unless a thread's job or a client outside the world is awaited.
        if timeout is None or loop.running_jobs():
            return self._inner.select(timeout)
        loop.advance(loop.time() + timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _name_of(func: Callable[..., Any]) -> str:
    # A stable name (the same in every run): never a repr, which holds addresses.
    while isinstance(func, functools.partial):
        inner = func.func
        if isinstance(getattr(inner, "__self__", None), contextvars.Context) and func.args:
            func = func.args[0]  # partial(context.run, fn): kopf's way to keep its context
        else:
            func = inner
    return getattr(func, "__qualname__", type(func).__qualname__)


_real_all_tasks = asyncio.all_tasks


def _all_tasks(loop: asyncio.AbstractEventLoop | None = None) -> set[asyncio.Task[Any]]:
    """``asyncio.all_tasks``, limited to the calling actor's tasks on a world's loop."""
    tasks = _real_all_tasks(loop)
    running = loop if loop is not None else asyncio.events._get_running_loop()
    if isinstance(running, WorldLoop):
        actor = ACTOR.get()
        if actor is not None:
            own = running._tasks.get(actor, ())
            return {t for t in tasks if t in own}
    return tasks


def _install_all_tasks() -> None:
    # Looked up as ``asyncio.all_tasks`` at call time by kopf (and most code); once only.
    if asyncio.all_tasks is not _all_tasks:
        asyncio.all_tasks = asyncio.tasks.all_tasks = _all_tasks


class WorldLoop(ServerLoop):
    """An event loop whose time is virtual once an engine is attached.

    ``time()`` stands still while the world works and jumps to the next timer when the
    engine finds nothing else to do, so sleeps, backoffs and timeouts of any length cost
    no wall time. Without an engine it behaves as a plain ``ServerLoop``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.engine: Engine | None = None
        self._now: float | None = None  # virtual time; None while the clock is real
        inner: selectors.BaseSelector = self._selector  # type: ignore[has-type]
        self._selector = _IdleSelector(inner, self)
        self._tasks: dict[str, weakref.WeakSet[asyncio.Task[Any]]] = {}
        self._connections: dict[str, weakref.WeakSet[asyncio.Transport]] = {}
        self._ports: dict[int, str] = {}  # local port of an actor's connection -> actor
        self._fenced: set[str] = set()
        self._actor_errors: dict[
            str, Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]
        ] = {}
        self._unstarted: dict[str, list[Coroutine[Any, Any, Any]]] = {}
        self.jobs: list[Job] = []  # running, or finished and not yet released
        #: The context actors start in (a copy each): the world's, with its virtual clock.
        #: Not the caller's: a root task spawned from the test's thread would otherwise
        #: start in the test's context.
        self.context = contextvars.copy_context()
        self.set_task_factory(self._make_task)  # type: ignore[arg-type]
        _install_all_tasks()

    # ------------------------------------------------------------------ time

    def time(self) -> float:
        """The loop's clock: virtual once ``go_virtual()`` was called."""
        return time.monotonic() if self._now is None else self._now

    @property
    def virtual(self) -> bool:
        """Whether the clock is virtual."""
        return self._now is not None

    def go_virtual(self) -> None:
        """Start the virtual clock at 0 (before any timer is set); from now on only
        ``advance`` moves it. Small numbers keep sums of delays exact where floats can."""
        if self._now is None:
            self._now = 0.0

    def advance(self, to: float) -> None:
        """Move the virtual clock forward to ``to`` (never back)."""
        assert self._now is not None, "the clock is not virtual"
        self._now = max(self._now, to)

    def next_timer(self) -> float | None:
        """When the earliest live timer is due (None: no timer)."""
        # The heap's head is the earliest; asyncio drops cancelled heads before it blocks,
        # but one may have been cancelled since.
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        if scheduled and not scheduled[0].cancelled():
            return scheduled[0].when()
        live = [h.when() for h in scheduled if not h.cancelled()]
        return min(live) if live else None

    # ---------------------------------------------------------------- actors

    def spawn(self, actor: str, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start ``coro`` as the root task of ``actor`` (call on the loop's thread)."""
        self._fenced.discard(actor)
        context = self.context.copy()
        context.run(ACTOR.set, actor)
        return self.create_task(coro, name=name, context=context)

    def tasks_of(self, actor: str) -> list[asyncio.Task[Any]]:
        """The actor's tasks that have not finished."""
        return [t for t in self._tasks.get(actor, ()) if not t.done()]

    def on_actor_error(
        self, actor: str, handler: Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]
    ) -> None:
        """Send errors the loop catches in ``actor``'s callbacks and tasks to ``handler``
        (as its own loop's exception handler would get them) instead of the loop's."""
        self._actor_errors[actor] = handler

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        """Route an error to the handler of the actor whose code raised it, if any."""
        for key in ("handle", "task", "future"):
            # A handle and a task keep the context they run in (private, but the only
            # place that says whose code it was once the callback has returned).
            ctx = getattr(context.get(key), "_context", None)
            actor = ctx.get(ACTOR) if isinstance(ctx, contextvars.Context) else None
            handler = self._actor_errors.get(actor) if actor is not None else None
            if handler is not None:
                handler(self, context)
                return
        super().call_exception_handler(context)

    def fence(self, actor: str) -> None:
        """Abort every connection the actor opened and refuse new ones (a crash)."""
        self._fenced.add(actor)
        for transport in list(self._connections.pop(actor, ())):
            transport.abort()

    def connections_of(self, actor: str) -> list[asyncio.Transport]:
        """The connections ``actor`` opened that are still tracked (not yet fenced)."""
        return list(self._connections.get(actor, ()))

    def actor_of_port(self, port: int) -> str | None:
        """The actor whose connection has local port ``port`` (None: not one of ours)."""
        return self._ports.get(port)

    def close_unstarted(self, actor: str) -> None:
        """Close coroutines the actor's code handed to tasks that never started them."""
        for coro in unstarted_coroutines(None, self._unstarted.pop(actor, [])):
            coro.close()

    async def create_connection(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """``loop.create_connection``, remembered for the actor that connects."""
        actor = ACTOR.get()
        if actor is not None and actor in self._fenced:
            sock: socket.socket | None = kwargs.get("sock")
            if sock is not None:  # aiohttp connects the socket itself, then hands it over
                sock.close()
            raise ConnectionRefusedError(f"{actor} crashed; its connections are cut")
        transport, protocol = await super().create_connection(*args, **kwargs)
        if actor is not None:
            if actor in self._fenced:  # the crash came while connecting
                transport.abort()
                raise ConnectionRefusedError(f"{actor} crashed; its connections are cut")
            self._connections.setdefault(actor, weakref.WeakSet()).add(transport)
            local = transport.get_extra_info("sockname")
            if local:
                self._ports[local[1]] = actor
        return transport, protocol

    def _make_task(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        context = kwargs.get("context")
        actor = context.get(ACTOR) if context is not None else ACTOR.get()
        task = asyncio.Task(coro, loop=loop, **kwargs)
        if actor is not None:
            self._tasks.setdefault(actor, weakref.WeakSet()).add(task)
            held = self._unstarted.setdefault(actor, [])
            held[:] = unstarted_coroutines(coro, held)
        return task

    # ---------------------------------------------------------------- executor

    def run_in_executor(  # type: ignore[override]
        self, executor: Any, func: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        """``loop.run_in_executor``; under an engine, the result waits to be released."""
        if self.engine is None:
            return super().run_in_executor(executor, func, *args)
        # Its place in the engine's order is taken now, when the job starts: the order its
        # result is released in does not depend on how fast the thread runs.
        job = Job(self.engine.next_seq(), ACTOR.get(), _name_of(func))
        self.jobs.append(job)
        # The thread runs in a copy of the caller's context, so that it reads the world's
        # virtual clock as the caller does, and draws from a generator of its own.
        context = contextvars.copy_context()
        rng = entropy.active()
        if rng is not None:
            context.run(entropy.activate, entropy.spawned(rng))
        inner = super().run_in_executor(executor, context.run, func, *args)
        outer: asyncio.Future[Any] = self.create_future()
        engine = self.engine

        def finished(done: asyncio.Future[Any]) -> None:
            job.finished = True
            if self.engine is engine:
                engine.hold_job(job, lambda: self._settle_job(job, done, outer))
            else:  # the world is shutting down: nobody decides any more
                self._settle_job(job, done, outer)

        inner.add_done_callback(finished)
        return outer

    def _settle_job(self, job: Job, done: asyncio.Future[Any], outer: asyncio.Future[Any]) -> None:
        self.jobs.remove(job)
        if outer.cancelled():
            return
        if done.cancelled():
            outer.cancel()
        elif (error := done.exception()) is not None:
            outer.set_exception(error)
        else:
            outer.set_result(done.result())

    def running_jobs(self) -> dict[str | None, int]:
        """Jobs still running in a thread, by actor."""
        out: dict[str | None, int] = {}
        for job in self.jobs:
            if not job.finished:
                out[job.actor] = out.get(job.actor, 0) + 1
        return out
