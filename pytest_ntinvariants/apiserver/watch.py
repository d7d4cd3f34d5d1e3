"""Fan-out of store events to watch streams.

The store calls the hub for every change, in resourceVersion order, from whichever
thread wrote; the hub hands each event to the watchers of that resource on the
server's loop. Each watcher translates events through its selectors the way the real
watch cache does (an object that stops matching a label selector is sent as DELETED,
one that starts matching as ADDED) and queues them for its stream.

This is the one place where delivery to a watcher can be perturbed: ``Watcher`` keeps
the identity of the client that opened it, and the server's interceptors decide, per
watcher and per event, whether to deliver now, later, or not at all.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .resources import CRD_KEY, ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import Event, Store, Version

if TYPE_CHECKING:
    from collections.abc import Callable

    from .hooks import Gate

__all__ = ["Delivery", "WatchHub", "Watcher"]

_ids = itertools.count(1)


@dataclass
class Delivery:
    """One event on its way to one watcher (what interceptors see and may hold back)."""

    type: str  # ADDED, MODIFIED, DELETED (after selector translation)
    version: Version
    event: Event | None  # None for the synthetic ADDED of an initial list
    not_before: float = 0.0  # loop time before which it must not be written (latency)


@dataclass(eq=False)
class Watcher:
    """One open watch stream: what it watches, for whom, and what waits to be sent."""

    resource: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    identity: str
    loop: asyncio.AbstractEventLoop
    id: int = field(default_factory=lambda: next(_ids))  # the server gives its own
    pending: deque[Delivery] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    seen_rv: int = 0  # every event up to this rv was delivered or did not concern us
    closed: bool = False
    # Watchers are created on the server's loop thread; events from other threads hop over.
    loop_thread: int = field(default_factory=threading.get_ident)
    # Set by the server so interceptors can transform deliveries (latency, holds, drops).
    on_delivery: Callable[[Watcher, Delivery], list[Delivery]] | None = None
    # While the stream is being opened, live events wait here (not None) so that they
    # follow the backlog the stream starts with; ``release()`` passes them on.
    held: list[Event] | None = None
    # Set by the server when a scheduler holds this client's events (see ``Gate``); what
    # the gate holds waits in ``gated`` (after ``pending``, which it released).
    gate: Gate | None = None
    gated: list[Delivery] = field(default_factory=list)
    # Set when what it watches stopped being served (its CRD was deleted): the stream sends
    # what was offered before, then ends.
    ending: bool = False
    _queued: int = 0  # offers sent through the loop's queue ...
    _dequeued: int = 0  # ... and those of them pushed since (see offer)

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether an object falls within this watch's namespace and selectors."""
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self.labels.matches(obj) and self.fields.matches(obj)

    def translate(self, event: Event) -> Delivery | None:
        """The event as this watcher sees it, or None if it does not concern it."""
        if event.resource.key != self.resource.key:
            return None  # history replays (watch resumes) carry every resource's events
        now = self.matches(event.obj)
        if event.type == "MODIFIED" and event.old is not None:
            before = self.matches(event.old.obj)
            if now and not before:
                return Delivery("ADDED", event.version, event)
            if before and not now:
                return Delivery("DELETED", event.version, event)
        return Delivery(event.type, event.version, event) if now else None

    def offer(self, event: Event) -> None:
        """Called from the store's listener, in any thread; delivers on the loop."""
        if self.closed:
            return
        on_loop = threading.get_ident() == self.loop_thread
        if on_loop and self._queued == self._dequeued:
            self._push(event)  # nothing of ours waits in the loop's queue: deliver in place
            return
        # A write from another thread waits in the loop's queue; a later write on the loop
        # thread pushed in place would overtake it (rv 6 on the wire before rv 5). Offers
        # come under the store's lock in rv order, and the queue keeps that order. Each
        # counter has one writer (offerers under the lock; the loop), so none is lost.
        self._queued += 1
        if on_loop:
            self.loop.call_soon(self._push_queued, event)
        else:
            self.loop.call_soon_threadsafe(self._push_queued, event)

    def _push_queued(self, event: Event) -> None:
        self._dequeued += 1
        self._push(event)

    def _push(self, event: Event) -> None:
        if self.held is not None:
            self.held.append(event)
            return
        try:
            delivery = self.translate(event)
            if delivery is not None:
                self.enqueue(delivery)
            else:
                self.seen_rv = max(self.seen_rv, event.rv)
        except Exception as e:
            # This runs inside the store's write when the writer is on the loop thread: a
            # failing interceptor must not turn a committed write into an error. The loop's
            # handler (FakeApiServer's LoopThread) keeps it, and stop() raises it.
            self.loop.call_exception_handler(
                {"message": f"watch delivery to watcher {self.id} failed", "exception": e}
            )

    def release(self) -> None:
        """Pass on the events held while the stream was opened (in order), then go live."""
        held, self.held = self.held or [], None
        for event in held:
            self._push(event)

    def enqueue(self, delivery: Delivery) -> None:
        """Queue a delivery, passing it through the interceptors first."""
        batch = self.on_delivery(self, delivery) if self.on_delivery else [delivery]
        for d in batch:
            self.queue(d)

    def queue(self, delivery: Delivery) -> None:
        """Queue a delivery the interceptors already saw: for the stream, or for the gate
        to let through (then it waits in ``gated``)."""
        if self.gate is not None:
            self.gated.append(delivery)
            self.gate.hold_delivery(self, delivery, functools.partial(self._ungate, delivery))
            return
        self.pending.append(delivery)
        self.wakeup.set()

    def _ungate(self, delivery: Delivery) -> None:
        for i, d in enumerate(self.gated):
            if d is delivery:
                del self.gated[i]
                self.pending.append(delivery)
                self.wakeup.set()
                return

    def is_gated(self, delivery: Delivery) -> bool:
        """Whether ``delivery`` waits for the gate (not yet let through, not withdrawn)."""
        return any(d is delivery for d in self.gated)

    def queued(self) -> list[Delivery]:
        """What is queued and not yet written, oldest first (gated ones last)."""
        return [*self.pending, *self.gated]

    def withdraw(self, delivery: Delivery) -> None:
        """Take a queued delivery back (an interceptor superseded it)."""
        for queue in (self.pending, self.gated):
            for i, d in enumerate(queue):
                if d is delivery:
                    del queue[i]
                    return

    def end(self) -> None:
        """End the stream after what was offered before (called where ``offer`` is)."""
        if self.closed:
            return
        on_loop = threading.get_ident() == self.loop_thread
        if on_loop and self._queued == self._dequeued:
            self._end()
        elif on_loop:
            self.loop.call_soon(self._end)  # after the offers that wait in the queue
        else:
            self.loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        self.ending = True
        self.wakeup.set()

    def close(self) -> None:
        """End the stream at its next wake-up."""
        self.closed = True
        self.wakeup.set()


