"""Which NotificationRequest delivery an endpoint call is: the reference controller sends
``X-Notification-Uid``, ``-Namespace``, ``-Name``, ``-Channel`` and ``-Attempt`` with every
delivery. A call is keyed by its channel and attempt (``slack #2``; the channel alone
when it carries no attempt number, the sink's name when it names no channel): a retry is
a new side effect, a second call of one attempt a repeated one. The ``channel`` and
``attempt`` are attributes too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_ntinvariants.sinks import Attribution, SinkRequest

__all__ = [
    "HEADER_ATTEMPT",
    "HEADER_CHANNEL",
    "HEADER_NAME",
    "HEADER_NAMESPACE",
    "HEADER_UID",
    "delivery_key",
    "identify_notification",
]

#: Attribution headers the reference controller sends with every delivery.
HEADER_UID = "X-Notification-Uid"
HEADER_NAMESPACE = "X-Notification-Namespace"
HEADER_NAME = "X-Notification-Name"
HEADER_CHANNEL = "X-Notification-Channel"
HEADER_ATTEMPT = "X-Notification-Attempt"

_HEADERS = (HEADER_UID, HEADER_NAMESPACE, HEADER_NAME, HEADER_CHANNEL, HEADER_ATTEMPT)


def identify_notification(request: SinkRequest) -> Attribution | None:
    """The delivery a call is, by the ``X-Notification-*`` headers: the object, the key
    (``delivery_key``) and ``channel`` (the sink's name when the call names none) /
    ``attempt`` (an int; None when missing or malformed) as attributes. None when the
    call carries none of the headers: not a notification delivery.

    Pass it as ``Sink(identify=identify_notification)`` outside pytest; under pytest the
    pack gives it to every endpoint through ``pytest_ntinvariants_attribute_call``.
    """
    # Imported here: the sinks module loads aiohttp, which a run that never starts an
    # endpoint should not pay for.
    from pytest_ntinvariants.sinks import Attribution, ObjectKey

    headers = request.headers
    if not any(h in headers for h in _HEADERS):
        return None
    uid = headers.get(HEADER_UID)
    namespace = headers.get(HEADER_NAMESPACE)
    name = headers.get(HEADER_NAME)
    ref = ObjectKey(uid, namespace, name) if uid or namespace or name else None
    channel = headers.get(HEADER_CHANNEL) or request.sink
    attempt = _attempt(request)
    return Attribution(
        ref, delivery_key(channel, attempt), {"channel": channel, "attempt": attempt}
    )


def delivery_key(channel: str, attempt: object) -> str:
    """A delivery's side-effect key: ``slack #2``, or ``slack`` without an attempt."""
    return f"{channel} #{attempt}" if attempt not in (None, "") else channel


def _attempt(request: SinkRequest) -> int | None:
    value = request.headers.get(HEADER_ATTEMPT)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
