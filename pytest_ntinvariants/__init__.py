"""pytest-ntinvariants: find concurrency and stale-read bugs in Kubernetes controllers.

The public API fits on a screen; everything else is private.
"""

from __future__ import annotations

from .apiserver import (
    ApiError,
    Delivery,
    Event,
    FakeApiServer,
    Interceptor,
    RequestInfo,
    Store,
    Watcher,
)

__all__ = [
    "ApiError",
    "Delivery",
    "Event",
    "FakeApiServer",
    "Interceptor",
    "RequestInfo",
    "Store",
    "Watcher",
]
