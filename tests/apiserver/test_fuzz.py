"""Fuzzed requests: whatever a client sends, the server answers below 500, every error is a
``Status``, a refused request changes nothing, and the server keeps serving.

Bodies, content types, paths and query parameters are drawn by hypothesis from shapes
near what clients send (kube paths and parameter names, objects with metadata, patches,
YAML with tags and aliases) with hostile values mixed in. The draw is derandomized and
bounded, so the suite runs the same requests every time.
"""

from __future__ import annotations

import http.client
import string
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from crds import GROUP, WIDGET_CRD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_ntinvariants.apiserver import FakeApiServer

State = Callable[[FakeApiServer], tuple[int, list[bytes]]]
COLLECTIONS = [
    "/api/v1/namespaces/default/configmaps",
    "/api/v1/namespaces/default/secrets",
    "/api/v1/namespaces/default/events",
    "/api/v1/namespaces/default/services",
    "/api/v1/namespaces/default/pods",
    "/api/v1/namespaces",
    "/apis/apps/v1/namespaces/default/deployments",
    "/apis/coordination.k8s.io/v1/namespaces/default/leases",
    "/apis/events.k8s.io/v1/namespaces/default/events",
    f"/apis/{GROUP}/v1/namespaces/default/widgets",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
]
NON_RESOURCE = [
    "/",
    "/api",
    "/api/v1",
    "/apis",
    "/apis/apps/v1",
    "/version",
    "/openapi/v3",
    "/openapi/v3/api/v1",
    "/healthz",
    "/nothing",
]
CONTENT_TYPES = [
    "application/json",
    "application/yaml",
    "application/merge-patch+json",
    "application/json-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
    "application/vnd.kubernetes.protobuf",
    "text/plain",
    "application/json; charset=utf-8",
    "multipart/form-data; boundary=x",
    "",
]
QUERY_NAMES = [
    "limit",
    "continue",
    "resourceVersion",
    "resourceVersionMatch",
    "labelSelector",
    "fieldSelector",
    "timeoutSeconds",
    "allowWatchBookmarks",
    "sendInitialEvents",
    "dryRun",
    "fieldManager",
    "fieldValidation",
    "force",
    "propagationPolicy",
    "gracePeriodSeconds",
    "includeObject",
    "watch",
]
NUMBERISH = [
    "0",
    "1",
    "-1",
    "1_0",
    " 1",
    "+1",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "0x10",
    "٣",
    "99999999999999999999",
    "1.5",
    "",
    "Exact",
    "NotOlderThan",
    "All",
    "true",
]

