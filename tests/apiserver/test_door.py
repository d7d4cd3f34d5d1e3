"""The door: a body becomes plain JSON data within limits, or a 4xx, and nothing is stored.

Each reproduction here once committed an object the server could then no longer serve,
grew a 490-byte body into hundreds of megabytes, or drove the server's recursion past
Python's limit.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from pytest_ntinvariants.apiserver import FakeApiServer
from pytest_ntinvariants.apiserver.decode import MAX_BODY_BYTES, MAX_DEPTH

if TYPE_CHECKING:
    from conftest import Api, Stream

CMS = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
YAML = "application/yaml"
State = Callable[[FakeApiServer], tuple[int, list[bytes]]]


def nested(depth: int) -> Any:
    """A value of ``depth`` nested objects: ``{"n": {"n": ... {}}}``."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def free_widget(name: str, free: Any) -> dict[str, Any]:
    """A Widget whose schema-free ``spec.free`` holds ``free``; the body nests 3 levels more."""
    return {"metadata": {"name": name}, "spec": {"size": 1, "free": free}}


def example_crd(singular: str, kind: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A namespaced CRD of group example.com, version v1, with ``schema``."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{singular}s.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": f"{singular}s", "singular": singular, "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def serves(api: Api, watch: Callable[..., Stream], path: str, name: str) -> dict[str, Any]:
    """The object is served by GET, LIST, a Table and a watch; return what GET gave."""
    got: dict[str, Any] = api.get(f"{path}/{name}").expect(200)
    items = api.get(path).expect(200)["items"]
    assert name in [i["metadata"]["name"] for i in items]
    table = api.get(path, headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"})
    assert table.expect(200)["kind"] == "Table"
    stream = watch(path, resourceVersion="0")
    seen = stream.until(lambda e: e["object"]["metadata"]["name"] == name)
    assert seen["object"] == got
    return got


# ------------------------------------------------------------------- YAML's own types


@pytest.mark.parametrize(
    ("yaml_data", "stored"),
    [
        ("a: !!binary aGVsbG8=", {"a": "hello"}),
        ("a: !!binary //79", {"a": "\ufffd\ufffd\ufffd"}),  # not UTF-8: as Go's JSON does
        ("1: one\ntrue: 'y'\n2.5: x\n~: n", {"1": "one", "true": "y", "2.5": "x", "null": "n"}),
        (
            "when: 2024-01-02T03:04:05Z\nday: 2024-01-02",
            {"when": "2024-01-02T03:04:05Z", "day": "2024-01-02"},
        ),
        ("ports: 22:22", {"ports": "22:22"}),  # base 60 is YAML 1.1's, not go-yaml's
    ],
    ids=["binary", "binary-not-utf8", "non-string-keys", "timestamps", "base-60"],
)
def test_yaml_types_json_cannot_hold_are_stored_as_kube_converts_them(
    api: Api, watch: Callable[..., Stream], yaml_data: str, stored: dict[str, Any]
) -> None:
    """!!binary, non-string keys and timestamps once committed an object no LIST could
    encode (500 on every read of the collection until it was deleted)."""
    data = "\n".join("  " + line for line in yaml_data.splitlines())
    body = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: odd}}\ndata:\n{data}\n"
    created = api.post(CMS, None, raw=body.encode(), content_type=YAML).expect(201)
    assert created["data"] == {k: str(v) for k, v in stored.items()}
    assert serves(api, watch, CMS, "odd")["data"] == created["data"]


def test_a_yaml_set_is_a_map_of_nulls(api: Api, watch: Callable[..., Stream]) -> None:
    body = b"metadata: {name: s}\nspec:\n  size: 1\n  free: !!set {a, b}\n"
    created = api.post(WIDGETS, None, raw=body, content_type=YAML).expect(201)
    assert created["spec"]["free"] == {"a": None, "b": None}
    assert serves(api, watch, WIDGETS, "s")["spec"]["free"] == {"a": None, "b": None}


