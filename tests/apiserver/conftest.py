"""Shared fixtures for the fake API server's own tests: a started server, a raw HTTP
client and watch streams read line by line.

The client is deliberately dumb (``http.client``, one connection per request): these
tests check the wire, so nothing between them and the server may fix things up the
way a real client library would. Helpers are handed out through fixtures rather than
imported, because test directories here have no ``__init__.py``.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import orjson
import pytest
from crds import GROUP, WIDGET_CRD

from pytest_ntinvariants.apiserver import Event, FakeApiServer, Store

JSON = dict[str, Any]
T = TypeVar("T")


def widget(name: str, size: int = 1, **spec: Any) -> JSON:
    """A Widget manifest."""
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }


@dataclass
class Reply:
    """One HTTP response, read whole."""

    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def body(self) -> Any:
        """The JSON body."""
        return orjson.loads(self.raw)

    @property
    def rv(self) -> str:
        """``metadata.resourceVersion`` of the body (object or list)."""
        value = self.body["metadata"]["resourceVersion"]
        assert isinstance(value, str), f"resourceVersion must be a JSON string, got {value!r}"
        return value

    def expect(self, status: int) -> Any:
        """Assert the status code and return the JSON body."""
        __tracebackhide__ = True
        assert self.status == status, f"expected {status}, got {self.status}: {self.raw[:600]!r}"
        return self.body

    def expect_status(self, code: int, reason: str) -> JSON:
        """Assert a ``metav1.Status`` failure with this code and reason; return it."""
        __tracebackhide__ = True
        body = self.expect(code)
        assert body["kind"] == "Status" and body["apiVersion"] == "v1", body
        assert body["status"] == "Failure", body
        assert body["code"] == code and body["reason"] == reason, body
        assert isinstance(body["message"], str) and body["message"], body
        return body  # type: ignore[no-any-return]

    def invalid_causes(self) -> list[tuple[str, str]]:
        """Assert a 422 Invalid; return (field, message) of each of its causes."""
        __tracebackhide__ = True
        body = self.expect_status(422, "Invalid")
        return [(c["field"], c["message"]) for c in body["details"]["causes"]]


def _connection(server: FakeApiServer, timeout: float) -> http.client.HTTPConnection:
    if server.tls:
        ctx = ssl.create_default_context(cafile=str(server.ca_path))
        return http.client.HTTPSConnection(server.host, server.port, timeout=timeout, context=ctx)
    return http.client.HTTPConnection(server.host, server.port, timeout=timeout)


@dataclass
class Api:
    """A raw HTTP client for one server (a fresh connection per request)."""

    server: FakeApiServer
    token: str | None = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: dict[str, Any] | None = None,
        content_type: str | None = "application/json",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Reply:
        """Send one request; ``body`` is JSON-encoded unless ``raw`` is given."""
        if query:
            path = f"{path}?{urlencode(query)}"
        data = raw if raw is not None else (None if body is None else orjson.dumps(body))
        hdrs = dict(headers or {})
        if data is not None and content_type is not None:
            hdrs.setdefault("Content-Type", content_type)
        if self.token:
            hdrs.setdefault("Authorization", f"Bearer {self.token}")
        conn = _connection(self.server, 10)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        """GET."""
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Reply:
        """POST (create)."""
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Reply:
        """PUT (update)."""
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, kind: str = "merge", **kw: Any) -> Reply:
        """PATCH with ``kind`` merge, json, strategic or apply."""
        ctype = {
            "merge": "application/merge-patch+json",
            "json": "application/json-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "apply": "application/apply-patch+yaml",
        }[kind]
        return self.request("PATCH", path, body, content_type=ctype, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Reply:
        """DELETE (optionally with DeleteOptions)."""
        return self.request("DELETE", path, body, **kw)


@dataclass
class Stream:
    """An open watch: read one JSON event per line, with a timeout that only guards."""

    conn: http.client.HTTPConnection
    resp: http.client.HTTPResponse
    lines: list[JSON] = field(default_factory=list)

    @property
    def status(self) -> int:
        """The HTTP status of the watch response."""
        return self.resp.status

    def next(self) -> JSON | None:
        """The next event, or None when the server ended the stream."""
        line = self.resp.readline()
        if not line:
            return None
        assert line.endswith(b"\n"), f"watch lines end with a newline: {line!r}"
        event: JSON = json.loads(line)
        self.lines.append(event)
        return event

    def take(self, n: int, *, skip_bookmarks: bool = True) -> list[JSON]:
        """The next ``n`` events (bookmarks skipped unless asked); fails if the stream ends."""
        __tracebackhide__ = True
        out: list[JSON] = []
        while len(out) < n:
            event = self.next()
            assert event is not None, f"stream ended after {out!r}"
            if skip_bookmarks and event["type"] == "BOOKMARK":
                continue
            out.append(event)
        return out

    def until(self, predicate: Callable[[JSON], bool]) -> JSON:
        """Read events until one satisfies ``predicate``; return it."""
        __tracebackhide__ = True
        while True:
            event = self.next()
            assert event is not None, f"stream ended before the awaited event: {self.lines!r}"
            if predicate(event):
                return event

    def rest(self) -> list[JSON]:
        """Every remaining event until the server closes the stream."""
        out = []
        while (event := self.next()) is not None:
            out.append(event)
        return out

    def close(self) -> None:
        """Hang up."""
        self.resp.close()
        self.conn.close()


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    """A started fake API server with the Widget CRD and quick bookmarks."""
    with FakeApiServer(crds=[WIDGET_CRD], bookmark_interval=0.05, seed=7) as s:
        yield s


@pytest.fixture
def api(server: FakeApiServer) -> Api:
    """A raw HTTP client of ``server`` (anonymous)."""
    return Api(server)


@pytest.fixture
def kubectl(server: FakeApiServer, tmp_path: Path) -> Callable[..., str]:
    """``kubectl(*args, stdin=None)``: the real kubectl against ``server``, with a
    kubeconfig and cache of the test's own; returns its stdout (a failure fails the test)."""
    kubectl = shutil.which("kubectl")
    assert kubectl is not None, "kubectl is not installed"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "KUBECONFIG": str(server.kubeconfig("kubectl", tmp_path / "kubeconfig")),
    }

    def run(*args: str, stdin: str | None = None) -> str:
        argv = [kubectl, f"--cache-dir={tmp_path / 'cache'}", *args]
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=30, input=stdin
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    return run


