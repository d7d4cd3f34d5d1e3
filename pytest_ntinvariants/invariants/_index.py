"""One pass over the ledger, shared by every invariant, assertion and report.

The ledger is append-only, so an index built from its first N entries stays valid
while it has N entries; ``index_of`` caches one per ledger and rebuilds only when the
ledger grew. Everything here is linear in the ledger's length: a full invariant pass
over thousands of entries takes milliseconds.
"""

from __future__ import annotations

import bisect
import calendar
import re
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..ledger import (
    Entry,
    Ledger,
    ObjectVersion,
    PerturbationFired,
    ReplicaEvent,
    RequestServed,
    SideEffect,
    WatchDelivered,
)
from ._core import ObjectRef

__all__ = ["LedgerIndex", "ObjectHistory", "index_of", "parse_time"]

T = TypeVar("T")

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:?\d{2})?$"
)


def parse_time(value: object) -> tuple[float, float] | None:
    """Parse an RFC 3339 timestamp into ``(seconds since the epoch, resolution)``.

    The resolution is what the writer's clock could express: 1.0 for whole seconds
    (``metav1.Time``), 1e-6 for microseconds (``metav1.MicroTime``), 1e-9 for Go's
    ``RFC3339Nano``. ``None`` when ``value`` is not such a timestamp.
    """
    if not isinstance(value, str):
        return None
    m = _TIME.match(value.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    try:
        seconds = float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    except (ValueError, OverflowError):
        return None
    resolution = 1.0
    if frac:
        seconds += int(frac) / 10 ** len(frac)
        resolution = 10.0 ** -len(frac)
    if zone and zone not in "Zz":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return seconds, resolution


@dataclass
class ObjectHistory:
    """Every committed version of one object (by uid), in the order the store made them."""

    ref: ObjectRef
    resource: str
    versions: list[ObjectVersion]
    index: LedgerIndex = field(repr=False)

    @property
    def first(self) -> ObjectVersion:
        """The version that created the object."""
        return self.versions[0]

    @property
    def last(self) -> ObjectVersion:
        """The latest version (the ``DELETED`` one if the object is gone)."""
        return self.versions[-1]

    @property
    def deleted(self) -> bool:
        """Whether the object was deleted or is being deleted (``deletionTimestamp``)."""
        last = self.last
        if last.type == "DELETED":
            return True
        meta = last.obj.get("metadata") or {}
        return bool(meta.get("deletionTimestamp"))

    def side_effects(self, key: str | None = None) -> list[SideEffect]:
        """Endpoint calls attributed to this object (optionally with one key), in order."""
        calls = self.index.side_effects_by_uid.get(self.ref.uid, [])
        return calls if key is None else [c for c in calls if c.key == key]


class LedgerIndex:
    """Entries of one ledger snapshot, grouped the ways invariants and reports need."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries
        self.length = len(entries)
        self.objects: dict[str, ObjectHistory] = {}
        self.requests: list[RequestServed] = []
        self.deliveries: list[WatchDelivered] = []
        self.side_effects: list[SideEffect] = []
        self.perturbations: list[PerturbationFired] = []
        self.replica_events: list[ReplicaEvent] = []
        #: (namespace, name) -> uids that ever had that name, in order of creation.
        self.by_name: dict[tuple[str, str], list[str]] = {}
        self.side_effects_by_uid: dict[str, list[SideEffect]] = {}
        #: rv -> the version committed with it.
        self.by_rv: dict[int, ObjectVersion] = {}
        #: Scratch space for invariant packs to memoise parsed state (key -> value).
        self.cache: dict[Any, Any] = {}
        self._crashes: dict[str, int] | None = None
        for e in entries:
            if isinstance(e, ObjectVersion):
                self._add_version(e)
            elif isinstance(e, RequestServed):
                self.requests.append(e)
            elif isinstance(e, WatchDelivered):
                self.deliveries.append(e)
            elif isinstance(e, SideEffect):
                self.side_effects.append(e)
            elif isinstance(e, PerturbationFired):
                self.perturbations.append(e)
            elif isinstance(e, ReplicaEvent):
                self.replica_events.append(e)
        for call in self.side_effects:
            uid = self.uid_of_call(call)
            self.side_effects_by_uid.setdefault(uid, []).append(call)

    def _add_version(self, v: ObjectVersion) -> None:
        history = self.objects.get(v.uid)
        if history is None:
            ref = ObjectRef(v.kind_, v.namespace, v.name, v.uid, v.api_version)
            history = self.objects[v.uid] = ObjectHistory(ref, v.resource, [], self)
            self.by_name.setdefault((v.namespace, v.name), []).append(v.uid)
        history.versions.append(v)
        self.by_rv.setdefault(v.rv, v)

    # ------------------------------------------------------------------ lookups

    def memo(self, key: Any, factory: Callable[[], T]) -> T:
        """``cache[key]``, computed by ``factory()`` the first time."""
        try:
            return self.cache[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self.cache[key] = factory()
            return value

    def uid_of_call(self, call: SideEffect) -> str:
        """The uid a side effect is about: its own, else the object with its name then."""
        if call.uid:
            return call.uid
        uids = self.by_name.get((call.namespace, call.name))
        if not uids:
            return ""
        # Names can be reused after a delete: take the newest object created before the call.
        best = uids[0]
        for uid in uids:
            if self.objects[uid].first.t <= call.t:
                best = uid
        return best

    def find(
        self, name_or_uid: str, namespace: str = "default", kind: str | None = None
    ) -> ObjectHistory | None:
        """The object with this uid, else the newest one with this namespace/name.

        ``"ns/name"`` is accepted too. Among objects of several kinds with the same
        name, ``kind`` (when given) decides.
        """
        history = self.objects.get(name_or_uid)
        if history is not None:
            return history
        ns, name = namespace, name_or_uid
        if "/" in name_or_uid:
            ns, _, name = name_or_uid.partition("/")
        uids = self.by_name.get((ns, name), [])
        candidates = [self.objects[u] for u in uids]
        if kind is not None:
            candidates = [h for h in candidates if h.ref.kind == kind]
        return candidates[-1] if candidates else None

    def version_at(self, history: ObjectHistory, t: float) -> ObjectVersion | None:
        """The latest version of ``history`` committed at or before ``t``."""
        times = [v.t for v in history.versions]
        i = bisect.bisect_right(times, t)
        return history.versions[i - 1] if i else None

    # ------------------------------------------------------------------ crashes

    def crashes_by_object(self) -> dict[str, int]:
        """For each object, the injected crashes that could have left a delivery unrecorded.

        A crash of replica R at time t counts for object O when O existed at t and R had
        looked at O before t: a request naming O, a list or watch of O's resource in O's
        namespace (or all namespaces), or a watch event about O. A replica that never saw
        O cannot have delivered for it (the reference controller's target: recorded
        attempts equal deliveries, "except at most one per injected crash between
        delivery and record").
        """
        if self._crashes is not None:
            return self._crashes
        crashes = [e for e in self.replica_events if e.action == "crashed"]
        out: dict[str, int] = {}
        if crashes:
            crashers = {c.identity for c in crashes}
            # identity -> first time it touched (resource, ns, name) / (resource, ns) scope
            named: dict[str, dict[tuple[str, str, str], float]] = {i: {} for i in crashers}
            scoped: dict[str, dict[tuple[str, str], float]] = {i: {} for i in crashers}
            for r in self.requests:
                if r.identity not in crashers:
                    continue
                if r.name:
                    named[r.identity].setdefault((r.resource, r.namespace, r.name), r.t)
                else:
                    scoped[r.identity].setdefault((r.resource, r.namespace), r.t)
            for d in self.deliveries:
                if d.identity in crashers:
                    named[d.identity].setdefault((d.resource, d.namespace, d.name), d.t)
            inf = float("inf")
            for uid, h in self.objects.items():
                ns, name = h.ref.namespace, h.ref.name
                n = 0
                for c in crashes:
                    if h.first.t > c.t:
                        continue
                    seen = min(
                        named[c.identity].get((h.resource, ns, name), inf),
                        scoped[c.identity].get((h.resource, ns), inf),
                        scoped[c.identity].get((h.resource, ""), inf),
                    )
                    if seen <= c.t:
                        n += 1
                if n:
                    out[uid] = n
        self._crashes = out
        return out


_CACHE: weakref.WeakKeyDictionary[Ledger, LedgerIndex] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def index_of(ledger: Ledger) -> LedgerIndex:
    """The index of ``ledger`` as it is now (cached until the ledger grows)."""
    with _CACHE_LOCK:
        index = _CACHE.get(ledger)
    if index is not None and index.length == len(ledger):
        return index
    index = LedgerIndex(list(ledger))
    with _CACHE_LOCK:
        _CACHE[ledger] = index
    return index
