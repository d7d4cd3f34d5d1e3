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
* ``VirtualDatetime`` stands in for ``datetime.datetime`` in the world's modules, and
  ``MODULE`` for the ``datetime`` module (``patching.install`` rebinds their globals):
  ``VirtualDatetime.now()``/``utcnow()``/``today()`` answer from the active clock, or
  from the real clock when none is active, so patched code behaves normally outside the
  simulation.

Only module globals are rebound: a reference captured elsewhere before ``install`` (a
default argument, a class attribute, ``now = datetime.now`` at import) still reads real
time, and ``type(x) is datetime`` with the patched name is false (``isinstance`` works).
The standard library, pytest and this plugin are never patched.
"""

from __future__ import annotations

import contextvars
import datetime
from collections.abc import Callable
from typing import Any

from .patching import ModuleProxy

__all__ = [
    "MODULE",
    "REPLACEMENTS",
    "VirtualClock",
    "VirtualDatetime",
    "activate",
    "active",
    "deactivate",
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


#: The ``datetime`` module as patched code sees it: ``datetime`` is ``VirtualDatetime``.
MODULE = ModuleProxy(_REAL_MODULE, {"datetime": VirtualDatetime}, "virtual-time")

#: The real objects ``patching.install`` replaces in the world's modules, by identity,
#: and what replaces each.
REPLACEMENTS: dict[int, object] = {
    id(_REAL_DATETIME): VirtualDatetime,
    id(_REAL_MODULE): MODULE,
}
