"""Virtual wall-clock time for code running inside a simulated world.

The simulation runs operators on one asyncio event loop whose ``loop.time()`` is virtual:
it jumps from one scheduled moment to the next instead of waiting. Operators and kopf
also read the wall clock directly (``datetime.datetime.now(datetime.UTC)`` in kopf's
events, peering, probing and credentials; ``datetime.now(UTC)`` in controllers), and a
lease written with a real timestamp but expired by virtual time would make the world
disagree with itself. This module makes those reads return virtual wall time.

Three pieces:

* ``VirtualClock`` turns a monotonic ``source`` (typically the world loop's ``time``)
  into wall time: ``epoch`` plus however far the source has moved since the clock was
  made.
* A context variable says which clock, if any, is active. ``activate(clock)`` sets it in
  the current context: the world loop's thread sets it before running the loop, its
  tasks inherit it (asyncio copies the context into each task), and executor jobs that
  run with a copy of the loop's context (``asyncio.to_thread``) see it too. pytest's own
  thread, and threads started without a copied context, see real time.
* ``install(prefixes)`` rebinds module globals of the named packages: a global bound to
  the ``datetime.datetime`` class becomes ``VirtualDatetime``, one bound to the
  ``datetime`` module becomes a proxy module whose ``datetime`` is ``VirtualDatetime``.
  ``VirtualDatetime.now()``/``utcnow()``/``today()`` answer from the active clock, or
  from the real clock when none is active, so patched code behaves normally outside the
  simulation. The same pass rebinds the ``random`` module and its functions to the
  world-seeded ones of ``entropy``. ``uninstall()`` puts every global back.

Only module globals are rebound: a reference captured elsewhere before ``install`` (a
default argument, a class attribute, ``now = datetime.now`` at import) still reads real
time, and ``type(x) is datetime`` with the patched name is false (``isinstance`` works).
The standard library, pytest and this plugin are never patched.
"""

from __future__ import annotations

import contextvars
import datetime
import sys
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

from . import entropy

__all__ = [
    "VirtualClock",
    "VirtualDatetime",
    "activate",
    "active",
    "deactivate",
    "install",
    "uninstall",
    "world_prefixes",
]

# The real objects, captured before anything could patch this module's view of them.
_REAL_MODULE = datetime
_REAL_DATETIME = datetime.datetime
_UTC = datetime.UTC
# (bound once, and called positionally below: now() runs on every wall-clock read)
_TIMEDELTA = datetime.timedelta


class VirtualClock:
    """Wall time that advances only as ``source`` advances.

    ``source`` is a monotonic clock in seconds, typically the simulated loop's ``time``.
    Its value when the clock is made is the origin: ``now()`` is ``epoch`` plus
    ``source() - origin`` seconds, as an aware UTC datetime, and ``wall()`` is the same
    moment as a POSIX timestamp (what ``time.time()`` would say). ``epoch`` must be
    timezone-aware: a naive one would be read as local time by some callers and as UTC
    by others, and a simulation must not depend on the machine's timezone.
    """

    __slots__ = ("_epoch", "_epoch_ts", "_origin", "_source")

    def __init__(self, epoch: datetime.datetime, source: Callable[[], float]) -> None:
        if epoch.tzinfo is None or epoch.utcoffset() is None:
            raise ValueError(f"VirtualClock needs a timezone-aware epoch, got {epoch!r}")
        utc = epoch.astimezone(_UTC)
        # A datetime subclass instance could leak its type into every now(); keep the
        # plain class so results compare, hash and pickle like any other datetime.
        self._epoch = _REAL_DATETIME(
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond, _UTC
        )
        self._epoch_ts = self._epoch.timestamp()
        self._source = source
        self._origin = source()

    @property
    def epoch(self) -> datetime.datetime:
        """The wall time at the clock's origin, an aware UTC datetime."""
        return self._epoch

    def now(self) -> datetime.datetime:
        """The current virtual wall time, an aware UTC ``datetime.datetime``."""
        return self._epoch + _TIMEDELTA(0, self._source() - self._origin)

    def wall(self) -> float:
        """The current virtual wall time as a POSIX timestamp, like ``time.time()``."""
        return self._epoch_ts + (self._source() - self._origin)

    def __repr__(self) -> str:
        return f"VirtualClock(epoch={self._epoch.isoformat()}, now={self.now().isoformat()})"


_ACTIVE: contextvars.ContextVar[VirtualClock | None] = contextvars.ContextVar(
    "pytest_ntinvariants.sim.clock.active", default=None
)


def activate(clock: VirtualClock) -> contextvars.Token[VirtualClock | None]:
    """Make ``clock`` the active clock in the current context; return the undo token.

    Pass the token to ``deactivate`` (in the same context) to restore what was active
    before. A context that is simply discarded needs no undo.
    """
    return _ACTIVE.set(clock)


