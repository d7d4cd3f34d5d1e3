"""An in-memory stand-in for the API server, for unit tests of the controller's logic.

It implements ``reference_controller.kubeapi.NotificationApi``: GET, PUT ``/status`` with a
resourceVersion precondition (409 when stale), Event creation. A no-op status write keeps
the resourceVersion, as the real server does. Every version of every object is kept, so a
test can hand the controller a stale body (``version(uid, rv)``), serve stale GETs
(``stale_gets``), or fail the next writes (``fail_puts``). ``wait_for`` blocks until a
predicate over the store holds -- the store notifies on every change, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from reference_controller.kubeapi import ApiError, ConflictError, NotFoundError
from reference_controller.models import API_VERSION, KIND


@dataclass
class Write:
    """One accepted status write."""

    uid: str
    rv: str
    status: dict[str, Any]


@dataclass
class MemoryApi:
    """Objects, versions, writes, events; optimistic concurrency like the real server."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    conflicts: int = 0
    gets: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    #: Exceptions to raise from the next status writes (before applying them).
    fail_puts: list[Exception] = field(default_factory=list)
    #: uid -> number of upcoming GETs answered with the previous version (a lagging read).
    stale_gets: dict[str, int] = field(default_factory=dict)
    closed: bool = False

    def __post_init__(self) -> None:
        self._rv = itertools.count(100)
        self._changed: asyncio.Condition | None = None

    # -- test helpers -----------------------------------------------------------------

    def create(
        self,
        spec: Mapping[str, Any],
        *,
        name: str = "nr-1",
        namespace: str = "default",
        status: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a new object (status dropped unless given) and return a copy.

        ``metadata`` adds fields (labels, annotations) to the generated metadata.
        """
        uid = str(uuid.uuid4())
        obj: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": uid,
                "generation": 1,
                "resourceVersion": str(next(self._rv)),
                "creationTimestamp": "2025-12-26T10:00:00Z",
                **copy.deepcopy(dict(metadata or {})),
            },
            "spec": copy.deepcopy(dict(spec)),
        }
        if status is not None:
            obj["status"] = copy.deepcopy(dict(status))
        self.objects[(namespace, name)] = obj
        self.versions[uid] = [copy.deepcopy(obj)]
        return copy.deepcopy(obj)

    def current(self, uid: str) -> dict[str, Any]:
        """The latest version of ``uid``."""
        return copy.deepcopy(self.versions[uid][-1])

    def delete(self, uid: str) -> None:
        """Remove the object."""
        for key, obj in list(self.objects.items()):
            if obj["metadata"]["uid"] == uid:
                del self.objects[key]

    def status(self, uid: str) -> dict[str, Any]:
        """The latest status of ``uid``."""
        return copy.deepcopy(self.versions[uid][-1].get("status") or {})

    def phases(self, uid: str) -> list[str | None]:
        """The phase of every version, in order (repeats removed)."""
        result: list[str | None] = []
        for version in self.versions[uid]:
            phase = (version.get("status") or {}).get("phase")
            if not result or result[-1] != phase:
                result.append(phase)
        return result

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 5.0) -> None:
        """Block until ``predicate()`` is true; re-checked after every change."""
        changed = self._condition()
        async with changed:
            await asyncio.wait_for(changed.wait_for(predicate), timeout)

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()

    # -- NotificationApi --------------------------------------------------------------

    async def connection(self, *, refresh: bool = False) -> kopf.ConnectionInfo:
        """Dummy credentials."""
        return kopf.ConnectionInfo(server="http://memory.invalid")

    async def get_notification(self, namespace: str, name: str) -> dict[str, Any]:
        """The current object, or the previous version while ``stale_gets`` says so."""
        self.gets += 1
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise NotFoundError(404, "NotFound", f"{namespace}/{name} not found")
        uid = obj["metadata"]["uid"]
        lag = self.stale_gets.get(uid, 0)
        if lag and len(self.versions[uid]) > 1:
            self.stale_gets[uid] = lag - 1
            return copy.deepcopy(self.versions[uid][-2])
        return copy.deepcopy(obj)

    async def replace_notification_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Apply ``obj["status"]`` if its resourceVersion is current; else 409."""
        meta = obj["metadata"]
        key = (meta["namespace"], meta["name"])
        current = self.objects.get(key)
        if current is None or current["metadata"]["uid"] != meta.get(
            "uid", current["metadata"]["uid"]
        ):
            raise NotFoundError(404, "NotFound", f"{key} not found")
        if self.fail_puts:
            raise self.fail_puts.pop(0)
        if meta["resourceVersion"] != current["metadata"]["resourceVersion"]:
            self.conflicts += 1
            raise ConflictError(409, "Conflict", "the object has been modified")
        status = copy.deepcopy(obj.get("status") or {})
        if status == (current.get("status") or {}):
            return copy.deepcopy(current)  # a no-op write keeps the resourceVersion
        updated = copy.deepcopy(current)
        updated["status"] = status
        updated["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[key] = updated
        uid = updated["metadata"]["uid"]
        self.versions[uid].append(copy.deepcopy(updated))
        self.writes.append(Write(uid, updated["metadata"]["resourceVersion"], status))
        await self._notify()
        return copy.deepcopy(updated)

    async def create_event(self, namespace: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Record the Event."""
        self.events.append(copy.deepcopy(dict(event)))
        return dict(event)

    async def close(self) -> None:
        """Mark closed."""
        self.closed = True


def server_error() -> ApiError:
    """A 500 from the API server."""
    return ApiError(500, "InternalError", "etcd is having a bad day")