@pytest.fixture
def watch(server: FakeApiServer) -> Iterator[Callable[..., Stream]]:
    """Open watch streams on ``server``: ``watch(path, **query) -> Stream``; closed at teardown.

    The 10 s socket timeout is a guard against a hung test, not a synchronisation:
    every read waits for a line the server must send.
    """
    opened: list[Stream] = []

    def open_stream(path: str, headers: dict[str, str] | None = None, **query: Any) -> Stream:
        query.setdefault("watch", "true")
        query = {k: v for k, v in query.items() if v is not None}  # watch=None: path form
        conn = _connection(server, 10)
        conn.request("GET", f"{path}?{urlencode(query)}", headers=headers or {})
        stream = Stream(conn, conn.getresponse())
        opened.append(stream)
        return stream

    yield open_stream
    for s in opened:
        s.close()


@pytest.fixture
def store() -> Store:
    """A bare store (no HTTP) with the Widget CRD installed."""
    s = Store(seed=3)
    s.create(
        s.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
        "",
        orjson.loads(orjson.dumps(WIDGET_CRD)),
    )
    return s


def snapshot(server: FakeApiServer) -> tuple[int, list[bytes]]:
    """The store's resourceVersion and every stored object's bytes, to compare before/after."""
    s = server.store
    with s.lock:
        objects = sorted(v.raw for bucket in s._objects.values() for v in bucket.values())
        return s.resource_version, objects


@pytest.fixture(scope="session")
def state() -> Callable[[FakeApiServer], tuple[int, list[bytes]]]:
    """``state(server)``: a comparable snapshot of everything the store holds."""
    return snapshot


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


@pytest.fixture
def make_api() -> type[Api]:
    """The raw client class, for servers a test starts itself: ``make_api(server, token)``."""
    return Api
