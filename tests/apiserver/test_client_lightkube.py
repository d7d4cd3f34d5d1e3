"""lightkube (httpx-based) against the fake: a generic CRD resource and a core ConfigMap."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from crds import GIZMO_GROUP, GIZMO_PLURAL, GIZMO_VERSION, gizmo
from lightkube import ApiError, AsyncClient, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import OnErrorAction, OnErrorResult, PatchType

from pytest_ntinvariants.apiserver import FakeApiServer, Interceptor, RequestInfo

# lightkube keeps one class per (apiVersion, kind) in a process-wide registry; asking again
# with the same signature returns the same class, so defining it once here is enough.
Gizmo = create_namespaced_resource(GIZMO_GROUP, GIZMO_VERSION, "Gizmo", GIZMO_PLURAL)


@pytest.fixture
def lk(gizmo_server: FakeApiServer) -> Iterator[Client]:
    """A lightkube ``Client`` from the server's kubeconfig (identity ``lightkube``)."""
    config = KubeConfig.from_file(gizmo_server.kubeconfig("lightkube"))
    with Client(config=config, trust_env=False) as client:
        yield client


def test_generic_resource_lifecycle(lk: Client) -> None:
    created = lk.create(Gizmo(gizmo("g1", size=2)))
    assert isinstance(created, Gizmo)
    assert created.metadata.name == "g1"
    assert created["spec"] == {"size": 2, "color": "red"}
    assert isinstance(created.metadata.resourceVersion, str)

    got = lk.get(Gizmo, "g1", namespace="default")
    assert got["spec"]["size"] == 2
    lk.create(Gizmo(gizmo("g2", size=3)))
    assert [g.metadata.name for g in lk.list(Gizmo, namespace="default")] == ["g1", "g2"]
    # Chunked listing follows the continue token.
    assert [g.metadata.name for g in lk.list(Gizmo, namespace="default", chunk_size=1)] == [
        "g1",
        "g2",
    ]
    assert [g.metadata.name for g in lk.list(Gizmo, namespace="*")] == ["g1", "g2"]

    # lightkube's default patch type is strategic merge, which custom resources refuse.
    with pytest.raises(ApiError) as refused:
        lk.patch(Gizmo, "g1", {"spec": {"size": 4}}, namespace="default")
    assert refused.value.status.code == 415
    assert refused.value.status.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )
    patched = lk.patch(
        Gizmo, "g1", {"spec": {"size": 4}}, namespace="default", patch_type=PatchType.MERGE
    )
    assert patched["spec"]["size"] == 4
    assert patched.metadata.generation == 2
    ops = [{"op": "replace", "path": "/spec/color", "value": "green"}]
    recolored = lk.patch(Gizmo, "g1", ops, namespace="default", patch_type=PatchType.JSON)
    assert recolored["spec"]["color"] == "green"
    assert recolored.metadata.generation == 3

    status = lk.patch(
        Gizmo.Status,
        "g1",
        {"status": {"phase": "Ready"}},
        namespace="default",
        patch_type=PatchType.MERGE,
    )
    assert status["status"] == {"phase": "Ready"}
    assert status.metadata.generation == 3  # status writes never bump it

    with pytest.raises(ApiError) as invalid:
        lk.patch(
            Gizmo, "g1", {"spec": {"size": 0}}, namespace="default", patch_type=PatchType.MERGE
        )
    assert invalid.value.status.code == 422
    assert invalid.value.status.reason == "Invalid"

    lk.delete(Gizmo, "g1", namespace="default")
    with pytest.raises(ApiError) as missing:
        lk.get(Gizmo, "g1", namespace="default")
    assert missing.value.status.code == 404
    assert missing.value.status.reason == "NotFound"


def test_server_side_apply(lk: Client) -> None:
    """lightkube's ``apply`` is server-side apply: create, update, conflict, force."""
    created = lk.apply(Gizmo(gizmo("g1", size=2)), field_manager="deployer")
    assert created["spec"] == {"size": 2, "color": "red"}
    [entry] = created.metadata.managedFields
    assert (entry.manager, entry.operation, entry.fieldsType) == ("deployer", "Apply", "FieldsV1")
    # The applier owns what it applied, not what the schema defaulted (color).
    assert entry.fieldsV1 == {"f:spec": {"f:size": {}}}
    again = lk.apply(Gizmo(gizmo("g1", size=2)), field_manager="deployer")
    assert again.metadata.resourceVersion == created.metadata.resourceVersion  # a no-op
    with pytest.raises(ApiError) as conflict:
        lk.apply(Gizmo(gizmo("g1", size=5)), field_manager="scaler")
    assert conflict.value.status.code == 409
    assert conflict.value.status.message == (
        'Apply failed with 1 conflict: conflict with "deployer": .spec.size'
    )
    assert [(c.field, c.reason) for c in conflict.value.status.details.causes] == [
        (".spec.size", "FieldManagerConflict")
    ]
    forced = lk.apply(Gizmo(gizmo("g1", size=5)), field_manager="scaler", force=True)
    assert forced["spec"]["size"] == 5
    # deployer lost its only field, so its entry is gone.
    owners = {e.manager: e.fieldsV1 for e in forced.metadata.managedFields}
    assert owners == {"scaler": {"f:spec": {"f:size": {}}}}
    cm = lk.apply(
        ConfigMap(metadata=ObjectMeta(name="cfg", namespace="default"), data={"a": "1"}),
        field_manager="deployer",
    )
    assert cm.data == {"a": "1"}


