"""Triggers: named moments in a test ("after replica A's first status write").

Races built from triggers reproduce every time, where races built from sleeps
reproduce sometimes. A trigger fires once; rules can start or stop on it, holds
release on it, and crashes happen on it. ``Trigger.when(...)`` builds one that fires
on the first ledger entry matching a predicate, so anything the ledger sees (a
request, a write, a delivery, an endpoint call) can be a trigger.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..ledger import Entry, Ledger

__all__ = ["Trigger"]


class Trigger:
    """A one-shot event with callbacks; thread-safe."""

    def __init__(self, description: str) -> None:
        self.description = description
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []
        self._undo: Callable[[], None] | None = None
        #: Runs a deterministic world until ``done()`` or ``timeout`` (virtual seconds):
        #: there, nothing happens while the test waits unless the wait drives the world.
        self.driver: Callable[[Callable[[], bool], float], object] | None = None

    def __repr__(self) -> str:
        return f"Trigger({self.description!r}, fired={self.fired})"

    @property
    def fired(self) -> bool:
        """Whether the trigger has fired."""
        return self._event.is_set()

    def fire(self) -> None:
        """Fire now (idempotent); runs the callbacks in the calling thread."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
            undo, self._undo = self._undo, None
        if undo is not None:
            undo()
        for cb in callbacks:
            cb()

    def on_fire(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the trigger fires (at once if it already has)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until fired; returns whether it fired within ``timeout`` (virtual
        seconds in a deterministic world, which runs meanwhile)."""
        if self.driver is not None and not self._event.is_set():
            self.driver(self._event.is_set, 60.0 if timeout is None else timeout)
            return self._event.is_set()
        return self._event.wait(timeout)

    @classmethod
    def when(
        cls,
        ledger: Ledger,
        entry_type: type[Entry],
        *,
        nth: int = 1,
        where: Callable[[Any], bool] | None = None,
        description: str = "",
        **match: Any,
    ) -> Trigger:
        """Fire on the ``nth`` ledger entry of ``entry_type`` whose fields equal ``match``
        (and that satisfies ``where``).

        Example: ``Trigger.when(ledger, RequestServed, identity="replica-0", verb="patch",
        subresource="status", where=lambda e: e.status < 300)``.
        """
        if nth < 1:
            raise ValueError(f"nth must be >= 1, got {nth}")
        text = description or (
            f"{entry_type.__name__} #{nth}" + "".join(f" {k}={v!r}" for k, v in match.items())
        )
        trigger = cls(text)
        seen = 0
        guard = threading.Lock()

        def listener(entry: Entry) -> None:
            nonlocal seen
            if not isinstance(entry, entry_type):
                return
            if any(getattr(entry, k, None) != v for k, v in match.items()):
                return
            if where is not None and not where(entry):
                return
            with guard:
                seen += 1
                hit = seen == nth
            if hit:
                trigger.fire()

        trigger._undo = ledger.subscribe(listener)
        return trigger
