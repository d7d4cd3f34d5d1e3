"""Bad input, concurrency and hosting: the server answers with a Status, keeps serving,
keeps its state intact, loses no update, and fails the test loudly when it breaks."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_ntinvariants._loopthread import BackgroundError
from pytest_ntinvariants.apiserver import FakeApiServer, Interceptor, RequestInfo
from pytest_ntinvariants.apiserver.http import MAX_BODY_BYTES

if TYPE_CHECKING:
    from conftest import Api, Reply

CMS = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
State = Callable[[FakeApiServer], tuple[int, list[bytes]]]

# (name, request, expected code, expected reason): each is sent after a ConfigMap "c"
# and a Widget "w" exist.
BAD_REQUESTS: list[tuple[str, Callable[[Api], Reply], int, str]] = [
    ("malformed JSON", lambda a: a.post(CMS, None, raw=b'{"metadata": {'), 400, "BadRequest"),
    ("JSON array body", lambda a: a.post(CMS, [1, 2]), 400, "BadRequest"),
    ("null body", lambda a: a.post(CMS, None, raw=b"null"), 400, "BadRequest"),
    ("metadata not an object", lambda a: a.post(CMS, {"metadata": "x"}), 400, "BadRequest"),
    (
        "wrong kind",
        lambda a: a.post(CMS, {"kind": "Secret", "metadata": {"name": "k"}}),
        400,
        "BadRequest",
    ),
    (
        "wrong apiVersion",
        lambda a: a.post(CMS, {"apiVersion": "apps/v1", "metadata": {"name": "k"}}),
        400,
        "BadRequest",
    ),
    (
        "namespace mismatch",
        lambda a: a.post(CMS, {"metadata": {"name": "k", "namespace": "x"}}),
        400,
        "BadRequest",
    ),
    (
        "wrong content type",
        lambda a: a.post(CMS, {"metadata": {"name": "k"}}, content_type="text/html"),
        415,
        "UnsupportedMediaType",
    ),
    (
        "protobuf envelope naming no kind",
        lambda a: a.post(
            CMS, None, raw=b"k8s\x00", content_type="application/vnd.kubernetes.protobuf"
        ),
        400,
        "BadRequest",
    ),
    (
        "malformed YAML",
        lambda a: a.post(CMS, None, raw=b"metadata: [", content_type="application/yaml"),
        400,
        "BadRequest",
    ),
    (
        "patch without content type",
        lambda a: a.request("PATCH", f"{CMS}/c", None, raw=b"{}", content_type=None),
        415,
        "UnsupportedMediaType",
    ),
    (
        "malformed merge patch",
        lambda a: a.request(
            "PATCH", f"{CMS}/c", None, raw=b"{", content_type="application/merge-patch+json"
        ),
        400,
        "BadRequest",
    ),
    (
        "json patch not a list",
        lambda a: a.patch(f"{CMS}/c", {"op": "add"}, kind="json"),
        400,
        "BadRequest",
    ),
    (
        "json patch bad path",
        lambda a: a.patch(f"{CMS}/c", [{"op": "remove", "path": "/nope"}], kind="json"),
        422,
        "Invalid",
    ),
    ("merge patch making a non-object", lambda a: a.patch(f"{CMS}/c", ["x"]), 422, "Invalid"),
    (
        "patch changing the name",
        lambda a: a.patch(f"{CMS}/c", {"metadata": {"name": "d"}}),
        400,
        "BadRequest",
    ),
    (
        "invalid label",
        lambda a: a.patch(f"{CMS}/c", {"metadata": {"labels": {"a": "b c"}}}),
        422,
        "Invalid",
    ),
    (
        "label value not a string",
        lambda a: a.patch(f"{CMS}/c", {"metadata": {"labels": {"a": 1}}}),
        422,
        "Invalid",
    ),
    ("unknown resource", lambda a: a.get("/api/v1/namespaces/default/gizmos"), 404, "NotFound"),
    ("unknown group", lambda a: a.get("/apis/nope.io/v1/things"), 404, "NotFound"),
    ("unknown path", lambda a: a.get("/nothing/here"), 404, "NotFound"),
    ("unknown subresource", lambda a: a.get(f"{CMS}/c/scale"), 404, "NotFound"),
    (
        "namespaced path of a cluster kind",
        lambda a: a.get("/api/v1/namespaces/default/nodes"),
        404,
        "NotFound",
    ),
    ("invalid name", lambda a: a.post(CMS, {"metadata": {"name": "A!"}}), 422, "Invalid"),
    ("name not a string", lambda a: a.post(CMS, {"metadata": {"name": 5}}), 400, "BadRequest"),
    (
        "configmap data not a string",
        lambda a: a.post(CMS, {"metadata": {"name": "k"}, "data": {"on": True}}),
        400,
        "BadRequest",
    ),
    (
        "patch making configmap data a number",
        lambda a: a.patch(f"{CMS}/c", {"data": {"k": 5}}),
        400,
        "BadRequest",
    ),
    (
        "secret stringData not a string",
        lambda a: a.post(
            "/api/v1/namespaces/default/secrets",
            {"metadata": {"name": "s"}, "stringData": {"n": 1}},
        ),
        400,
        "BadRequest",
    ),
    (
        "ownerReferences not a list",
        lambda a: a.post(CMS, {"metadata": {"name": "k", "ownerReferences": "x"}}),
        400,
        "BadRequest",
    ),
    (
        "ownerReference without uid",
        lambda a: a.post(
            CMS,
            {
                "metadata": {
                    "name": "k",
                    "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}],
                }
            },
        ),
        422,
        "Invalid",
    ),
    (
        "patch making the name a number",
        lambda a: a.patch(f"{CMS}/c", {"metadata": {"name": 7}}),
        400,
        "BadRequest",
    ),
    ("bad limit", lambda a: a.get(CMS, query={"limit": "ten"}), 400, "BadRequest"),
    ("negative limit", lambda a: a.get(CMS, query={"limit": "-1"}), 400, "BadRequest"),
    (
        "bad watch version",
        lambda a: a.get(CMS, query={"watch": "1", "resourceVersion": "x"}),
        400,
        "BadRequest",
    ),
    ("bad list version", lambda a: a.get(CMS, query={"resourceVersion": "x"}), 400, "BadRequest"),
    (
        "bad field selector",
        lambda a: a.get(CMS, query={"fieldSelector": "nope"}),
        400,
        "BadRequest",
    ),
    (
        "bad propagation policy",
        lambda a: a.delete(f"{CMS}/c", query={"propagationPolicy": "Up"}),
        422,
        "Invalid",
    ),
    ("delete options not an object", lambda a: a.delete(f"{CMS}/c", [1]), 400, "BadRequest"),
    (
        "unknown token",
        lambda a: a.get(CMS, headers={"Authorization": "Bearer forged"}),
        401,
        "Unauthorized",
    ),
    ("PUT on a collection", lambda a: a.put(CMS, {}), 405, "MethodNotAllowed"),
    (
        "strategic patch of a CR",
        lambda a: a.patch(f"{WIDGETS}/w", {}, kind="strategic"),
        415,
        "UnsupportedMediaType",
    ),
    (
        "oversized body",
        lambda a: a.post(CMS, None, raw=b"{" + b" " * MAX_BODY_BYTES + b"}"),
        413,
        "RequestEntityTooLarge",
    ),
]


@pytest.mark.parametrize(
    ("case", "send", "code", "reason"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_input_gets_a_status_and_changes_nothing(
    server: FakeApiServer,
    api: Api,
    state: State,
    case: str,
    send: Callable[[Api], Reply],
    code: int,
    reason: str,
) -> None:
    api.post(CMS, {"metadata": {"name": "c"}, "data": {"k": "v"}}).expect(201)
    api.post(WIDGETS, {"metadata": {"name": "w"}, "spec": {"size": 1}}).expect(201)
    before = state(server)
    reply = send(api)
    reply.expect_status(code, reason)
    assert state(server) == before, case
    # Still serving, and writes still work.
    assert api.get(f"{CMS}/c").expect(200)["data"] == {"k": "v"}
    api.patch(f"{CMS}/c", {"data": {"k": "w"}}).expect(200)


def test_chunked_oversized_body_is_413(server: FakeApiServer, state: State) -> None:
    """Without Content-Length the limit is enforced while reading."""
    before = state(server)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            f"POST {CMS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b" " * 65536
        try:
            for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except OSError:  # the server may answer and hang up before we finish sending
            pass
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert state(server) == before


def test_read_modify_write_from_threads_loses_no_update(api: Api) -> None:
    api.post(CMS, {"metadata": {"name": "counter"}, "data": {"n": "0"}}).expect(201)
    threads, increments = 8, 15
    conflicts = [0] * threads

    def worker(i: int) -> None:
        for _ in range(increments):
            while True:
                obj = api.get(f"{CMS}/counter").expect(200)
                obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)
                r = api.put(f"{CMS}/counter", obj)
                if r.status == 409:
                    conflicts[i] += 1
                    continue
                r.expect(200)
                break

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    final = api.get(f"{CMS}/counter").expect(200)
    assert final["data"]["n"] == str(threads * increments)


# ----------------------------------------------------------------------- hosting


def test_context_manager_binds_loopback_on_a_free_port_and_stops_idempotently() -> None:
    server = FakeApiServer()
    with server as s:
        assert s is server and s.host == "127.0.0.1" and s.port > 0
        assert s.url == f"http://127.0.0.1:{s.port}"
        with socket.create_connection(("127.0.0.1", s.port), timeout=5):
            pass
        workdir = s.workdir
        assert workdir.exists()
    server.stop()
    server.stop()
    assert not workdir.exists()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), 1):
        pass


def test_two_servers_get_different_ports() -> None:
    with FakeApiServer() as a, FakeApiServer() as b:
        assert a.port != b.port


def test_stop_before_start_is_harmless() -> None:
    FakeApiServer().stop()


class _Raises(Interceptor):
    def __init__(self, where: str) -> None:
        self.where = where

    async def on_request(self, request: RequestInfo) -> None:
        if self.where == "on_request" and request.verb == "get":
            raise RuntimeError("boom in on_request")

    def on_response(self, request: RequestInfo, status: int, body: bytes) -> None:
        if self.where == "on_response" and request.verb == "get":
            raise RuntimeError("boom in on_response")

    def read_at(self, request: RequestInfo) -> int | None:
        if self.where == "read_at":
            raise RuntimeError("boom in read_at")
        return None


@pytest.mark.parametrize("where", ["on_request", "on_response", "read_at"])
def test_errors_in_interceptors_fail_at_stop(make_api: type[Api], where: str) -> None:

    server = FakeApiServer().start()
    try:
        server.add_interceptor(_Raises(where))
        reply = make_api(server).get(f"{CMS}/x")
        assert reply.status == 500
        assert reply.body["reason"] == "InternalError"
        # The server keeps serving other requests.
        make_api(server).post(CMS, {"metadata": {"name": "x"}}).expect(201)
    finally:
        with pytest.raises(BackgroundError, match=f"boom in {where}"):
            server.stop()


class _RaisesOnDelivery(Interceptor):
    def on_delivery(self, watcher: Any, delivery: Any) -> list[Any]:
        raise RuntimeError("boom in on_delivery")


def test_error_in_a_delivery_hook_does_not_break_the_write(make_api: type[Api]) -> None:

    server = FakeApiServer().start()
    try:
        api = make_api(server)
        conn_rv = api.get(CMS).rv

        server.add_interceptor(_RaisesOnDelivery())
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("GET", f"{CMS}?watch=true&resourceVersion={conn_rv}")
        resp = conn.getresponse()
        before = server.store.resource_version
        # The write itself succeeds and is stored once, whatever a watcher's hook did.
        api.post(CMS, {"metadata": {"name": "x"}}).expect(201)
        assert server.store.resource_version == before + 1
        api.get(f"{CMS}/x").expect(200)
        resp.close()
        conn.close()
    finally:
        with pytest.raises(BackgroundError, match="boom in on_delivery"):
            server.stop()


class _Recorder(Interceptor):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def on_response(self, request: RequestInfo, status: int, body: bytes) -> None:
        self.seen.append((request.identity, request.verb, request.name))


def test_kubeconfig_per_identity_and_attribution(
    server: FakeApiServer, make_api: type[Api]
) -> None:
    import yaml

    rec = _Recorder()
    handle = server.add_interceptor(rec)
    paths = {who: server.kubeconfig(who) for who in ("replica-a", "replica-b")}
    tokens = {}
    for who, path in paths.items():
        cfg = yaml.safe_load(path.read_text())
        assert cfg["clusters"][0]["cluster"]["server"] == server.url
        assert cfg["current-context"] == who
        tokens[who] = cfg["users"][0]["user"]["token"]
    assert tokens["replica-a"] != tokens["replica-b"]
    assert server.kubeconfig("replica-a").read_text() == paths["replica-a"].read_text()
    make_api(server, tokens["replica-a"]).get(f"{CMS}").expect(200)
    make_api(server, tokens["replica-b"]).post(CMS, {"metadata": {"name": "b"}}).expect(201)
    make_api(server).get(f"{CMS}/b").expect(200)
    assert rec.seen == [
        ("replica-a", "list", ""),
        ("replica-b", "create", ""),
        ("anonymous", "get", "b"),
    ]
    handle.remove()
    handle.remove()
    make_api(server).get(CMS).expect(200)
    assert len(rec.seen) == 3


def test_require_auth_refuses_anonymous(make_api: type[Api]) -> None:

    with FakeApiServer(require_auth=True) as server:
        make_api(server).get(CMS).expect_status(401, "Unauthorized")
        make_api(server, server.token_for("me")).get(CMS).expect(200)


def test_tls_with_the_kubeconfigs_ca(make_api: type[Api]) -> None:
    import base64
    import ssl

    import yaml

    with FakeApiServer(tls=True) as server:
        assert server.url.startswith("https://127.0.0.1:")
        cfg = yaml.safe_load(server.kubeconfig("t").read_text())
        ca = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
        assert server.ca_path is not None and ca == server.ca_path.read_bytes()
        token = cfg["users"][0]["user"]["token"]
        client = make_api(server, token)
        rv = client.get(CMS).rv
        # A watch streams over TLS too, trusting only the kubeconfig's CA.
        ctx = ssl.create_default_context(cadata=ca.decode())
        conn = http.client.HTTPSConnection(server.host, server.port, timeout=10, context=ctx)
        conn.request(
            "GET",
            f"{CMS}?watch=true&resourceVersion={rv}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with conn.getresponse() as stream:
            made = client.post(CMS, {"metadata": {"name": "c"}}).expect(201)
            event = json.loads(stream.readline())
            assert (
                event["object"]["metadata"]["resourceVersion"]
                == made["metadata"]["resourceVersion"]
            )
        conn.close()
        # Without the CA the handshake fails: the certificate is really checked.
        with (
            pytest.raises(ssl.SSLError),
            socket.create_connection((server.host, server.port), 5) as raw,
        ):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")


def test_apply_and_get_helpers(server: FakeApiServer) -> None:
    made = server.apply("""
apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data: {k: v}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
spec: {size: 2}
""")
    assert [m["kind"] for m in made] == ["ConfigMap", "Widget"]
    again = server.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "w"}}
    )
    assert again[0]["data"] == {"k": "w"}
    assert server.get("v1", "ConfigMap", "a")["data"] == {"k": "w"}
    assert server.get("example.com/v1", "widgets", "w")["spec"]["color"] == "blue"


class _RaisesOnWatchOpen(Interceptor):
    def on_watch_open(self, request: RequestInfo, watcher: Any) -> None:
        raise RuntimeError("boom in on_watch_open")


def test_error_after_a_watch_opened_ends_the_stream_and_fails_at_stop(
    make_api: type[Api],
) -> None:
    server = FakeApiServer().start()
    try:
        server.add_interceptor(_RaisesOnWatchOpen())
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("GET", f"{CMS}?watch=true")
        with conn.getresponse() as stream:
            assert stream.status == 200  # already sent when the hook failed
            assert stream.read() == b""  # the stream just ends: no Status can follow a 200
        conn.close()
        make_api(server).get(CMS).expect(200)  # still serving
    finally:
        with pytest.raises(BackgroundError, match="boom in on_watch_open"):
            server.stop()
