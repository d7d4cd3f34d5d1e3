"""Controllers as replicas: each with its own identity, started ready, stopped clean, crashable.

Three public classes, one lifecycle (``start``, ``stop``, ``crash``, ``restart``):

- ``KopfReplica`` runs a kopf operator in this process, on its own thread and event loop,
  with its own ``kopf.OperatorRegistry`` (made by your factory), its own
  ``kopf.OperatorSettings`` and its own credentials (a login handler returning the fake
  API server's token for the replica's identity). Once kopf is imported (about 0.4 s,
  once per process), a replica is ready in a few milliseconds and handles its first
  object tens of milliseconds later; a stop takes milliseconds.
- ``ProcessReplica`` runs any controller binary given a kubeconfig (``$KUBECONFIG``) for
  its identity; its output goes to a file.
- ``Replicas`` is N of either kind, named ``replica-0`` .. ``replica-N-1``, started
  concurrently and stopped together.

    with Replicas.kopf(server, make_registry, count=2) as replicas:
        server.apply(manifest)
        ...
        replicas.crash(0)
        replicas.restart(0)

Errors never vanish: a startup failure raises from ``start()``; an operator that died on
its own (not a handler exception: kopf logs and retries those itself) raises from
``stop()``, as does a process that exited with a nonzero code. Every start, stop, crash
and restart is written to the ``Ledger`` if one is given.

What "crash" means for an in-process kopf replica (``KopfReplica.crash``): at once, on the
replica's loop and before any of its tasks runs again, (1) every connection the replica
opened is aborted and new ones are refused -- the API server sees the connections drop
and receives nothing more from this replica, as when a process is killed -- then (2)
every task on the loop is cancelled, again and again until all are gone, so no code
that catches the cancellation gets further than its next ``await``: kopf's cleanup
activity and ``@kopf.on.cleanup`` handlers do not run, finalizers are not removed, and an
in-flight handler is interrupted wherever it awaits (it sees ``CancelledError``). The
limits: a thread cannot be killed mid-bytecode, so cancellation lands at the next
``await``; code between two awaits still runs to its end; ``finally`` blocks and
``except CancelledError`` clauses run (up to their next ``await``), but nothing they
send through the replica's event loop reaches the API server. The fence covers what
connects through that loop (kopf itself, aiohttp, other asyncio clients); a blocking
client (the synchronous ``kubernetes`` package) is not fenced, and a *synchronous*
handler (run by kopf in a worker thread) runs to completion in the background --
``crash()`` waits for it up to its timeout and then raises. aiohttp sessions left open
by the crashed operator (a real crash does not close them either) are closed
afterwards, without network traffic, so that their garbage collection does not warn
later in an unrelated test. A crash never needs the API server: ``crash()`` waits until
the replica is gone (from the replica's own handler it lands at the handler's next
``await``), and ``request_crash()`` does not wait at all, for perturbation triggers and
interceptors running on the server's loop.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import gc
import importlib
import inspect
import itertools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, Self, TypeAlias, TypeVar

from ._loopthread import unstarted_coroutines
from .ledger import Ledger, ReplicaEvent

if TYPE_CHECKING:
    from types import TracebackType

    import kopf

    from .sim import World

__all__ = [
    "ApiEndpoint",
    "KopfReplica",
    "ProcessReplica",
    "RegistryFactory",
    "Replica",
    "ReplicaError",
    "Replicas",
    "SettingsHook",
    "connection_info",
]

logger = logging.getLogger(__name__)

#: Makes a fresh ``kopf.OperatorRegistry``: with no arguments, or given the replica's
#: identity. A string ``"package.module:factory"`` names one to import.
RegistryFactory: TypeAlias = (
    "Callable[[], kopf.OperatorRegistry] | Callable[[str], kopf.OperatorRegistry] | str"
)

#: Adjusts a replica's ``kopf.OperatorSettings`` after the defaults are applied.
SettingsHook: TypeAlias = "Callable[[kopf.OperatorSettings], None]"


def settings_hook(settings: Any) -> SettingsHook | None:
    """A ``SettingsHook`` from what a user wrote: ``None``, a hook, or a mapping of dotted
    setting paths to values (``{"persistence.consistency_timeout": 5.0}``).

    A mapping is checked against ``kopf.OperatorSettings()`` here, so a misspelt path is a
    ``ValueError`` that names it, before any replica starts.
    """
    if settings is None or callable(settings):
        return settings  # type: ignore[no-any-return]
    if not isinstance(settings, Mapping):
        raise ValueError(
            "settings must be a callable taking kopf.OperatorSettings, or a mapping of "
            f"dotted setting paths to values, got {type(settings).__name__}"
        )
    import kopf

    probe = kopf.OperatorSettings()
    for path in settings:
        parts = str(path).split(".")
        target: Any = probe
        for i, part in enumerate(parts):
            if not hasattr(target, part) or part.startswith("_"):
                raise ValueError(
                    f"settings: kopf.OperatorSettings has no {'.'.join(parts[: i + 1])!r}"
                )
            if i < len(parts) - 1:
                target = getattr(target, part)
    values = {str(k): v for k, v in settings.items()}

    def apply(operator_settings: kopf.OperatorSettings) -> None:
        for path, value in values.items():
            *owners, name = path.split(".")
            target: Any = operator_settings
            for owner in owners:
                target = getattr(target, owner)
            setattr(target, name, value)

    return apply


R = TypeVar("R", bound="Replica")

# kopf's login handler id in every registry we run, and its credentials' priority: higher
# than anything a registry brings (kopf's default 0), so the replica's identity wins.
_LOGIN_ID = "ntinv-replica-login"
_LOGIN_PRIORITY = 1000
# The replica's own login ranks above even ``connection_info``'s, which a registry's login
# handler may return too: kopf picks among equally preferred credentials at random, for
# every request, and each has its own session and connection pool.
_REPLICA_LOGIN_PRIORITY = _LOGIN_PRIORITY + 1

# How long a crash may take to cancel every task; a task that keeps catching the
# cancellation longer than this makes crash() fail loudly rather than hang.
_CRASH_BUDGET = 2.0


class ApiEndpoint(Protocol):
    """What a replica needs of the API server (``FakeApiServer`` has it)."""

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:PORT``."""

    @property
    def ca_path(self) -> Path | None:
        """The CA bundle to trust (TLS only)."""

    def token_for(self, identity: str) -> str:
        """The bearer token of ``identity``."""

    def kubeconfig(self, identity: str = ...) -> Path:
        """A kubeconfig file for ``identity``."""


class ReplicaError(RuntimeError):
    """A replica failed: it could not start, died on its own, or did not stop or crash.

    ``errors`` holds the underlying exceptions (the first is also ``__cause__``).
    """

    def __init__(self, message: str, errors: Sequence[BaseException] = ()) -> None:
        lines = [message]
        for e in errors:
            first, *rest = f"{type(e).__name__}: {e}".splitlines() or [""]
            lines.append(f"  - {first}")
            lines.extend(f"    {line}" for line in rest)
        super().__init__("\n".join(lines))
        self.errors = list(errors)
        if self.errors:
            self.__cause__ = self.errors[0]


