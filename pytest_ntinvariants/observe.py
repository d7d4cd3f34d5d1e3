"""Feeding the ledger: what the API server and the fake endpoints saw, as it happened.

``LedgerRecorder`` is an ``Interceptor`` plus a store listener: it records every
committed object version (with the writer's identity), every request and its answer
(with the resourceVersion served, stale or not) and every watch delivery with its
delay since the commit. ``record_sink`` does the same for a fake delivery endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .apiserver.hooks import Interceptor, RequestInfo
from .ledger import Ledger, ObjectVersion, RequestServed, SideEffect, WatchDelivered

if TYPE_CHECKING:
    from .apiserver import Delivery, Event, FakeApiServer, Watcher

__all__ = ["LedgerRecorder", "record_sink"]

_REASON = re.compile(rb'"reason":"([A-Za-z]+)"')


class LedgerRecorder(Interceptor):
    """Records the server's requests, object versions and watch deliveries in a ledger."""

    def __init__(self, ledger: Ledger, server: FakeApiServer) -> None:
        self.ledger = ledger
        self.server = server
        self._committed: dict[int, float] = {}  # rv -> monotonic commit time
        self._undo: list[Callable[[], None]] = []

    def attach(self) -> LedgerRecorder:
        """Start recording (idempotent per instance)."""
        if not self._undo:
            self._undo.append(self.server.store.subscribe(self._on_event))
            self._undo.append(self.server.add_interceptor(self).remove)
        return self

    def detach(self) -> None:
        """Stop recording."""
        while self._undo:
            self._undo.pop()()

    def _on_event(self, event: Event) -> None:
        meta = event.obj.get("metadata") or {}
        self._committed[event.rv] = self.ledger.clock()
        self.ledger.record(
            ObjectVersion,
            rv=event.rv,
            type=event.type,
            resource=event.resource.key,
            api_version=event.resource.api_version,
            kind_=event.resource.kind,
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            identity=event.identity,
            verb=event.verb,
            subresource=event.subresource,
            obj=event.obj,
        )

    def on_response(self, request: RequestInfo, status: int, body: bytes) -> None:
        """Record a resource request as served: status, resourceVersion, stale read, time."""
        if not request.verb:
            return  # discovery and openapi: not part of any race
        # (an error's Status carries no resourceVersion, whatever was noted before it)
        rv = request.served_rv if status < 400 else None
        reason = _REASON.search(body[-2048:]) if status >= 400 and body else None
        self.ledger.record(
            RequestServed,
            identity=request.identity,
            verb=request.verb,
            resource=request.resource.key if request.resource else "",
            namespace=request.namespace,
            name=request.name,
            subresource=request.subresource,
            status=status,
            rv=rv or "",
            served_at=request.served_at,
            reason=reason.group(1).decode() if reason else "",
            duration=self.ledger.clock() - request.started if request.started else 0.0,
        )

    def on_delivered(self, watcher: Watcher, delivery: Delivery) -> None:
        """Record a watch event written to its watcher, with its delay since the commit."""
        if delivery.type == "BOOKMARK":
            return
        meta = delivery.version.obj.get("metadata") or {}
        committed = self._committed.get(delivery.version.rv)
        self.ledger.record(
            WatchDelivered,
            identity=watcher.identity,
            watcher=watcher.id,
            resource=watcher.resource.key,
            type=delivery.type,
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            rv=delivery.version.rv,
            delay=self.ledger.clock() - committed if committed is not None else 0.0,
        )


def record_sink(ledger: Ledger, sink: Any) -> Callable[[], None]:
    """Record every call a fake endpoint (``pytest_ntinvariants.sinks.Sink``) receives.

    Returns the undo.
    """

    def on_call(call: Any) -> None:
        ledger.record(
            SideEffect,
            endpoint=str(call.sink),
            uid=str(call.uid or ""),
            namespace=str(call.namespace or ""),
            name=str(call.name or ""),
            key=str(call.key or ""),
            status=int(call.status or 0),  # 0: the endpoint closed the connection
            # Strings: the ledger is JSON, and a digest must not depend on a value's type.
            attributes={
                str(k): str(v) for k, v in (call.attributes or {}).items() if v is not None
            },
            detail=call.rule,
            caller=str(call.caller or ""),
        )

    handle = sink.on_call(on_call)
    return handle.remove  # type: ignore[no-any-return]
