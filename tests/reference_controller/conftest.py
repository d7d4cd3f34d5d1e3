"""Fixtures for the reference controller's tests: an in-memory API, controllers on it."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

# Helper modules of this directory (memapi, variants) are imported by plain name.
sys.path.insert(0, str(Path(__file__).parent))

from rc_kit import ControllerFactory
from rc_memapi import MemoryApi

from reference_controller import (
    ControllerConfig,
    MemoryAuditSink,
    NotificationController,
    RecordingStrategy,
    build_controller,
)
from reference_controller.models import ChannelName


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