def connection_info(
    server: ApiEndpoint, identity: str, *, namespace: str = "default"
) -> kopf.ConnectionInfo:
    """The ``kopf.ConnectionInfo`` of ``identity`` on ``server`` (its own bearer token).

    ``KopfReplica`` logs in with this; a registry factory that also needs the credentials
    (an operator with its own API client) can build the same with it.
    """
    import kopf

    ca = server.ca_path
    return kopf.ConnectionInfo(
        server=server.url,
        token=server.token_for(identity),
        scheme="Bearer",
        ca_path=str(ca) if ca is not None else None,
        ca_data=_unused_ca_pem() if ca is None and server.url.startswith("http:") else None,
        # kopf posts Events of cluster-scoped objects into this namespace.
        default_namespace=namespace,
        priority=_LOGIN_PRIORITY,
    )


@functools.cache
def _unused_ca_pem() -> str:
    """A CA certificate for kopf's SSL context over plain http, where nothing uses it.

    kopf builds an SSL context for every API session, even for an ``http://`` server, and
    with no CA given it loads the system trust store: 20 ms alone, up to 150 ms with two
    replicas starting together (measured) -- most of a replica's start-up. Given one CA,
    it loads only that. The key is thrown away: this CA signs nothing.
    """
    from .tls import CertificateAuthority

    return CertificateAuthority.generate(name="ntinv unused (plain http)").cert_pem.decode()


# ------------------------------------------------------------------------- the lifecycle

# A generation is "idle" (none, or reaped), "running" (launched, maybe not yet ready),
# "stopping" (a graceful stop was asked for) or "crashed" (killed; maybe not yet reaped).
_State: TypeAlias = Literal["idle", "running", "stopping", "crashed"]


class Replica(abc.ABC):
    """One controller replica with a stable identity; a new *generation* on every start.

    The lifecycle is shared by every kind of replica: ``start()`` (= ``launch()`` +
    ``wait_ready()``), ``stop()`` (= ``request_stop()`` + ``finish_stop()``), ``crash()``
    (= ``request_crash()`` + waiting until it is gone), ``restart()``. Errors from every
    generation are kept and raised by the next ``stop()`` (also after a crash or a
    restart), so nothing that failed in the background is lost. ``request_crash()`` is
    safe from any thread at any time (a perturbation trigger, an interceptor on the
    server's loop, the replica's own handler); the other calls belong to the test's
    thread. Subclasses implement the underscored primitives.
    """

    def __init__(self, identity: str, *, ledger: Ledger | None = None) -> None:
        self.identity = identity
        self.ledger = ledger
        self.generation = 0  # how many times it was launched
        self._state: _State = "idle"
        self._ready_seen = False
        self._launched_at = 0.0
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []
        # What "ready in N ms" is measured on: a deterministic world's virtual clock, so
        # that the ledger reads the same in every run.
        self._clock: Callable[[], float] = time.monotonic

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.identity!r} generation={self.generation} "
            f"{'alive' if self.running else 'not running'}>"
        )

    # -------------------------------------------------------------- public lifecycle

    @property
    @abc.abstractmethod
    def running(self) -> bool:
        """Whether the current generation is alive (launched, not stopped, not dead)."""

    @property
    def errors(self) -> list[BaseException]:
        """Errors seen so far and not yet raised by ``stop()``."""
        with self._lock:
            return list(self._errors)

    def start(self, timeout: float = 10.0) -> Self:
        """Launch a new generation and return when it is ready; raise ``ReplicaError`` if
        it fails to start (the failed generation is crashed and reaped first)."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Begin starting a new generation without waiting for it (see ``wait_ready``)."""
        if self._state == "crashed":
            self._reap(_CRASH_BUDGET)
        if self._state != "idle":
            raise RuntimeError(f"{self.identity} is already running; stop or crash it first")
        self.generation += 1
        self._ready_seen = False
        self._launched_at = self._clock()
        # Running before _launch returns: the new generation may report back at once.
        self._state = "running"
        try:
            self._launch()
        except BaseException:
            self._state = "idle"
            raise

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the launched generation is ready.

        On failure or timeout the generation is crashed, and ``ReplicaError`` is raised with
        what went wrong (those errors are then not raised again by ``stop()``).
        """
        if self._state != "running":
            raise RuntimeError(f"{self.identity} was not launched")
        if self._ready_seen:
            return
        try:
            self._wait_ready(timeout)
        except BaseException as e:
            self._state = "crashed"
            self._reap(_CRASH_BUDGET)
            if not self._in_own_thread():  # reaped, so it has ended
                self._release()
            with self._lock:
                errors, self._errors = self._errors, []
            # What the caller waited on first, then anything else that went wrong.
            errors = [e, *(x for x in errors if x is not e)]
            raise ReplicaError(
                f"{self.identity} (generation {self.generation}) failed to start", errors
            ) from e
        self._mark_ready()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully (idempotent); raise ``ReplicaError`` for every error seen since
        the last ``stop()``: unexpected deaths, failures to stop in time, background errors."""
        self.request_stop()
        self.finish_stop(timeout)

    def request_stop(self) -> None:
        """Ask the running generation to stop gracefully, without waiting."""
        with self._lock:
            if self._state != "running":
                return
            # One that ended on its own (and said so, if that was a failure) is only reaped.
            self._state = "stopping" if self.running else "crashed"
        if self._state == "stopping":
            self._request_stop()

    def finish_stop(self, timeout: float = 5.0) -> None:
        """Wait for the stop (asking for it if need be), then raise what failed, if anything."""
        self.request_stop()
        try:
            if self._state == "stopping":
                self._finish_stop(timeout)
                self._state = "idle"
                self._record("stopped", f"generation {self.generation}")
            elif self._state == "crashed":
                self._reap(timeout)
        finally:
            # After the errors were made (they quote what they need), before they are raised.
            if self._state == "idle":
                self._release()
        self._raise_errors()

    def request_crash(self) -> bool:
        """Kill the running generation abruptly without waiting for it to be gone; the
        next lifecycle call reaps it. Never blocks, never raises: returns whether there was
        a running generation to crash (not one already stopping, crashed or dead)."""
        with self._lock:
            if self._state != "running" or not self.running:
                return False
            self._state = "crashed"
        self._record("crashed", f"generation {self.generation}, crash()")
        self._signal_crash()
        return True

    def crash(self, timeout: float = 5.0) -> None:
        """Kill the running generation abruptly and wait until it is gone (see the module
        docs for what that means). From the replica's own threads it only requests it.

        Raises ``RuntimeError`` if it is not running (it may have died on its own: then
        ``stop()`` raises why), and ``ReplicaError`` if the crash could not complete.
        """
        if not self.request_crash():
            raise RuntimeError(f"{self.identity} is not running; nothing to crash")
        if self._in_own_thread():
            return  # it lands at the caller's next await; the next stop() reaps it
        self._reap(timeout)
        with self._lock:
            incomplete = [e for e in self._errors if isinstance(e, _CrashIncomplete)]
            self._errors = [e for e in self._errors if not isinstance(e, _CrashIncomplete)]
        if incomplete:
            raise ReplicaError(f"{self.identity} did not crash cleanly", incomplete)

    def restart(self, timeout: float = 10.0) -> Self:
        """Start a new generation, same identity; a running one is first stopped gracefully
        (its errors are kept for the final ``stop()``, not raised here)."""
        self.request_stop()
        if self._state == "stopping":
            self._finish_stop(timeout)
            self._state = "idle"
            self._record("stopped", f"generation {self.generation}, for a restart")
        return self.start(timeout)

    def __enter__(self) -> Self:
        if self._state == "idle":
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ for the subclasses

    @abc.abstractmethod
    def _launch(self) -> None:
        """Begin the new generation (``self.generation`` is already incremented)."""

    @abc.abstractmethod
    def _wait_ready(self, timeout: float) -> None:
        """Return when ready; raise (anything) when it failed or timed out."""

    @abc.abstractmethod
    def _request_stop(self) -> None:
        """Signal a graceful stop; do not wait."""

    @abc.abstractmethod
    def _finish_stop(self, timeout: float) -> None:
        """Wait for the stop; escalate when it takes longer than ``timeout``; keep problems
        with ``_fail``; never raise."""

    @abc.abstractmethod
    def _signal_crash(self) -> None:
        """Kill abruptly, without waiting (idempotent; any thread)."""

    @abc.abstractmethod
    def _crash(self, timeout: float) -> None:
        """Kill abruptly (idempotent) and wait up to ``timeout`` for it to be gone; keep a
        ``_CrashIncomplete`` with ``_fail`` if something survives."""

    @abc.abstractmethod
    def _in_own_thread(self) -> bool:
        """Whether the caller is one of the replica's own threads (which cannot wait for
        the replica to end)."""

    def _release(self) -> None:
        """The replica has ended (stopped, or failed to start): free what only a running
        replica needs. A later ``start()`` may make it anew. Never raises."""
        return  # nothing, unless the subclass holds something

    def _reap(self, timeout: float) -> None:
        if self._in_own_thread():
            return  # a later call from another thread reaps it
        self._crash(timeout)
        self._state = "idle"

    def _fail(self, error: BaseException) -> None:
        """Keep an error for the next ``stop()`` (thread-safe)."""
        with self._lock:
            self._errors.append(error)

    def _mark_ready(self) -> None:
        """The generation is ready: record it, once (from whichever thread saw it first, so
        that the ledger has it before anything the generation does next)."""
        with self._lock:
            if self._ready_seen:
                return
            self._ready_seen = True
        ms = (self._clock() - self._launched_at) * 1000
        # Not under the lock: ledger listeners (perturbation triggers) may call back in.
        self._record(
            "started" if self.generation == 1 else "restarted",
            f"generation {self.generation}, ready in {ms:.1f} ms",
        )

    def _died(self, error: BaseException) -> None:
        """The generation failed on its own: keep the error; if it was running (ready, and
        not being stopped or crashed), record that it crashed."""
        self._fail(error)
        if self._state == "running" and self._ready_seen:
            self._record("crashed", f"generation {self.generation}, died: {error}")

    def _record(self, action: str, detail: str) -> None:
        if self.ledger is not None:
            self.ledger.record(ReplicaEvent, identity=self.identity, action=action, detail=detail)

    def _raise_errors(self) -> None:
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            raise ReplicaError(f"{self.identity} failed", errors)


