"""kopf operators, in-process, against the fake: the whole handler lifecycle over real HTTP.

Every operator gets its own ``kopf.OperatorRegistry`` (never the global one, whose
handlers would leak between tests) and its own ``@kopf.on.login`` pointing at the test's
server. It runs with ``kopf.operator(...)`` on its own event loop in a thread: in the
test's loop, kopf's shutdown would cancel every task created after it started, the
test's own included (``kopf/_core/reactor/running.py``, ``run_tasks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import kopf
from crds import GIZMO_API_VERSION, GIZMO_GROUP, GIZMO_PLURAL, GIZMO_VERSION, gizmo

from pytest_ntinvariants.apiserver import (
    Delivery,
    FakeApiServer,
    Interceptor,
    RequestInfo,
    Watcher,
    WriteContext,
)
from pytest_ntinvariants.apiserver.errors import NotFound

if TYPE_CHECKING:
    from conftest import StoreWaiter

JSON = dict[str, Any]
MERGE = "application/merge-patch+json"
FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
LAST_HANDLED = "kopf.zalando.org/last-handled-configuration"
IDENTITY = "kopf"


@contextlib.contextmanager
def running(
    server: FakeApiServer, registry: kopf.OperatorRegistry, **kwargs: Any
) -> Iterator[None]:
    """Run ``kopf.operator(registry=..., **kwargs)`` in a thread until the block ends."""
    stop, ready = threading.Event(), threading.Event()
    token = server.token_for(IDENTITY)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server.url, token=token)

    settings = kopf.OperatorSettings()
    # Left at its default on purpose: consistency_timeout (5 s) is what stalls kopf when a
    # write's resourceVersion never comes back in the watch; the tests bound the cycle
    # well below it to prove it never kicks in.
    assert settings.persistence.consistency_timeout == 5.0
    # At exit kopf stops its watch streams first, then gives busy workers exit_timeout (2 s)
    # to finish; a worker still waiting for the echo of its last patch can never get it.
    # Tests assert before stopping, so the wait only costs time: keep it short.
    settings.queueing.exit_timeout = 0.1
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(
                kopf.operator(
                    registry=registry,
                    settings=settings,
                    standalone=True,
                    stop_flag=stop,
                    ready_flag=ready,
                    **kwargs,
                )
            )
        except BaseException as e:
            errors.append(e)
            ready.set()

    # kopf reports what it disliked about the server (inconsistent patch results, failed
    # requests, retries) as log warnings and carries on: any of them fails the test.
    complaints = Complaints()
    kopf_logger = logging.getLogger("kopf")
    kopf_logger.addHandler(complaints)
    thread = threading.Thread(target=main, name="kopf-operator", daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "kopf did not start within 10 s"
        assert not errors, f"kopf failed to start: {errors!r}"
        yield
        assert not complaints.records, "kopf complained:\n" + "\n".join(
            f"{r.levelname} {r.name}: {r.getMessage()}" for r in complaints.records
        )
    finally:
        kopf_logger.removeHandler(complaints)  # shutdown noise is not the server's doing
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "kopf did not stop within 15 s"
    if errors:
        raise errors[0]


class Complaints(logging.Handler):
    """Collects kopf's warnings and errors, except the expected one about threads."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "running not in the main thread" not in record.getMessage():
            self.records.append(record)


