"""Perturbation rules and the ``Perturber`` that applies them to the fake API server.

A rule says what (latency, a stale view, a hold, coalescing, a dropped watch, an
expired watch, an API fault), to whom (a ``Target``: client identity, resource,
object, verb) and when (always, the nth matching time, a seeded probability, at most
``times`` times, only after or until a ``Trigger``). Every rule is a handle with
``remove()``; the perturber unwinds what is left in reverse at teardown, like
``monkeypatch.undo``. Every time a rule acts it is written to the ledger.

Watch latency delays delivery to one watcher while reads and writes stay fast: kopf's
author found that slowing everything cannot reproduce the stale-read race, only
slowing what one replica *sees* can.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..apiserver import errors
from ..apiserver.hooks import Interceptor, RequestInfo
from ..apiserver.store import Store
from ..apiserver.watch import Delivery, Watcher, WatchHub
from ..ledger import Ledger, ObjectVersion, PerturbationFired
from ._values import FAULT_CODES, FAULTS, Delay, check_delay, draw
from .triggers import Trigger

__all__ = [
    "Coalesce",
    "DropWatch",
    "ExpireWatch",
    "Fault",
    "Hold",
    "Perturber",
    "RequestLatency",
    "Rule",
    "StaleView",
    "Target",
    "WatchLatency",
]

_R = TypeVar("_R", bound="Rule")

# The verbs that write (a rule on "write" matches each).
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True)
class Target:
    """To whom a rule applies; ``None`` fields match anything.

    ``resource`` is a plural (``widgets``) or ``plural.group``;
    ``verb`` may name several verbs, and ``"write"`` stands for every writing verb.
    """

    identity: str | None = None
    resource: str | None = None
    namespace: str | None = None
    name: str | None = None
    verb: str | tuple[str, ...] | None = None
    subresource: str | None = None

    def _resource_ok(self, plural: str, group: str) -> bool:
        if self.resource is None:
            return True
        return self.resource in (plural, f"{plural}.{group}" if group else plural)

    def _verb_ok(self, verb: str) -> bool:
        if self.verb is None:
            return True
        verbs = (self.verb,) if isinstance(self.verb, str) else self.verb
        return verb in verbs or ("write" in verbs and verb in WRITE_VERBS)

    def matches_request(self, r: RequestInfo) -> bool:
        """Whether a request falls under this target."""
        if self.identity is not None and r.identity != self.identity:
            return False
        if r.resource is None or not self._resource_ok(r.resource.plural, r.resource.group):
            return False
        if self.namespace is not None and r.namespace != self.namespace:
            return False
        if self.name is not None and r.name != self.name:
            return False
        if self.subresource is not None and r.subresource != self.subresource:
            return False
        return self._verb_ok(r.verb)

    def matches_delivery(self, w: Watcher, d: Delivery) -> bool:
        """Whether a watch delivery falls under this target."""
        if self.identity is not None and w.identity != self.identity:
            return False
        if not self._resource_ok(w.resource.plural, w.resource.group):
            return False
        meta = d.version.obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.name is None or meta.get("name") == self.name

    def describe(self) -> str:
        """``identity=replica-0 resource=widgets`` (what is set)."""
        parts = [f"{k}={v}" for k, v in vars(self).items() if v is not None]
        return " ".join(parts) or "everyone"


@dataclass(eq=False)
class Rule:
    """Base of every rule: targeting, timing, counting and undo, and the hooks through
    which the perturber consults it (``start``, ``on_request``, ``read_at``,
    ``expire_watch``, ``on_delivery``), each a no-op unless the kind of rule acts there."""

    target: Target = field(default_factory=Target)
    nth: int | None = None  # act only on the nth match (1-based)
    times: int | None = None  # act at most this many times
    probability: float | None = None  # act with this seeded probability
    after: Trigger | None = None  # inactive until this fires
    until: Trigger | None = None  # inactive once this fires
    name: str = ""
    matched: int = 0
    fired: int = 0
    removed: bool = False
    perturber: Perturber | None = field(default=None, repr=False)

    action = "perturb"

    def __post_init__(self) -> None:
        if self.nth is not None and self.nth < 1:
            raise ValueError(f"nth must be >= 1, got {self.nth}")
        if self.times is not None and self.times < 0:
            raise ValueError(f"times must be >= 0, got {self.times}")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within [0, 1], got {self.probability}")
        if not self.name:
            self.name = f"{type(self).__name__}({self.target.describe()})"

    @property
    def active(self) -> bool:
        """Whether the rule is in its time window (not removed, after/until triggers)."""
        if self.removed:
            return False
        if self.after is not None and not self.after.fired:
            return False
        return not (self.until is not None and self.until.fired)

    def should_fire(self) -> bool:
        """Count a match and decide whether to act on it (call once per match)."""
        if not self.active:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.matched += 1
        if self.nth is not None and self.matched != self.nth:
            return False
        if self.probability is not None:
            assert self.perturber is not None
            if self.perturber.rng.random() >= self.probability:
                return False
        self.fired += 1
        return True

    def remove(self) -> None:
        """Undo the rule (idempotent)."""
        if self.removed:
            return
        self.removed = True
        if self.perturber is not None:
            self.perturber._forget(self)

    def record(self, identity: str, detail: str = "") -> None:
        """Write that this rule acted to the ledger."""
        if self.perturber is not None:
            self.perturber.ledger.record(
                PerturbationFired,
                rule=self.name,
                action=self.action,
                identity=identity,
                detail=detail,
            )

    @property
    def _owner(self) -> Perturber:
        """The perturber the rule was added to (hooks only run once it is added)."""
        assert self.perturber is not None, f"{self.name} was never added to a perturber"
        return self.perturber

    def _fires_on_request(self, request: RequestInfo) -> bool:
        """Whether the rule acts on ``request`` (a match counts towards nth/times)."""
        return self.target.matches_request(request) and self.should_fire()

    def _fires_on_delivery(self, w: Watcher, d: Delivery) -> bool:
        """Whether the rule acts on delivery ``d`` (a match counts towards nth/times)."""
        return self.target.matches_delivery(w, d) and self.should_fire()

    # -- hooks: the perturber asks every rule, oldest first. Each kind of rule overrides
    # the moments it perturbs; the defaults leave everything as it is, and count nothing,
    # so that a rule's nth/times/probability only see the matches it could act on.

    def start(self) -> None:
        """The rule takes effect: on ``Perturber.add``, or when ``after`` fires."""

    async def on_request(self, request: RequestInfo) -> None:
        """Before ``request`` is served: delay it, or raise the ``ApiError`` to answer."""

    def read_at(self, request: RequestInfo) -> int | None:
        """An older resourceVersion to serve the read ``request`` at (None: current)."""
        return None

    def expire_watch(self, request: RequestInfo) -> bool:
        """Whether to answer the watch resumption ``request`` with an in-stream 410."""
        return False

    def on_delivery(self, w: Watcher, d: Delivery) -> list[Delivery]:
        """What watcher ``w`` is sent instead of ``d`` (any number of deliveries)."""
        return [d]


# --------------------------------------------------------------------- watch rules


@dataclass(eq=False)
class WatchLatency(Rule):
    """Delay watch events to the target's watchers by ``delay`` seconds (or a seeded
    ``(low, high)`` range); order is kept, so a later event never overtakes."""

    delay: Delay = 0.0
    action = "watch-latency"

    def __post_init__(self) -> None:
        check_delay(self.delay, "delay")
        super().__post_init__()

    def on_delivery(self, w: Watcher, d: Delivery) -> list[Delivery]:
        """Make ``d`` due ``delay`` seconds from now, and never before what is queued."""
        if not self._fires_on_delivery(w, d):
            return [d]
        seconds = draw(self.delay, self._owner.rng)
        d.not_before = max(d.not_before, w.loop.time() + seconds)
        if queued := w.queued():  # keep rv order: never due before what is queued ahead
            d.not_before = max(d.not_before, queued[-1].not_before)
        self.record(w.identity, f"{d.type} rv={d.version.rv} +{seconds * 1000:.1f}ms")
        return [d]


@dataclass(eq=False)
class Hold(Rule):
    """Hold what the target sees until ``release()`` or the ``until`` trigger: its watch
    events, and its reads, served as of the resourceVersion current when the hold began.

    The reads count too because a replica lists before it watches: holding only the
    watch let its first LIST show what was written meanwhile, so "replica-1 sees nothing
    until replica-0's first status write" did not hold from the start.

    Releasing is ordered per watcher: whether an event is held or passes is decided on the
    watcher's loop, and a watcher's events stay held until its held ones are queued there.
    (The release used to hop to the loop after the rule had gone inactive, so an event
    written in between reached the stream before the older, held ones.)
    """

    action = "hold"
    _frozen_at: int | None = field(default=None, repr=False)  # where reads stop meanwhile
    _held: dict[int, tuple[Watcher, list[Delivery]]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _releasing: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.until is not None:
            self.until.on_fire(self.release)

    @property
    def active(self) -> bool:
        """Holding until released: the ``until`` trigger releases rather than bypasses, so
        events around the moment it fires keep their order."""
        if self.removed:
            return False
        return self.after is None or self.after.fired

    @property
    def holding_reads(self) -> bool:
        """Whether the target's reads are still served from before the hold."""
        return self.active and not self._releasing and self._frozen_at is not None

    def start(self) -> None:
        """Freeze the target's reads at the current resourceVersion."""
        self._frozen_at = self._owner.store.resource_version

    def read_at(self, request: RequestInfo) -> int | None:
        """Where the hold began, for the target's reads while it holds them."""
        at = self._frozen_at
        if at is None or not self.holding_reads or not self.target.matches_request(request):
            return None
        store = self._owner.store
        if at >= store.resource_version:
            return None  # nothing written since the hold began
        at = max(at, store.compacted)
        self.record(request.identity, f"{request.verb} {request.name or '*'} held at rv={at}")
        return at

    def on_delivery(self, w: Watcher, d: Delivery) -> list[Delivery]:
        """Keep ``d`` back until the release (passed on once releasing has begun)."""
        if not self._fires_on_delivery(w, d):
            return [d]
        with self._lock:
            if self._releasing and w.id not in self._held:
                return [d]  # released (or nothing was held for it): nothing to overtake
            self._held.setdefault(w.id, (w, []))[1].append(d)
        self.record(w.identity, f"held {d.type} rv={d.version.rv}")
        return []

    def release(self) -> None:
        """Deliver everything held, in order, and stop holding."""
        if self.perturber is not None:
            self.perturber._act(self._release)
        else:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._releasing:
                return
            self._releasing = True
            held = list(self._held.values())
            count = sum(len(ds) for _, ds in held)
        for w, _ in held:
            try:
                w.loop.call_soon_threadsafe(self._flush, w)
            except RuntimeError:  # the loop is closed: the stream is gone anyway
                self._flush(w, deliver=False)
        self.record("*", f"released {count} event(s)")
        self._finish_if_flushed()

    def _flush(self, w: Watcher, *, deliver: bool = True) -> None:
        """On ``w``'s loop: queue what is held for it (with anything held since release)."""
        with self._lock:
            _, deliveries = self._held.pop(w.id, (w, []))
        if deliver:
            _release_to(w, deliveries)
        self._finish_if_flushed()

    def _finish_if_flushed(self) -> None:
        with self._lock:
            done = self._releasing and not self._held and not self.removed
            if done:
                self.removed = True
        if done and self.perturber is not None:
            self.perturber._forget(self)

    def remove(self) -> None:
        """Undo the hold: what it keeps is released, in order, not lost."""
        self.release()