class _CrashIncomplete(RuntimeError):
    """A crash left something running (a task ignoring cancellation, a sync handler)."""


# ------------------------------------------------------------------------ kopf in-process


class _ReplicaLoop(asyncio.SelectorEventLoop):
    """The event loop of one kopf replica, with two powers a plain loop lacks.

    ``fence()`` cuts every outgoing connection at once and refuses new ones (a crash's
    network half). aiohttp -- so kopf, and most async Kubernetes clients -- connects
    through ``loop.create_connection``, so every API connection of the replica passes here.

    ``close_unstarted()`` closes the coroutines kopf handed to tasks that never started them
    (see ``unstarted_coroutines``).
    """

    def __init__(self) -> None:
        super().__init__()
        self.fenced = False
        # Weakly: a connection that closed and was let go needs no more attention.
        self._outgoing: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()
        self._unstarted: list[Coroutine[Any, Any, Any]] = []
        self.set_task_factory(self._make_task)  # type: ignore[arg-type]

    async def create_connection(  # type: ignore[override]
        self, *args: Any, **kwargs: Any
    ) -> tuple[asyncio.Transport, asyncio.BaseProtocol]:
        """``loop.create_connection``, remembered for ``fence()``."""
        self._refuse_if_fenced(kwargs.get("sock"))
        transport, protocol = await super().create_connection(*args, **kwargs)
        if self.fenced:  # the crash came while connecting
            transport.abort()
            self._refuse_if_fenced(None)
        self._outgoing.add(transport)
        return transport, protocol

    def _refuse_if_fenced(self, sock: socket.socket | None) -> None:
        if self.fenced:
            if sock is not None:  # aiohttp connects the socket itself, then hands it over
                sock.close()
            raise ConnectionRefusedError("the replica crashed; its connections are cut")

    def fence(self) -> None:
        """Abort every open connection now; refuse every new one.

        Also the last step of a replica's loop: a TLS connection its client closed is still
        waiting for the server's close_notify, and a loop closed under it would leave its
        socket to the garbage collector (a ResourceWarning in whichever test runs then).
        """
        self.fenced = True
        for transport in list(self._outgoing):
            transport.abort()
        self._outgoing.clear()

    def _make_task(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        self._unstarted = unstarted_coroutines(coro, self._unstarted)
        return asyncio.Task(coro, loop=loop, **kwargs)

    def close_unstarted(self) -> None:
        """Close the held coroutines that never started (call when the loop is done)."""
        for coro in unstarted_coroutines(None, self._unstarted):
            coro.close()
        self._unstarted.clear()


def _sessions_holding(loop: asyncio.AbstractEventLoop, protocols: set[Any]) -> list[Any]:
    """The open aiohttp sessions on ``loop`` whose connector holds one of ``protocols``
    (acquired for a request, or idle in its pool). Reads the connector's private pools:
    aiohttp names no public way from a connection to its session."""
    found = []
    for session in _open_sessions(loop) if protocols else ():
        connector = session.connector
        held = set(getattr(connector, "_acquired", ()))
        for idle in getattr(connector, "_conns", {}).values():
            held.update(proto for proto, _ in idle)
        if held & protocols:
            found.append(session)
    return found


def _open_sessions(loop: asyncio.AbstractEventLoop) -> list[Any]:
    """The aiohttp sessions on ``loop`` that are not closed (none if aiohttp is not
    loaded)."""
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is None:
        return []
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, aiohttp.ClientSession)
        and getattr(o, "_loop", None) is loop
        and not o.closed
    ]


