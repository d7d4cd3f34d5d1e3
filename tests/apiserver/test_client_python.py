"""The official ``kubernetes`` python client, sync and ``kubernetes.aio``, against the fake.

Each test builds its own ``ApiClient`` from the server's kubeconfig (``persist_config=False``,
no global configuration touched) and closes it, so no socket outlives the test.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from crds import GIZMO_GROUP, GIZMO_PLURAL, GIZMO_VERSION, gizmo
from kubernetes import client, config, watch
from kubernetes.aio import client as aclient
from kubernetes.aio import config as aconfig
from kubernetes.aio import watch as awatch
from kubernetes.client.exceptions import ApiException

from pytest_ntinvariants.apiserver import FakeApiServer, Interceptor, RequestInfo

if TYPE_CHECKING:
    from conftest import StoreWaiter

JSON = dict[str, Any]
GV = {"group": GIZMO_GROUP, "version": GIZMO_VERSION, "plural": GIZMO_PLURAL}


@pytest.fixture
def api_client(gizmo_server: FakeApiServer) -> Iterator[client.ApiClient]:
    """A sync ``ApiClient`` configured from the server's kubeconfig (identity ``python``)."""
    path = gizmo_server.kubeconfig("python")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api:
        yield api


def client_for(server: FakeApiServer) -> client.ApiClient:
    """A sync client of ``server``; the caller closes it."""
    path = server.kubeconfig("python")
    return config.new_client_from_config(config_file=str(path), persist_config=False)


class WatchRequests(Interceptor):
    """Records the query of every watch request on one resource."""

    def __init__(self, plural: str) -> None:
        self.plural = plural
        self.queries: list[dict[str, str]] = []

    async def on_request(self, request: RequestInfo) -> None:
        if request.verb == "watch" and request.resource and request.resource.plural == self.plural:
            self.queries.append(dict(request.query))


@contextlib.contextmanager
def streaming(w: watch.Watch, func: Callable[..., Any], **kwargs: Any) -> Iterator[Iterator[JSON]]:
    """``w.stream(func, **kwargs)``, closed on exit so its HTTP response is released."""
    events = w.stream(func, **kwargs)
    try:
        yield events
    finally:
        events.close()
        w._api_client.close()  # Watch() makes a private ApiClient it never closes


def objects_of(events: Iterator[JSON], n: int) -> list[tuple[str, JSON]]:
    """The next ``n`` non-BOOKMARK events as ``(type, raw object)``."""
    out = []
    for event in events:
        if event["type"] != "BOOKMARK":
            out.append((event["type"], event["raw_object"]))
        if len(out) == n:
            break
    return out


# ------------------------------------------------------------------------------ sync: core v1


def test_namespaces_configmaps_secrets(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="team-a")))
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {"default", "kube-system", "team-a"} <= names
    assert core.read_namespace("team-a").status.phase == "Active"

    cm = core.create_namespaced_config_map(
        "team-a",
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="settings", labels={"app": "demo"}),
            data={"mode": "fast"},
        ),
    )
    assert isinstance(cm.metadata.resource_version, str)
    # The python client sends a dict body on a core kind as a strategic merge patch; the
    # fake must apply it, not answer 415.
    patched = core.patch_namespaced_config_map("settings", "team-a", {"data": {"level": "3"}})
    assert patched.data == {"mode": "fast", "level": "3"}
    assert int(patched.metadata.resource_version) > int(cm.metadata.resource_version)
    replaced = core.replace_namespaced_config_map(
        "settings",
        "team-a",
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(
                name="settings", resource_version=patched.metadata.resource_version
            ),
            data={"mode": "slow"},
        ),
    )
    assert replaced.data == {"mode": "slow"}
    listed = core.list_namespaced_config_map("team-a", label_selector="app=demo")
    assert [c.metadata.name for c in listed.items] == []  # the replace dropped the label
    assert [c.metadata.name for c in core.list_namespaced_config_map("team-a").items] == [
        "settings"
    ]

    secret = core.create_namespaced_secret(
        "team-a",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="creds"),
            type="Opaque",
            data={"password": base64.b64encode(b"s3cr3t").decode()},
        ),
    )
    assert base64.b64decode(core.read_namespaced_secret("creds", "team-a").data["password"]) == (
        b"s3cr3t"
    )
    assert secret.type == "Opaque"

    # (This client hands a delete's answer back as a dict: here kube's Success Status.)
    status = core.delete_namespaced_config_map("settings", "team-a")
    assert status["status"] == "Success" and status["details"]["kind"] == "configmaps"
    with pytest.raises(ApiException) as info:
        core.read_namespaced_config_map("settings", "team-a")
    assert info.value.status == 404