def test_generic_resource_watch(lk: Client, gizmo_server: FakeApiServer) -> None:
    lk.create(Gizmo(gizmo("g1")))
    stream = lk.watch(Gizmo, namespace="default")
    try:
        kind, obj = next(stream)
        assert (kind, obj.metadata.name) == ("ADDED", "g1")
        assert isinstance(obj, Gizmo)
        lk.patch(
            Gizmo, "g1", {"spec": {"size": 2}}, namespace="default", patch_type=PatchType.MERGE
        )
        kind, obj = next(stream)
        assert (kind, obj["spec"]["size"]) == ("MODIFIED", 2)
        lk.delete(Gizmo, "g1", namespace="default")
        kind, obj = next(stream)
        assert (kind, obj.metadata.name) == ("DELETED", "g1")
    finally:
        stream.close()


class WatchQueries(Interceptor):
    """Records the query of every watch request."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []

    async def on_request(self, request: RequestInfo) -> None:
        if request.verb == "watch":
            self.queries.append(dict(request.query))


def test_watch_restarts_from_scratch_after_410(lk: Client, gizmo_server: FakeApiServer) -> None:
    """With a retrying ``on_error``, lightkube drops the expired rv and watches anew."""
    old = lk.create(Gizmo(gizmo("g1")))
    lk.patch(Gizmo, "g1", {"spec": {"size": 2}}, namespace="default", patch_type=PatchType.MERGE)
    gizmo_server.store.compact()
    calls = WatchQueries()
    gizmo_server.add_interceptor(calls)
    errors: list[Exception] = []

    def retry(e: Exception, count: int) -> OnErrorResult:
        errors.append(e)
        return OnErrorResult(OnErrorAction.RETRY)

    rv = old.metadata.resourceVersion
    stream = lk.watch(Gizmo, namespace="default", resource_version=rv, on_error=retry)
    try:
        kind, obj = next(stream)
    finally:
        stream.close()
    assert (kind, obj["spec"]["size"]) == ("ADDED", 2)
    assert [type(e).__name__ for e in errors] == ["ApiError"]
    assert isinstance(errors[0], ApiError) and errors[0].status.code == 410
    assert [q.get("resourceVersion") for q in calls.queries] == [rv, None]


def test_watch_raises_410_by_default(lk: Client, gizmo_server: FakeApiServer) -> None:
    old = lk.create(Gizmo(gizmo("g1")))
    lk.delete(Gizmo, "g1", namespace="default")
    gizmo_server.store.compact()
    stream = lk.watch(Gizmo, namespace="default", resource_version=old.metadata.resourceVersion)
    try:
        with pytest.raises(ApiError) as info:
            next(stream)
    finally:
        stream.close()
    assert info.value.status.code == 410
    assert info.value.status.reason == "Expired"


def test_configmap(lk: Client) -> None:
    cm = lk.create(ConfigMap(metadata=ObjectMeta(name="cfg", labels={"app": "x"}), data={"a": "1"}))
    assert cm.data == {"a": "1"}
    # A strategic merge patch is fine on a built-in kind.
    patched = lk.patch(ConfigMap, "cfg", {"data": {"b": "2"}}, namespace="default")
    assert patched.data == {"a": "1", "b": "2"}
    patched.data = {"c": "3"}
    replaced = lk.replace(patched)
    assert replaced.data == {"c": "3"}
    stale = ConfigMap(
        metadata=ObjectMeta(
            name="cfg", namespace="default", resourceVersion=cm.metadata.resourceVersion
        ),
        data={},
    )
    with pytest.raises(ApiError) as conflict:
        lk.replace(stale)
    assert conflict.value.status.code == 409
    assert [c.metadata.name for c in lk.list(ConfigMap, labels={"app": "x"})] == ["cfg"]
    assert [c.metadata.name for c in lk.list(ConfigMap, labels={"app": "y"})] == []
    lk.delete(ConfigMap, "cfg")
    assert list(lk.list(ConfigMap)) == []


@pytest_asyncio.fixture
async def alk(gizmo_server: FakeApiServer) -> AsyncIterator[AsyncClient]:
    """A lightkube ``AsyncClient`` of the server."""
    config = KubeConfig.from_file(gizmo_server.kubeconfig("lightkube-async"))
    client = AsyncClient(config=config, trust_env=False)
    try:
        yield client
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_async_client(alk: AsyncClient) -> None:
    await alk.create(Gizmo(gizmo("g1")))
    stream = alk.watch(Gizmo, namespace="default")
    try:
        kind, obj = await anext(stream)
        assert (kind, obj.metadata.name) == ("ADDED", "g1")
        await alk.patch(
            Gizmo, "g1", {"spec": {"size": 5}}, namespace="default", patch_type=PatchType.MERGE
        )
        kind, obj = await anext(stream)
        assert (kind, obj["spec"]["size"]) == ("MODIFIED", 5)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    names: list[Any] = [g.metadata.name async for g in alk.list(Gizmo, namespace="default")]
    assert names == ["g1"]
    await alk.delete(Gizmo, "g1", namespace="default")