def _release_to(w: Watcher, deliveries: list[Delivery]) -> None:
    if w.closed:
        return
    now = w.loop.time()
    for d in deliveries:
        d.not_before = min(d.not_before, now)
    # Nothing of this watcher passed the hold since it began, so what is queued is older:
    # the held events go after it.
    for d in deliveries:
        w.queue(d)


@dataclass(eq=False)
class Coalesce(Rule):
    """Unobserved states: within ``window`` seconds, only the latest version of each
    object reaches the target's watchers (intermediate MODIFIED events vanish).

    With ``nth=k`` only the k-th matching event waits out the window, and whatever newer
    event of its object comes meanwhile replaces it: the watcher misses that one state."""

    window: float = 0.05
    action = "coalesce"
    # The events this rule made wait and that may still be queued, by id (the reference
    # keeps the id unique): a newer event of their object replaces them whether or not
    # it matches the rule itself.
    _waiting: dict[int, tuple[Watcher, Delivery]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        check_delay(self.window, "window")
        super().__post_init__()

    def on_delivery(self, w: Watcher, d: Delivery) -> list[Delivery]:
        """Replace a queued event of the same object by ``d``, or queue ``d`` for the window."""
        waiting = w.queued()
        self._forget_sent(w, waiting)
        key = _obj_key(d)
        older = next(
            (
                q
                for q in waiting
                if _obj_key(q) == key and q.type in ("ADDED", "MODIFIED") and d.type == "MODIFIED"
            ),
            None,
        )
        if not (older is not None and id(older) in self._waiting) and not (
            self._fires_on_delivery(w, d)
        ):
            return [d]
        if older is not None:
            w.withdraw(older)
            self._waiting.pop(id(older), None)
            if older.type == "ADDED":
                d.type = "ADDED"  # the watcher never saw the object: it appears now
            d.not_before = older.not_before
            self.record(w.identity, f"rv={older.version.rv} superseded by rv={d.version.rv}")
        else:
            d.not_before = max(d.not_before, w.loop.time() + self.window)
            if waiting:
                d.not_before = max(d.not_before, waiting[-1].not_before)
        self._waiting[id(d)] = (w, d)
        return [d]

    def _forget_sent(self, w: Watcher, waiting: list[Delivery]) -> None:
        queued = {id(q) for q in waiting}
        for key, (watcher, _) in list(self._waiting.items()):
            if watcher is w and key not in queued:
                del self._waiting[key]


def _obj_key(d: Delivery) -> tuple[str, str]:
    meta = d.version.obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


@dataclass(eq=False)
class DropWatch(Rule):
    """Close the target's watch stream instead of delivering a matching event; the
    client reconnects from the last resourceVersion it saw."""

    action = "drop-watch"

    def on_delivery(self, w: Watcher, d: Delivery) -> list[Delivery]:
        """Close the stream instead of sending ``d``."""
        if not self._fires_on_delivery(w, d):
            return [d]
        w.close()
        self.record(w.identity, f"closed watch #{w.id} before {d.type} rv={d.version.rv}")
        return []


@dataclass(eq=False)
class DropEvent(Rule):
    """Never deliver a matching event (``nth=k``: the k-th): the replica misses that
    intermediate state, and its stream goes on with the next event."""

    action = "drop-event"

    def on_delivery(self, w: Watcher, d: Delivery) -> list[Delivery]:
        """Drop ``d``."""
        if not self._fires_on_delivery(w, d):
            return [d]
        self.record(w.identity, f"dropped {d.type} rv={d.version.rv} on watch #{w.id}")
        return []


@dataclass(eq=False)
class ExpireWatch(Rule):
    """Answer the target's watch resumptions with an in-stream 410 Expired, forcing a
    relist (as after etcd compaction), and close its open streams when it starts.

    ``until_relisted``: refuse each client's resumptions of a resource (a client that
    retries from where it was is refused again) until it lists that resource afresh;
    the watch from that list goes on, as after a compaction."""

    until_relisted: bool = False
    action = "expire-watch"
    _relisted: set[tuple[str, str]] = field(default_factory=set, init=False, repr=False)

    def start(self) -> None:
        """End the target's open streams, so that its next watch is a resumption to refuse."""
        for w in self._owner.hub.watchers():
            if self.target.identity in (None, w.identity):
                w.loop.call_soon_threadsafe(w.close)

    async def on_request(self, request: RequestInfo) -> None:
        """Note a target's fresh list (``until_relisted``)."""
        listing = self.until_relisted and request.verb == "list" and self.active
        if listing and self.target.matches_request(request):
            self._relisted.add(_listed(request))

    def expire_watch(self, request: RequestInfo) -> bool:
        """Refuse the target's watch resumption (relist, as after etcd compaction)."""
        if self.until_relisted and _listed(request) in self._relisted:
            return False
        if not self._fires_on_request(request):
            return False
        self.record(request.identity, "watch resume answered with 410 Expired")
        return True


# ------------------------------------------------------------------- request rules


@dataclass(eq=False)
class StaleView(Rule):
    """Serve the target's GETs and LISTs as of an older resourceVersion.

    ``versions`` behind (per object for GET, per resource for LIST), or ``seconds``
    behind (what was current that long ago), or, with neither, frozen at the
    resourceVersion current when the rule became active (a cache that stopped
    syncing until the ``until`` trigger).

    A view ``versions`` behind catches up as a lagging cache does: a version committed
    ``catch_up`` seconds ago or earlier is always seen, so with no newer write the view is
    current again after that long. Without it a replica read one version behind for as
    long as nothing else wrote: a correct controller that re-reads after a 409 conflict
    got the same stale object, and conflicted, forever.
    """

    versions: int | None = None
    seconds: float | None = None
    catch_up: float = 0.5
    action = "stale-read"
    _frozen_at: int | None = None

    def __post_init__(self) -> None:
        if self.versions is not None and self.versions < 0:
            raise ValueError(f"versions must be >= 0, got {self.versions}")
        if self.seconds is not None:
            check_delay(self.seconds, "seconds")
        if self.versions is not None and self.seconds is not None:
            raise ValueError("give versions or seconds, not both")
        check_delay(self.catch_up, "catch_up")
        super().__post_init__()

    def start(self) -> None:
        """Freeze the view (used when neither ``versions`` nor ``seconds`` is given)."""
        self._frozen_at = self._owner.store.resource_version

    def read_at(self, request: RequestInfo) -> int | None:
        """The older resourceVersion the target's read is served at, if it is behind."""
        if not self._fires_on_request(request):
            return None
        at = self._stale_rv(request)
        if at is not None:
            self.record(
                request.identity,
                f"{request.verb} {request.name or '*'} served at "
                f"rv={at} (current {self._owner.store.resource_version})",
            )
        return at

    def _stale_rv(self, request: RequestInfo) -> int | None:
        perturber = self._owner
        store = perturber.store
        current = store.resource_version
        if self.seconds is not None:
            at = perturber._rv_at(perturber.ledger.now() - self.seconds)
        elif self.versions is not None:
            assert request.resource is not None
            rvs = (
                store.version_rvs(request.resource, request.namespace, request.name)
                if request.verb == "get"
                else store.resource_rvs(request.resource)
            )
            if len(rvs) <= self.versions:
                # Never behind the object's creation: a cache that has not seen the object
                # at all is a different perturbation (hold), not a stale read.
                at = rvs[0] if rvs else current
            else:
                at = rvs[-1 - self.versions]
            # What was committed catch_up seconds ago the cache has seen by now.
            seen = bisect.bisect_right(
                rvs, perturber._rv_at(perturber.ledger.now() - self.catch_up)
            )
            if seen and rvs[seen - 1] > at:
                at = rvs[seen - 1]
        else:
            at = self._frozen_at if self._frozen_at is not None else current
        if at >= current:
            return None
        return max(at, store.compacted)


# The error class of each fault (a wrong name in ``FAULTS`` fails here, at import).
_ERRORS: dict[int, type[errors.ApiError]] = {
    code: getattr(errors, name) for code, (name, _) in FAULTS.items()
}


@dataclass(eq=False)
class Fault(Rule):
    """Answer the target's requests with an API error instead of serving them."""

    code: int = 500
    retry_after: int | None = None
    message: str = ""
    delay: float = 0.0  # seconds to wait before answering (504 timeouts)
    action = "fault"

    def __post_init__(self) -> None:
        if self.code not in FAULTS:
            raise ValueError(f"code must be one of {list(FAULT_CODES)}, got {self.code!r}")
        if self.code == 429 and self.retry_after is None:
            self.retry_after = 1
        super().__post_init__()

    def error(self, r: RequestInfo) -> errors.ApiError:
        """The error to answer ``r`` with (kube's wording for each code)."""
        message = FAULTS[self.code][1]
        what = f'{r.resource.group_resource if r.resource else ""} "{r.name}"'.strip()
        default = message.format(what=what) or f"injected {self.code} by pytest-ntinvariants"
        return _ERRORS[self.code](
            self.message or default,
            name=r.name or None,
            group=r.resource.group if r.resource else None,
            kind=r.resource.plural if r.resource else None,
            retry_after=self.retry_after,
        )

    async def on_request(self, request: RequestInfo) -> None:
        """Answer the target's request with the error (after ``delay`` seconds)."""
        if not self._fires_on_request(request):
            return
        plural = request.resource.plural if request.resource else ""
        sub = f"/{request.subresource}" if request.subresource else ""
        self.record(request.identity, f"{self.code} on {request.verb} {plural}/{request.name}{sub}")
        if self.delay:
            await self._owner._delay(self.delay)
        raise self.error(request)


@dataclass(eq=False)
class RequestLatency(Rule):
    """Add latency to the target's requests before they are served."""

    delay: Delay = 0.0
    action = "request-latency"

    def __post_init__(self) -> None:
        check_delay(self.delay, "delay")
        super().__post_init__()

    async def on_request(self, request: RequestInfo) -> None:
        """Hold the target's request back ``delay`` seconds (drawn, for a range)."""
        if not self._fires_on_request(request):
            return
        seconds = draw(self.delay, self._owner.rng)
        self.record(request.identity, f"{request.verb} {request.name} +{seconds * 1000:.1f}ms")
        await self._owner._delay(seconds)


# ------------------------------------------------------------------- the perturber


class Perturber(Interceptor):
    """Applies rules to one ``FakeApiServer``; seeded; every action is in the ledger."""

    def __init__(self, store: Store, hub: WatchHub, ledger: Ledger, *, seed: int = 0) -> None:
        self.store = store
        self.hub = hub
        self.ledger = ledger
        self.seed = seed
        self.rng = random.Random(seed)
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._times: list[float] = []  # ledger time of each commit, for "seconds" views
        self._rvs: list[int] = []
        self._delaying = 0  # requests a rule is holding back right now
        self._delay_listeners: list[Callable[[], None]] = []
        self._undo_ledger = ledger.subscribe(self._on_entry)
        #: How a trigger's ``wait`` runs a deterministic world (see ``Trigger.driver``).
        self.driver: Callable[[Callable[[], bool], float], object] | None = None
        #: How a change reaches a deterministic world (``World.call``): on its loop,
        #: between two steps, returning once the world is quiescent again. A rule that
        #: starts from the test's thread (it ends watch streams, releases what it held)
        #: must not land while the world still reacts to the previous one: two resyncs
        #: begun one after the other interleaved differently from run to run. None: at
        #: once, on the caller's thread.
        self.act: Callable[[Callable[[], object]], object] | None = None

    # -- rule management

    def add(self, rule: _R) -> _R:
        """Activate a rule; returns it (call ``remove()`` on it to undo)."""
        rule.perturber = self
        with self._lock:
            self._rules.append(rule)
        if rule.after is None:
            self._act(rule.start)
        else:
            rule.after.on_fire(rule.start)
        return rule

    def _act(self, change: Callable[[], object]) -> None:
        if self.act is None:
            change()
        else:
            self.act(change)

    def rules(self) -> list[Rule]:
        """The active rules, oldest first."""
        with self._lock:
            return list(self._rules)

    def _forget(self, rule: Rule) -> None:
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)

    def undo(self) -> None:
        """Remove every rule, newest first (releasing holds), and stop observing."""
        for rule in reversed(self.rules()):
            rule.remove()
        self._undo_ledger()

    def _on_entry(self, entry: Any) -> None:
        if isinstance(entry, ObjectVersion):
            self._times.append(entry.t)
            self._rvs.append(entry.rv)

    # -- convenience constructors (the user-facing API)

    def watch_latency(self, delay: Delay, **when: Any) -> WatchLatency:
        """Delay watch events to a target by ``delay`` s (or a seeded ``(lo, hi)`` range)."""
        return self.add(WatchLatency(delay=delay, **_rule_args(when)))

    def stale_reads(
        self,
        *,
        versions: int | None = None,
        seconds: float | None = None,
        catch_up: float = 0.5,
        **when: Any,
    ) -> StaleView:
        """Serve a target's GETs and LISTs as of an older resourceVersion.

        ``versions`` behind, caught up with each version ``catch_up`` s after its commit;
        or ``seconds`` behind; or, with neither, frozen from the rule's start.
        """
        return self.add(
            StaleView(
                versions=versions,
                seconds=seconds,
                catch_up=catch_up,
                **_rule_args(when),
            )
        )

    def hold(self, **when: Any) -> Hold:
        """Hold a target's watch events until ``release()`` or the ``until`` trigger."""
        return self.add(Hold(**_rule_args(when)))

    def coalesce(self, window: float = 0.05, **when: Any) -> Coalesce:
        """Let only the latest version of each object within ``window`` s reach a target."""
        return self.add(Coalesce(window=window, **_rule_args(when)))

    def drop_events(self, **when: Any) -> DropEvent:
        """Never deliver a target's matching events (``nth=k``: only its k-th)."""
        return self.add(DropEvent(**_rule_args(when)))

    def drop_watches(self, **when: Any) -> DropWatch:
        """Close a target's watch streams on matching events."""
        return self.add(DropWatch(**_rule_args(when)))

    def expire_watches(self, *, until_relisted: bool = False, **when: Any) -> ExpireWatch:
        """Force a target's watches to relist (in-stream 410 Expired on resume; with
        ``until_relisted``, every resumption until the client listed afresh)."""
        return self.add(ExpireWatch(until_relisted=until_relisted, **_rule_args(when)))

    def fault(
        self,
        code: int,
        *,
        retry_after: int | None = None,
        message: str = "",
        delay: float = 0.0,
        **when: Any,
    ) -> Fault:
        """Answer a target's requests with an API error (a code of ``FAULT_CODES``)."""
        return self.add(
            Fault(
                code=code,
                retry_after=retry_after,
                message=message,
                delay=delay,
                **_rule_args(when),
            )
        )

    def latency(self, delay: Delay, **when: Any) -> RequestLatency:
        """Add latency to a target's requests."""
        return self.add(RequestLatency(delay=delay, **_rule_args(when)))

    def trigger(
        self,
        entry_type: type[Any],
        *,
        nth: int = 1,
        where: Callable[[Any], bool] | None = None,
        **match: Any,
    ) -> Trigger:
        """A trigger on the nth matching ledger entry (see ``Trigger.when``)."""
        return self._driven(Trigger.when(self.ledger, entry_type, nth=nth, where=where, **match))

    def after_write(
        self,
        identity: str | None = None,
        *,
        nth: int = 1,
        subresource: str | None = None,
        name: str | None = None,
        resource: str | None = None,
    ) -> Trigger:
        """A trigger on a target's nth successful write (``subresource="status"`` for
        status writes)."""
        from ..ledger import RequestServed

        def ok(e: Any) -> bool:
            return (
                e.verb in WRITE_VERBS
                and e.status < 300
                and (subresource is None or e.subresource == subresource)
                and (name is None or e.name == name)
                and (resource is None or e.resource.endswith("/" + resource))
            )

        who = identity or "anyone"
        return self._driven(
            Trigger.when(
                self.ledger,
                RequestServed,
                nth=nth,
                where=ok,
                description=f"after {who}'s write #{nth}"
                + (f" to /{subresource}" if subresource else ""),
                **({"identity": identity} if identity else {}),
            )
        )

    def _driven(self, trigger: Trigger) -> Trigger:
        trigger.driver = self.driver
        return trigger

    # -- Interceptor hooks: each asks every rule, oldest first (see ``Rule``'s hooks)

    async def on_request(self, request: RequestInfo) -> None:
        """Delay the request or answer it with a fault, as the matching rules say."""
        for rule in self.rules():
            await rule.on_request(request)

    @property
    def delaying(self) -> int:
        """How many requests a rule is holding back now (a latency, a fault's delay).

        Such a request outlives the removal of its rule: it lands when its delay is over,
        so the system is not quiet while any is in flight.
        """
        return self._delaying

    def on_delay_end(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` (in the server's thread) each time a held request goes on;
        returns the function that unsubscribes it."""
        self._delay_listeners.append(listener)
        return lambda: self._delay_listeners.remove(listener)

    async def _delay(self, seconds: float) -> None:
        with self._lock:
            self._delaying += 1
        try:
            await asyncio.sleep(seconds)
        finally:
            # Listeners first: whoever then reads ``delaying`` as 0 has been told.
            for listener in list(self._delay_listeners):
                listener()
            with self._lock:
                self._delaying -= 1

    def read_at(self, request: RequestInfo) -> int | None:
        """The oldest resourceVersion a matching stale view or hold serves this read at."""
        if request.verb not in ("get", "list"):
            return None
        ats = [at for rule in self.rules() if (at := rule.read_at(request)) is not None]
        return min(ats, default=None)

    def _rv_at(self, when: float) -> int:
        """The resourceVersion that was current at ledger time ``when`` (0: none yet)."""
        i = bisect.bisect_right(self._times, when)
        return self._rvs[i - 1] if i else 0

    def expire_watch(self, request: RequestInfo) -> bool:
        """Whether a matching rule answers this watch resume with an in-stream 410."""
        return any(rule.expire_watch(request) for rule in self.rules())

    def on_delivery(self, watcher: Watcher, delivery: Delivery) -> list[Delivery]:
        """Pass a watch event through the rules in the order they were added, each rule
        given what the ones before it let through."""
        batch = [delivery]
        for rule in self.rules():
            batch = [out for d in batch for out in rule.on_delivery(watcher, d)]
        return batch


def _listed(request: RequestInfo) -> tuple[str, str]:
    """Who reads which resource (a watch resumes what a list of it started)."""
    resource = request.resource.key if request.resource is not None else request.path
    return request.identity, resource


def _rule_args(when: dict[str, Any]) -> dict[str, Any]:
    """Split keyword arguments into a ``Target`` and the rule's timing fields."""
    target_fields = {"identity", "resource", "namespace", "name", "verb", "subresource"}
    timing = {"nth", "times", "probability", "after", "until", "name_"}
    unknown = set(when) - target_fields - timing - {"target"}
    if unknown:
        raise TypeError(
            f"unexpected argument(s) {', '.join(sorted(unknown))}; a rule takes "
            f"{', '.join(sorted(target_fields | timing))}"
        )
    target = when.pop("target", None) or Target(
        **{k: when.pop(k) for k in list(when) if k in target_fields}
    )
    if "name_" in when:
        when["name"] = when.pop("name_")
    return {"target": target, **when}
