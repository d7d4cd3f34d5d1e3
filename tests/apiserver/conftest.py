"""Shared fixtures for the fake API server's own tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from pytest_ntinvariants.apiserver import Event, FakeApiServer

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Real-client tests (test_client_*.py): servers with the Gizmo CRD (crds.py) installed, and a
# way to wait for server state that wakes on every store change instead of sleeping.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def make_gizmo_server() -> Iterator[Callable[..., FakeApiServer]]:
    """Start a ``FakeApiServer`` with the Gizmo CRD installed: ``make_gizmo_server(**kwargs)``.

    Keyword arguments go to ``FakeApiServer`` (``watch_timeout``, ``bookmark_interval``, ...).
    Every server started is stopped at teardown, which re-raises what failed in its thread.
    """
    from crds import GIZMO_CRD

    servers: list[FakeApiServer] = []

    def make(**kwargs: Any) -> FakeApiServer:
        kwargs.setdefault("crds", [GIZMO_CRD])
        s = FakeApiServer(**kwargs)
        servers.append(s)
        return s.start()

    yield make
    for s in reversed(servers):
        s.stop()


@pytest.fixture
def gizmo_server(make_gizmo_server: Callable[..., FakeApiServer]) -> FakeApiServer:
    """A started fake API server with the Gizmo CRD installed and default settings."""
    return make_gizmo_server()


class StoreWaiter:
    """Wait for a condition on a server's state, woken by every store change (no polling)."""

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self._changed = threading.Event()
        self._unsubscribe = server.store.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        # Runs under the store's lock in the writer's thread: only flag the change.
        self._changed.set()

    def until(self, predicate: Callable[[], T], timeout: float = 10.0, what: str = "") -> T:
        """Return ``predicate()`` once it is truthy; fail after ``timeout`` seconds.

        The timeout only guards against a hung test: every wake-up is a store change.
        """
        __tracebackhide__ = True
        deadline = time.monotonic() + timeout
        while True:
            # Clear before checking, so a change between the check and the wait is not lost.
            self._changed.clear()
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout}s waiting for {what or predicate!r}")
            self._changed.wait(remaining)

    def close(self) -> None:
        """Stop listening to the store."""
        self._unsubscribe()


@pytest.fixture
def store_waiter(gizmo_server: FakeApiServer) -> Iterator[StoreWaiter]:
    """A ``StoreWaiter`` on ``gizmo_server``'s store."""
    w = StoreWaiter(gizmo_server)
    yield w
    w.close()