class _QuietThreadWarning(logging.Filter):
    """Drop kopf's "OS signals are ignored: running not in the main thread" warning in our
    replica threads: there it is by design (we stop kopf with its stop flag)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            threading.current_thread().name.startswith(KopfReplica.THREAD_PREFIX)
            and record.getMessage().startswith("OS signals are ignored")
        )


_quiet_filter_installed = False

_pool_numbers = itertools.count()

# Registries some replica has run: a factory must make a fresh one on every call.
_used_registries: weakref.WeakSet[Any] = weakref.WeakSet()


def _install_quiet_filter() -> None:
    global _quiet_filter_installed
    if not _quiet_filter_installed:
        logging.getLogger("kopf._core.reactor.running").addFilter(_QuietThreadWarning())
        _quiet_filter_installed = True


def _resolve_factory(factory: RegistryFactory) -> tuple[Callable[..., Any], str]:
    """The factory callable and a name for messages; imports ``"pkg.module:attr"``."""
    if isinstance(factory, str):
        module_name, sep, attr = factory.partition(":")
        if not sep or not module_name or not attr:
            raise ValueError(
                f"a registry factory path looks like 'pkg.module:factory', got {factory!r}"
            )
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise TypeError(f"{factory!r} is not callable: {target!r}")
        return target, factory
    if not callable(factory):
        raise TypeError(
            f"a registry factory must be callable (or 'pkg.module:factory'), got {factory!r}; "
            "pass a function that makes a fresh registry: each replica needs its own"
        )
    name = getattr(factory, "__qualname__", None) or repr(factory)
    return factory, name


def _call_factory(fn: Callable[..., Any], identity: str) -> Any:
    """Call with the identity if the factory takes an argument, else with none."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return fn()
    try:
        signature.bind(identity)
    except TypeError:
        return fn()
    return fn(identity)


