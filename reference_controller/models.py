"""Pydantic models of the ``NotificationRequest`` custom resource: the Python source of truth.

The shapes follow the original controller's December 2025 API (``kubernaut.ai/v1alpha1``).
``crd.yaml`` ships the same schema for the API server;
``tests/reference_controller/test_rc_models.py`` keeps the two in agreement (enums,
defaults, ranges, required fields, field names).

Additions beyond the original status, all documented in the CRD's descriptions too:

* ``DeliveryAttempt.permanent`` -- permanence as a field, so it survives reconciles without
  parsing the ``"permanent failure: "`` marker out of the error text (the marker is still
  written, for humans and for tests written against the original).
* ``DeliveryAttempt.nextAttemptAt`` -- when the channel may be retried (backoff with jitter
  and Retry-After, computed once at delivery time), so every replica and every reconcile
  agrees on the same due time and no phase can run retries back to back (NT-BUG-007).
* ``DeliveryAttempt.holder`` -- the replica that made the delivery.
* ``status.claims`` -- deliveries announced before they are made (claim-before-deliver).

Timestamps are written with microsecond precision (like ``metav1.MicroTime``): with
``NOTIFY_TIME_SCALE`` a backoff can be a few milliseconds, and a whole-second timestamp
could not express when the next attempt is due.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ActionLink",
    "AttemptStatus",
    "ChannelName",
    "Claim",
    "Condition",
    "DeliveryAttempt",
    "FileDeliveryConfig",
    "FileFormat",
    "NotificationSpec",
    "NotificationStatus",
    "NotificationType",
    "Phase",
    "Priority",
    "Recipient",
    "RetryPolicy",
    "Timestamp",
    "format_time",
    "parse_spec",
    "parse_status",
    "status_to_wire",
]

GROUP = "kubernaut.ai"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "NotificationRequest"
PLURAL = "notificationrequests"


def format_time(value: datetime) -> str:
    """Render ``value`` as RFC 3339 in UTC with microseconds: ``2025-12-26T10:00:00.000001Z``."""
    return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _as_utc(value: datetime) -> datetime:
    # Naive datetimes are taken as UTC, as Kubernetes does for metav1.Time.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


#: A timezone-aware UTC timestamp that serialises as RFC 3339 with microseconds.
Timestamp = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_time, return_type=str, when_used="json"),
]


class NotificationType(StrEnum):
    """``spec.type``: what kind of notification this is (cosmetic for delivery)."""

    ESCALATION = "escalation"
    SIMPLE = "simple"
    STATUS_UPDATE = "status-update"
    APPROVAL = "approval"
    MANUAL_REVIEW = "manual-review"


class Priority(StrEnum):
    """``spec.priority``; only cosmetic in V1.0 (console prefix, Slack emoji, log field)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class ChannelName(StrEnum):
    """``spec.channels[]``: where a notification is delivered."""

    EMAIL = "email"
    SLACK = "slack"
    TEAMS = "teams"
    SMS = "sms"
    WEBHOOK = "webhook"
    CONSOLE = "console"
    FILE = "file"
    LOG = "log"


class Phase(StrEnum):
    """``status.phase``; an absent phase (the original's ``""``) is ``None`` in Python."""

    PENDING = "Pending"
    SENDING = "Sending"
    RETRYING = "Retrying"
    SENT = "Sent"
    PARTIALLY_SENT = "PartiallySent"
    FAILED = "Failed"


class AttemptStatus(StrEnum):
    """``status.deliveryAttempts[].status``."""

    SUCCESS = "success"
    FAILED = "failed"


class FileFormat(StrEnum):
    """``spec.fileDeliveryConfig.format``."""

    JSON = "json"
    YAML = "yaml"