def deactivate(token: contextvars.Token[VirtualClock | None]) -> None:
    """Undo the ``activate`` call that returned ``token``."""
    _ACTIVE.reset(token)


def active() -> VirtualClock | None:
    """The clock active in the current context, or ``None`` outside any simulation."""
    return _ACTIVE.get()


class _VirtualDatetimeMeta(type):
    """Makes ``VirtualDatetime`` stand in for ``datetime.datetime`` in type checks and calls.

    Patched code still receives and makes real datetimes, so ``isinstance(x, datetime)``
    with the patched name must accept them, and ``datetime(...)`` (like every alternate
    constructor, which the C implementation routes through a call of the class) must
    produce them: an instance of the subclass would not be equal in ``type()`` checks
    made by serialisers and would pickle by reference to this module.
    Subclasses of ``VirtualDatetime`` (if anyone makes one) behave as ordinary classes.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is VirtualDatetime:
            return _REAL_DATETIME(*args, **kwargs)
        return super().__call__(*args, **kwargs)

    def __instancecheck__(cls, obj: Any) -> bool:
        if cls is VirtualDatetime:
            return isinstance(obj, _REAL_DATETIME)
        return super().__instancecheck__(obj)

    def __subclasscheck__(cls, sub: Any) -> bool:
        if cls is VirtualDatetime:
            return issubclass(sub, _REAL_DATETIME)
        return super().__subclasscheck__(sub)


class VirtualDatetime(_REAL_DATETIME, metaclass=_VirtualDatetimeMeta):
    """``datetime.datetime`` whose "now" readings follow the active ``VirtualClock``.

    With no clock active in the current context every method is the real one. Every
    constructor returns a plain ``datetime.datetime``, and ``isinstance``/``issubclass``
    treat real datetimes as instances of this class, so code that names it in place of
    ``datetime.datetime`` cannot tell the difference except by reading the time.
    """

    @classmethod
    def now(cls, tz: datetime.tzinfo | None = None) -> datetime.datetime:  # type: ignore[override]
        """Virtual ``now``: aware in ``tz`` if given, else naive local time, as the real one."""
        clock = _ACTIVE.get()
        if clock is None:
            return _REAL_DATETIME.now(tz)
        moment = clock.now()
        if tz is None:
            return moment.astimezone().replace(tzinfo=None)
        return moment.astimezone(tz)

    @classmethod
    def utcnow(cls) -> datetime.datetime:  # type: ignore[override]
        """Virtual ``utcnow``: naive UTC, as the real one."""
        clock = _ACTIVE.get()
        if clock is None:
            return _REAL_DATETIME.utcnow()
        return clock.now().replace(tzinfo=None)

    @classmethod
    def today(cls) -> datetime.datetime:  # type: ignore[override]
        """Virtual ``today``: naive local time, as the real one."""
        clock = _ACTIVE.get()
        if clock is None:
            return _REAL_DATETIME.today()
        return clock.now().astimezone().replace(tzinfo=None)


class _DatetimeModuleProxy(types.ModuleType):
    """The ``datetime`` module as patched code sees it: ``datetime`` is ``VirtualDatetime``.

    The real module's public names are copied in, so ``proxy.timedelta`` is as fast as
    on the real module; anything else (dunders, names added later) is forwarded.
    """

    def __init__(self) -> None:
        super().__init__(_REAL_MODULE.__name__, _REAL_MODULE.__doc__)
        for name, value in vars(_REAL_MODULE).items():
            if not name.startswith("__"):
                setattr(self, name, value)
        self.datetime = VirtualDatetime

    def __getattr__(self, name: str) -> Any:
        return getattr(_REAL_MODULE, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(_REAL_MODULE)) | set(vars(self)))

    def __repr__(self) -> str:
        return f"<module 'datetime' (virtual-time proxy of {_REAL_MODULE!r})>"


_PROXY = _DatetimeModuleProxy()

# The objects install() replaces, by identity, and what replaces each: the clock's, and
# the world's seeded randomness (``entropy``), which reaches the same modules the same way.
_REPLACEMENTS: dict[int, object] = {
    id(_REAL_DATETIME): VirtualDatetime,
    id(_REAL_MODULE): _PROXY,
    **entropy.REPLACEMENTS,
}

# Top-level packages never patched, whatever is asked: the standard library must keep
# its own clock (logging, asyncio, ssl...), and so must pytest and this plugin, which
# time and report the run from outside the simulated world.
_NEVER = frozenset(sys.stdlib_module_names) | {
    "builtins",
    "pytest",
    "_pytest",
    "pluggy",
    "pytest_ntinvariants",
}


class _State:
    """What ``install`` has done, so repeated calls look only at what is new."""

    def __init__(self) -> None:
        self.prefixes: set[str] = set()
        self.exact: frozenset[str] = frozenset()
        self.dotted: tuple[str, ...] = ()
        # Every module name looked at against the current prefixes.
        self.seen: set[str] = set()
        # Modules patched, by name: a module re-imported under the same name is a new
        # object and needs patching again.
        self.patched: dict[str, types.ModuleType] = {}
        # (module globals, name, original, replacement), for uninstall().
        self.undo: list[tuple[dict[str, Any], str, object, object]] = []


_state = _State()
_lock = threading.Lock()


def _allowed(prefix: str) -> bool:
    return bool(prefix) and prefix.partition(".")[0] not in _NEVER


def _patch(module: types.ModuleType) -> None:
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict):
        return
    # (collected first: the namespace must not change while it is iterated)
    found = [(k, v) for k, v in namespace.items() if id(v) in _REPLACEMENTS]
    for key, original in found:
        # (an id match is an identity match: both real objects live as long as the process)
        replacement = _REPLACEMENTS[id(original)]
        namespace[key] = replacement
        _state.undo.append((namespace, key, original, replacement))


def install(prefixes: Iterable[str]) -> None:
    """Patch the wall-clock reads of every loaded module under ``prefixes``.

    A module matches a prefix when its name equals it or starts with it and a dot. In a
    matching module, a global bound to ``datetime.datetime`` is rebound to
    ``VirtualDatetime``, and one bound to the ``datetime`` module to a proxy whose
    ``datetime`` is ``VirtualDatetime``; one bound to the ``random`` module or to one of
    its functions, to ``entropy``'s, which draw from the world's seeded generator.
    Prefixes naming the standard library, pytest, pluggy or this plugin are ignored.

    Idempotent and cheap to repeat: a call visits only modules loaded since the last one
    (and modules re-imported under a patched name), unless it brings new prefixes, which
    are matched against every loaded module once. Modules imported later are patched by
    the next call. A module reloaded in place after being patched is not seen again, and
    one still being imported when visited is patched only as far as it has got.
    """
    wanted = {p for p in prefixes if _allowed(p)}
    with _lock:
        modules = sys.modules
        if not wanted <= _state.prefixes:
            _state.prefixes |= wanted
            _state.exact = frozenset(_state.prefixes)
            _state.dotted = tuple(p + "." for p in _state.prefixes)
            # New prefixes can match modules already looked at: look at all again.
            # (The patched-by-name check below keeps this from patching anything twice.)
            _state.seen.clear()
        if not _state.prefixes:
            return
        # A repeat call with nothing new costs one C-level pass over the module names (no
        # allocation) and one identity check per patched module.
        names: set[str] = set()
        if not _state.seen.issuperset(modules):
            names = modules.keys() - _state.seen
        stale = [n for n, m in _state.patched.items() if modules.get(n, m) is not m]
        if not names and not stale:
            return
        _state.seen |= names
        exact, dotted = _state.exact, _state.dotted
        for name in (*names, *stale):
            if name not in exact and not name.startswith(dotted):
                continue
            module = modules.get(name)
            if module is None or _state.patched.get(name) is module:
                continue
            _patch(module)
            _state.patched[name] = module


def world_prefixes() -> set[str]:
    """What a world's clock should reach: kopf, and every loaded top-level package that is
    not installed as a library (the project's own code: its controller, its tests).

    Libraries under ``site-packages`` are left alone (kopf apart): they read the clock for
    their own bookkeeping (certificates, cookies), and some compare classes by identity.
    So are test modules (``conftest``, ``test_*``, ``*_test``): a test compares what it
    reads with real datetimes, and runs outside the world anyway.
    """
    # Nothing imported or dropped since (same count, same newest): the same answer. The
    # count alone is not enough: pytester puts back an older sys.modules of equal size.
    key = (len(sys.modules), next(reversed(sys.modules), None))
    if key == _prefix_cache[0]:
        return set(_prefix_cache[1])
    out = {"kopf"}
    for name, module in list(sys.modules.items()):
        if "." in name or module is None or _is_test_module(name):
            continue
        # (a namespace package has no file: where its first portion lives says the same)
        path = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", ())), "")
        if path and "site-packages" not in path and "dist-packages" not in path:
            out.add(name)
    _prefix_cache[:] = [key, frozenset(out)]
    return out


_prefix_cache: list[Any] = [None, frozenset()]


def _is_test_module(name: str) -> bool:
    return name == "conftest" or name.startswith("test_") or name.endswith("_test")


def uninstall() -> None:
    """Restore every global ``install`` rebound and forget what it saw.

    A global that was rebound again since (by the module itself, or a test's
    ``monkeypatch``) is left alone: it no longer holds what ``install`` put there.
    """
    global _state
    with _lock:
        for namespace, key, original, replacement in reversed(_state.undo):
            if namespace.get(key) is replacement:
                namespace[key] = original
        _state = _State()