class KopfReplica(Replica):
    """A kopf operator running in this process as one replica with its own identity.

    ``registry`` makes a fresh ``kopf.OperatorRegistry`` for every generation (see
    ``RegistryFactory``); a login handler for ``identity`` is added to it (unless
    ``login=False``: then the registry must log in by itself). The operator watches
    ``namespaces``, or the whole cluster when ``None``.

    Settings start from ``kopf.OperatorSettings()`` with: ``peering.standalone = True``
    (replicas race; no peering), ``posting.reporting_instance = identity`` (Events name
    the replica that posted them), ``queueing.exit_timeout = graceful_timeout`` (how
    long in-flight handlers may finish at ``stop()``; kopf's default is 2 s), and a thread
    pool named after the replica for sync handlers. Then ``settings(s)`` is called, if
    given, to change anything else (``persistence.consistency_timeout`` stays at kopf's
    default unless you change it there). Last, ``process.ultimate_exiting_timeout`` is
    forced to ``None``: kopf would otherwise SIGKILL the stopping thread, i.e. the whole
    test process.

    Each generation runs on its own thread (``ntinv-kopf-<identity>``) with its own event
    loop, so kopf's per-operator context (credentials vault, Event posting queue and
    settings are context variables set inside the operator's task) belongs to this
    replica alone, a crash disturbs nothing else, and the caller's own event loop (a
    plain or pytest-asyncio test) is never touched. ``start()`` returns when kopf raises
    its ready flag (after ``@kopf.on.startup`` handlers; it logs in and starts watching
    within milliseconds after that, and lists what already exists).
    """

    THREAD_PREFIX = "ntinv-kopf-"

    def __init__(
        self,
        server: ApiEndpoint,
        identity: str,
        registry: RegistryFactory,
        *,
        namespaces: Sequence[str] | None = None,
        settings: SettingsHook | None = None,
        graceful_timeout: float = 0.5,
        login: bool = True,
        ledger: Ledger | None = None,
        world: World | None = None,
    ) -> None:
        super().__init__(identity, ledger=ledger)
        if world is not None and world.real_time:
            raise ValueError(
                "a world on real time is for process replicas; a kopf replica runs in a "
                "world on virtual time (World(seed))"
            )
        if isinstance(namespaces, str):
            raise TypeError("namespaces must be a list of names, not a string")
        if namespaces is not None and not namespaces:
            raise ValueError("namespaces must name at least one namespace (None: cluster-wide)")
        self.server = server
        self.namespaces = list(namespaces) if namespaces is not None else None
        self.factory = registry
        self.settings_hook = settings
        self.graceful_timeout = graceful_timeout
        self.login = login
        #: The registry and settings of the current (or last) generation.
        self.registry: kopf.OperatorRegistry | None = None
        self.settings: kopf.OperatorSettings | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._stop_flag: asyncio.Event | None = None
        self._crash_flag: asyncio.Event | None = None
        self._stopping = False  # asked for; the flags above may not exist yet
        self._crashing = False
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_prefix = ""
        #: The deterministic world this replica runs in as an actor (None: its own thread).
        self.world = world
        self._task: asyncio.Task[Any] | None = None  # the generation's root task in a world
        if world is not None:
            self._clock = world.loop.time

    @property
    def running(self) -> bool:
        """Whether the current generation is alive (its thread, or its task in a world)."""
        if self._state != "running":
            return False
        if self.world is not None:
            return self._task is not None and not self._task.done()
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        """The operator thread of the current (or last) generation."""
        return self._thread

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The operator's event loop (``None`` before the first start)."""
        return self._loop

    # ------------------------------------------------------------------ lifecycle

    def _launch(self) -> None:
        import kopf  # lazily: importing kopf costs about 0.4 s, once

        _install_quiet_filter()
        try:
            fn, name = _resolve_factory(self.factory)
        except Exception as e:
            raise ReplicaError(
                f"{self.identity}: no registry factory: {type(e).__name__}: {e}", [e]
            ) from e
        try:
            registry = _call_factory(fn, self.identity)
        except Exception as e:
            raise ReplicaError(
                f"{self.identity}: the registry factory {name} failed: {type(e).__name__}: {e}",
                [e],
            ) from e
        if not isinstance(registry, kopf.OperatorRegistry):
            raise ReplicaError(
                f"{self.identity}: the registry factory {name} returned "
                f"{type(registry).__name__}, not a kopf.OperatorRegistry"
            )
        if registry in _used_registries:
            # Two operators on one registry would share login handlers, so credentials.
            raise ReplicaError(
                f"{self.identity}: the registry factory {name} returned a registry that a "
                "replica already ran (kopf's default registry?); make a fresh "
                "kopf.OperatorRegistry() on every call"
            )
        _used_registries.add(registry)
        if self.login:
            self._add_login(registry)
        self.registry = registry
        self.settings = self._make_settings()
        self._ready = concurrent.futures.Future()
        # Runs in the operator thread as kopf raises the flag: recorded before anything else.
        self._ready.add_done_callback(lambda f: None if f.exception() else self._mark_ready())
        self._stopping = self._crashing = False
        self._stop_flag = self._crash_flag = None
        self._loop = None
        if self.world is not None:
            self._launch_in_world(self.world, fn)
            return
        self._thread = threading.Thread(
            target=self._main,
            name=f"{self.THREAD_PREFIX}{self.identity}-{self.generation}",
            daemon=True,
        )
        self._thread.start()

    def _add_login(self, registry: kopf.OperatorRegistry) -> None:
        import kopf

        server, identity = self.server, self.identity
        namespace = self.namespaces[0] if self.namespaces else "default"

        # Async on purpose: a sync login handler would run in kopf's thread pool.
        @kopf.on.login(registry=registry, id=_LOGIN_ID)
        async def login(**_: Any) -> kopf.ConnectionInfo:
            info = connection_info(server, identity, namespace=namespace)
            return dataclasses.replace(info, priority=_REPLICA_LOGIN_PRIORITY)

    def _make_settings(self) -> kopf.OperatorSettings:
        import kopf

        settings = kopf.OperatorSettings()
        settings.peering.standalone = True
        settings.posting.reporting_instance = self.identity
        # ``queueing`` was ``batching`` before kopf 1.40 (the old name now warns).
        queueing = getattr(settings, "queueing", None)
        if queueing is None:
            queueing = settings.batching
        queueing.exit_timeout = self.graceful_timeout
        # One named pool for sync handlers and run_in_executor(None): joinable at the end.
        # Unique in the process, so that no other replica's threads match it.
        pool = f"ntinv-sync-{self.identity}-{next(_pool_numbers)}"
        self._executor = concurrent.futures.ThreadPoolExecutor(thread_name_prefix=pool)
        self._pool_prefix = f"{pool}_"  # the pool names its threads "<prefix>_<n>"
        settings.execution.executor = self._executor
        if self.settings_hook is not None:
            try:
                self.settings_hook(settings)
            except Exception as e:
                self._executor.shutdown(wait=False)
                raise ReplicaError(
                    f"{self.identity}: the settings hook failed: {type(e).__name__}: {e}", [e]
                ) from e
        settings.process.ultimate_exiting_timeout = None
        return settings

    def _wait_ready(self, timeout: float) -> None:
        if self.world is not None:
            ready = self._ready
            self.world.run_until(ready.done, timeout=timeout)
            if not ready.done():
                raise TimeoutError(
                    f"{self.identity} did not become ready within {timeout}s (virtual)"
                )
        try:
            self._ready.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"{self.identity} did not become ready within {timeout}s") from None

    def _request_stop(self) -> None:
        self._stopping = True  # seen by _lifetime if its flag does not exist yet
        self._call_in_loop(lambda: self._stop_flag.set() if self._stop_flag else None)

    def _finish_stop(self, timeout: float) -> None:
        if self.world is not None:
            self._end_in_world(self.world, timeout, graceful=True)
            return
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                # Graceful took too long (a handler ignoring kopf's exit timeout, ...):
                # cancel everything, then report it.
                self._fail(
                    TimeoutError(
                        f"{self.identity} did not stop gracefully within {timeout}s; "
                        "its tasks were cancelled"
                    )
                )
                self._crash(_CRASH_BUDGET)
                return
        self._join_pool(deadline)

    def _signal_crash(self) -> None:
        self._crashing = True  # seen by _lifetime if its flag does not exist yet
        self._call_in_loop(lambda: self._crash_flag.set() if self._crash_flag else None)

    def _in_own_thread(self) -> bool:
        if self.world is not None and self.world.thread.in_loop_thread():
            return True  # the world's loop cannot wait for anything on itself
        me = threading.current_thread()
        return me is self._thread or bool(
            self._pool_prefix and me.name.startswith(self._pool_prefix)
        )

    def _crash(self, timeout: float) -> None:
        if self.world is not None:
            self._signal_crash()
            self._end_in_world(self.world, timeout, graceful=False)
            return
        deadline = time.monotonic() + timeout
        self._signal_crash()
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self._fail(
                    _CrashIncomplete(
                        f"{self.identity}: the operator thread still runs {timeout}s after a crash"
                    )
                )
                return
        self._join_pool(deadline)

    def _join_pool(self, deadline: float) -> None:
        """Join the sync-handler threads of this generation (they cannot be cancelled)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        me = threading.current_thread()
        for t in threading.enumerate():
            if t is not me and self._pool_prefix and t.name.startswith(self._pool_prefix):
                t.join(max(0.0, deadline - time.monotonic()))
                if t.is_alive():
                    cls = _CrashIncomplete if self._crashing else TimeoutError
                    self._fail(
                        cls(
                            f"{self.identity}: a synchronous handler is still running in "
                            f"{t.name}; threads cannot be cancelled"
                        )
                    )

    def _call_in_loop(self, fn: Callable[[], object]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed between the check and the call
                loop.call_soon_threadsafe(fn)

    # -------------------------------------------------------------- operator thread

    def _main(self) -> None:
        loop = _ReplicaLoop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._on_loop_error)
        if self._executor is not None:
            loop.set_default_executor(self._executor)
        try:
            loop.run_until_complete(self._lifetime())
        except BaseException as e:  # only if _lifetime itself is broken
            self._fail(e)
        finally:
            try:
                # Whatever the operator left behind (tasks its own code spawned).
                leftovers = loop.run_until_complete(self._cancel_all(_CRASH_BUDGET))
                if leftovers:
                    self._fail(
                        _CrashIncomplete(
                            f"{self.identity}: tasks ignored cancellation: {', '.join(leftovers)}"
                        )
                    )
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.fence()
                loop.run_until_complete(asyncio.sleep(0))  # the aborts close their sockets
            finally:
                asyncio.set_event_loop(None)
                loop.close()
                loop.close_unstarted()
                if not self._ready.done():
                    self._ready.set_exception(RuntimeError("the operator ended before ready"))

    async def _lifetime(self) -> None:
        # kopf's credentials vault is private API, but kopf.operator() takes one: owning it
        # lets us close its sessions once more at the end (see below).
        from kopf._cogs.structs.credentials import Vault

        vault = Vault()
        try:
            await self._operate(vault)
        finally:
            # kopf closes the vault in its cleanup, but a request orphaned by the stop
            # (one of its initial discovery reads) can reopen a session after that, which
            # would warn "Unclosed client session" when collected, in some later test.
            with contextlib.suppress(Exception):
                await vault.close()

    async def _operate(self, vault: Any) -> None:
        import kopf

        assert self.registry is not None and self.settings is not None
        self._stop_flag = asyncio.Event()
        self._crash_flag = asyncio.Event()
        # A stop or crash asked for before these flags existed (no await since: no race).
        if self._stopping:
            self._stop_flag.set()
        if self._crashing:
            self._crash_flag.set()
        crash = asyncio.create_task(self._crash_flag.wait(), name="ntinv crash waiter")
        operator = asyncio.create_task(
            kopf.operator(
                registry=self.registry,
                settings=self.settings,
                identity=self.identity,  # type: ignore[arg-type]  # kopf's NewType of str
                clusterwide=self.namespaces is None,
                namespaces=self.namespaces or (),
                stop_flag=self._stop_flag,
                ready_flag=self._ready,
                vault=vault,
            ),
            name=f"ntinv kopf operator {self.identity}",
        )
        own = {asyncio.current_task(), crash, operator}
        trim = asyncio.create_task(self._trim_shutdown(own), name="ntinv stop trimmer")
        await asyncio.wait({crash, operator}, return_when=asyncio.FIRST_COMPLETED)
        trim.cancel()
        if crash.done():
            await self._crash_now()
            return
        crash.cancel()
        if operator.cancelled():
            error: BaseException = RuntimeError("the operator task was cancelled")
        elif operator.exception() is not None:
            error = operator.exception()  # type: ignore[assignment]
        elif not self._stop_flag.is_set():
            error = RuntimeError("the operator exited on its own")
        else:
            return
        # kopf's ActivityError says only "One or more handlers failed": add what they raised.
        outcomes = getattr(error, "outcomes", None)
        causes = [o.exception for o in (outcomes or {}).values() if getattr(o, "exception", None)]
        if self._ready.done():
            self._died(error)
            for cause in causes:
                self._fail(cause)
        else:
            self._ready.set_exception(error)  # start() raises it, then these
            for cause in causes:
                self._fail(cause)

    async def _trim_shutdown(self, own: set[asyncio.Task[Any] | None]) -> None:
        """When kopf shuts down, cancel at once what it would give 5 more seconds.

        kopf ends (on the stop flag, or when a root task fails) in order: its root tasks
        (workers finish their handlers within ``queueing.exit_timeout``), then the cleanup
        activity (``@kopf.on.cleanup`` handlers; the API sessions are closed), then it
        waits up to a hard-coded 5 s for "hung" tasks -- anything else still running --
        before cancelling them. Those are tasks handlers spawned, or orphans: a stop during
        kopf's initial resource scan leaves the scan's requests retrying against the closed
        session until the 5 s are up. Cancelling them as soon as the cleanup task ends keeps
        every stop in milliseconds and changes nothing else. (The task is found by kopf's
        name for it; with a kopf that names it otherwise, kopf's own timing applies.)
        """
        me = asyncio.current_task()
        for _ in range(10):  # kopf creates it in its first step, before this one runs
            cleanup = [t for t in self._own_tasks() if t.get_name() == "startup/cleanup activities"]
            if cleanup:
                break
            await asyncio.sleep(0)
        else:
            return
        await asyncio.wait(cleanup)
        while hung := [
            t for t in self._own_tasks() if t not in own and t is not me and not t.done()
        ]:
            for task in hung:
                task.cancel()
            await asyncio.wait(hung, timeout=_CRASH_BUDGET)

    async def _crash_now(self) -> None:
        if self.world is not None:
            # Its aiohttp sessions, told apart from the other replicas' on the shared loop
            # by their connections (a session that has none stays open).
            protocols = {t.get_protocol() for t in self.world.loop.connections_of(self.identity)}
            sessions = _sessions_holding(self.world.loop, protocols)
            # First the network and what the world holds for it, so nothing the cancelled
            # code does reaches the server, then every task of this replica.
            self.world.loop.fence(self.identity)
            self.world.engine.forget(self.identity)
            leftovers = await self._cancel_all(_CRASH_BUDGET)
            if leftovers:
                self._fail(
                    _CrashIncomplete(
                        f"{self.identity}: tasks ignored cancellation: {', '.join(leftovers)}"
                    )
                )
            for session in sessions:  # (their connections are aborted: nothing is sent)
                with contextlib.suppress(Exception):
                    await session.close()
            return
        loop = self._loop
        assert isinstance(loop, _ReplicaLoop)
        # First the network, so nothing the cancelled code does reaches the server...
        loop.fence()
        # ...then every task, repeatedly, so none gets past its next await.
        leftovers = await self._cancel_all(_CRASH_BUDGET)
        if leftovers:
            self._fail(
                _CrashIncomplete(
                    f"{self.identity}: tasks ignored cancellation: {', '.join(leftovers)}"
                )
            )
        await self._close_orphaned_sessions(loop)

    async def _cancel_all(self, budget: float) -> list[str]:
        """Cancel every other task on this loop until none is left; the names of those
        still alive after ``budget`` seconds."""
        me = asyncio.current_task()
        deadline = time.monotonic() + budget
        while True:
            pending = [t for t in self._own_tasks() if t is not me and not t.done()]
            if not pending:
                return []
            if time.monotonic() > deadline:
                return [t.get_name() for t in pending]
            for task in pending:
                task.cancel()
            # One loop iteration: every cancelled task runs to its next await (or ends).
            await asyncio.sleep(0)

    @staticmethod
    async def _close_orphaned_sessions(loop: asyncio.AbstractEventLoop) -> None:
        """Close aiohttp sessions the crashed operator left open (kopf's own, and any its
        handlers kept for a cleanup handler that will never run). Their connections are
        already aborted, so this sends nothing; it spares a ResourceWarning at garbage
        collection, which would fail some later, unrelated test."""
        for session in _open_sessions(loop):
            with contextlib.suppress(Exception):
                await session.close()

    def _own_tasks(self) -> set[asyncio.Task[Any]]:
        """This replica's tasks: all of its loop's, or in a world, those of its actor."""
        if self.world is not None:
            return set(self.world.loop.tasks_of(self.identity))
        return asyncio.all_tasks()

    # ------------------------------------------------------- in a deterministic world

    def _launch_in_world(self, world: World, factory: Callable[..., Any]) -> None:
        from .sim.patching import install, world_prefixes

        # kopf and the controller read the wall clock directly (Events, progress
        # annotations, the controller's own timestamps): in the world they read its clock
        # (outside the world it stays the real one; see ``sim.clock`` and ``sim.patching``).
        install(world_prefixes())
        world.add_actor(self.identity)
        world.loop.on_actor_error(self.identity, self._on_loop_error)
        self._loop = world.loop
        name = f"ntinv kopf replica {self.identity}-{self.generation}"
        self._task = world.call(
            lambda: world.loop.spawn(self.identity, self._world_lifetime(world), name)
        )

    async def _world_lifetime(self, world: World) -> None:
        try:
            await self._lifetime()
        except BaseException as e:  # only if _lifetime itself is broken
            self._fail(e)
        finally:
            leftovers = await self._cancel_all(_CRASH_BUDGET)
            if leftovers:
                self._fail(
                    _CrashIncomplete(
                        f"{self.identity}: tasks ignored cancellation: {', '.join(leftovers)}"
                    )
                )
            world.loop.fence(self.identity)
            world.engine.forget(self.identity)
            world.loop.close_unstarted(self.identity)
            if not self._ready.done():
                self._ready.set_exception(RuntimeError("the operator ended before ready"))

    def _end_in_world(self, world: World, timeout: float, *, graceful: bool) -> None:
        task = self._task
        if task is not None and not task.done():
            world.run_until(task.done, timeout=timeout)
            if not task.done() and graceful:
                self._fail(
                    TimeoutError(
                        f"{self.identity} did not stop gracefully within {timeout}s "
                        "(virtual); its tasks were cancelled"
                    )
                )
                self._signal_crash()
                world.run_until(task.done, timeout=_CRASH_BUDGET)
            if not task.done():
                self._fail(
                    _CrashIncomplete(f"{self.identity}: still running {timeout}s after a crash")
                )
        self._join_pool(time.monotonic() + timeout)

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if self._crashing or (isinstance(loop, _ReplicaLoop) and loop.fenced):
            logger.debug("%s after the crash: %s", self.identity, context.get("message"))
            return
        if error is None:
            logger.warning("%s: %s", self.identity, context.get("message"))
            return
        self._fail(error)


# ------------------------------------------------------------------ external processes


class ProcessReplica(Replica):
    """A controller running as an external process (any language), given a kubeconfig.

    ``argv`` is run with ``$KUBECONFIG`` pointing at ``server.kubeconfig(identity)`` and
    ``$NTINV_IDENTITY`` set to the identity, over the current environment; ``env``
    entries override both. stdout and stderr go to ``log_path`` (in ``log_dir``), appended
    generation after generation with a marker line between them. Without ``log_dir`` the
    log goes to a temporary directory of the replica's own, removed when the replica ends
    (a ``stop()``, or a ``start()`` that failed: their errors quote the end of the output
    first) unless ``keep_log`` is true; a replica that is never stopped removes it when it
    is garbage-collected or at interpreter exit. A ``log_dir`` you give is never removed.
    Under the pytest plugin, ``ntinv.start_process_replicas`` writes the logs into the
    test's ``tmp_path``, which pytest keeps or removes by its retention policy.

    ``ready`` says when a generation is ready: ``None`` (as soon as it is spawned), a
    regular expression (``str`` or compiled) searched in each output line, or a callable
    returning ``True`` when ready (polled, starting at 1 ms). A process that exits
    before it is ready fails ``start()`` with its exit code and the end of its output.

    ``stop()`` sends SIGTERM to the process group, then SIGKILL after the timeout (and
    reports that it had to); ``crash()`` sends SIGKILL at once. Exit codes 0 and "killed by
    SIGTERM" are clean after a stop; a process that exited by itself with a nonzero code
    is reported by the next ``stop()``.

    ``world``: a world on real time (``World(seed, quiet=...)``) whose engine holds what
    reaches the replica (responses, watch events) and releases it step by step; waiting
    for readiness then runs the world, and a crash drops what the world held for it.
    """

    def __init__(
        self,
        server: ApiEndpoint,
        identity: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        env: Mapping[str, str] | None = None,
        ready: str | re.Pattern[str] | Callable[[], bool] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        keep_log: bool = False,
        ledger: Ledger | None = None,
        world: World | None = None,
    ) -> None:
        super().__init__(identity, ledger=ledger)
        if world is not None and not world.real_time:
            raise ValueError(
                "process replicas run outside the world's loop: they need a world on real "
                "time (World(seed, quiet=...)), not one on virtual time"
            )
        #: The world on real time that holds what reaches this replica (None: nothing held).
        self.world = world
        if isinstance(argv, str):
            raise TypeError("argv must be a list of arguments, not a string")
        if not argv:
            raise ValueError("argv must not be empty")
        self.server = server
        self.argv = [os.fspath(a) for a in argv]
        self.env = dict(env or {})
        self.ready = re.compile(ready) if isinstance(ready, str) else ready
        self.cwd = cwd
        self._log_dir = Path(log_dir) if log_dir is not None else None
        #: Keep the replica's own temporary log directory when it ends (no effect on a
        #: ``log_dir`` you gave: that is never removed).
        self.keep_log = keep_log
        # Removes the temporary directory the replica made for its log (None: it made none).
        self._own_log_dir: weakref.finalize[Any, Any] | None = None
        self._log_removed = False
        self.process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._matched = threading.Event()  # the ready pattern was seen
        self._eof = threading.Event()  # the output ended (the process exited)
        self._wake = threading.Event()  # either of the two
        self._signalled = False

    @property
    def log_path(self) -> Path:
        """The file with the process's output (every generation since the last time the
        replica's own temporary directory was removed)."""
        if self._log_dir is None:
            path = Path(tempfile.mkdtemp(prefix="ntinv-replica-"))
            # Also removed if the replica is never stopped: when it is collected, or at
            # interpreter exit (weakref.finalize runs at exit).
            self._own_log_dir = weakref.finalize(self, shutil.rmtree, str(path), ignore_errors=True)
            if self.keep_log:
                self._own_log_dir.detach()
            self._log_dir = path
        return self._log_dir / f"{self.identity}.log"

    def output(self) -> str:
        """Everything the process printed so far (all generations); empty once the
        replica's own temporary log directory was removed."""
        path = self.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def _release(self) -> None:
        own = self._own_log_dir
        if own is None:
            return
        if self.keep_log:
            own.detach()  # not at exit either
        elif own.alive:
            own()  # shutil.rmtree
            self._log_removed = True

    @property
    def running(self) -> bool:
        """Whether the current generation's process is alive."""
        process = self.process
        return self._state == "running" and process is not None and process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code of the last generation (negative: killed by that signal)."""
        return self.process.returncode if self.process is not None else None

    # ------------------------------------------------------------------ lifecycle

    def _launch(self) -> None:
        if self._log_removed:  # removed when it last ended: a new generation, a new one
            self._log_dir, self._own_log_dir, self._log_removed = None, None, False
        environment = dict(os.environ)
        environment["KUBECONFIG"] = str(self.server.kubeconfig(self.identity))
        environment["NTINV_IDENTITY"] = self.identity
        environment.update(self.env)
        path = self.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        world = self.world
        if world is not None:  # before its first request can arrive
            world.run_now(lambda: world.add_actor(self.identity))
        with path.open("ab") as log:
            log.write(
                f"--- ntinv: {self.identity} generation {self.generation}: "
                f"{' '.join(self.argv)}\n".encode()
            )
        self._matched.clear()
        self._wake.clear()
        self._eof.clear()
        self._signalled = False
        # A session of its own: stop and crash signal the whole process group, so helper
        # processes die too and nothing keeps the output pipe open.
        self.process = subprocess.Popen(
            self.argv,
            env=environment,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(
            target=self._read_output,
            args=(self.process, path),
            name=f"ntinv-output-{self.identity}-{self.generation}",
            daemon=True,
        )
        self._reader.start()

    def _read_output(self, process: subprocess.Popen[bytes], path: Path) -> None:
        pattern = self.ready if isinstance(self.ready, re.Pattern) else None
        assert process.stdout is not None
        with path.open("ab") as log:
            for line in process.stdout:
                log.write(line)
                log.flush()
                seen = self._matched.is_set()
                if (
                    pattern is not None
                    and not seen
                    and pattern.search(line.decode(errors="replace"))
                ):
                    self._mark_ready()
                    self._matched.set()
                    self._wake.set()
        process.stdout.close()
        rc = process.wait()
        if self.world is not None:  # gone: nothing held for it is answered any more
            self.world.forget(self.identity)
        self._eof.set()
        self._wake.set()
        # Exit code 0 on its own is a controller that chose to end; anything else, unasked
        # for, is a failure.
        if not self._signalled and rc == 0:
            self._record("stopped", f"generation {self.generation}, exited by itself (code 0)")
        elif not self._signalled:
            self._died(
                RuntimeError(f"exited by itself with code {rc}; output ends with:\n{self._tail()}")
            )

    def _wait_ready(self, timeout: float) -> None:
        process = self.process
        assert process is not None
        if isinstance(self.ready, re.Pattern):
            self._pause(self._wake, timeout)
            if self._matched.is_set():
                return
            if self._eof.is_set():
                self._exited_early()
            self._timed_out(timeout)
        elif self.ready is not None:
            deadline = time.monotonic() + timeout
            pause = 0.001
            while not self.ready():
                if self._pause(self._eof, pause):  # the pause between polls; wakes on exit
                    self._exited_early()
                if time.monotonic() > deadline:
                    self._timed_out(timeout)
                pause = min(pause * 2, 0.05)  # a callable has no event to wait on: poll

    def _pause(self, event: threading.Event, seconds: float) -> bool:
        """``event.wait(seconds)``; in a world, running the world meanwhile (the
        replica's requests are held until it releases them)."""
        world = self.world
        if world is None:
            return event.wait(seconds)
        deadline = time.monotonic() + seconds
        # A drive can end before the deadline (the world settled while the process was
        # busy starting, without a request): drive again until the deadline.
        while not event.is_set() and (left := deadline - time.monotonic()) > 0:
            world.run_until(event.is_set, timeout=left)
        return event.is_set()

    def _exited_early(self) -> None:
        raise RuntimeError(
            f"{self.identity} exited with code {self.returncode} before it was ready; "
            f"output ends with:\n{self._tail()}"
        )

    def _timed_out(self, timeout: float) -> None:
        raise TimeoutError(
            f"{self.identity} was not ready within {timeout}s; output ends with:\n{self._tail()}"
        )

    def _tail(self, lines: int = 20) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def _signal(self, sig: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        self._signalled = True
        with contextlib.suppress(ProcessLookupError):  # it exited just now
            os.killpg(process.pid, sig)

    def _request_stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _finish_stop(self, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            process.wait()
            self._fail(
                TimeoutError(
                    f"{self.identity} did not exit within {timeout}s of SIGTERM; killed. "
                    f"Output ends with:\n{self._tail()}"
                )
            )
            self._join_reader(timeout)
            return
        self._join_reader(timeout)
        rc = process.returncode
        # Clean answers to SIGTERM: exit 0, death by the signal, or a shell's 128 + 15.
        if self._signalled and rc not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            self._fail(
                RuntimeError(
                    f"{self.identity} exited with code {rc} on SIGTERM; "
                    f"output ends with:\n{self._tail()}"
                )
            )

    def _signal_crash(self) -> None:
        world = self.world
        if world is None:
            self._signal(signal.SIGKILL)
            return

        def kill() -> None:
            # On the world's loop, between two steps: nothing held for the replica is
            # released after the kill.
            self._signal(signal.SIGKILL)
            world.engine.forget(self.identity)

        world.run_now(kill)

    def _in_own_thread(self) -> bool:
        return threading.current_thread() is self._reader

    def _crash(self, timeout: float) -> None:
        process = self.process
        if process is None:
            return
        self._signal_crash()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail(_CrashIncomplete(f"{self.identity} survived SIGKILL for {timeout}s"))
            return
        self._join_reader(timeout)

    def _join_reader(self, timeout: float) -> None:
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(timeout)
            if reader.is_alive():
                self._fail(
                    TimeoutError(
                        f"{self.identity}: its output pipe is still open (a process outside its "
                        "process group inherited it?)"
                    )
                )


# ---------------------------------------------------------------------- many replicas


class Replicas(Generic[R]):
    """N replicas named ``<prefix>0`` .. ``<prefix>N-1``, started and stopped together.

    ``make(identity)`` builds each replica; ``Replicas.kopf(...)`` and
    ``Replicas.process(...)`` are the usual ways to call this. Index with an int or an
    identity; ``crash(i)`` and ``restart(i)`` act on one replica. As a context manager it
    starts all on entry and stops all on exit.
    """

    def __init__(
        self, make: Callable[[str], R], count: int = 2, *, prefix: str = "replica-"
    ) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.replicas: list[R] = [make(f"{prefix}{i}") for i in range(count)]

    @classmethod
    def kopf(
        cls,
        server: ApiEndpoint,
        registry: RegistryFactory,
        count: int = 2,
        *,
        prefix: str = "replica-",
        **options: Any,
    ) -> Replicas[KopfReplica]:
        """``count`` ``KopfReplica``s from one registry factory; ``options`` go to each."""
        return Replicas(
            lambda identity: KopfReplica(server, identity, registry, **options),
            count,
            prefix=prefix,
        )

    @classmethod
    def process(
        cls,
        server: ApiEndpoint,
        argv: Sequence[str | os.PathLike[str]],
        count: int = 2,
        *,
        prefix: str = "replica-",
        **options: Any,
    ) -> Replicas[ProcessReplica]:
        """``count`` ``ProcessReplica``s running ``argv``; ``options`` go to each."""
        return Replicas(
            lambda identity: ProcessReplica(server, identity, argv, **options),
            count,
            prefix=prefix,
        )

    @property
    def identities(self) -> list[str]:
        """The replicas' identities, in order."""
        return [r.identity for r in self.replicas]

    def __len__(self) -> int:
        return len(self.replicas)

    def __iter__(self) -> Iterator[R]:
        return iter(self.replicas)

    def __getitem__(self, key: int | str) -> R:
        if isinstance(key, str):
            for replica in self.replicas:
                if replica.identity == key:
                    return replica
            raise KeyError(f"no replica {key!r}; replicas are {self.identities}")
        return self.replicas[key]

    def __repr__(self) -> str:
        return f"<Replicas {self.replicas!r}>"

    def start(self, timeout: float = 10.0) -> Replicas[R]:
        """Launch every replica at once, then wait until all are ready.

        If any fails, the others are stopped and ``ReplicaError`` lists what failed.
        """
        deadline = time.monotonic() + timeout
        launched: list[R] = []
        failures: list[BaseException] = []
        for replica in self.replicas:
            try:
                replica.launch()
                launched.append(replica)
            except BaseException as e:
                failures.append(e)
                break
        for replica in launched:
            if failures:
                break
            try:
                replica.wait_ready(max(0.0, deadline - time.monotonic()))
            except BaseException as e:
                failures.append(e)
        if failures:
            try:
                self.stop()
            except ReplicaError as e:
                failures.append(e)
            raise ReplicaError(f"{len(failures)} replica(s) failed to start", failures)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop every replica gracefully (all signalled first, then awaited); raise one
        ``ReplicaError`` listing every replica's errors."""
        for replica in self.replicas:
            replica.request_stop()
        deadline = time.monotonic() + timeout
        failures: list[BaseException] = []
        for replica in self.replicas:
            try:
                replica.finish_stop(max(0.0, deadline - time.monotonic()))
            except ReplicaError as e:
                failures.append(e)
        if failures:
            raise ReplicaError(f"{len(failures)} replica(s) failed", failures)

    def crash(self, key: int | str, timeout: float = 5.0) -> None:
        """Crash one replica and wait until it is gone (see ``Replica.crash``)."""
        self[key].crash(timeout)

    def request_crash(self, key: int | str) -> bool:
        """Crash one replica without waiting; safe from any thread (see
        ``Replica.request_crash``)."""
        return self[key].request_crash()

    def restart(self, key: int | str, timeout: float = 10.0) -> R:
        """Restart one replica (see ``Replica.restart``)."""
        replica = self[key]
        replica.restart(timeout)
        return replica

    def __enter__(self) -> Replicas[R]:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
