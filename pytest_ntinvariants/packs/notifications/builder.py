"""Hand-built NotificationRequest histories, for unit tests of the pack's invariants,
assertions and report sections.

``NotificationLedgerBuilder`` is the core's ``LedgerBuilder`` plus ``notification()``, which
returns a ``NotificationBuilder``: successive versions of one NotificationRequest whose
status follows the original's shape::

    b = NotificationLedgerBuilder()
    nr = b.notification("nr-1", channels=["slack"])
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1, status=503)
    nr.write("replica-a", phase="Retrying", append=[nr.attempt("slack", 1, "failed")])
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_ntinvariants.invariants import LedgerBuilder, Target
from pytest_ntinvariants.ledger import ObjectVersion, SideEffect

from .attribution import delivery_key
from .invariants import KIND

__all__ = ["RESOURCE", "NotificationBuilder", "NotificationLedgerBuilder"]

JSON = dict[str, Any]

#: The NotificationRequest resource (``group/plural``).
RESOURCE = "kubernaut.ai/notificationrequests"

_KEEP: Any = object()


class NotificationLedgerBuilder(LedgerBuilder):
    """A ``LedgerBuilder`` that also writes NotificationRequests (``notification()``)."""

    default_resource = RESOURCE

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

    def call(
        self,
        endpoint: str,
        target: Target | None,
        *,
        channel: str | None = None,
        attempt: int | str = "",
        **options: Any,
    ) -> SideEffect:
        """A delivery as the pack's attribution records it: keyed by ``channel`` (the
        endpoint's name by default) and ``attempt``, which are attributes too;
        ``options`` as for ``LedgerBuilder.call`` (status, uid, detail, caller, at)."""
        channel = channel or endpoint
        return super().call(
            endpoint,
            target,
            key=delivery_key(channel, attempt),
            channel=channel,
            attempt=attempt or None,
            **options,
        )


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
        self.resource = RESOURCE
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
            "kind": KIND,
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
