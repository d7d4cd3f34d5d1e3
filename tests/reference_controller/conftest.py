"""Fixtures for the reference controller's tests: an in-memory API, scripted channels."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

# Helper modules of this directory (memapi, variants) are imported by plain name.
sys.path.insert(0, str(Path(__file__).parent))

from rc_memapi import MemoryApi

from reference_controller import (
    ControllerConfig,
    MemoryAuditSink,
    NotificationController,
    Outcome,
    RecordingStrategy,
    build_controller,
)
from reference_controller.channels import DeliveryRequest
from reference_controller.models import ChannelName


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


@pytest.fixture
def memapi() -> MemoryApi:
    return MemoryApi()


@pytest_asyncio.fixture
async def make_controller(memapi: MemoryApi) -> AsyncIterator[ControllerFactory]:
    """Build controllers (replicas) on the shared in-memory API; time scale 0.001.

    Every controller built is closed (its requeue timers cancelled) after the test.
    """
    built: list[NotificationController] = []

    def make(
        identity: str = "replica-a",
        *,
        channels: Mapping[ChannelName, Any] | None = None,
        strategy: RecordingStrategy | None = None,
        api: Any = None,
        audit: MemoryAuditSink | None = None,
        **config: Any,
    ) -> NotificationController:
        settings = {"time_scale": 0.001, "seed": 7, "claim_timeout": 30.0, **config}
        controller = build_controller(
            ControllerConfig(identity=identity, **settings),
            api=api if api is not None else memapi,
            strategy=strategy,
            channels=channels,
            audit_sink=audit if audit is not None else MemoryAuditSink(),
        )
        built.append(controller)
        return controller

    yield make
    for controller in built:
        await controller.close()
