"""A fake Kubernetes API server, usable on its own (no pytest, no kopf).

``FakeApiServer`` serves real HTTP on 127.0.0.1; ``Store`` is its state, usable
without any transport; ``Interceptor`` is the seam for observing and perturbing it.
"""

from __future__ import annotations

from .connections import ConnectionLimits
from .errors import ApiError
from .hooks import Interceptor, RequestInfo
from .hosting import FakeApiServer, InterceptorHandle
from .registry import Registry
from .resources import ResourceType
from .store import Event, Store, Version, WriteContext
from .watch import Delivery, Watcher

__all__ = [
    "ApiError",
    "ConnectionLimits",
    "Delivery",
    "Event",
    "FakeApiServer",
    "Interceptor",
    "InterceptorHandle",
    "Registry",
    "RequestInfo",
    "ResourceType",
    "Store",
    "Version",
    "Watcher",
    "WriteContext",
]