def handlers(registry: kopf.OperatorRegistry, calls: list[tuple[str, str]]) -> None:
    """Register create/update/field/delete handlers that record each call."""
    res = (GIZMO_GROUP, GIZMO_VERSION, GIZMO_PLURAL)

    @kopf.on.create(*res, registry=registry)
    def on_create(name: str, body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        calls.append(("create", name))
        patch.status["phase"] = "Created"
        kopf.info(body, reason="Created", message=f"gizmo {name} created")

    @kopf.on.update(*res, registry=registry)
    def on_update(name: str, **_: Any) -> None:
        calls.append(("update", name))

    @kopf.on.field(*res, field="spec.size", registry=registry)
    def on_size(name: str, new: Any, patch: kopf.Patch, **_: Any) -> None:
        calls.append(("field", name))
        patch.status["size"] = new

    @kopf.on.delete(*res, registry=registry)
    def on_delete(name: str, **_: Any) -> None:
        calls.append(("delete", name))


def current(server: FakeApiServer, name: str, namespace: str = "default") -> JSON | None:
    """The stored Gizmo, or None."""
    try:
        return server.get(GIZMO_API_VERSION, "Gizmo", name, namespace)
    except NotFound:
        return None


def settled(server: FakeApiServer, name: str, namespace: str = "default", **status: Any) -> bool:
    """Whether kopf finished handling the Gizmo's creation: its diff-base annotation is
    written and the status holds ``status``."""
    obj = current(server, name, namespace)
    if obj is None:
        return False
    annotations = obj["metadata"].get("annotations") or {}
    have = obj.get("status") or {}
    return LAST_HANDLED in annotations and all(have.get(k) == v for k, v in status.items())


def patch_gizmo(server: FakeApiServer, name: str, patch: JSON, namespace: str = "default") -> None:
    """A merge patch as another client (``test``) would send it."""
    rt = server.resource(GIZMO_API_VERSION, "Gizmo")
    server.store.patch(rt, namespace, name, MERGE, patch, WriteContext(identity="test"))


def delete_gizmo(server: FakeApiServer, name: str, namespace: str = "default") -> None:
    rt = server.resource(GIZMO_API_VERSION, "Gizmo")
    server.store.delete(rt, namespace, name, None, WriteContext(identity="test"))


def kopf_events(server: FakeApiServer, name: str) -> list[JSON]:
    """core/v1 Events about the Gizmo ``name``."""
    rt = server.resource("v1", "Event")
    items, _, _, _ = server.store.list(rt, None)
    return [v.obj for v in items if v.obj.get("involvedObject", {}).get("name") == name]


class Requests(Interceptor):
    """Records kopf's requests as ``(verb, plural, query)``, and its PATCH targets."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.patched: list[tuple[str, str]] = []  # (object name, subresource)

    async def on_request(self, request: RequestInfo) -> None:
        if request.identity == IDENTITY and request.resource is not None:
            self.seen.append((request.verb, request.resource.plural, dict(request.query)))
            if request.verb == "patch":
                self.patched.append((request.name, request.subresource))


# --------------------------------------------------------------------------------------- tests


def test_full_cycle_without_consistency_stall(
    gizmo_server: FakeApiServer, store_waiter: StoreWaiter
) -> None:
    """create -> status -> spec change -> delete with kopf's finalizer, all handled promptly.

    Every write kopf makes must come back in its watch with the same resourceVersion,
    or kopf waits ``consistency_timeout`` (5 s) before its next step. The whole cycle
    has four kopf PATCHes; bounding it at 3 s (not a performance target: it takes tens
    of milliseconds) proves that no step waited for the timeout.
    """
    registry = kopf.OperatorRegistry()
    calls: list[tuple[str, str]] = []
    handlers(registry, calls)
    server = gizmo_server
    requests = Requests()
    server.add_interceptor(requests)
    with running(server, registry, namespaces=["default"]):
        started = time.monotonic()
        server.apply(gizmo("g1", size=2))
        obj = store_waiter.until(
            lambda: (o := current(server, "g1")) and o.get("status", {}).get("phase") and o,
            what="status.phase from the create handler",
        )
        assert obj["status"]["phase"] == "Created"
        assert FINALIZER in obj["metadata"]["finalizers"]
        store_waiter.until(lambda: ("create", "g1") in calls)

        patch_gizmo(server, "g1", {"spec": {"size": 3}})
        obj = store_waiter.until(
            lambda: (o := current(server, "g1")) and o["status"].get("size") == 3 and o,
            what="status.size from the field handler",
        )
        store_waiter.until(lambda: ("update", "g1") in calls, what="the update handler")

        delete_gizmo(server, "g1")
        store_waiter.until(lambda: current(server, "g1") is None, what="the object to go")
        elapsed = time.monotonic() - started

    # kopf calls on.field handlers on creation too (the field goes from None to a value);
    # within one cause, handlers run in registration order.
    assert calls == [
        ("create", "g1"),
        ("field", "g1"),
        ("update", "g1"),
        ("field", "g1"),
        ("delete", "g1"),
    ]
    assert elapsed < 3.0, f"the cycle took {elapsed:.2f}s: kopf waited for a consistency timeout"
    # Status went through the /status subresource, because discovery lists gizmos/status;
    # without that entry kopf folds it into the main patch, where it is silently dropped.
    assert ("g1", "status") in requests.patched
    assert ("g1", "") in requests.patched  # finalizer and annotations


def test_kopf_info_posts_a_core_event(
    gizmo_server: FakeApiServer, store_waiter: StoreWaiter
) -> None:
    registry = kopf.OperatorRegistry()
    calls: list[tuple[str, str]] = []
    handlers(registry, calls)
    server = gizmo_server
    with running(server, registry, namespaces=["default"]):
        created = server.apply(gizmo("g1"))[0]
        events = store_waiter.until(lambda: kopf_events(server, "g1"), what="kopf's Event")
        store_waiter.until(lambda: settled(server, "g1", size=1), what="kopf to settle")
    event = events[0]
    assert event["apiVersion"] == "v1" and event["kind"] == "Event"
    assert event["reason"] == "Created"
    assert event["message"] == "gizmo g1 created"
    assert event["type"] == "Normal"
    assert event["metadata"]["name"].startswith("kopf-event-")  # from generateName
    assert event["involvedObject"]["uid"] == created["metadata"]["uid"]
    assert event["involvedObject"]["kind"] == "Gizmo"
    assert event["source"]["component"] == "kopf"


def test_namespace_patterns_follow_namespaces_as_they_appear(
    gizmo_server: FakeApiServer, store_waiter: StoreWaiter
) -> None:
    """With a glob, kopf lists and watches namespaces and starts watching new matches."""
    registry = kopf.OperatorRegistry()
    calls: list[tuple[str, str]] = []
    handlers(registry, calls)
    server = gizmo_server
    requests = Requests()
    server.add_interceptor(requests)
    with running(server, registry, namespaces=["team-*"]):
        server.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
        server.apply(gizmo("outside", namespace="default"))
        server.apply(gizmo("inside", namespace="team-a"))
        store_waiter.until(
            lambda: settled(server, "inside", "team-a", size=1), what="the team-a gizmo"
        )
    assert ("create", "outside") not in calls
    seen = [(v, p) for v, p, _ in requests.seen]
    assert ("list", "namespaces") in seen and ("watch", "namespaces") in seen


def test_clusterwide(gizmo_server: FakeApiServer, store_waiter: StoreWaiter) -> None:
    registry = kopf.OperatorRegistry()
    calls: list[tuple[str, str]] = []
    handlers(registry, calls)
    server = gizmo_server
    server.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}})
    with running(server, registry, clusterwide=True):
        server.apply(gizmo("here", namespace="default"))
        server.apply(gizmo("there", namespace="elsewhere"))
        store_waiter.until(
            lambda: (
                settled(server, "here", phase="Created", size=1)
                and settled(server, "there", "elsewhere", phase="Created", size=1)
            ),
            what="both gizmos handled",
        )
    assert {("create", "here"), ("create", "there")} <= set(calls)


class ExpireAndDrop(Interceptor):
    """Compact history and drop kopf's watch at the moment a chosen object is created.

    The ADDED event of ``name`` is held back from kopf, so kopf can only ever learn of
    the object by relisting; its watch, reopened from its last resourceVersion, finds
    that version compacted (an in-stream ERROR 410). Runs on the server's loop thread,
    where closing a watcher is safe.
    """

    def __init__(self, server: FakeApiServer, name: str) -> None:
        self.server = server
        self.name = name
        self.fired = False

    def on_delivery(self, watcher: Watcher, delivery: Delivery) -> list[Delivery]:
        if (
            not self.fired
            and watcher.identity == IDENTITY
            and watcher.resource.plural == GIZMO_PLURAL
            and delivery.version.name == self.name
        ):
            self.fired = True
            self.server.store.compact()
            watcher.close()
            return []
        return [delivery]


def test_relist_after_410(gizmo_server: FakeApiServer, store_waiter: StoreWaiter) -> None:
    registry = kopf.OperatorRegistry()
    calls: list[tuple[str, str]] = []
    handlers(registry, calls)
    server = gizmo_server
    requests = Requests()
    server.add_interceptor(requests)
    server.add_interceptor(ExpireAndDrop(server, "after"))
    with running(server, registry, namespaces=["default"]):
        server.apply(gizmo("before"))
        store_waiter.until(lambda: settled(server, "before", size=1), what="the first gizmo")
        mark = len(requests.seen)
        server.apply(gizmo("after"))
        store_waiter.until(lambda: settled(server, "after", size=1), what="the gizmo after the 410")
    assert ("create", "after") in calls
    # Once the stream was dropped: the reopened watch carried an rv older than the
    # compaction (and got the in-stream 410), then kopf listed again.
    later = [
        (v, q) for v, p, q in requests.seen[mark:] if p == GIZMO_PLURAL and v in ("watch", "list")
    ]
    assert [v for v, _ in later[:2]] == ["watch", "list"], later
    assert int(later[0][1]["resourceVersion"]) < server.store.compacted
