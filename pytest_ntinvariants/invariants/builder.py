"""Hand-built ledgers, for unit tests of invariants, assertions and reports.

A real ledger comes from the fake API server, the sinks and the replicas; to test a rule
you want the exact history that breaks it, entry by entry. ``LedgerBuilder`` writes the
same entries (through ``Ledger.record``) with a controlled clock and a global
resourceVersion counter, and ``NotificationBuilder`` writes NotificationRequest versions
whose status follows the original's shape::

    b = LedgerBuilder()
    nr = b.notification("nr-1", channels=["slack"])
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1, status=503)
    nr.write("replica-a", phase="Retrying", append=[nr.attempt("slack", 1, "failed")])
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ..ledger import (
    Ledger,
    ObjectVersion,
    PerturbationFired,
    ReplicaEvent,
    RequestServed,
    SideEffect,
    WatchDelivered,
)

__all__ = ["EPOCH", "LedgerBuilder", "NotificationBuilder"]

JSON = dict[str, Any]

#: Wall-clock time of ledger time 0 in built ledgers (the seed's date).
EPOCH = datetime(2025, 12, 26, 10, 0, 0, tzinfo=UTC)

_KEEP: Any = object()


class LedgerBuilder:
    """Writes ledger entries with explicit times and a global resourceVersion counter.

    Every entry is stamped ``now``, which then advances by ``step`` seconds; pass
    ``at=`` (seconds since the ledger began) to place an entry, or call ``advance``.
    """

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

    def notification(
        self,
        name: str = "nr-1",
        *,
        namespace: str = "default",
        channels: Sequence[str] = ("slack",),
        retry_policy: Mapping[str, Any] | None = None,
        uid: str | None = None,
        creator: str = "test",
        at: float | None = None,
    ) -> NotificationBuilder:
        """Create a NotificationRequest (an ``ADDED`` version by ``creator``)."""
        return NotificationBuilder(
            self, name, namespace, list(channels), retry_policy, uid or self.new_uid(), creator, at
        )

    # ------------------------------------------------------------- other entries

    def read(
        self,
        identity: str,
        target: NotificationBuilder | None,
        rv: int | None = None,
        *,
        verb: str = "get",
        served_at: int | None = None,
        status: int = 200,
        at: float | None = None,
    ) -> RequestServed:
        """A read (``get`` of ``target``, or a ``list`` when ``target`` is None)."""
        resource = target.resource if target is not None else "kubernaut.ai/notificationrequests"
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
        target: NotificationBuilder,
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
        target: NotificationBuilder,
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
        target: NotificationBuilder | None,
        *,
        channel: str | None = None,
        attempt: int | str = "",
        status: int = 200,
        uid: str | None = None,
        detail: str = "",
        caller: str = "",
        at: float | None = None,
    ) -> SideEffect:
        """A call a fake endpoint received about ``target`` (channel defaults to endpoint)
        from the replica ``caller`` (when the endpoint could tell)."""
        return self.ledger.record(
            SideEffect,
            t=self._t(at),
            endpoint=endpoint,
            channel=channel or endpoint,
            uid=uid if uid is not None else (target.uid if target is not None else ""),
            namespace=target.namespace if target is not None else "",
            name=target.name if target is not None else "",
            attempt=str(attempt),
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


class NotificationBuilder:
    """Successive versions of one NotificationRequest; each ``write`` commits one."""

    def __init__(
        self,
        builder: LedgerBuilder,
        name: str,
        namespace: str,
        channels: list[str],
        retry_policy: Mapping[str, Any] | None,
        uid: str,
        creator: str,
        at: float | None,
    ) -> None:
        self.b = builder
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resource = "kubernaut.ai/notificationrequests"
        spec: JSON = {
            "type": "simple",
            "priority": "medium",
            "subject": "disk full",
            "body": "node-1 disk is 95% full",
            "channels": channels,
        }
        if retry_policy is not None:
            spec["retryPolicy"] = dict(retry_policy)
        self.obj: JSON = {
            "apiVersion": "kubernaut.ai/v1alpha1",
            "kind": "NotificationRequest",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1},
            "spec": spec,
        }
        self.versions: list[ObjectVersion] = [
            builder.version(
                self.obj, creator, type="ADDED", verb="create", resource=self.resource, at=at
            )
        ]

    @property
    def rv(self) -> int:
        """The latest version's resourceVersion."""
        return self.versions[-1].rv

    @property
    def status(self) -> JSON:
        """The latest status (a copy)."""
        return copy.deepcopy(self.obj.get("status") or {})

    def attempt(
        self,
        channel: str,
        number: int,
        status: str = "failed",
        *,
        error: str | None = None,
        permanent: bool | None = None,
        timestamp: str | None = None,
        at: float | None = None,
        **extra: Any,
    ) -> JSON:
        """A ``deliveryAttempts`` entry; its timestamp defaults to the builder's clock.

        ``permanent=True`` writes the original's marker (``error`` starting with
        ``"permanent failure: "``); pass ``permanent_field=True`` in ``extra`` for the
        reference controller's explicit ``permanent`` field instead.
        """
        if error is None and status == "failed":
            error = "slack webhook returned 503"
        if permanent and error is not None and "permanent failure" not in error:
            error = f"permanent failure: {error}"
        a: JSON = {
            "channel": channel,
            "attempt": number,
            "timestamp": timestamp or self.b.wall(at),
            "status": status,
        }
        if error:
            a["error"] = error
        if extra.pop("permanent_field", False):
            a["permanent"] = True
        a.update(extra)
        return a

    def claim(self, channel: str, number: int, holder: str, *, at: float | None = None) -> JSON:
        """A ``status.claims`` entry (a delivery announced before it is made)."""
        return {
            "channel": channel,
            "attempt": number,
            "holder": holder,
            "claimedAt": self.b.wall(at),
        }

    def write(
        self,
        identity: str,
        *,
        phase: str | None = _KEEP,
        append: Iterable[Mapping[str, Any]] = (),
        attempts: Iterable[Mapping[str, Any]] | None = None,
        counters: Mapping[str, int] | None = None,
        completion_time: str | None = _KEEP,
        claims: Iterable[Mapping[str, Any]] | None = _KEEP,
        verb: str = "patch",
        subresource: str = "status",
        at: float | None = None,
    ) -> ObjectVersion:
        """Commit the next version.

        ``phase`` sets the phase (``None`` removes it); ``append`` adds attempts,
        ``attempts`` replaces the list. Counters are recomputed from the list unless
        ``counters`` overrides some of them. Entering a terminal phase sets
        ``completionTime`` (unless given). ``claims`` replaces ``status.claims`` (``None``
        removes it).
        """
        status = self.status
        if phase is not _KEEP:
            if phase is None:
                status.pop("phase", None)
            else:
                status["phase"] = phase
        items = list(status.get("deliveryAttempts") or []) if attempts is None else []
        items.extend(dict(a) for a in (attempts or ()))
        items.extend(dict(a) for a in append)
        status["deliveryAttempts"] = items
        status["totalAttempts"] = len(items)
        status["successfulDeliveries"] = sum(1 for a in items if a.get("status") == "success")
        status["failedDeliveries"] = sum(1 for a in items if a.get("status") == "failed")
        status.update(counters or {})
        if completion_time is not _KEEP:
            if completion_time is None:
                status.pop("completionTime", None)
            else:
                status["completionTime"] = completion_time
        elif status.get("phase") in ("Sent", "PartiallySent", "Failed") and not status.get(
            "completionTime"
        ):
            status["completionTime"] = self.b.wall(at).split(".")[0] + "Z"
        if claims is not _KEEP:
            if claims is None:
                status.pop("claims", None)
            else:
                status["claims"] = [dict(c) for c in claims]
        self.obj["status"] = status
        v = self.b.version(
            self.obj, identity, verb=verb, subresource=subresource, resource=self.resource, at=at
        )
        self.versions.append(v)
        return v

    def delete(self, identity: str = "test", *, at: float | None = None) -> ObjectVersion:
        """The ``DELETED`` version."""
        v = self.b.version(
            self.obj, identity, type="DELETED", verb="delete", resource=self.resource, at=at
        )
        self.versions.append(v)
        return v
