"""Helpers of the reference controller's tests: scripted channels, outcomes, specs.

(A uniquely named module: test directories share the module name ``conftest``, so
``from conftest import ...`` picks whichever directory's conftest was imported first when
several test directories run in one session.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from reference_controller import NotificationController, Outcome
from reference_controller.channels import DeliveryRequest


class ScriptedChannel:
    """A channel answering from a script; can hold deliveries in flight behind a gate."""

    def __init__(self, outcomes: Iterable[Outcome] = (), *, default: Outcome | None = None) -> None:
        self.script = list(outcomes)
        self.default = default if default is not None else Outcome.ok()
        self.calls: list[DeliveryRequest] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        self.calls.append(request)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.script.pop(0) if self.script else self.default

    def attempts(self, uid: str | None = None) -> list[int]:
        """Attempt numbers of the calls (optionally for one object)."""
        return [c.attempt for c in self.calls if uid is None or c.uid == uid]


def retryable(detail: str = "slack endpoint returned HTTP 503", **kw: Any) -> Outcome:
    from reference_controller.classify import ErrorKind

    return Outcome.retryable(ErrorKind.HTTP, detail, **kw)


def permanent(detail: str = "slack endpoint returned HTTP 400") -> Outcome:
    from reference_controller.classify import ErrorKind

    return Outcome.permanent_failure(ErrorKind.HTTP, detail)


def spec(*channels: str, **extra: Any) -> dict[str, Any]:
    """A valid spec with ``channels``; fast retries by default."""
    body: dict[str, Any] = {
        "type": "simple",
        "priority": "medium",
        "subject": "Disk almost full",
        "body": "node-1 /var at 91%",
        "channels": list(channels),
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoffSeconds": 1,
            "backoffMultiplier": 2,
            "maxBackoffSeconds": 60,
        },
    }
    body.update(extra)
    return body


ControllerFactory = Callable[..., NotificationController]