names = st.one_of(
    st.sampled_from(["a", "b", "c", "x-1", "widget", "default", "kube-system"]),
    st.text(string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=12),
    st.text(min_size=0, max_size=8),
)
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
keys = st.one_of(
    st.sampled_from(
        [
            "metadata",
            "name",
            "namespace",
            "labels",
            "annotations",
            "finalizers",
            "spec",
            "status",
            "data",
            "size",
            "free",
            "count",
            "resourceVersion",
            "uid",
            "apiVersion",
            "kind",
            "generateName",
            "ownerReferences",
            "deletionTimestamp",
            "$patch",
            "$retainKeys",
            "op",
            "path",
            "value",
            "from",
            "items",
            "type",
        ]
    ),
    st.text(max_size=10),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


@st.composite
def objects(draw: st.DrawFn) -> Any:
    """Something shaped like a kube object, with parts drawn at random."""
    meta: dict[str, Any] = {"name": draw(names)}
    meta.update(draw(st.dictionaries(keys, json_values, max_size=3)))
    body: dict[str, Any] = {"metadata": draw(st.one_of(st.just(meta), json_values))}
    body.update(draw(st.dictionaries(keys, json_values, max_size=3)))
    return body


@st.composite
def json_patches(draw: st.DrawFn) -> Any:
    """RFC 6902 operations, well and badly formed."""
    op = st.fixed_dictionaries(
        {
            "op": st.sampled_from(["add", "remove", "replace", "move", "copy", "test", "x"]),
            "path": st.sampled_from(
                [
                    "",
                    "/",
                    "/metadata",
                    "/metadata/name",
                    "/metadata/uid",
                    "/spec",
                    "/spec/free/a",
                    "/data/k",
                    "/status",
                    "/x/-",
                    "/metadata/finalizers/0",
                ]
            ),
        },
        optional={"value": json_values, "from": st.sampled_from(["/spec", "/metadata", "/a"])},
    )
    return draw(st.one_of(st.lists(op, max_size=4), json_values))


yaml_texts = st.one_of(
    st.sampled_from(
        [
            "metadata: {name: y}\ndata: {a: !!binary aGk=}\n",
            "metadata: {name: y}\ndata: {a: .nan}\n",
            "metadata: &m {name: y}\nspec: *m\n",
            "metadata: {name: y}\n? [a]\n: b\n",
            "metadata: {name: y}\nspec: {free: !!set {a}}\n",
            "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nd: [*c, *c, *c]\n",
            "- [[[[[[[[[[",
            "metadata: {name: y, labels: {1: 2}}\n",
            "!!python/object/apply:os.system [ls]\n",
            "metadata: {name: y}\nspec: 2024-01-01\n",
        ]
    ),
    st.text(max_size=60),
)


# Parts that make an object of some collection valid.
VALID_PARTS: list[dict[str, Any]] = [
    {},
    {"data": {"k": "v"}},
    {"spec": {"size": 2, "free": {"a": [1, {"b": None}]}}},
    {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    {"spec": {"ports": [{"port": 80}]}},
    {"spec": {"holderIdentity": "me", "leaseDurationSeconds": 15}},
    {"metadata": {"name": "x", "labels": {"app": "a"}, "finalizers": ["example.com/f"]}},
]

# The content type each method's body is meant to have: drawn more often than the rest,
# so that most requests get past the door and reach the store's semantics.
FITTING_TYPE = {
    "POST": ["application/json", "application/yaml"],
    "PUT": ["application/json", "application/yaml"],
    "PATCH": [
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ],
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, str, bytes]:
    """(method, path with query, content type, body)."""
    method = draw(
        st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"] * 3 + ["HEAD", "OPTIONS"])
    )
    name = draw(st.one_of(st.sampled_from(["a", "b", "c"]), names))
    if draw(st.integers(0, 9)) == 0:
        path = draw(st.sampled_from(NON_RESOURCE))
    else:
        path = draw(st.sampled_from(COLLECTIONS))
        if method != "POST" or draw(st.integers(0, 3)) == 0:
            # Escaped whole, or with slashes and percent signs left raw (bad escapes too).
            path += "/" + quote(name, safe="" if draw(st.booleans()) else "/%")
            path += draw(st.sampled_from(["", "", "", "/status", "/scale", "/x", "/"]))
    pairs = draw(
        st.lists(
            st.tuples(
                st.sampled_from(QUERY_NAMES),
                st.one_of(st.sampled_from(NUMBERISH), st.text(max_size=12)),
            ),
            max_size=3,
        )
    )
    if any(k == "watch" for k, _ in pairs):
        pairs.append(("timeoutSeconds", "1"))  # bounded, whatever else was drawn
    if pairs:
        path += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs)
    fitting = FITTING_TYPE.get(method)
    if fitting and draw(st.integers(0, 3)):
        ctype = draw(st.sampled_from(fitting))
    else:
        ctype = draw(st.sampled_from(CONTENT_TYPES))
    kind = draw(st.integers(0, 9))
    if kind >= 6:
        # A valid object of some collection, often with one field drawn at random: what
        # gets past validation reaches commit, the watch fan-out and every later read.
        obj = {"metadata": {"name": name}, **draw(st.sampled_from(VALID_PARTS))}
        if kind == 9:
            part = draw(st.sampled_from(["metadata", "spec", "data", "status"]))
            holder = obj.setdefault(part, {})
            if isinstance(holder, dict):
                holder[draw(keys)] = draw(json_values)
        body = orjson.dumps(obj)
    elif kind <= 1:
        obj = draw(objects())
        if kind == 0 and isinstance(obj["metadata"], dict):
            obj["metadata"]["name"] = name  # the object the path names
        body = orjson.dumps(obj)
    elif kind == 2:
        body = orjson.dumps(draw(json_patches()))
    elif kind == 3:
        body = draw(yaml_texts).encode("utf-8", "surrogatepass")
    elif kind == 4:
        body = draw(st.binary(max_size=64))
    elif kind == 5:
        body = orjson.dumps(draw(json_values))
    else:
        body = b""
    return method, path, ctype, body


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[FakeApiServer]:
    """One server for every example: state carries over, as it would for a real client."""
    with FakeApiServer(crds=[WIDGET_CRD], seed=11, watch_timeout=2.0) as server:
        server.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "keep", "namespace": "default"},
                "data": {"k": "v"},
            }
        )
        yield server


def _send(
    server: FakeApiServer, method: str, path: str, ctype: str, body: bytes
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        headers = {"Content-Type": ctype} if ctype else {}
        conn.request(
            method, path, body=body if method not in ("GET", "HEAD") else None, headers=headers
        )
        resp = conn.getresponse()
        status, got = resp.status, dict(resp.getheaders())
        # A watch that was served streams until its timeout: its head is all we judge.
        streaming = status == 200 and "watch" in got.get("Content-Type", "")
        return status, got, b"" if streaming or method == "HEAD" else resp.read()
    finally:
        conn.close()


@settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_no_request_breaks_the_server(
    fuzz_server: FakeApiServer, state: State, request: tuple[str, str, str, bytes]
) -> None:
    method, path, ctype, body = request
    before = state(fuzz_server)
    status, _, raw = _send(fuzz_server, method, path, ctype, body)
    assert status < 500, (status, raw[:500])
    if status >= 400 and method != "HEAD":
        doc = orjson.loads(raw)
        assert doc["kind"] == "Status" and doc["code"] == status, doc
        assert doc["status"] == "Failure" and doc["reason"] and doc["message"], doc
        assert state(fuzz_server) == before, (status, doc)
    # Still serving, and the collection the request reached still lists (a stored
    # object that cannot be encoded would turn every LIST of it into a 500).
    assert _send(fuzz_server, "GET", "/healthz", "", b"")[0] == 200
    collection = next((c for c in COLLECTIONS if path.startswith(c)), None)
    if collection is not None:
        status, _, raw = _send(fuzz_server, "GET", collection, "", b"")
        assert status < 500, raw[:300]  # (404 once the fuzz has deleted the Widget CRD)
        assert orjson.loads(raw)["kind"] in ("Status", "List") or status == 200


def test_after_the_fuzz_every_collection_still_lists(fuzz_server: FakeApiServer) -> None:
    for collection in COLLECTIONS:
        status, _, raw = _send(fuzz_server, "GET", collection, "", b"")
        assert status == 200 or b"widgets" in raw, raw[:300]
        assert status != 200 or isinstance(orjson.loads(raw)["items"], list)
