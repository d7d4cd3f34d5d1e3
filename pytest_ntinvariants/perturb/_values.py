"""Values that perturbation rules and markers share, importable without the server."""

from __future__ import annotations

import random
from typing import Any

__all__ = ["FAULTS", "FAULT_CODES", "Delay", "check_delay", "draw", "parse_delay"]

Delay = float | tuple[float, float]


def draw(delay: Delay, rng: random.Random) -> float:
    """A delay in seconds: the value itself, or one drawn uniformly from a (low, high) range."""
    if isinstance(delay, tuple):
        lo, hi = delay
        return rng.uniform(lo, hi)
    return delay


def check_delay(delay: Delay, what: str) -> None:
    """Refuse (ValueError) a delay that is negative or not a sound (low, high) range."""
    values = delay if isinstance(delay, tuple) else (delay,)
    if isinstance(delay, tuple) and (len(delay) != 2 or delay[0] > delay[1]):
        raise ValueError(f"{what} range must be (low, high) with low <= high, got {delay!r}")
    if any(not isinstance(v, (int, float)) or v < 0 for v in values):
        raise ValueError(f"{what} must be a number of seconds >= 0, got {delay!r}")


def parse_delay(value: Any, what: str) -> Delay:
    """``0.05`` or ``(0.01, 0.1)`` (a list too) from a marker argument; raises ValueError."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError(f"{what} must be seconds or a (low, high) pair, got {value!r}")
        pair = (float(value[0]), float(value[1]))
        check_delay(pair, what)
        return pair
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be seconds or a (low, high) pair, got {value!r}")
    check_delay(float(value), what)
    return float(value)


# The API errors a fault can inject, the only list of them: the ``ntinv_faults`` help and
# parser, ``Space.faults`` and ``rules.Fault`` all read it. Each code names the error of
# ``apiserver.errors`` it is answered with (by name: the server is not imported here) and
# kube's message for it, ``{what}`` standing for the object ("" : a generic message).
FAULTS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", ""),
    401: ("Unauthorized", ""),
    403: ("Forbidden", ""),
    404: ("NotFound", ""),
    409: (
        "Conflict",
        "Operation cannot be fulfilled on {what}: the object has been modified; "
        "please apply your changes to the latest version and try again",
    ),
    410: ("Gone", ""),
    422: ("Invalid", ""),
    429: ("TooManyRequests", "Too many requests, please try again later."),
    500: ("InternalError", "Internal error occurred: injected by pytest-ntinvariants"),
    503: ("ServiceUnavailable", "the server is currently unable to handle the request"),
    504: ("Timeout", "Timeout: request did not complete within the allowed duration"),
}

#: The codes of ``FAULTS``, in order.
FAULT_CODES = tuple(sorted(FAULTS))
