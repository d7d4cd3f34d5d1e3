"""pytest-ntinvariants: find concurrency and stale-read bugs in Kubernetes controllers.

The public API fits on a screen; everything else is private. Names are loaded on
first use, so that having the plugin installed does not import the server (aiohttp),
kopf or the kubernetes client into test runs that do not use them.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ApiError",
    "Attribution",
    "CertificateAuthority",
    "CheckContext",
    "FakeApiServer",
    "FunctionInvariant",
    "Harness",
    "Interceptor",
    "Invariant",
    "InvariantRegistry",
    "Ledger",
    "Perturber",
    "Replicas",
    "RequestInfo",
    "Schedule",
    "Sink",
    "Space",
    "Store",
    "Target",
    "Trigger",
    "Violation",
    "assert_no_side_effects",
    "assert_side_effects",
    "hook_relay",
]

_WHERE = {
    "ApiError": ".apiserver",
    "Attribution": ".sinks",
    "CertificateAuthority": ".tls",
    "CheckContext": ".invariants",
    "FakeApiServer": ".apiserver",
    "FunctionInvariant": ".invariants",
    "Harness": ".harness",
    "Interceptor": ".apiserver",
    "Invariant": ".invariants",
    "InvariantRegistry": ".invariants",
    "Ledger": ".ledger",
    "Perturber": ".perturb",
    "Replicas": ".operators",
    "RequestInfo": ".apiserver",
    "Schedule": ".perturb",
    "Sink": ".sinks",
    "Space": ".perturb",
    "Store": ".apiserver",
    "Target": ".perturb",
    "Trigger": ".perturb",
    "Violation": ".invariants",
    "assert_no_side_effects": ".invariants.assertions",
    "assert_side_effects": ".invariants.assertions",
    "hook_relay": ".hookspecs",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
