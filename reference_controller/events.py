"""Kubernetes Events for phase changes, through a pluggable sink.

Events are posted by the replica whose status write made the phase change, right after that
write succeeded, so each transition is announced exactly once. Reasons: ``PhaseTransition``
for Pending and Sending (the original's), and DD-EVENT-001's ``NotificationRetrying``,
``NotificationSent``, ``NotificationPartiallySent`` and ``NotificationFailed`` (a Warning).
The original's ``ReconcileStarted`` on every reconcile is not emitted: with level-triggered
reconciles it is noise proportional to watch traffic, not to anything that happened.

The default sink posts ``core/v1`` Events through the replica's own API client (not through
kopf's poster, whose context only exists inside kopf's handler tasks: a retry timer fires
outside of them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from .models import Phase

if TYPE_CHECKING:
    from .kubeapi import NotificationApi

__all__ = [
    "COMPONENT",
    "ApiEventSink",
    "EventSink",
    "K8sEvent",
    "MemoryEventSink",
    "phase_event",
]

COMPONENT: Final = "notification-controller"

_REASONS: Final[dict[Phase, tuple[str, str]]] = {
    Phase.PENDING: ("Normal", "PhaseTransition"),
    Phase.SENDING: ("Normal", "PhaseTransition"),
    Phase.RETRYING: ("Normal", "NotificationRetrying"),
    Phase.SENT: ("Normal", "NotificationSent"),
    Phase.PARTIALLY_SENT: ("Warning", "NotificationPartiallySent"),
    Phase.FAILED: ("Warning", "NotificationFailed"),
}

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class K8sEvent:
    """An Event about one object: the parts a sink needs."""

    involved: Mapping[str, Any]  # the object (apiVersion, kind, metadata)
    type: str  # "Normal" | "Warning"
    reason: str
    message: str


def phase_event(
    obj: Mapping[str, Any], previous: Phase | None, phase: Phase, detail: str
) -> K8sEvent:
    """The Event announcing ``previous -> phase`` on ``obj``."""
    kind, reason = _REASONS[phase]
    before = previous.value if previous is not None else "<none>"
    message = f"Transitioned from {before} to {phase.value} phase"
    if detail:
        message = f"{message}: {detail}"
    return K8sEvent(involved=obj, type=kind, reason=reason, message=message)


@runtime_checkable
class EventSink(Protocol):
    """Where Events go. Implementations should not raise; errors are logged."""

    async def emit(self, event: K8sEvent) -> None:
        """Publish one Event."""


class MemoryEventSink:
    """Keeps Events in a list (for tests and embedding)."""

    def __init__(self) -> None:
        self.events: list[K8sEvent] = []

    async def emit(self, event: K8sEvent) -> None:
        """Append the Event."""
        self.events.append(event)


class ApiEventSink:
    """Posts ``core/v1`` Events through the replica's API client."""

    def __init__(self, api: NotificationApi, *, instance: str) -> None:
        self._api = api
        self._instance = instance

    async def emit(self, event: K8sEvent) -> None:
        """POST the Event; failures are logged and swallowed (an Event is best effort)."""
        metadata = event.involved.get("metadata") or {}
        namespace = metadata.get("namespace") or "default"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{metadata.get('name', 'notification')}.",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": event.involved.get("apiVersion"),
                "kind": event.involved.get("kind"),
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "reason": event.reason,
            "message": event.message[:1024],
            "type": event.type,
            "source": {"component": COMPONENT, "host": self._instance},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
        }
        try:
            await self._api.create_event(namespace, body)
        except Exception as exc:  # an Event must never fail a reconcile
            _log.warning(
                "Posting event %s for %s/%s failed: %s",
                event.reason,
                namespace,
                metadata.get("name"),
                exc,
            )
