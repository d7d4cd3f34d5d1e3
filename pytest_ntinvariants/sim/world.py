"""``World``: one deterministic test's loop thread, engine, virtual clock and gates.

The API server and the fake endpoints are started as guests on the world's loop
(``host=world.thread``); in-process replicas are spawned on it as actors. The world's
``gate`` is what the server, its watch streams and the endpoints ask before they let
anything reach an actor.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import datetime
import hashlib
import itertools
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from .._loopthread import LoopThread
from ..apiserver.hooks import Gate
from . import entropy
from .clock import VirtualClock, activate
from .engine import DEFAULT_HORIZON, Action, DriveResult, Engine
from .independence import Footprint
from .loop import WorldLoop
from .strategies import Strategy

if TYPE_CHECKING:
    from ..apiserver.hooks import RequestInfo
    from ..apiserver.watch import Delivery, Watcher
    from ..ledger import Ledger

__all__ = ["EPOCH", "World", "WorldGate"]

T = TypeVar("T")

#: Where every world's virtual wall clock starts, so that timestamps (and with them the
#: ledger's digest) are the same in every run.
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

# A port on the loopback address as the ledger may carry it: in a URL or a Host header
# (``127.0.0.1:8080``), or in a Python address tuple of an error message
# (``('127.0.0.1', 8080)``).
_LOCAL_PORT = re.compile(rb"(127\.0\.0\.1(?::|', ))(\d+)")

# Requests that change nothing: they do not keep a world from settling.
_READS = frozenset(("get", "list", "watch", ""))


class World:
    """The loop thread of a deterministic test, with its ``engine`` and ``clock``.

    ``seed`` seeds the engine's choices; ``horizon`` is how long (virtual seconds) nothing
    may happen before the world counts as settled; ``strategy`` chooses each step
    (default: a random walk from ``seed``).

    ``quiet`` (real seconds) makes a world on real time, for actors that run outside its
    loop (controllers run as processes): what reaches them is still held and released one
    action at a time in the seed's order, but the world counts as quiescent once no byte
    arrived for ``quiet`` seconds, ``horizon`` is in real seconds, and the clock is the
    real one (see ``Engine``).
    """

    def __init__(
        self,
        seed: int,
        *,
        horizon: float = DEFAULT_HORIZON,
        quiet: float | None = None,
        strategy: Strategy | None = None,
    ) -> None:
        self.seed = seed
        self.horizon = horizon
        self.quiet = quiet
        self.strategy = strategy
        self.thread = LoopThread(
            "ntinv-world", self._setup, self._teardown, loop_factory=self._make_loop
        )
        self._engine: Engine | None = None
        self._clock: VirtualClock | None = None
        self._ports: dict[int, str] = {}
        self.gate = WorldGate(self)

    def _make_loop(self) -> WorldLoop:
        # Runs in the world's thread before its loop does: the clock activated here is in
        # the context every task and every thread job of the world copies.
        loop = WorldLoop()
        self._engine = Engine(
            loop, self.seed, horizon=self.horizon, quiet=self.quiet, strategy=self.strategy
        )
        self._engine.attach()
        if self.real_time:
            return loop  # the processes read the real clock: so does everything else
        self._clock = VirtualClock(EPOCH, loop.time)
        activate(self._clock)
        entropy.activate(entropy.seeded(self.seed))  # kopf's random choices, jitter
        loop.context = contextvars.copy_context()
        return loop

    async def _setup(self) -> None:
        pass

    async def _teardown(self) -> None:
        self.wind_down()

    @property
    def engine(self) -> Engine:
        """The world's scheduler (once started)."""
        if self._engine is None:
            raise RuntimeError("the world is not started")
        return self._engine

    @property
    def real_time(self) -> bool:
        """Whether the world runs on real time (for actors outside its loop)."""
        return self.quiet is not None

    @property
    def clock(self) -> VirtualClock:
        """The world's virtual wall clock (once started; none on real time)."""
        if self._clock is None:
            raise RuntimeError(
                "a world on real time has no virtual clock"
                if self.real_time
                else "the world is not started"
            )
        return self._clock

    @property
    def loop(self) -> WorldLoop:
        """The world's event loop."""
        loop = self.thread.loop
        assert isinstance(loop, WorldLoop)
        return loop

    def start(self) -> World:
        """Start the world's thread; returns when its loop runs on virtual time."""
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop the world (after its guests); raise what failed on its loop."""
        self.thread.stop()

    def now(self) -> datetime.datetime:
        """The world's wall time (UTC): virtual, or real on real time."""
        if self.real_time:
            return datetime.datetime.now(datetime.UTC)
        return self.clock.now()

    def wall(self) -> float:
        """The world's wall time as POSIX seconds."""
        return time.time() if self.real_time else self.clock.wall()

    # -------------------------------------------------------------- actors

    def call(self, fn: Callable[[], T], timeout: float = 60.0) -> T:
        """Run ``fn`` on the world's loop and return its result once the world is
        quiescent again: what the test does lands between two steps, and whatever it sets
        off (a replica's startup) has reached its first held action before the test goes
        on, so a run does not depend on how fast the test's thread is. Once the world
        has stopped, ``fn`` runs at once: nothing else can."""
        if self.thread.in_loop_thread() or not self.thread.running:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        engine = self.engine

        def run() -> None:
            try:
                result = fn()
            except BaseException as e:
                future.set_exception(e)
                return
            if engine.loop.engine is engine:
                engine.when_quiet(lambda: future.set_result(result))
            else:
                future.set_result(result)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)

    def add_actor(self, identity: str) -> None:
        """Hold what reaches ``identity`` from now on."""
        self.engine.actors.add(identity)

    def forget(self, identity: str) -> None:
        """Drop everything held for ``identity`` (it is gone: none of it happens). Any
        thread."""
        self.run_now(lambda: self.engine.forget(identity))

    def run_now(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the world's loop at once, between two steps, without waiting for
        quiescence (``call`` waits); nothing if the world has stopped. Any thread."""
        if self.thread.in_loop_thread():
            fn()
        elif self.thread.running:
            self.thread.call(fn)

    def name_port(self, port: int, label: str) -> None:
        """Name a listening port (the server's, an endpoint's) for the digest, which must
        not depend on which ports the system handed out."""
        self._ports[port] = label

    def run_until(
        self, done: Callable[[], bool] | None = None, *, timeout: float | None = None
    ) -> DriveResult:
        """Let the world run (see ``Engine.run_until``)."""
        return self.engine.run_until(done, timeout=timeout)

    def drive(self, done: Callable[[], bool], timeout: float) -> None:
        """``run_until(done, timeout=timeout)`` for waits that check ``done`` themselves (a
        trigger's, an endpoint's); the signature ``Trigger.driver`` and ``Sink.driver``
        take."""
        self.run_until(done, timeout=timeout)

    def wind_down(self) -> None:
        """End the scheduling: release whatever is held, and let virtual time run freely
        (each timer at once) while the parts shut down. Idempotent; any thread."""
        if self._engine is None:
            return
        self.run_now(self._wind_down)

    def _wind_down(self) -> None:
        if self._engine is not None and self._engine.loop.engine is self._engine:
            self._engine.detach()

    # -------------------------------------------------------------- digest

    def digest(self, ledger: Ledger) -> str | None:
        """A short hash of the ledger: every entry, with its virtual time, with the ports
        on 127.0.0.1 replaced by names (None on real time, where times and the pace of
        the processes differ from run to run). The server's and the endpoints' ports get
        theirs (``name_port``); any other port the ledger mentions (a refusing port in a
        connection error, say) is numbered in the order it first appears: the system
        hands out other ports in every run."""
        if self.real_time:
            return None
        h = hashlib.sha256()
        names = {str(p).encode(): f"<{label}>".encode() for p, label in self._ports.items()}
        others = itertools.count(1)

        def name(match: re.Match[bytes]) -> bytes:
            port = match.group(2)
            label = names.get(port)
            if label is None:
                label = names[port] = f"<port {next(others)}>".encode()
            return match.group(1) + label

        for entry in ledger:
            # orjson walks the entry's dataclass fields itself (``to_dict`` copies them
            # first, at ten times the cost); the type name tells entries apart.
            h.update(entry.kind.encode())
            h.update(_LOCAL_PORT.sub(name, orjson.dumps(entry, option=orjson.OPT_SORT_KEYS)))
            h.update(b"\n")
        return h.hexdigest()[:16]


class WorldGate(Gate):
    """The world's gate: what the server, watch streams and endpoints ask before they
    let a request, an event or a call reach one of the world's actors."""

    def __init__(self, world: World) -> None:
        self.world = world

    def holds(self, identity: str) -> bool:
        """Whether ``identity`` is one of the world's actors."""
        engine = self.world._engine
        return engine is not None and engine.loop.engine is engine and engine.holds(identity)

    async def hold_request(self, request: RequestInfo, peer_port: int | None) -> None:
        """Hold an API request until the engine releases it."""
        loop = self.world.loop
        own = peer_port is not None and loop.actor_of_port(peer_port) is not None
        await self.world.engine.hold_request(
            request.identity,
            "request",
            _describe_request(request),
            activity=request.verb not in _READS,
            foreign=not own,
            touches=_footprint(request),
        )

    def hold_delivery(
        self, watcher: Watcher, delivery: Delivery, release: Callable[[], None]
    ) -> None:
        """Hold a watch event for one stream, in the stream's order."""
        engine = self.world.engine
        meta = delivery.version.obj.get("metadata") or {}
        engine.hold(
            Action(
                engine.next_seq(),
                watcher.identity,
                "event",
                f"{delivery.type} {watcher.resource.plural}/{meta.get('name', '')} "
                f"rv {delivery.version.rv} (watch {watcher.id})",
                label=f"{delivery.type} {watcher.resource.plural}/"
                f"{meta.get('namespace', '')}/{meta.get('name', '')}",
                release=release,
                drop=_nothing,
                valid=lambda: not watcher.closed and watcher.is_gated(delivery),
                not_before=delivery.not_before,
                channel=watcher,
                activity=delivery.type != "BOOKMARK",
            )
        )

    def caller(self, peer: Any) -> str | None:
        """The actor whose connection ``peer`` (a client's address) is."""
        return self.world.loop.actor_of_port(peer[1]) if peer else None

    async def hold_call(self, sink: str, method: str, path: str, peer: Any) -> None:
        """Hold a call to a fake endpoint made by an actor until the engine releases it."""
        actor = self.caller(peer)
        if actor is None or not self.holds(actor):
            return
        await self.world.engine.hold_request(
            actor,
            "call",
            f"{method} {sink}{path}",
            activity=True,
            foreign=False,
            touches=Footprint(f"sink:{sink}", write=True),
        )


def _footprint(r: RequestInfo) -> Footprint:
    """What a request touches on the server: its resource type's objects (one of them
    when it names one), or everything for a request outside the resources."""
    if r.resource is None:
        return Footprint(None)
    return Footprint(r.resource.group_resource, r.namespace, r.name, r.verb not in _READS)


def _describe_request(r: RequestInfo) -> str:
    where = "/".join(p for p in (r.namespace, r.name, r.subresource) if p)
    plural = r.resource.plural if r.resource is not None else r.path
    return f"{r.verb or r.method} {plural}{'/' + where if where else ''}"


def _nothing() -> None:
    pass
