"""Helpers of the validation suite: NotificationRequest manifests, retry policies, waits.

(A uniquely named module: test directories share the module name ``conftest``.)
"""

from __future__ import annotations

from typing import Any

import pytest

from pytest_ntinvariants.harness import Harness

# Backoff runs 1000x faster than the CRD says (30 s becomes 30 ms); the invariants judge
# retry spacing on the same scale. Modules apply it with ``pytestmark = [NR_INVARIANTS]``.
TIME_SCALE = 0.001
NR_INVARIANTS = pytest.mark.ntinv_invariants(time_scale=TIME_SCALE)
API_VERSION = "kubernaut.ai/v1alpha1"
KIND = "NotificationRequest"
TERMINAL = ("Sent", "PartiallySent", "Failed")


def nr(
    name: str,
    channels: list[str] | None = None,
    *,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A NotificationRequest manifest (``retryPolicy`` etc. as keyword arguments)."""
    body: dict[str, Any] = {
        "type": "simple",
        "priority": "medium",
        "subject": f"subject {name}",
        "body": f"body of {name}",
    }
    if channels is not None:
        body["channels"] = channels
    body.update(spec)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": body}


def policy(
    max_attempts: int, initial: int = 1, multiplier: int = 2, max_backoff: int = 60
) -> dict[str, int]:
    """A ``retryPolicy`` (seconds, before the time scale)."""
    return {
        "maxAttempts": max_attempts,
        "initialBackoffSeconds": initial,
        "backoffMultiplier": multiplier,
        "maxBackoffSeconds": max_backoff,
    }


def wait_terminal(
    ntinv: Harness, name: str, *, namespace: str = "default", timeout: float = 15.0
) -> dict[str, Any]:
    """Block until the object reaches a terminal phase (on its watch events, no polling)."""
    return ntinv.wait_for(
        API_VERSION,
        KIND,
        name,
        lambda o: (o.get("status") or {}).get("phase") in TERMINAL,
        namespace=namespace,
        timeout=timeout,
    )