def test_namespace_deletion_terminates_then_removes(
    api_client: client.ApiClient, store_waiter: StoreWaiter
) -> None:
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="doomed")))
    core.create_namespaced_config_map(
        "doomed", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="inside"))
    )
    # DELETE answers 200 with the namespace as it starts terminating; the client declares
    # a V1Status response and hands back the Namespace as a plain dict.
    deleting = core.delete_namespace("doomed")
    assert deleting["kind"] == "Namespace"
    assert deleting["status"]["phase"] == "Terminating"
    assert "deletionTimestamp" in deleting["metadata"]

    def gone() -> bool:
        try:
            core.read_namespace("doomed")
        except ApiException as e:
            return e.status == 404
        return False

    store_waiter.until(gone, what="the namespace controller to finish")
    assert core.list_namespaced_config_map("doomed").items == []


def test_secret_string_data_is_encoded(api_client: client.ApiClient) -> None:
    """kube-apiserver folds ``stringData`` into base64 ``data``; clients read ``data`` only."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_secret(
        "default",
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="tokens"),
            data={"a": base64.b64encode(b"1").decode()},
            string_data={"b": "two"},
        ),
    )
    read = core.read_namespaced_secret("tokens", "default")
    assert read.string_data is None
    assert {k: base64.b64decode(v) for k, v in read.data.items()} == {"a": b"1", "b": b"two"}


def test_events(api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    cm = core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="subject"))
    )
    for name, reason in (("ev-1", "Started"), ("ev-2", "Finished")):
        core.create_namespaced_event(
            "default",
            client.CoreV1Event(
                metadata=client.V1ObjectMeta(name=name),
                involved_object=client.V1ObjectReference(
                    kind="ConfigMap", name="subject", namespace="default", uid=cm.metadata.uid
                ),
                reason=reason,
                message=f"{reason} it",
                type="Normal",
            ),
        )
    # An event about another object must not match the field selector.
    core.create_namespaced_event(
        "default",
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(generate_name="other-"),
            involved_object=client.V1ObjectReference(kind="ConfigMap", name="other"),
            reason="Noise",
        ),
    )
    found = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=subject,involvedObject.kind=ConfigMap"
    )
    assert sorted(e.reason for e in found.items) == ["Finished", "Started"]
    assert all(e.involved_object.uid == cm.metadata.uid for e in found.items)


# ------------------------------------------------------------------------- sync: custom objects


def test_custom_objects_lifecycle(api_client: client.ApiClient) -> None:
    co = client.CustomObjectsApi(api_client)
    body = gizmo("g1", size=2)
    body["status"] = {"phase": "Ignored"}
    created = co.create_namespaced_custom_object(body=body, namespace="default", **GV)
    assert "status" not in created  # the status subresource drops it on create
    assert created["spec"] == {"size": 2, "color": "red"}  # schema default applied
    assert created["metadata"]["generation"] == 1
    rv1 = created["metadata"]["resourceVersion"]
    assert isinstance(rv1, str)

    got = co.get_namespaced_custom_object(name="g1", namespace="default", **GV)
    assert got == created
    listed = co.list_namespaced_custom_object(namespace="default", **GV)
    assert listed["kind"] == "GizmoList"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["g1"]
    assert isinstance(listed["metadata"]["resourceVersion"], str)

    # The client's default for custom objects is a JSON merge patch.
    patched = co.patch_namespaced_custom_object(
        name="g1", namespace="default", body={"spec": {"size": 3}}, **GV
    )
    assert patched["spec"]["size"] == 3
    assert patched["metadata"]["generation"] == 2

    with_status = co.patch_namespaced_custom_object_status(
        name="g1", namespace="default", body={"status": {"phase": "Ready"}}, **GV
    )
    assert with_status["status"] == {"phase": "Ready"}
    assert with_status["metadata"]["generation"] == 2  # status writes never bump generation

    stale = dict(created, spec={"size": 5})
    with pytest.raises(ApiException) as conflict:
        co.replace_namespaced_custom_object(name="g1", namespace="default", body=stale, **GV)
    assert conflict.value.status == 409
    assert "the object has been modified" in conflict.value.body

    fresh = dict(with_status, spec={"size": 5})
    replaced = co.replace_namespaced_custom_object(name="g1", namespace="default", body=fresh, **GV)
    assert replaced["spec"] == {"size": 5, "color": "red"}
    assert replaced["status"] == {"phase": "Ready"}  # main-resource writes keep status

    with pytest.raises(ApiException) as invalid:
        co.patch_namespaced_custom_object(
            name="g1", namespace="default", body={"spec": {"size": 0}}, **GV
        )
    assert invalid.value.status == 422
    status = json.loads(invalid.value.body)
    assert (status["reason"], status["details"]["causes"][0]["field"]) == ("Invalid", "spec.size")
    assert status["message"] == (
        'Gizmo.clients.ntinv.example.com "g1" is invalid: spec.size: Invalid value: 0: '
        "spec.size in body should be greater than or equal to 1"
    )
    with pytest.raises(ApiException) as two:
        co.patch_namespaced_custom_object(
            name="g1", namespace="default", body={"spec": {"size": 0, "color": "pink"}}, **GV
        )
    # Several causes are bracketed, as Go's field.ErrorList aggregate prints them.
    size = "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1"
    color = 'spec.color: Unsupported value: "pink": supported values: "red", "green", "blue"'
    head = 'Gizmo.clients.ntinv.example.com "g1" is invalid: '
    assert json.loads(two.value.body)["message"] in (
        f"{head}[{size}, {color}]",
        f"{head}[{color}, {size}]",
    )

    co.delete_namespaced_custom_object(name="g1", namespace="default", **GV)
    with pytest.raises(ApiException) as gone:
        co.get_namespaced_custom_object(name="g1", namespace="default", **GV)
    assert gone.value.status == 404


def test_emptied_metadata_maps_are_omitted(api_client: client.ApiClient) -> None:
    """Removing the last label or annotation leaves no empty map, as ObjectMeta omits it."""
    co = client.CustomObjectsApi(api_client)
    body = gizmo("g1")
    body["metadata"].update(labels={"a": "1"}, annotations={"b": "2"}, finalizers=[])
    created = co.create_namespaced_custom_object(body=body, namespace="default", **GV)
    assert "finalizers" not in created["metadata"]
    patched = co.patch_namespaced_custom_object(
        name="g1",
        namespace="default",
        body={"metadata": {"labels": {"a": None}, "annotations": {"b": None}}},
        **GV,
    )
    assert "labels" not in patched["metadata"]
    assert "annotations" not in patched["metadata"]


def test_json_patch_with_resource_version_test(api_client: client.ApiClient) -> None:
    """A list body goes out as a JSON patch; a failed ``test`` op is a 422 (kopf relies on it)."""
    co = client.CustomObjectsApi(api_client)
    created = co.create_namespaced_custom_object(body=gizmo("g1"), namespace="default", **GV)
    rv = created["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "replace", "path": "/spec/size", "value": 4},
    ]
    json_patch = "application/json-patch+json"
    patched = co.patch_namespaced_custom_object(
        name="g1", namespace="default", body=ops, _content_type=json_patch, **GV
    )
    assert patched["spec"]["size"] == 4
    with pytest.raises(ApiException) as failed:
        co.patch_namespaced_custom_object(
            name="g1", namespace="default", body=ops, _content_type=json_patch, **GV
        )
    assert failed.value.status == 422


def raw(response: Any) -> JSON:
    """The JSON body of a ``_preload_content=False`` response."""
    body: JSON = json.loads(response.data)
    return body


def status_of(failed: pytest.ExceptionInfo[ApiException]) -> tuple[int, JSON]:
    """The HTTP code and the ``Status`` body of a refused request."""
    return failed.value.status, json.loads(failed.value.body)


def events_since(core: client.CoreV1Api, rv: str, n: int) -> list[tuple[str, str, JSON]]:
    """The first ``n`` watch events on default's ConfigMaps after ``rv``, as
    ``(type, name, raw object)`` (a watch resumed from history: no race with the writes)."""
    w = watch.Watch()
    with streaming(
        w, core.list_namespaced_config_map, namespace="default", resource_version=rv
    ) as events:
        return [(t, o["metadata"]["name"], o) for t, o in objects_of(events, n)]


def assert_left_no_trace(core: client.CoreV1Api, before: JSON) -> None:
    """After refused requests on ConfigMap ``before``: it reads as it was, and a watch from
    its version sees nothing before a marker written now (ADDED of "marker")."""
    name, rv = before["metadata"]["name"], before["metadata"]["resourceVersion"]
    assert raw(core.read_namespaced_config_map(name, "default", _preload_content=False)) == before
    core.create_namespaced_config_map("default", {"metadata": {"name": "marker"}})
    assert [(t, n) for t, n, _ in events_since(core, rv, 1)] == [("ADDED", "marker")]


JSON_PATCH = "application/json-patch+json"
UNDETERMINABLE = "the name of the object (a based on URL) was undeterminable: name must be provided"


@pytest.mark.parametrize(
    ("ops", "code", "message"),
    [
        ([{"op": "remove", "path": "/metadata"}], 400, UNDETERMINABLE),
        ([{"op": "remove", "path": "/metadata/name"}], 400, UNDETERMINABLE),
        ([{"op": "replace", "path": "", "value": {"data": {"k": "wiped"}}}], 400, UNDETERMINABLE),
        (
            [{"op": "replace", "path": "", "value": {"metadata": {"name": "b"}}}],
            400,
            "the name of the object (b) does not match the name on the URL (a)",
        ),
        (
            [{"op": "replace", "path": "", "value": ["x"]}],
            422,
            ' "" is invalid: patch: Invalid value: "[\\"x\\"]": couldn\'t get version/kind; '
            "json parse error: json: cannot unmarshal array into Go value of type struct { "
            'APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string '
            '"json:\\"kind,omitempty\\"" }',
        ),
        (
            [{"op": "add", "path": "", "value": {"metadata": {"name": "a"}}}],
            422,
            "the server rejected our request due to an error in our request",
        ),
    ],
)
def test_a_json_patch_cannot_wipe_the_object(
    api_client: client.ApiClient, ops: list[JSON], code: int, message: str
) -> None:
    """kube applies a JSON patch to the object's JSON, decodes the result and checks its
    name against the URL (handlers/patch.go): taking the metadata or the whole document
    away is refused, never stored as an empty object."""
    core = client.CoreV1Api(api_client)
    body = {"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}}
    before = raw(core.create_namespaced_config_map("default", body, _preload_content=False))
    with pytest.raises(ApiException) as failed:
        core.patch_namespaced_config_map("a", "default", ops, _content_type=JSON_PATCH)
    assert failed.value.status == code
    assert status_of(failed)[1]["message"] == message
    assert_left_no_trace(core, before)


def test_a_json_patch_replaces_the_whole_document_as_kube_does(
    api_client: client.ApiClient, gizmo_server: FakeApiServer
) -> None:
    """A whole new document is an update like any other (a ConfigMap's needs no
    resourceVersion, a custom resource's does); a scalar replaces nothing (evanphx v4)."""
    core = client.CoreV1Api(api_client)
    made = core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a", "labels": {"x": "1"}}, "data": {"k": "v"}}
    )
    rv = made.metadata.resource_version
    for value in (5, None, "text"):
        same = core.patch_namespaced_config_map(
            "a",
            "default",
            [{"op": "replace", "path": "", "value": value}],
            _content_type=JSON_PATCH,
        )
        assert same.metadata.resource_version == rv and same.data == {"k": "v"}
    whole = {"metadata": {"name": "a"}, "data": {"new": "1"}}
    replaced = core.patch_namespaced_config_map(
        "a", "default", [{"op": "replace", "path": "", "value": whole}], _content_type=JSON_PATCH
    )
    assert replaced.data == {"new": "1"} and replaced.metadata.labels is None
    assert replaced.metadata.uid == made.metadata.uid
    assert replaced.metadata.creation_timestamp == made.metadata.creation_timestamp

    co = client.CustomObjectsApi(api_client)
    g = co.create_namespaced_custom_object(body=gizmo("g1"), namespace="default", **GV)
    with pytest.raises(ApiException) as failed:
        co.patch_namespaced_custom_object(
            name="g1",
            namespace="default",
            body=[{"op": "replace", "path": "", "value": gizmo("g1")}],
            _content_type=JSON_PATCH,
            **GV,
        )
    code, status = status_of(failed)
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["message"] == (
        f'{GIZMO_PLURAL}.{GIZMO_GROUP} "g1" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )
    assert co.get_namespaced_custom_object(name="g1", namespace="default", **GV) == g


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"uid": "forged"}, 'metadata.uid: Invalid value: "forged": field is immutable'),
        (
            {"deletionTimestamp": "2030-01-01T00:00:00Z"},
            'metadata.deletionTimestamp: Invalid value: "2030-01-01T00:00:00Z": field is immutable',
        ),
        (
            {"deletionGracePeriodSeconds": 30},
            "metadata.deletionGracePeriodSeconds: Invalid value: 30: field is immutable",
        ),
    ],
)
def test_system_metadata_cannot_be_changed(
    api_client: client.ApiClient, meta: JSON, message: str
) -> None:
    """ValidateObjectMetaAccessorUpdate's immutable fields: a PUT, each patch and an apply
    that change one are refused with kube's 422, and change nothing."""
    core = client.CoreV1Api(api_client)
    before = raw(
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "a"}}, _preload_content=False
        )
    )
    put = json.loads(json.dumps(before))
    put["metadata"].update(meta)
    field = next(iter(meta))
    writes: list[Callable[[], Any]] = [
        lambda: core.replace_namespaced_config_map("a", "default", put),
        lambda: core.patch_namespaced_config_map(
            "a", "default", {"metadata": meta}, _content_type="application/merge-patch+json"
        ),
        lambda: core.patch_namespaced_config_map("a", "default", {"metadata": meta}),
        lambda: core.patch_namespaced_config_map(
            "a",
            "default",
            [{"op": "add", "path": f"/metadata/{field}", "value": meta[field]}],
            _content_type=JSON_PATCH,
        ),
        lambda: core.patch_namespaced_config_map(
            "a",
            "default",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", **meta}},
            field_manager="tester",
            _content_type="application/apply-patch+yaml",
        ),
    ]
    for write in writes:
        with pytest.raises(ApiException) as failed:
            write()
        code, status = status_of(failed)
        assert (code, status["reason"]) == (422, "Invalid")
        assert status["message"] == f'ConfigMap "a" is invalid: {message}'
        # (kube lists the cause twice for most kinds, its strategy repeating the check; the
        # fake once: what clients read, the message and the field, is the same)
        assert {c["field"] for c in status["details"]["causes"]} == {f"metadata.{field}"}
    # What kube restores silently instead: a creationTimestamp sent, a uid left out.
    put = json.loads(json.dumps(before))
    put["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    del put["metadata"]["uid"]
    kept = core.replace_namespaced_config_map("a", "default", put)
    assert kept.metadata.uid == before["metadata"]["uid"]
    assert kept.metadata.resource_version == before["metadata"]["resourceVersion"]  # (no-op)
    assert_left_no_trace(core, before)


def test_a_future_resource_version_is_too_large(api_client: client.ApiClient) -> None:
    """kube's watch cache waits for a resourceVersion it has not reached, then answers 504
    Timeout "Too large resource version" with a retry after a second; the fake answers at once."""
    core = client.CoreV1Api(api_client)
    current = int(core.list_namespaced_config_map("default").metadata.resource_version)
    with pytest.raises(ApiException) as failed:
        core.list_namespaced_config_map(
            "default", resource_version=str(current + 5), resource_version_match="Exact"
        )
    assert failed.value.headers["Retry-After"] == "1"
    assert status_of(failed) == (
        504,
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": f"Timeout: Too large resource version: {current + 5}, current: {current}",
            "reason": "Timeout",
            "details": {
                "causes": [
                    {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
                ],
                "retryAfterSeconds": 1,
            },
            "code": 504,
        },
    )
    # The current version itself is served exactly.
    at = core.list_namespaced_config_map(
        "default", resource_version=str(current), resource_version_match="Exact"
    )
    assert at.metadata.resource_version == str(current)


@pytest.mark.parametrize("match", [None, "NotOlderThan"])
def test_a_future_resource_version_is_too_large_as_a_minimum(
    api_client: client.ApiClient, match: str | None
) -> None:
    """A LIST's resourceVersion without resourceVersionMatch=Exact is a minimum
    (NotOlderThan): one the server has not reached is the same 504 (GET: the kubectl test)."""
    core = client.CoreV1Api(api_client)
    current = int(core.list_namespaced_config_map("default").metadata.resource_version)
    future = str(current + 1)
    with pytest.raises(ApiException) as failed:
        core.list_namespaced_config_map(
            "default", resource_version=future, resource_version_match=match
        )
    code, status = status_of(failed)
    assert (code, status["reason"]) == (504, "Timeout")
    assert status["message"] == f"Timeout: Too large resource version: {future}, current: {current}"
    assert failed.value.headers["Retry-After"] == "1"


def test_removing_the_last_finalizer_deletes_in_one_step(api_client: client.ApiClient) -> None:
    """kube's Store.Update deletes an object being deleted once an update empties its
    finalizers, instead of storing it: a watch sees DELETED only (the stored version, at the
    deletion's resourceVersion), and the update is answered with the object it made."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "a", "finalizers": ["example.com/hold"]}}
    )
    deleting = core.delete_namespaced_config_map("a", "default")
    rv = deleting["metadata"]["resourceVersion"]
    answer = core.patch_namespaced_config_map(
        "a",
        "default",
        {"metadata": {"finalizers": None, "labels": {"lost": "yes"}}},
        _content_type="application/merge-patch+json",
    )
    assert answer.metadata.finalizers is None and answer.metadata.labels == {"lost": "yes"}
    assert answer.metadata.resource_version == rv
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map("a", "default")
    assert gone.value.status == 404
    core.create_namespaced_config_map("default", {"metadata": {"name": "marker"}})
    (kind, name, obj), (after, marker, _) = events_since(core, rv, 2)
    assert (kind, name, after, marker) == ("DELETED", "a", "ADDED", "marker")
    assert obj == {
        **deleting,
        "metadata": {**deleting["metadata"], "resourceVersion": str(int(rv) + 1)},
    }


# --------------------------------------------------------------------------------- sync: watch


def test_watch_reports_each_write_with_its_resource_version(
    api_client: client.ApiClient, gizmo_server: FakeApiServer
) -> None:
    co = client.CustomObjectsApi(api_client)
    start = co.list_namespaced_custom_object(namespace="default", **GV)["metadata"][
        "resourceVersion"
    ]
    created = co.create_namespaced_custom_object(body=gizmo("g1"), namespace="default", **GV)
    patched = co.patch_namespaced_custom_object(
        name="g1", namespace="default", body={"spec": {"size": 2}}, **GV
    )
    deleted = co.delete_namespaced_custom_object(name="g1", namespace="default", **GV)
    assert deleted["status"] == "Success" and deleted["details"]["name"] == "g1"
    after = co.list_namespaced_custom_object(namespace="default", **GV)["metadata"]
    w = watch.Watch()
    with streaming(
        w, co.list_namespaced_custom_object, namespace="default", resource_version=start, **GV
    ) as events:
        seen = objects_of(events, 3)
    assert [(t, o["metadata"]["resourceVersion"]) for t, o in seen] == [
        ("ADDED", created["metadata"]["resourceVersion"]),
        ("MODIFIED", patched["metadata"]["resourceVersion"]),
        ("DELETED", after["resourceVersion"]),
    ]


def test_watch_typed_objects_without_resource_version(api_client: client.ApiClient) -> None:
    """Without ``resource_version`` the stream starts with ADDED for what exists."""
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"))
    )
    w = watch.Watch()
    with streaming(w, core.list_namespaced_config_map, namespace="default") as events:
        first = next(events)
        assert first["type"] == "ADDED"
        assert isinstance(first["object"], client.V1ConfigMap)
        assert first["object"].metadata.name == "a"
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="b"))
        )
        second = next(events)
        assert (second["type"], second["object"].metadata.name) == ("ADDED", "b")


def test_watch_resumes_after_server_timeout(
    make_gizmo_server: Callable[..., FakeApiServer],
) -> None:
    """When the server ends the stream, the client reopens from the last resourceVersion.

    The object created while no stream is open must still arrive: it is replayed from
    history. It is created from the interceptor that sees the second watch request,
    i.e. exactly between the two streams, with no timing involved.
    """
    server = make_gizmo_server(watch_timeout=0.2)
    calls = WatchRequests("configmaps")

    class CreateOnReopen(Interceptor):
        async def on_request(self, request: RequestInfo) -> None:
            if request.verb == "watch" and len(calls.queries) == 2:
                server.apply(
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "between"}}
                )

    server.add_interceptor(calls)
    server.add_interceptor(CreateOnReopen())
    server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "before"}})
    with client_for(server) as api:
        core = client.CoreV1Api(api)
        w = watch.Watch()
        with streaming(w, core.list_namespaced_config_map, namespace="default") as events:
            seen = objects_of(events, 2)
    assert [(t, o["metadata"]["name"]) for t, o in seen] == [
        ("ADDED", "before"),
        ("ADDED", "between"),
    ]
    before_rv = seen[0][1]["metadata"]["resourceVersion"]
    assert "resourceVersion" not in calls.queries[0]
    assert calls.queries[1]["resourceVersion"] == before_rv


def test_watch_bookmarks(make_gizmo_server: Callable[..., FakeApiServer]) -> None:
    """``allow_watch_bookmarks`` BOOKMARKs reach the caller as raw dicts and advance the rv."""
    server = make_gizmo_server(bookmark_interval=0.05)
    server.apply(gizmo("g1"))
    with client_for(server) as api:
        co = client.CustomObjectsApi(api)
        w = watch.Watch()
        with streaming(
            w,
            co.list_namespaced_custom_object,
            namespace="default",
            allow_watch_bookmarks=True,
            **GV,
        ) as events:
            added = next(events)
            assert added["type"] == "ADDED"
            bookmark = next(events)
    assert bookmark["type"] == "BOOKMARK"
    obj = bookmark["object"]
    assert isinstance(obj, dict)
    assert obj["kind"] == "Gizmo"
    assert obj["apiVersion"] == f"{GIZMO_GROUP}/{GIZMO_VERSION}"
    # The client resumes from the bookmark's rv, which covers what it has already seen.
    assert w.resource_version == obj["metadata"]["resourceVersion"]
    assert int(w.resource_version) >= int(added["raw_object"]["metadata"]["resourceVersion"])


def test_watch_expired_reopens_once_then_raises_410(
    api_client: client.ApiClient, gizmo_server: FakeApiServer
) -> None:
    co = client.CustomObjectsApi(api_client)
    old = co.create_namespaced_custom_object(body=gizmo("g1"), namespace="default", **GV)
    co.patch_namespaced_custom_object(
        name="g1", namespace="default", body={"spec": {"size": 2}}, **GV
    )
    gizmo_server.store.compact()
    calls = gizmo_server.add_interceptor(WatchRequests(GIZMO_PLURAL)).interceptor
    assert isinstance(calls, WatchRequests)
    rv = old["metadata"]["resourceVersion"]
    w = watch.Watch()
    with (
        streaming(
            w, co.list_namespaced_custom_object, namespace="default", resource_version=rv, **GV
        ) as events,
        pytest.raises(ApiException) as info,
    ):
        next(events)
    assert info.value.status == 410
    assert info.value.reason.startswith("Expired: too old resource version")
    # Reopened exactly once, from the same (still too old) resourceVersion.
    assert [q["resourceVersion"] for q in calls.queries] == [rv, rv]


# -------------------------------------------------------------------------------- sync: leases


def test_lease_acquire_renew_and_conflict(api_client: client.ApiClient) -> None:
    """The leader-election pattern: create, renew by replace, a stale replace loses (409)."""
    coord = client.CoordinationV1Api(api_client)
    lease = coord.create_namespaced_lease(
        "default",
        client.V1Lease(
            metadata=client.V1ObjectMeta(name="leader"),
            spec=client.V1LeaseSpec(holder_identity="a", lease_duration_seconds=15),
        ),
    )
    assert lease.spec.holder_identity == "a"
    renewed_spec = client.V1LeaseSpec(
        holder_identity="a", lease_duration_seconds=15, lease_transitions=1
    )
    renewed = coord.replace_namespaced_lease(
        "leader",
        "default",
        client.V1Lease(
            metadata=client.V1ObjectMeta(
                name="leader", resource_version=lease.metadata.resource_version
            ),
            spec=renewed_spec,
        ),
    )
    assert renewed.spec.lease_transitions == 1
    usurper = client.V1Lease(
        metadata=client.V1ObjectMeta(
            name="leader", resource_version=lease.metadata.resource_version
        ),
        spec=client.V1LeaseSpec(holder_identity="b", lease_duration_seconds=15),
    )
    with pytest.raises(ApiException) as info:
        coord.replace_namespaced_lease("leader", "default", usurper)
    assert info.value.status == 409
    assert coord.read_namespaced_lease("leader", "default").spec.holder_identity == "a"
    assert [x.metadata.name for x in coord.list_namespaced_lease("default").items] == ["leader"]
    coord.delete_namespaced_lease("leader", "default")
    assert coord.list_namespaced_lease("default").items == []


# -------------------------------------------------------------------------- kubernetes.aio


@pytest_asyncio.fixture
async def aio_client(gizmo_server: FakeApiServer) -> AsyncIterator[aclient.ApiClient]:
    """An async ``ApiClient`` configured from the server's kubeconfig (identity ``python-aio``)."""
    path = gizmo_server.kubeconfig("python-aio")
    api = await aconfig.new_client_from_config(config_file=str(path), persist_config=False)
    async with api:
        yield api


@pytest.mark.asyncio
async def test_aio_core_and_custom_objects(aio_client: aclient.ApiClient) -> None:
    core = aclient.CoreV1Api(aio_client)
    await core.create_namespaced_config_map(
        "default",
        aclient.V1ConfigMap(metadata=aclient.V1ObjectMeta(name="cfg"), data={"k": "v"}),
    )
    patched = await core.patch_namespaced_config_map("cfg", "default", {"data": {"k": "w"}})
    assert patched.data == {"k": "w"}

    co = aclient.CustomObjectsApi(aio_client)
    created = await co.create_namespaced_custom_object(body=gizmo("g1"), namespace="default", **GV)
    await co.patch_namespaced_custom_object(
        name="g1", namespace="default", body={"spec": {"size": 6}}, **GV
    )
    status = await co.patch_namespaced_custom_object_status(
        name="g1", namespace="default", body={"status": {"phase": "Done"}}, **GV
    )
    assert status["spec"]["size"] == 6 and status["status"] == {"phase": "Done"}
    with pytest.raises(aclient.ApiException) as conflict:
        await co.replace_namespaced_custom_object(
            name="g1", namespace="default", body=created, **GV
        )
    assert conflict.value.status == 409
    await co.delete_namespaced_custom_object(name="g1", namespace="default", **GV)
    listed = await co.list_namespaced_custom_object(namespace="default", **GV)
    assert listed["items"] == []

    coord = aclient.CoordinationV1Api(aio_client)
    await coord.create_namespaced_lease(
        "default",
        aclient.V1Lease(
            metadata=aclient.V1ObjectMeta(name="l"),
            spec=aclient.V1LeaseSpec(holder_identity="me"),
        ),
    )
    assert (await coord.read_namespaced_lease("l", "default")).spec.holder_identity == "me"


@pytest.mark.asyncio
async def test_aio_watch_events(aio_client: aclient.ApiClient) -> None:
    co = aclient.CustomObjectsApi(aio_client)
    start = (await co.list_namespaced_custom_object(namespace="default", **GV))["metadata"][
        "resourceVersion"
    ]
    async with awatch.Watch() as w:
        stream = w.stream(
            co.list_namespaced_custom_object,
            namespace="default",
            resource_version=start,
            allow_watch_bookmarks=True,
            **GV,
        )
        created = await co.create_namespaced_custom_object(
            body=gizmo("g1"), namespace="default", **GV
        )
        event = await anext(stream)
        assert event["type"] == "ADDED"
        assert (
            event["object"]["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        )
        await co.delete_namespaced_custom_object(name="g1", namespace="default", **GV)
        event = await anext(stream)
        assert (event["type"], event["object"]["metadata"]["name"]) == ("DELETED", "g1")


@pytest.mark.asyncio
async def test_aio_watch_expired_reopens_once_then_raises_410(
    aio_client: aclient.ApiClient, gizmo_server: FakeApiServer
) -> None:
    co = aclient.CustomObjectsApi(aio_client)
    old = await co.create_namespaced_custom_object(body=gizmo("g1"), namespace="default", **GV)
    await co.patch_namespaced_custom_object(
        name="g1", namespace="default", body={"spec": {"size": 2}}, **GV
    )
    gizmo_server.store.compact()
    calls = WatchRequests(GIZMO_PLURAL)
    gizmo_server.add_interceptor(calls)
    rv = old["metadata"]["resourceVersion"]
    async with awatch.Watch() as w:
        stream = w.stream(
            co.list_namespaced_custom_object, namespace="default", resource_version=rv, **GV
        )
        with pytest.raises(aclient.ApiException) as info:
            await anext(stream)
    assert info.value.status == 410
    assert [q["resourceVersion"] for q in calls.queries] == [rv, rv]
