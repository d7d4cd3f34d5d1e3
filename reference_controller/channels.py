"""Delivery channels: console, log, file, slack, webhook; email/teams/sms are not configured.

Each channel turns one ``DeliveryRequest`` into a classified ``Outcome`` and never raises
for a delivery failure. A channel is only ever given ``DeliveryRequest.redacted()``: the
controller redacts every request there, once, for every channel, so no channel (present or
future) has to remember to. Every HTTP
delivery carries the attribution headers ``X-Notification-Uid``, ``-Namespace``, ``-Name``,
``-Channel``, ``-Attempt`` and ``Idempotency-Key: <uid>/<channel>/<attempt>``: a receiver
can drop a repeated delivery of the same attempt (which can only happen after a claim was
taken over from a crashed replica), and test sinks attribute calls to objects with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import ssl
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Protocol, runtime_checkable

import aiohttp
import yaml

from .classify import ErrorKind, Outcome, classify_exception, classify_http_status
from .config import ControllerConfig
from .models import ChannelName, FileFormat, NotificationSpec, Phase, Priority
from .redact import Redactor, default_redactor

__all__ = [
    "HEADER_ATTEMPT",
    "HEADER_CHANNEL",
    "HEADER_IDEMPOTENCY_KEY",
    "HEADER_NAME",
    "HEADER_NAMESPACE",
    "HEADER_UID",
    "Channel",
    "ConsoleChannel",
    "DeliveryRequest",
    "FileChannel",
    "HttpPoster",
    "LogChannel",
    "SlackChannel",
    "UnconfiguredChannel",
    "WebhookChannel",
    "build_channels",
    "slack_blocks",
]

HEADER_UID: Final = "X-Notification-Uid"
HEADER_NAMESPACE: Final = "X-Notification-Namespace"
HEADER_NAME: Final = "X-Notification-Name"
HEADER_CHANNEL: Final = "X-Notification-Channel"
HEADER_ATTEMPT: Final = "X-Notification-Attempt"
HEADER_IDEMPOTENCY_KEY: Final = "Idempotency-Key"

_USER_AGENT: Final = "reference-controller/0.1 (kubernaut NotificationRequest)"
_RESPONSE_EXCERPT: Final = 1024

_PRIORITY_EMOJI: Final = {
    Priority.CRITICAL: "\N{POLICE CARS REVOLVING LIGHT}",
    Priority.HIGH: "\N{WARNING SIGN}\N{VARIATION SELECTOR-16}",
    Priority.MEDIUM: "\N{INFORMATION SOURCE}\N{VARIATION SELECTOR-16}",
    Priority.LOW: "\N{SPEECH BALLOON}",
}


@dataclass(frozen=True)
class DeliveryRequest:
    """Everything a channel needs for one attempt (channels get it ``redacted()``)."""

    uid: str
    namespace: str
    name: str
    channel: ChannelName
    attempt: int
    spec: NotificationSpec
    subject: str
    body: str
    metadata: Mapping[str, str]
    holder: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    phase: Phase | None = None
    successful_deliveries: int = 0
    failed_deliveries: int = 0

    def redacted(self, redactor: Redactor | None = None) -> DeliveryRequest:
        """A copy with every secret replaced: what the controller hands to every channel.

        Redacted (``redact`` module): the subject and body (both the fields and the spec's),
        ``spec.metadata``, every action link's URL, label and service, recipients' webhook
        URLs, and the labels and annotations; map entries whose key names a secret lose
        their whole value. Identifiers (uid, namespace, name, channel, attempt, holder) are
        names the API server validated and receivers attribute calls by, so they stay, as
        does the file channel's output directory (a path the channel resolves, not content).
        """
        redactor = redactor if redactor is not None else default_redactor()
        text = redactor.text
        spec = self.spec
        safe_spec = spec.model_copy(
            update={
                "subject": text(spec.subject),
                "body": text(spec.body),
                "metadata": redactor.redact_fields(spec.metadata),
                "action_links": tuple(
                    link.model_copy(
                        update={
                            "service": text(link.service),
                            "url": redactor.url(link.url),
                            "label": text(link.label),
                        }
                    )
                    for link in spec.action_links
                ),
                "recipients": tuple(
                    recipient.model_copy(
                        update={"webhook_url": redactor.url(recipient.webhook_url)}
                    )
                    if recipient.webhook_url
                    else recipient
                    for recipient in spec.recipients
                ),
            }
        )
        return replace(
            self,
            spec=safe_spec,
            subject=text(self.subject),
            body=text(self.body),
            metadata=redactor.redact_fields(self.metadata),
            labels=redactor.redact_fields(self.labels),
            annotations=redactor.redact_fields(self.annotations),
        )

    @property
    def idempotency_key(self) -> str:
        """``<uid>/<channel>/<attempt>``: the same for a repeated delivery of one attempt."""
        return f"{self.uid}/{self.channel.value}/{self.attempt}"

    def headers(self) -> dict[str, str]:
        """The attribution headers sent with every HTTP delivery."""
        return {
            HEADER_UID: self.uid,
            HEADER_NAMESPACE: self.namespace,
            HEADER_NAME: self.name,
            HEADER_CHANNEL: self.channel.value,
            HEADER_ATTEMPT: str(self.attempt),
            HEADER_IDEMPOTENCY_KEY: self.idempotency_key,
        }

    def document(self) -> dict[str, Any]:
        """The notification as a flat document (log line, file content, webhook payload)."""
        return {
            "timestamp": datetime.now(UTC).isoformat(),
            "notification_name": self.name,
            "namespace": self.namespace,
            "uid": self.uid,
            "type": self.spec.type.value,
            "priority": self.spec.priority.value,
            "subject": self.subject,
            "body": self.body,
            "channels": [c.value for c in self.spec.channels],
            "metadata": dict(self.metadata),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "phase": self.phase.value if self.phase is not None else None,
            "successful_deliveries": self.successful_deliveries,
            "failed_deliveries": self.failed_deliveries,
            "action_links": [link.model_dump(by_alias=True) for link in self.spec.action_links],
            "channel": self.channel.value,
            "attempt": self.attempt,
            "idempotency_key": self.idempotency_key,
        }


@runtime_checkable
class Channel(Protocol):
    """A delivery channel."""

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        """Deliver once and classify the result; failures are outcomes, not exceptions."""


class UnconfiguredChannel:
    """A channel with no implementation or no target: every delivery fails permanently."""

    def __init__(self, name: ChannelName, why: str = "") -> None:
        self._name = name
        self._why = why

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        """Fail permanently with ``channel not configured``."""
        detail = f"channel not configured: {self._name.value}"
        if self._why:
            detail = f"{detail} ({self._why})"
        return Outcome.permanent_failure(ErrorKind.NOT_CONFIGURED, detail)


class ConsoleChannel:
    """Prints ``[<priority>] [<type>] <subject>`` and the body (the original's format)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        """Write to the stream (``sys.stdout`` at call time by default)."""
        stream = self._stream if self._stream is not None else sys.stdout
        try:
            stream.write(
                f"[{request.spec.priority.value}] [{request.spec.type.value}] {request.subject}\n"
                f"{request.body}\n"
            )
            stream.flush()
        except (OSError, ValueError) as exc:
            return classify_exception(request.channel.value, exc)
        return Outcome.ok()


class LogChannel:
    """Emits the notification as one JSON line through ``logging``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("reference_controller.channels.log")

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        """Log one JSON object at INFO."""
        try:
            line = json.dumps(request.document(), sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError) as exc:  # unserialisable: retrying will not help
            return Outcome.permanent_failure(ErrorKind.INTERNAL, f"log marshal error: {exc}")
        self._logger.info("%s", line)
        return Outcome.ok()


class FileChannel:
    """Writes one file per attempt, atomically (temporary file, fsync, rename).

    The target is ``spec.fileDeliveryConfig.outputDirectory`` resolved inside the configured
    base directory (``NOTIFY_FILE_DIR``), or the base directory itself. A target outside the
    base (``..``, an absolute path elsewhere, a symlink out) is refused permanently: a
    namespace user must not be able to make the controller write anywhere on its disk.
    """

    def __init__(self, base_dir: Path) -> None:
        self._base = base_dir

    def target_dir(self, spec: NotificationSpec) -> Path:
        """The directory to write into; raises ``PermissionError`` when outside the base."""
        base = self._base.resolve()
        if spec.file_delivery_config is None:
            return base
        target = (base / spec.file_delivery_config.output_directory).resolve()
        if not target.is_relative_to(base):
            raise PermissionError(f"output directory {str(target)!r} is outside {str(base)!r}")
        return target

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        """Write the notification document as JSON or YAML."""
        try:
            target = self.target_dir(request.spec)
        except PermissionError as exc:
            return Outcome.permanent_failure(
                ErrorKind.INVALID_TARGET, f"file delivery refused: {exc}"
            )
        config = request.spec.file_delivery_config
        fmt = config.format if config is not None else FileFormat.JSON
        return await asyncio.to_thread(self._write, target, fmt, request)

    @staticmethod
    def _write(target: Path, fmt: FileFormat, request: DeliveryRequest) -> Outcome:
        try:
            target.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # as in the original: a directory that cannot exist is permanent
            return Outcome.permanent_failure(ErrorKind.IO, f"cannot create {target}: {exc}")
        document = request.document()
        content = (
            json.dumps(document, indent=2, ensure_ascii=False) + "\n"
            if fmt is FileFormat.JSON
            else yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        )
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S.%f")
        final = target / (
            f"notification-{request.namespace}-{request.name}-{stamp}"
            f"-attempt{request.attempt}.{fmt.value}"
        )
        fd, tmp = tempfile.mkstemp(dir=target, prefix=".notification-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except OSError as exc:  # the original's Dec-25 fix: write/rename errors are retryable
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return classify_exception(request.channel.value, exc)
        return Outcome.ok()


class HttpPoster:
    """POSTs JSON with the replica's HTTP session (created lazily, closed by ``close()``)."""

    def __init__(self, *, timeout: float, ca_bundle: Path | None = None) -> None:
        self._timeout = timeout
        self._ca_bundle = ca_bundle
        self._session: aiohttp.ClientSession | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ca_bundle is not None:
            return ssl.create_default_context(cafile=os.fspath(self._ca_bundle))
        return ssl.create_default_context()

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl_context()),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def post_json(
        self, channel: str, url: str, payload: Mapping[str, Any], headers: Mapping[str, str]
    ) -> Outcome:
        """POST ``payload`` to ``url`` and classify the response or the error."""
        session = self._ensure_session()
        try:
            async with session.post(
                url,
                json=payload,
                headers={"User-Agent": _USER_AGENT, **headers},
            ) as response:
                raw = await response.content.read(_RESPONSE_EXCERPT)
                return classify_http_status(
                    channel,
                    response.status,
                    headers=response.headers,
                    body=raw.decode("utf-8", errors="replace"),
                )
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            return classify_exception(channel, exc, timeout=self._timeout)

    async def close(self) -> None:
        """Close the session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def slack_blocks(request: DeliveryRequest) -> dict[str, Any]:
    """The Slack Block Kit message: header (emoji + subject), body, links, context line."""
    emoji = _PRIORITY_EMOJI[request.spec.priority]
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _clip(f"{emoji} {request.subject}", 150),
                "emoji": True,
            },
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(request.body, 3000)}},
    ]
    if request.spec.action_links:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": _clip(link.label, 75)},
                        "url": link.url,
                    }
                    for link in request.spec.action_links[:25]
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"*Priority:* {request.spec.priority.value} | "
                    f"*Type:* {request.spec.type.value}",
                }
            ],
        }
    )
    return {"text": _clip(request.subject, 3000), "blocks": blocks}


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


class SlackChannel:
    """POSTs a Block Kit message to the configured incoming-webhook URL."""

    def __init__(self, url: str, poster: HttpPoster) -> None:
        self._url = url
        self._poster = poster

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        """POST the Slack message."""
        return await self._poster.post_json(
            "slack", self._url, slack_blocks(request), request.headers()
        )


class WebhookChannel:
    """POSTs the notification document as JSON to the configured URL."""

    def __init__(self, url: str, poster: HttpPoster) -> None:
        self._url = url
        self._poster = poster

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        """POST the JSON document."""
        return await self._poster.post_json(
            "webhook", self._url, request.document(), request.headers()
        )


def build_channels(config: ControllerConfig, poster: HttpPoster) -> dict[ChannelName, Channel]:
    """The channel table for ``config``; unset targets give ``UnconfiguredChannel``."""
    channels: dict[ChannelName, Channel] = {
        ChannelName.CONSOLE: ConsoleChannel(),
        ChannelName.LOG: LogChannel(),
        ChannelName.EMAIL: UnconfiguredChannel(ChannelName.EMAIL),
        ChannelName.TEAMS: UnconfiguredChannel(ChannelName.TEAMS),
        ChannelName.SMS: UnconfiguredChannel(ChannelName.SMS),
    }
    channels[ChannelName.FILE] = (
        FileChannel(config.file_dir)
        if config.file_dir is not None
        else UnconfiguredChannel(ChannelName.FILE, "NOTIFY_FILE_DIR is not set")
    )
    channels[ChannelName.SLACK] = (
        SlackChannel(config.slack_webhook_url, poster)
        if config.slack_webhook_url
        else UnconfiguredChannel(ChannelName.SLACK, "NOTIFY_SLACK_WEBHOOK_URL is not set")
    )
    channels[ChannelName.WEBHOOK] = (
        WebhookChannel(config.webhook_url, poster)
        if config.webhook_url
        else UnconfiguredChannel(ChannelName.WEBHOOK, "NOTIFY_WEBHOOK_URL is not set")
    )
    return channels