class WatchHub:
    """Routes store events to the watchers of each resource."""

    def __init__(self, store: Store) -> None:
        self.store = store
        # Dicts, not sets: events fan out in the order the watches opened, the same in
        # every run (a set of watchers iterates in memory-address order).
        self._watchers: dict[str, dict[Watcher, None]] = {}
        self._ids = itertools.count(1)
        self._unsubscribe = store.subscribe(self._on_event)

    def next_id(self) -> int:
        """A watcher id, numbered per server so that a run numbers them the same way."""
        return next(self._ids)

    def _on_event(self, event: Event) -> None:
        for watcher in list(self._watchers.get(event.resource.key, ())):
            watcher.offer(event)
        if event.type == "DELETED" and event.resource.key == CRD_KEY:
            # Its resource is no longer served: kube tears its storage down, which ends
            # every watch of it (after the DELETED events of its objects, sent above).
            spec = event.obj.get("spec") or {}
            key = f"{spec.get('group', '')}/{(spec.get('names') or {}).get('plural', '')}"
            for watcher in list(self._watchers.get(key, ())):
                watcher.end()

    def add(self, watcher: Watcher) -> None:
        """Start routing events to a watcher (call with the store's lock held)."""
        self._watchers.setdefault(watcher.resource.key, {})[watcher] = None

    def remove(self, watcher: Watcher) -> None:
        """Stop routing events to a watcher."""
        with self.store.lock:
            self._watchers.get(watcher.resource.key, {}).pop(watcher, None)
        watcher.closed = True

    def watchers(self) -> list[Watcher]:
        """Every open watcher."""
        with self.store.lock:
            return [w for ws in self._watchers.values() for w in ws]

    def close_all(self) -> None:
        """End every stream (server shutdown, or a forced drop of all watches)."""
        for w in self.watchers():
            w.close()

    def shutdown(self) -> None:
        """Detach from the store and end every stream."""
        self._unsubscribe()
        self.close_all()
