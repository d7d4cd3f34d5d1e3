"""The ``format`` keyword of CRD schemas: which formats kube keeps, and their checks.

kube-openapi's ``strfmt`` checks, as apiextensions' ``StripUnsupportedFormats`` keeps
them: string formats date-time, date, byte, uuid(3/4/5), ipv4, ipv6, cidr, hostname
(ASCII only), mac, hexcolor, duration, email and uri are checked, the last three
approximately; other kube formats (isbn, creditcard, ssn...) are accepted as any string.
``int32``/``int64`` (and ``float``) are range checked as kube 1.36 does (1.32 ignored
them).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
import re
from collections.abc import Callable

from ..jsonvalues import INT64_MAX, INT64_MIN

__all__ = ["INTEGER_FORMAT_RANGES", "STRING_FORMATS", "kept_format"]


_RX_DATE_TIME_TAIL = re.compile(
    r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"
)
_RX_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_RX_UUID = {
    "uuid": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid3": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid4": re.compile(
        r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
    ),
    "uuid5": re.compile(
        r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
    ),
}
_RX_HOSTNAME = re.compile(
    r"^([a-zA-Z0-9]((-?[a-zA-Z0-9]{0,62})?)|([a-zA-Z0-9](([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)"
    r"(\.)){1,}([a-zA-Z]){2,63})$"
)
_RX_MAC = re.compile(
    r"^(?:[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}|[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){7}"
    r"|[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){19}|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){2,9})$"
)
_RX_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RX_DURATION = re.compile(
    r"^(?:[-+]?(?:[0-9]*\.?[0-9]+(?:ns|us|µs|μs|ms|s|m|h))+|0"
    r"|[0-9]+\s*(?:ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?"
    r"|minutes?|hours?|days?|weeks?))$"
)
_RX_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_RX_URI = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*|/[^\s]*)$")


def _is_date(text: str) -> bool:
    if not _RX_DATE.match(text):
        return False
    try:
        datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    # strfmt.IsDateTime: a date, a "t", then hh:mm:ss[.frac](z|+hh:mm), lower-cased.
    if len(text) < 4:
        return False
    parts = text.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = _RX_DATE_TIME_TAIL.match(parts[1])
    if match is None:
        return False
    return match[1] <= "23" and match[2] <= "59" and match[3] <= "59"


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_ip(text: str, marker: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return marker in text


def _is_cidr(text: str) -> bool:
    if "/" not in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _rx(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: pattern.match(text) is not None


def _is_hostname(text: str) -> bool:
    if not _RX_HOSTNAME.match(text) or len(text) > 255:
        return False
    return all(len(part) <= 63 for part in text.split("."))


# The string formats checked, by name without dashes (date-time is "datetime").
STRING_FORMATS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_date_time,
    "date": _is_date,
    "byte": _is_byte,
    "uuid": _rx(_RX_UUID["uuid"]),
    "uuid3": _rx(_RX_UUID["uuid3"]),
    "uuid4": _rx(_RX_UUID["uuid4"]),
    "uuid5": _rx(_RX_UUID["uuid5"]),
    "ipv4": lambda s: _is_ip(s, "."),
    "ipv6": lambda s: _is_ip(s, ":"),
    "cidr": _is_cidr,
    "hostname": _is_hostname,
    "mac": _rx(_RX_MAC),
    "hexcolor": _rx(_RX_HEXCOLOR),
    "duration": _rx(_RX_DURATION),
    "email": _rx(_RX_EMAIL),
    "uri": _rx(_RX_URI),
}
# Formats kube keeps but this fake does not check (accepted as any string).
_UNCHECKED_FORMATS = frozenset(
    ("bsonobjectid", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "rgbcolor", "password")
)


def kept_format(fmt: str, types: tuple[str, ...]) -> str:
    """The format kube validates, or "" (StripUnsupportedFormatsPostProcessorForVersion)."""
    if not fmt:
        return ""
    single = types[0] if len(types) == 1 else ""
    if single in ("", "string"):
        normalized = fmt.replace("-", "")
        return fmt if normalized in STRING_FORMATS else ""
    if single == "integer":
        return fmt if fmt in ("int32", "int64") else ""
    if single == "number":
        return fmt if fmt == "float" else ""
    return ""


# The values an integer of format int32 or int64 may take.
INTEGER_FORMAT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (INT64_MIN, INT64_MAX),
}