class _Model(BaseModel):
    """Base: camelCase on the wire, snake_case in Python, immutable, unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="ignore",
        use_enum_values=False,
    )


class Recipient(_Model):
    """``spec.recipients[]``: kept for API compatibility; no channel uses it (as originally)."""

    email: str | None = None
    slack: str | None = None
    teams: str | None = None
    phone: str | None = None
    webhook_url: str | None = Field(default=None, alias="webhookURL")


class ActionLink(_Model):
    """``spec.actionLinks[]``: a link shown with the notification (Slack, file, log, webhook)."""

    service: str
    url: str
    label: str


class RetryPolicy(_Model):
    """``spec.retryPolicy``; when absent the controller uses these defaults (5/30/2/480)."""

    max_attempts: int = Field(default=5, ge=1, le=10)
    initial_backoff_seconds: int = Field(default=30, ge=1, le=300)
    backoff_multiplier: int = Field(default=2, ge=1, le=10)
    max_backoff_seconds: int = Field(default=480, ge=60, le=3600)


class FileDeliveryConfig(_Model):
    """``spec.fileDeliveryConfig``: where the file channel writes (inside ``NOTIFY_FILE_DIR``)."""

    output_directory: str = Field(min_length=1)
    format: FileFormat = FileFormat.JSON


class NotificationSpec(_Model):
    """``spec`` of a ``NotificationRequest``; immutable after creation (DD-NOT-005)."""

    type: NotificationType
    priority: Priority = Priority.MEDIUM
    recipients: tuple[Recipient, ...] = ()
    subject: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1)
    channels: tuple[ChannelName, ...] = ()
    metadata: dict[str, str] = Field(default_factory=dict)
    action_links: tuple[ActionLink, ...] = ()
    retry_policy: RetryPolicy | None = None
    file_delivery_config: FileDeliveryConfig | None = None
    retention_days: int = Field(default=7, ge=1, le=90)

    @property
    def effective_retry_policy(self) -> RetryPolicy:
        """The retry policy to apply: ``retryPolicy`` or the defaults when it is absent."""
        return self.retry_policy if self.retry_policy is not None else RetryPolicy()


class DeliveryAttempt(_Model):
    """One delivery to one channel; identified exactly by ``(channel, attempt)``.

    ``attempt`` is 1-based per channel. ``permanent``, ``nextAttemptAt`` and ``holder`` are
    additions beyond the original (see the module docstring).
    """

    channel: ChannelName
    attempt: int = Field(ge=1)
    timestamp: Timestamp
    status: AttemptStatus
    error: str | None = None
    duration_seconds: float | None = None
    permanent: bool = False
    next_attempt_at: Timestamp | None = None
    holder: str | None = None

    @property
    def slot(self) -> tuple[ChannelName, int]:
        """The exact identity of this attempt: ``(channel, attempt)``."""
        return (self.channel, self.attempt)


class Claim(_Model):
    """A delivery announced in status before it is made (addition beyond the original).

    The claim write carries the resourceVersion it was based on, so two replicas (or a
    reconcile working from a stale read) cannot both claim the same ``(channel, attempt)``.
    A claim older than the claim timeout may be taken over (a crash between claim and record).
    """

    channel: ChannelName
    attempt: int = Field(ge=1)
    holder: str = Field(min_length=1)
    claimed_at: Timestamp

    @property
    def slot(self) -> tuple[ChannelName, int]:
        """The ``(channel, attempt)`` this claim reserves."""
        return (self.channel, self.attempt)


class Condition(_Model):
    """A ``metav1.Condition``; the controller maintains ``Ready``."""

    type: str = Field(min_length=1)
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = None
    last_transition_time: Timestamp
    reason: str = Field(min_length=1)
    message: str


class NotificationStatus(_Model):
    """``status`` of a ``NotificationRequest``.

    The counters are per attempt (the Dec-2025 semantics) and are always recomputed from
    ``deliveryAttempts`` by the reference controller, never incremented.
    """

    phase: Phase | None = None
    reason: str | None = None
    message: str | None = None
    delivery_attempts: tuple[DeliveryAttempt, ...] = ()
    total_attempts: int = 0
    successful_deliveries: int = 0
    failed_deliveries: int = 0
    queued_at: Timestamp | None = None
    processing_started_at: Timestamp | None = None
    completion_time: Timestamp | None = None
    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    claims: tuple[Claim, ...] = ()


def parse_spec(obj: Mapping[str, Any]) -> NotificationSpec:
    """Parse ``obj["spec"]``; raises ``pydantic.ValidationError`` when it is invalid."""
    return NotificationSpec.model_validate(obj.get("spec") or {})


def parse_status(obj: Mapping[str, Any]) -> NotificationStatus:
    """Parse ``obj["status"]`` (absent means empty)."""
    return NotificationStatus.model_validate(obj.get("status") or {})


def status_to_wire(status: NotificationStatus) -> dict[str, Any]:
    """The JSON-ready ``status`` dict: camelCase keys, RFC 3339 times, absent values omitted."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)
