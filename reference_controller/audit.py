"""Audit records: one per delivery attempt, sent to a pluggable sink.

The original emitted ``notification.message.sent`` / ``notification.message.failed`` into
an ADR-034 audit store, with ``correlation_id`` = ``spec.metadata.remediationRequestName``
falling back to ``metadata.uid``; this controller keeps those names and that rule. The
default sink writes one structured log line per record; ``MemoryAuditSink`` keeps them for
tests. A failing sink is logged and never fails a delivery (the delivery already happened;
failing the reconcile would only cause a second one).

Unlike the original (whose ``error_type`` was hard-coded ``"transient"``), ``error_type``
says ``permanent`` or ``transient`` as classified.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable

from .models import format_time

__all__ = [
    "EVENT_FAILED",
    "EVENT_SENT",
    "AuditRecord",
    "AuditSink",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "correlation_id",
]

EVENT_SENT: Final = "notification.message.sent"
EVENT_FAILED: Final = "notification.message.failed"

#: ``spec.metadata`` key whose value is the audit correlation id when present.
CORRELATION_KEY: Final = "remediationRequestName"


def correlation_id(spec_metadata: Mapping[str, str], uid: str) -> str:
    """``spec.metadata.remediationRequestName`` if set, else the object's uid."""
    value = spec_metadata.get(CORRELATION_KEY)
    return value if value else uid


@dataclass(frozen=True)
class AuditRecord:
    """One audit record: a delivery attempt and its outcome."""

    event_type: str
    correlation_id: str
    namespace: str
    name: str
    uid: str
    channel: str
    attempt: int
    outcome: str  # "success" | "failure"
    timestamp: datetime
    holder: str
    idempotency_key: str
    duration_seconds: float
    error: str | None = None
    error_type: str | None = None  # "permanent" | "transient"
    priority: str | None = None
    notification_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ADR-034-like envelope fields first)."""
        data = asdict(self)
        data["timestamp"] = format_time(self.timestamp)
        return {
            "category": "notification",
            "actor": "service/notification-controller",
            "resource": f"NotificationRequest/{self.name}",
            **data,
        }


@runtime_checkable
class AuditSink(Protocol):
    """Where audit records go. Implementations should not raise; errors are logged."""

    async def emit(self, record: AuditRecord) -> None:
        """Store or forward one record."""


class LoggingAuditSink:
    """Writes each record as one JSON line to the ``reference_controller.audit`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("reference_controller.audit")

    async def emit(self, record: AuditRecord) -> None:
        """Log the record as a single JSON object."""
        self._logger.info("%s", json.dumps(record.to_dict(), sort_keys=True))


class MemoryAuditSink:
    """Keeps records in a list (for tests and embedding)."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def emit(self, record: AuditRecord) -> None:
        """Append the record."""
        self.records.append(record)
