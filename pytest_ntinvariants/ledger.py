"""The ledger: an append-only record of everything that happened in one test.

Invariants and assertions are queries over it, and failure reports are drawn from
it, so it records, in order and with who did it: every API request and its answer
(and the resourceVersion a read was served at), every object version, every watch
delivery and its delay, every perturbation that fired, every call a fake endpoint
received, and every replica start, crash and stop.

Entries are immutable; object versions are the store's own (never mutated) dicts,
so recording them costs a reference, not a copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeVar

__all__ = [
    "Ledger",
    "ObjectVersion",
    "PerturbationFired",
    "ReplicaEvent",
    "RequestServed",
    "SideEffect",
    "WatchDelivered",
]

JSON = dict[str, Any]
E = TypeVar("E", bound="Entry")


@dataclass(frozen=True)
class Entry:
    """Base of every ledger entry: its position and time (seconds since the ledger began)."""

    seq: int
    t: float

    @property
    def kind(self) -> str:
        """A short name of the entry type, for reports."""
        return type(self).__name__

    def to_dict(self) -> JSON:
        """A JSON-able dict of this entry."""
        d = asdict(self)
        d["entry"] = self.kind
        return d


@dataclass(frozen=True)
class RequestServed(Entry):
    """One API request and its answer."""

    identity: str
    verb: str
    resource: str  # "group/plural" ("/configmaps" for core)
    namespace: str
    name: str
    subresource: str
    status: int
    rv: str  # the resourceVersion of the answer (object or list), "" if none
    served_at: int | None = None  # a stale view's resourceVersion, when one applied
    reason: str = ""  # the Status reason for errors
    duration: float = 0.0


@dataclass(frozen=True)
class ObjectVersion(Entry):
    """One version of one object, as the store committed it."""

    rv: int
    type: Literal["ADDED", "MODIFIED", "DELETED"]
    resource: str
    api_version: str
    kind_: str
    namespace: str
    name: str
    uid: str
    identity: str
    verb: str
    subresource: str
    obj: JSON = field(repr=False, compare=False)

    def to_dict(self) -> JSON:
        """As ``Entry.to_dict``, with the object's kind under ``kind``."""
        d = super().to_dict()
        d["kind"] = d.pop("kind_")
        return d


@dataclass(frozen=True)
class WatchDelivered(Entry):
    """One event written to one watch stream."""

    identity: str
    watcher: int
    resource: str
    type: str
    namespace: str
    name: str
    rv: int
    delay: float  # seconds between the commit and the write to the stream


@dataclass(frozen=True)
class PerturbationFired(Entry):
    """A perturbation rule acted (delayed, held, served stale, injected a fault, crashed)."""

    rule: str
    action: str
    identity: str
    detail: str = ""


@dataclass(frozen=True)
class SideEffect(Entry):
    """A call the outside world received (a fake endpoint: Slack, a webhook).

    It is about the object ``uid`` / ``namespace`` / ``name`` (any may be "" when the
    endpoint could not tell); ``key`` names the side effect (at most one successful call
    per object and key is expected), ``attributes`` are what the endpoint's attribution
    added (strings, for reports and packs).
    """

    endpoint: str
    uid: str
    namespace: str
    name: str
    key: str
    status: int  # what the endpoint answered (0: closed the connection)
    # hash=False: a dict cannot be hashed, and seq already tells entries apart.
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False)
    detail: str = ""
    caller: str = ""  # the replica that made the call, when the endpoint can tell


@dataclass(frozen=True)
class ReplicaEvent(Entry):
    """A controller replica started, stopped, crashed or restarted."""

    identity: str
    action: Literal["started", "stopped", "crashed", "restarted"]
    detail: str = ""


class Ledger:
    """The append-only record of one test; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        #: The clock ``t`` is measured on (a deterministic world's virtual clock).
        self.clock = clock
        self.t0 = clock()
        self._entries: list[Entry] = []
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Entry], None]] = []

    def now(self) -> float:
        """Seconds since the ledger began."""
        return self.clock() - self.t0

    def record(self, cls: type[E], **fields: Any) -> E:
        """Append an entry of type ``cls``; ``seq`` and ``t`` are assigned here."""
        with self._lock:
            t = fields.pop("t", None)
            entry = cls(seq=len(self._entries), t=self.now() if t is None else t, **fields)
            self._entries.append(entry)
            listeners = list(self._listeners)
        for listener in listeners:
            listener(entry)
        return entry

    def subscribe(self, listener: Callable[[Entry], None]) -> Callable[[], None]:
        """Call ``listener(entry)`` after every append; returns the undo."""
        with self._lock:
            self._listeners.append(listener)

        def undo() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return undo

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        with self._lock:
            return iter(list(self._entries))

    def entries(self, cls: type[E] | None = None, **match: Any) -> list[E]:
        """Entries of a type whose fields equal every ``match`` value (None matches any)."""
        with self._lock:
            items = list(self._entries)
        out = []
        for e in items:
            if cls is not None and not isinstance(e, cls):
                continue
            if all(v is None or getattr(e, k, None) == v for k, v in match.items()):
                out.append(e)
        return out  # type: ignore[return-value]

    # ---------------------------------------------------------------- queries

    def versions(
        self,
        *,
        uid: str | None = None,
        kind: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        identity: str | None = None,
    ) -> list[ObjectVersion]:
        """Object versions in resourceVersion order, filtered."""
        return self.entries(
            ObjectVersion, uid=uid, kind_=kind, name=name, namespace=namespace, identity=identity
        )

    def objects(self, kind: str | None = None) -> dict[str, list[ObjectVersion]]:
        """Every object (by uid) with its versions in order."""
        out: dict[str, list[ObjectVersion]] = {}
        for v in self.versions(kind=kind):
            out.setdefault(v.uid, []).append(v)
        return out

    def requests(self, **match: Any) -> list[RequestServed]:
        """API requests, filtered by any ``RequestServed`` field."""
        return self.entries(RequestServed, **match)

    def deliveries(self, **match: Any) -> list[WatchDelivered]:
        """Watch deliveries, filtered by any ``WatchDelivered`` field."""
        return self.entries(WatchDelivered, **match)

    def side_effects(self, **match: Any) -> list[SideEffect]:
        """Calls received by fake endpoints, filtered by any ``SideEffect`` field."""
        return self.entries(SideEffect, **match)

    def perturbations(self, **match: Any) -> list[PerturbationFired]:
        """Perturbations that fired, filtered by any ``PerturbationFired`` field."""
        return self.entries(PerturbationFired, **match)

    def replica_events(self, **match: Any) -> list[ReplicaEvent]:
        """Replica lifecycle events."""
        return self.entries(ReplicaEvent, **match)

    def between(self, start: float, end: float) -> list[Entry]:
        """Entries with ``start <= t <= end``."""
        return [e for e in self if start <= e.t <= end]

    def to_json(self) -> list[JSON]:
        """Every entry as a JSON-able dict."""
        return [e.to_dict() for e in self]
