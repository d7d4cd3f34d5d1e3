"""Classification of delivery results into success, retryable failure and permanent failure.

The rules (one table for every channel, unlike the original, where only Slack had them and
the orchestrator decided by a type assertion on ``RetryableError``):

===========================================  ==========================================
result                                       class
===========================================  ==========================================
HTTP 2xx                                     success
HTTP 408, 429, 5xx                           retryable (Retry-After honoured as minimum)
any other HTTP status (4xx, 1xx/3xx)         permanent
TLS certificate failure (self-signed,        permanent (BR-NOT-058): retrying cannot fix
expired, wrong host, unknown CA)             a certificate
other TLS/SSL failure (handshake)            permanent, as in the original
connection refused/reset, DNS, timeouts      retryable
invalid URL, channel not configured          permanent
===========================================  ==========================================

A permanent error's text starts with ``"permanent failure: "`` (the original's marker, kept
for people and for assertions written against it); the authoritative record of permanence
is the attempt's ``permanent`` field.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

import aiohttp

__all__ = [
    "PERMANENT_MARKER",
    "ErrorKind",
    "Outcome",
    "classify_exception",
    "classify_http_status",
    "parse_retry_after",
]

PERMANENT_MARKER: Final = "permanent failure: "

#: Longest response-body excerpt kept in an error message.
_BODY_EXCERPT: Final = 200


class ErrorKind(StrEnum):
    """Why a delivery failed (logs and audit records; not part of the CRD)."""

    HTTP = "http"
    TLS_CERTIFICATE = "tls-certificate"
    TLS = "tls"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    NOT_CONFIGURED = "not-configured"
    INVALID_TARGET = "invalid-target"
    IO = "io"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Outcome:
    """The classified result of one delivery."""

    success: bool
    permanent: bool = False
    error: str | None = None
    kind: ErrorKind | None = None
    retry_after: float | None = None
    http_status: int | None = None

    @classmethod
    def ok(cls, http_status: int | None = None) -> Outcome:
        """A successful delivery."""
        return cls(success=True, http_status=http_status)

    @classmethod
    def retryable(
        cls,
        kind: ErrorKind,
        detail: str,
        *,
        retry_after: float | None = None,
        http_status: int | None = None,
    ) -> Outcome:
        """A failure worth retrying."""
        return cls(
            success=False,
            error=detail,
            kind=kind,
            retry_after=retry_after,
            http_status=http_status,
        )

    @classmethod
    def permanent_failure(
        cls, kind: ErrorKind, detail: str, *, http_status: int | None = None
    ) -> Outcome:
        """A failure no retry can fix; the error carries the ``permanent failure: `` marker."""
        text = detail if detail.startswith(PERMANENT_MARKER) else PERMANENT_MARKER + detail
        return cls(success=False, permanent=True, error=text, kind=kind, http_status=http_status)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date); else None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        reference = now if now is not None else datetime.now(UTC)
        return max((when - reference).total_seconds(), 0.0)
    if seconds != seconds or seconds < 0:  # NaN or negative: ignore the header
        return None
    return seconds


def classify_http_status(
    channel: str,
    status: int,
    *,
    headers: Mapping[str, str] | None = None,
    body: str = "",
    now: datetime | None = None,
) -> Outcome:
    """Classify an HTTP response status from ``channel``'s endpoint."""
    if 200 <= status < 300:
        return Outcome.ok(http_status=status)
    excerpt = " ".join(body.split())[:_BODY_EXCERPT]
    detail = f"{channel} endpoint returned HTTP {status}" + (f": {excerpt}" if excerpt else "")
    if status in (408, 429) or 500 <= status < 600:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"), now=now)
        return Outcome.retryable(
            ErrorKind.HTTP, detail, retry_after=retry_after, http_status=status
        )
    return Outcome.permanent_failure(ErrorKind.HTTP, detail, http_status=status)


def classify_exception(
    channel: str, exc: BaseException, *, timeout: float | None = None
) -> Outcome:
    """Classify an exception raised while delivering to ``channel``.

    Order matters: aiohttp's certificate error is also a connector error (retryable), and
    its timeout errors are also OS errors.
    """
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLCertVerificationError):
        reason = (
            exc.certificate_error
            if isinstance(exc, aiohttp.ClientConnectorCertificateError)
            else exc
        )
        return Outcome.permanent_failure(
            ErrorKind.TLS_CERTIFICATE,
            f"TLS certificate validation failed (BR-NOT-058): {_describe(reason)}",
        )
    if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError | aiohttp.ServerFingerprintMismatch):
        return Outcome.permanent_failure(
            ErrorKind.TLS, f"TLS handshake failed (BR-NOT-058): {_describe(exc)}"
        )
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        limit = f" after {timeout:g}s" if timeout is not None else ""
        return Outcome.retryable(ErrorKind.TIMEOUT, f"{channel} delivery timed out{limit}")
    if isinstance(exc, aiohttp.InvalidURL):
        return Outcome.permanent_failure(
            ErrorKind.INVALID_TARGET, f"invalid {channel} URL: {_describe(exc)}"
        )
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return Outcome.retryable(
            ErrorKind.CONNECTION, f"{channel} connection failed: {_describe(exc)}"
        )
    if isinstance(exc, OSError):
        return Outcome.retryable(ErrorKind.IO, f"{channel} I/O error: {_describe(exc)}")
    return Outcome.retryable(ErrorKind.INTERNAL, f"{channel} delivery error: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
