"""Hand-built ledgers, for unit tests of invariants, assertions and reports.

A real ledger comes from the fake API server, the sinks and the replicas; to test a rule
you want the exact history that breaks it, entry by entry. ``LedgerBuilder`` writes the
same entries (through ``Ledger.record``) with a controlled clock and a global
resourceVersion counter; a pack subclasses it to write its kind's versions::

    b = LedgerBuilder()
    g = b.version(gadget, "test", type="ADDED", verb="create")
    b.call("hook", g, key="notify", status=503)
    b.read("replica-a", g)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..ledger import (
    Ledger,
    ObjectVersion,
    PerturbationFired,
    ReplicaEvent,
    RequestServed,
    SideEffect,
    WatchDelivered,
)

__all__ = ["EPOCH", "LedgerBuilder", "Target"]

JSON = dict[str, Any]

#: Wall-clock time of ledger time 0 in built ledgers (the seed's date).
EPOCH = datetime(2025, 12, 26, 10, 0, 0, tzinfo=UTC)


class Target(Protocol):
    """What reads, watch events and calls are about: an ``ObjectVersion``, or a pack's
    builder of one object's versions."""

    @property
    def resource(self) -> str:
        """``group/plural``."""

    @property
    def namespace(self) -> str:
        """The object's namespace."""

    @property
    def name(self) -> str:
        """The object's name."""

    @property
    def uid(self) -> str:
        """The object's uid."""

    @property
    def rv(self) -> int:
        """Its latest resourceVersion."""


class LedgerBuilder:
    """Writes ledger entries with explicit times and a global resourceVersion counter.

    Every entry is stamped ``now``, which then advances by ``step`` seconds; pass
    ``at=`` (seconds since the ledger began) to place an entry, or call ``advance``.
    ``default_resource`` is what a ``list`` with no target reads (a pack sets its kind's).
    """

    default_resource: str = ""

    def __init__(self, ledger: Ledger | None = None, *, step: float = 0.001) -> None:
        self.ledger = ledger if ledger is not None else Ledger(clock=lambda: 0.0)
        self.step = step
        self.now = 0.0
        self.rv = 0
        self._uids = 0

    def _t(self, at: float | None) -> float:
        if at is not None:
            self.now = at
        t = self.now
        self.now += self.step
        return t

    def advance(self, seconds: float) -> LedgerBuilder:
        """Move the clock forward."""
        self.now += seconds
        return self

    def wall(self, t: float | None = None) -> str:
        """RFC 3339 (microseconds) of ledger time ``t`` (default: now)."""
        moment = EPOCH + timedelta(seconds=self.now if t is None else t)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def next_rv(self) -> int:
        """The next global resourceVersion."""
        self.rv += 1
        return self.rv

    def new_uid(self) -> str:
        """A fresh, readable uid."""
        self._uids += 1
        return f"uid-{self._uids:04d}"

    # ------------------------------------------------------------- objects

    def version(
        self,
        obj: Mapping[str, Any],
        identity: str,
        *,
        type: str = "MODIFIED",
        verb: str = "patch",
        subresource: str = "",
        resource: str = "",
        rv: int | None = None,
        at: float | None = None,
    ) -> ObjectVersion:
        """Record a committed version of ``obj`` (its metadata names it)."""
        rv = self.next_rv() if rv is None else rv
        body = copy.deepcopy(dict(obj))
        meta = body.setdefault("metadata", {})
        meta["resourceVersion"] = str(rv)
        api_version = str(body.get("apiVersion", "v1"))
        kind = str(body.get("kind", ""))
        if not resource:
            group = api_version.rpartition("/")[0]
            resource = f"{group}/{kind.lower()}s"
        return self.ledger.record(
            ObjectVersion,
            t=self._t(at),
            rv=rv,
            type=type,
            resource=resource,
            api_version=api_version,
            kind_=kind,
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            identity=identity,
            verb=verb,
            subresource=subresource,
            obj=body,
        )

    # ------------------------------------------------------------- other entries

    def read(
        self,
        identity: str,
        target: Target | None,
        rv: int | None = None,
        *,
        verb: str = "get",
        served_at: int | None = None,
        status: int = 200,
        at: float | None = None,
    ) -> RequestServed:
        """A read (``get`` of ``target``, or a ``list`` when ``target`` is None)."""
        resource = target.resource if target is not None else self.default_resource
        return self.ledger.record(
            RequestServed,
            t=self._t(at),
            identity=identity,
            verb=verb,
            resource=resource,
            namespace=target.namespace if target is not None else "",
            name=target.name if target is not None and verb == "get" else "",
            subresource="",
            status=status,
            rv=str(rv if rv is not None else (target.rv if target is not None else self.rv)),
            served_at=served_at,
        )

    def failed_write(
        self,
        identity: str,
        target: Target,
        status: int = 409,
        reason: str = "Conflict",
        *,
        verb: str = "update",
        subresource: str = "status",
        at: float | None = None,
    ) -> RequestServed:
        """A write the API server refused (a 409 Conflict by default)."""
        return self.ledger.record(
            RequestServed,
            t=self._t(at),
            identity=identity,
            verb=verb,
            resource=target.resource,
            namespace=target.namespace,
            name=target.name,
            subresource=subresource,
            status=status,
            rv="",
            reason=reason,
        )

    def watch(
        self,
        identity: str,
        target: Target,
        rv: int | None = None,
        *,
        delay: float = 0.0,
        type: str = "MODIFIED",
        watcher: int = 1,
        at: float | None = None,
    ) -> WatchDelivered:
        """A watch event about ``target`` (default: its latest version) written to a watcher."""
        return self.ledger.record(
            WatchDelivered,
            t=self._t(at),
            identity=identity,
            watcher=watcher,
            resource=target.resource,
            type=type,
            namespace=target.namespace,
            name=target.name,
            rv=rv if rv is not None else target.rv,
            delay=delay,
        )

    def call(
        self,
        endpoint: str,
        target: Target | None,
        *,
        key: str | None = None,
        status: int = 200,
        uid: str | None = None,
        detail: str = "",
        caller: str = "",
        at: float | None = None,
        **attributes: Any,
    ) -> SideEffect:
        """A call a fake endpoint received about ``target`` (its ``key`` defaults to the
        endpoint) from the replica ``caller`` (when the endpoint could tell), with
        ``attributes`` (as strings, as a sink's attribution is recorded)."""
        return self.ledger.record(
            SideEffect,
            t=self._t(at),
            endpoint=endpoint,
            uid=uid if uid is not None else (target.uid if target is not None else ""),
            namespace=target.namespace if target is not None else "",
            name=target.name if target is not None else "",
            key=key or endpoint,
            attributes={k: str(v) for k, v in attributes.items() if v is not None},
            status=status,
            detail=detail,
            caller=caller,
        )

    def perturb(
        self, rule: str, action: str, identity: str, detail: str = "", *, at: float | None = None
    ) -> PerturbationFired:
        """A perturbation that fired."""
        return self.ledger.record(
            PerturbationFired,
            t=self._t(at),
            rule=rule,
            action=action,
            identity=identity,
            detail=detail,
        )

    def replica(
        self, identity: str, action: str, detail: str = "", *, at: float | None = None
    ) -> ReplicaEvent:
        """A replica started, stopped, crashed or restarted."""
        return self.ledger.record(
            ReplicaEvent, t=self._t(at), identity=identity, action=action, detail=detail
        )

    def crash(self, identity: str, detail: str = "", *, at: float | None = None) -> ReplicaEvent:
        """An injected crash of a replica."""
        return self.replica(identity, "crashed", detail, at=at)