def test_yaml_merge_keys_and_aliases_expand(api: Api) -> None:
    body = (
        b"metadata: {name: m, labels: &l {app: x}}\n"
        b"spec:\n  size: 1\n  free:\n    base: &b {a: 1, b: 2}\n"
        b"    merged: {<<: *b, b: 3}\n    labels: *l\n"
    )
    created = api.post(WIDGETS, None, raw=body, content_type=YAML).expect(201)
    assert created["spec"]["free"] == {
        "base": {"a": 1, "b": 2},
        "merged": {"a": 1, "b": 3},
        "labels": {"app": "x"},
    }
    assert created["metadata"]["labels"] == {"app": "x"}


BILLION_LAUGHS = b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + b"".join(
    b"%c: &%c [%s]\n" % (98 + i, 98 + i, b",".join([b"*%c" % (97 + i)] * 9)) for i in range(9)
)


def _yaml_post(api: Api, body: bytes) -> Any:
    return api.post(CMS, None, raw=body, content_type=YAML)


def _yaml_apply(api: Api, body: bytes) -> Any:
    return api.request(
        "PATCH",
        f"{CMS}/c",
        None,
        raw=body,
        content_type="application/apply-patch+yaml",
        query={"fieldManager": "m"},
    )


# Each is sent both as a YAML create and as an apply patch of ConfigMap "c".
REFUSED_YAML: list[tuple[str, bytes, int, str, str]] = [
    ("nan", b"metadata: {name: c}\ndata: {a: .nan}\n", 400, "BadRequest", "unsupported value: NaN"),
    ("inf key value", b"metadata: {name: c}\nx: -.inf\n", 400, "BadRequest", "-Inf"),
    ("python tag", b"metadata: {name: c}\nx: !!python/name:os.system\n", 400, "BadRequest", ""),
    ("unknown anchor", b"metadata: {name: c}\nx: *nope\n", 400, "BadRequest", "unknown anchor"),
    ("map as key", b"metadata: {name: c}\n? {a: 1}\n: x\n", 400, "BadRequest", "map key"),
    ("bad merge", b"metadata: {name: c}\nx: {<<: 1}\n", 400, "BadRequest", "map merge"),
    ("billion laughs", BILLION_LAUGHS, 400, "BadRequest", "excessive aliasing"),
    (
        "aliases past the body limit",
        b"metadata: {name: c}\nbig: &s " + b"x" * (MAX_BODY_BYTES // 8) + b"\n"
        b"data: [" + b", ".join([b"*s"] * 9) + b"]\n",
        413,
        "RequestEntityTooLarge",
        "aliases are expanded",
    ),
    ("deep flow", b"[" * (MAX_DEPTH + 1), 400, "BadRequest", f"max depth of {MAX_DEPTH}"),
    (
        "an alias nesting past the limit",
        b"metadata: {name: c}\na: &deep "
        + b"[" * 100
        + b"]" * 100
        + b"\nb: "
        + b"[" * 60
        + b"*deep"
        + b"]" * 60,
        400,
        "BadRequest",
        f"max depth of {MAX_DEPTH}",
    ),
    ("a body of brackets", b"[" * 3_000_000, 400, "BadRequest", "nested too deeply"),
    (
        "deep block",
        "".join("  " * i + "n:\n" for i in range(MAX_DEPTH + 1)).encode(),
        400,
        "BadRequest",
        "nested too deeply",
    ),
]


@pytest.mark.parametrize("send", [_yaml_post, _yaml_apply], ids=["create", "apply"])
@pytest.mark.parametrize(
    ("case", "body", "code", "reason", "words"), REFUSED_YAML, ids=[c[0] for c in REFUSED_YAML]
)
def test_yaml_kube_refuses_gets_a_4xx_and_stores_nothing(
    server: FakeApiServer,
    api: Api,
    state: State,
    send: Callable[[Api, bytes], Any],
    case: str,
    body: bytes,
    code: int,
    reason: str,
    words: str,
) -> None:
    api.post(CMS, {"metadata": {"name": "c"}, "data": {"k": "v"}}).expect(201)
    before = state(server)
    status = send(api, body).expect_status(code, reason)
    assert words in status["message"], status
    assert state(server) == before, case
    assert api.get(f"{CMS}/c").expect(200)["data"] == {"k": "v"}
    assert api.get(CMS).expect(200)["items"]


def test_only_the_first_yaml_document_is_read(api: Api) -> None:
    body = b"metadata: {name: first}\n---\nmetadata: {name: second}\n"
    assert api.post(CMS, None, raw=body, content_type=YAML).expect(201)["metadata"]["name"] == (
        "first"
    )
    api.get(f"{CMS}/second").expect_status(404, "NotFound")


# ---------------------------------------------------------------------------- nesting


def _deep_json(depth: int, rv: str = "") -> bytes:
    """A Widget ``depth`` levels deep. By hand: orjson (and so the test client) cannot
    encode past 254 levels."""
    version = b',"resourceVersion":"%s"' % rv.encode() if rv else b""
    head = b'{"metadata":{"name":"deep"%s},"spec":{"size":1,"free":' % version
    return head + b'{"n":' * (depth - 3) + b"{}" + b"}" * (depth - 3) + b"}}"


def _deep_apply(depth: int) -> bytes:
    return b'{"apiVersion":"example.com/v1","kind":"Widget",' + _deep_json(depth)[1:]


def _deep_ops(depth: int) -> bytes:
    value = b'{"n":' * (depth - 3) + b"{}" + b"}" * (depth - 3)
    return b'[{"op":"replace","path":"/spec/free","value":' + value + b"}]"


DEEP_REQUESTS: list[tuple[str, Callable[[Api, int], Any]]] = [
    ("create", lambda a, d: a.post(WIDGETS, None, raw=_deep_json(d))),
    (
        "create as YAML",
        lambda a, d: a.post(WIDGETS, None, raw=_deep_json(d), content_type=YAML),
    ),
    (
        "update",
        lambda a, d: a.put(f"{WIDGETS}/deep", None, raw=_deep_json(d, a.get(f"{WIDGETS}/deep").rv)),
    ),
    (
        "merge patch",
        lambda a, d: a.request(
            "PATCH",
            f"{WIDGETS}/deep",
            None,
            raw=_deep_json(d),
            content_type="application/merge-patch+json",
        ),
    ),
    (
        "json patch",
        lambda a, d: a.request(
            "PATCH",
            f"{WIDGETS}/deep",
            None,
            raw=_deep_ops(d),
            content_type="application/json-patch+json",
        ),
    ),
    (
        "apply",
        lambda a, d: a.request(
            "PATCH",
            f"{WIDGETS}/deep",
            None,
            raw=_deep_apply(d),
            content_type="application/apply-patch+yaml",
            query={"fieldManager": "m"},
        ),
    ),
]


@pytest.mark.parametrize(("case", "send"), DEEP_REQUESTS, ids=[c[0] for c in DEEP_REQUESTS])
def test_nesting_past_the_limit_is_refused_and_at_it_served(
    server: FakeApiServer,
    api: Api,
    watch: Callable[..., Stream],
    state: State,
    case: str,
    send: Callable[[Api, int], Any],
) -> None:
    """900 levels once answered 500 (a RecursionError in the patch code) or hung a create."""
    if case not in ("create", "create as YAML"):
        api.post(WIDGETS, free_widget("deep", {})).expect(201)
    for depth in (900, MAX_DEPTH + 1):
        before = state(server)
        status = send(api, depth).expect_status(400, "BadRequest")
        assert f"exceeded max depth of {MAX_DEPTH}" in status["message"], status
        assert state(server) == before
    reply = send(api, MAX_DEPTH)
    assert reply.status in (200, 201), reply.raw[:300]
    got = serves(api, watch, WIDGETS, "deep")
    assert got["spec"]["free"] == nested(MAX_DEPTH - 2)


def test_a_json_patch_cannot_nest_an_object_past_the_limit(
    server: FakeApiServer, api: Api, state: State
) -> None:
    """Each operation is within the limit, but copying a subtree into itself doubles it."""
    half = nested(MAX_DEPTH // 2)
    api.post(WIDGETS, free_widget("w", half)).expect(201)
    before = state(server)
    ops = [{"op": "copy", "from": "/spec/free", "path": "/spec/free" + "/n" * (MAX_DEPTH // 2 - 1)}]
    api.patch(f"{WIDGETS}/w", ops, kind="json").expect_status(400, "BadRequest")
    assert state(server) == before


def test_a_crd_schema_at_the_limit_installs_and_validates(api: Api) -> None:
    levels = (MAX_DEPTH - 12) // 2  # each schema level is two JSON levels
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"n": schema}}
    crd = example_crd("tower", "Tower", schema)
    api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).expect(201)
    value: Any = "top"
    for _ in range(levels):
        value = {"n": value}
    towers = "/apis/example.com/v1/namespaces/default/towers"
    body = {"metadata": {"name": "t"}, **value}
    assert api.post(towers, body).expect(201)["n"] == body["n"]
    wrong = orjson.loads(orjson.dumps(body).replace(b'"top"', b"5").replace(b'"t"', b'"t2"'))
    status = api.post(towers, wrong).expect_status(422, "Invalid")
    assert "must be of type string" in status["message"] or "string" in status["message"]


def test_a_cli_server_fed_the_reproductions_serves_on_and_exits_0(tmp_path: Path) -> None:
    """The poisoned collection once made SIGTERM exit 1; the alias bomb killed the process."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest_ntinvariants.apiserver.cli",
            "--kubeconfig",
            str(tmp_path / "kubeconfig"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().rsplit(" ", 1)[1].strip()

        def send(method: str, path: str, body: bytes, ctype: str) -> int:
            req = urllib.request.Request(
                url + path, data=body, method=method, headers={"Content-Type": ctype}
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as e:
                return int(e.code)

        cm = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s}\ndata: {%s}\n"
        assert send("POST", CMS, cm % (b"bin", b"a: !!binary aGk="), YAML) == 201
        assert send("POST", CMS, cm % (b"keys", b"1: x"), YAML) == 201
        assert send("POST", CMS, BILLION_LAUGHS, YAML) == 400
        assert send("POST", CMS, b"[" * 3_000_000, YAML) == 400
        assert send("POST", CMS, b'{"a":' * 900 + b"1" + b"}" * 900, "application/json") == 400
        with urllib.request.urlopen(url + CMS, timeout=30) as resp:
            names = [i["metadata"]["name"] for i in orjson.loads(resp.read())["items"]]
        assert sorted(names) == ["bin", "keys"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


@pytest.mark.parametrize(
    "rule",
    [
        "(" * 5000 + "true" + ")" * 5000,
        "!" * 5000 + "true",
        "-" * 5000 + "1 == 1",
        "[" * 3000 + "]" * 3000 + " == []",
        " + ".join(["1"] * 5000) + " == 5000",
        "{" * 2000 + "}" * 2000 + " == {}",
    ],
    ids=["parentheses", "not", "minus", "lists", "a long sum", "maps"],
)
def test_a_cel_rule_nested_past_the_limit_is_refused_not_overflowed(api: Api, rule: str) -> None:
    """Each rule once made every create of the CRD's objects a 500 (a RecursionError in the
    CEL parser): the CRD was kept, so its resource stayed poisoned."""
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
                "x-kubernetes-validations": [{"rule": rule}],
            }
        },
    }
    crd = example_crd("rule", "Rule", schema)
    created = api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    created.expect(201)
    # The fake cannot compile the rule and says so, as for any rule it cannot evaluate
    # (kube refuses such a CRD outright).
    assert "max recursion depth exceeded" in created.headers.get("Warning", "")
    rules = "/apis/example.com/v1/namespaces/default/rules"
    reply = api.post(rules, {"metadata": {"name": "r"}, "spec": {"a": 1}})
    assert reply.status == 201, reply.raw[:300]
    assert api.get(rules).status == 200
