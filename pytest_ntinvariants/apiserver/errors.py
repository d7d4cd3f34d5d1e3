"""Errors of the fake API server, each rendering a Kubernetes ``metav1.Status``.

The store and the HTTP layer raise these; only the HTTP layer turns them into
responses (``ApiError.status()`` is the body, ``ApiError.code`` the HTTP code).
Reasons and messages follow kube-apiserver's ``k8s.io/apimachinery/pkg/api/errors``
so that clients that branch on them (kopf on 409/422, the python client on
``reason``) behave as against a real cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Cause",
    "Conflict",
    "Expired",
    "Forbidden",
    "Gone",
    "InternalError",
    "Invalid",
    "MethodNotAllowed",
    "NotAcceptable",
    "NotFound",
    "RequestEntityTooLarge",
    "ServiceUnavailable",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
]


@dataclass(frozen=True)
class Cause:
    """One field-level cause of an error (``details.causes[]`` on the wire)."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        """Render as the wire's ``StatusCause`` (``field`` is omitempty there)."""
        if not self.field:
            return {"reason": self.reason, "message": self.message}
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(Exception):
    """Base of every error the API server answers with; a ``metav1.Status`` on the wire."""

    code: ClassVar[int] = 500
    reason: ClassVar[str] = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        group: str | None = None,
        kind: str | None = None,
        causes: tuple[Cause, ...] | list[Cause] = (),
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = tuple(causes)
        self.retry_after = retry_after
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers.setdefault("Retry-After", str(retry_after))

    def status(self) -> dict[str, Any]:
        """The ``metav1.Status`` document for this error."""
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group:  # kube omits the core group's empty name
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"


class BadRequest(ApiError):
    """400: the request could not be understood (malformed body, bad query)."""

    code = 400
    reason = "BadRequest"


class Unauthorized(ApiError):
    """401: no or unknown credentials."""

    code = 401
    reason = "Unauthorized"


class Forbidden(ApiError):
    """403: the request is understood but refused (e.g. a terminating namespace)."""

    code = 403
    reason = "Forbidden"


class NotFound(ApiError):
    """404: no such object or resource."""

    code = 404
    reason = "NotFound"


class MethodNotAllowed(ApiError):
    """405: the verb is not supported on this path."""

    code = 405
    reason = "MethodNotAllowed"


class NotAcceptable(ApiError):
    """406: none of the ``Accept`` media types can be served."""

    code = 406
    reason = "NotAcceptable"


class AlreadyExists(ApiError):
    """409 with reason AlreadyExists: create of a name that is taken."""

    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    """409 with reason Conflict: a stale resourceVersion or a failed precondition."""

    code = 409
    reason = "Conflict"


class Gone(ApiError):
    """410 with reason Gone."""

    code = 410
    reason = "Gone"


class Expired(ApiError):
    """410 with reason Expired: a resourceVersion older than the kept history."""

    code = 410
    reason = "Expired"


class RequestEntityTooLarge(ApiError):
    """413: the body exceeds the server's limit (3 MiB, like kube-apiserver)."""

    code = 413
    reason = "RequestEntityTooLarge"


class UnsupportedMediaType(ApiError):
    """415: a ``Content-Type`` the server does not accept for this request."""

    code = 415
    reason = "UnsupportedMediaType"


class Invalid(ApiError):
    """422: the object fails validation; ``causes`` name the fields."""

    code = 422
    reason = "Invalid"


class TooManyRequests(ApiError):
    """429: throttled; carries ``Retry-After``."""

    code = 429
    reason = "TooManyRequests"


class InternalError(ApiError):
    """500: the server failed."""

    code = 500
    reason = "InternalError"


class ServiceUnavailable(ApiError):
    """503: the server cannot serve now."""

    code = 503
    reason = "ServiceUnavailable"


class Timeout(ApiError):
    """504: the server timed out answering."""

    code = 504
    reason = "Timeout"


def name_mismatch(sent: object, name: str) -> BadRequest:
    """kube's checkName (apiserver handlers/rest.go): the body names another object than
    the URL, or none (400; ``ContextBasedNaming.ObjectName`` refuses an empty name)."""
    if sent in (None, ""):
        return BadRequest(
            f"the name of the object ({name} based on URL) was undeterminable: "
            f"name must be provided"
        )
    return BadRequest(
        f"the name of the object ({sent}) does not match the name on the URL ({name})"
    )


def too_large_resource_version(asked: int, current: int) -> Timeout:
    """A read that needs a resourceVersion the server has not reached (504).

    kube's watch cache waits up to 3 s for it (``blockTimeout``), then answers
    ``storage.NewTooLargeResourceVersionError(asked, current, 1)`` (apiserver
    storage/errors.go, storage/cacher/watch_cache.go ``waitUntilFreshLocked``): a Timeout
    whose one cause clients such as client-go's reflector look for, retry after a second.
    """
    return Timeout(
        f"Timeout: Too large resource version: {asked}, current: {current}",
        causes=[Cause("", "Too large resource version", "ResourceVersionTooLarge")],
        retry_after=1,
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> Invalid:
    """Build the 422 exactly as kube-apiserver words it.

    The message lists every cause, ``Kind.group "name" is invalid: field: message``,
    because kubectl shows only the message.
    """
    qualified = f"{kind}.{group}" if group else kind
    # Go's field.ErrorList.ToAggregate(): duplicates dropped, brackets around two or more.
    parts = list(dict.fromkeys(f"{c.field}: {c.message}" if c.field else c.message for c in causes))
    text = "[" + ", ".join(parts) + "]" if len(parts) > 1 else "".join(parts)
    return Invalid(
        f'{qualified} "{name}" is invalid: {text}',
        name=name,
        group=group,
        kind=kind,
        causes=causes,
    )
