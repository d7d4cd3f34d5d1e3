"""The server over real HTTP: verbs, selectors, paging, patches, subresources, deletion,
CRDs, discovery and the built-in kinds, checked on the wire."""

from __future__ import annotations

import base64
import copy
from typing import TYPE_CHECKING, Any

import pytest

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

CMS = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {},
    }


def widget(name: str, size: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }


def gadget_crd(plural: str = "gadgets", kind: str = "Gadget") -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.toys.example.org"},
        "spec": {
            "group": "toys.example.org",
            "scope": "Cluster",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def names(body: dict[str, Any]) -> list[str]:
    return [i["metadata"]["name"] for i in body["items"]]


# ------------------------------------------------------------------- basics


def test_versions_are_strings_and_lists_carry_the_collection_version(api: Api) -> None:
    created = api.post(CMS, cm("a")).expect(201)
    assert isinstance(created["metadata"]["resourceVersion"], str)
    listed = api.get(CMS).expect(200)
    assert listed["kind"] == "ConfigMapList" and listed["apiVersion"] == "v1"
    assert listed["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert "continue" not in listed["metadata"]
    api.post("/api/v1/namespaces/default/secrets", {"metadata": {"name": "s"}, "data": {}}).expect(
        201
    )
    # The collection version is global: it moved though no ConfigMap changed.
    assert int(api.get(CMS).rv) == int(created["metadata"]["resourceVersion"]) + 1


def test_create_without_content_type_is_json(api: Api) -> None:
    # The python client sends POST bodies without a Content-Type.
    r = api.post(CMS, cm("a"), content_type=None)
    assert r.expect(201)["metadata"]["name"] == "a"


def test_create_and_get(api: Api) -> None:
    body = api.post(CMS, {"metadata": {"generateName": "gen-"}, "data": {"k": "v"}}).expect(201)
    name = body["metadata"]["name"]
    assert name.startswith("gen-") and len(name) == 9
    assert body["kind"] == "ConfigMap" and body["apiVersion"] == "v1"
    assert body["metadata"]["uid"] and body["metadata"]["creationTimestamp"]
    assert api.get(f"{CMS}/{name}").expect(200) == body


def test_generated_names_replay_with_the_seed(make_api: type[Api]) -> None:

    def run() -> list[str]:
        with FakeApiServer(seed=42) as s:
            c = make_api(s)
            return [
                c.post(CMS, {"metadata": {"generateName": "x-"}}).body["metadata"]["name"]
                for _ in range(3)
            ]

    assert run() == run()


def test_create_errors(api: Api) -> None:
    bad = api.post(CMS, cm("Not_Valid")).expect_status(422, "Invalid")
    assert [c["field"] for c in bad["details"]["causes"]] == ["metadata.name"]
    assert bad["details"]["kind"] == "ConfigMap"
    api.post("/api/v1/namespaces/nope/configmaps", cm("a")).expect_status(404, "NotFound")
    api.post(CMS, cm("a")).expect(201)
    dup = api.post(CMS, cm("a")).expect_status(409, "AlreadyExists")
    assert dup["details"] == {"name": "a", "kind": "configmaps"}
    gone = api.get(f"{WIDGETS}/nope").expect_status(404, "NotFound")
    assert gone["details"] == {"name": "nope", "group": "example.com", "kind": "widgets"}


def test_create_in_a_terminating_namespace_is_403(api: Api) -> None:
    api.post("/api/v1/namespaces", {"metadata": {"name": "ns1"}}).expect(201)
    api.post(
        "/api/v1/namespaces/ns1/configmaps", {"metadata": {"name": "held", "finalizers": ["x/y"]}}
    ).expect(201)
    api.delete("/api/v1/namespaces/ns1").expect(200)
    api.post("/api/v1/namespaces/ns1/configmaps", cm("new")).expect_status(403, "Forbidden")


# -------------------------------------------------------------- list, selectors


def seed(api: Api) -> None:
    for name, labels in [
        ("a", {"app": "x", "tier": "web"}),
        ("b", {"app": "y"}),
        ("c", {"app": "x"}),
        ("d", {}),
    ]:
        api.post(CMS, cm(name, **labels)).expect(201)


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=x", ["a", "c"]),
        ("app==x", ["a", "c"]),
        ("app!=x", ["b", "d"]),
        ("app in (x, y)", ["a", "b", "c"]),
        ("app notin (x)", ["b", "d"]),
        ("tier", ["a"]),
        ("!tier", ["b", "c", "d"]),
    ],
)
def test_label_selectors(api: Api, selector: str, expected: list[str]) -> None:
    seed(api)
    assert names(api.get(CMS, query={"labelSelector": selector}).expect(200)) == expected


@pytest.mark.parametrize("selector", ["app=(x", "in (x)", "app notin x", "x=y=z!"])
def test_bad_label_selector_is_400(api: Api, selector: str) -> None:
    api.get(CMS, query={"labelSelector": selector}).expect_status(400, "BadRequest")


def test_field_selectors(api: Api) -> None:
    seed(api)
    assert names(api.get(CMS, query={"fieldSelector": "metadata.name=b"}).expect(200)) == ["b"]
    assert names(
        api.get(
            "/api/v1/configmaps",
            query={"fieldSelector": "metadata.namespace=default,metadata.name!=a"},
        ).expect(200)
    ) == ["b", "c", "d"]
    api.get(CMS, query={"fieldSelector": "data.k=v"}).expect_status(400, "BadRequest")


def test_event_field_selectors(api: Api) -> None:
    events = "/api/v1/namespaces/default/events"
    for name, target in [("e1", "w1"), ("e2", "w2")]:
        api.post(
            events,
            {
                "metadata": {"name": name},
                "reason": "Made",
                "type": "Normal",
                "involvedObject": {"kind": "Widget", "name": target, "namespace": "default"},
            },
        ).expect(201)
    found = api.get(events, query={"fieldSelector": "involvedObject.name=w2"}).expect(200)
    assert names(found) == ["e2"]
    new_events = "/apis/events.k8s.io/v1/namespaces/default/events"
    api.post(
        new_events,
        {
            "metadata": {"name": "n1"},
            "reason": "Made",
            "type": "Normal",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "x",
            "reportingInstance": "y",
            "action": "a",
            "regarding": {"kind": "Widget", "name": "w1"},
        },
    ).expect(201)
    got = api.get(new_events, query={"fieldSelector": "regarding.name=w1"}).expect(200)
    # One storage for both APIs (test_events.py): core's e1 is about w1 too.
    assert names(got) == ["e1", "n1"] and got["apiVersion"] == "events.k8s.io/v1"


def test_limit_and_continue(server: FakeApiServer, api: Api) -> None:
    for i in range(5):
        api.post(CMS, cm(f"c{i}")).expect(201)
    page = api.get(CMS, query={"limit": "2"}).expect(200)
    assert names(page) == ["c0", "c1"] and page["metadata"]["remainingItemCount"] == 3
    rv, token = page["metadata"]["resourceVersion"], page["metadata"]["continue"]
    api.delete(f"{CMS}/c3").expect(200)
    page2 = api.get(CMS, query={"limit": "2", "continue": token}).expect(200)
    assert names(page2) == ["c2", "c3"] and page2["metadata"]["resourceVersion"] == rv
    server.store.compact()
    expired = api.get(CMS, query={"limit": "2", "continue": page2["metadata"]["continue"]})
    expired.expect_status(410, "Expired")
    api.get(CMS, query={"continue": "garbage"}).expect_status(400, "BadRequest")
    # With a selector kube cannot count what is left, and says nothing.
    selected = api.get(CMS, query={"limit": "1", "fieldSelector": "metadata.name!=x"})
    meta = selected.expect(200)["metadata"]
    assert meta["continue"] and "remainingItemCount" not in meta


# ---------------------------------------------------------------------- update


def test_update_semantics(api: Api) -> None:
    w = api.post(WIDGETS, widget("w")).expect(201)
    newer = api.patch(f"{WIDGETS}/w", {"spec": {"size": 2}}).expect(200)
    stale = copy.deepcopy(w)
    stale["spec"]["size"] = 3
    conflict = api.put(f"{WIDGETS}/w", stale).expect_status(409, "Conflict")
    assert conflict["details"]["name"] == "w"
    unversioned = copy.deepcopy(newer)
    del unversioned["metadata"]["resourceVersion"]
    missing = api.put(f"{WIDGETS}/w", unversioned).expect_status(422, "Invalid")
    assert [c["field"] for c in missing["details"]["causes"]] == ["metadata.resourceVersion"]
    renamed = copy.deepcopy(newer)
    renamed["metadata"]["name"] = "other"
    api.put(f"{WIDGETS}/w", renamed).expect_status(400, "BadRequest")
    newer["spec"]["size"] = 4
    done = api.put(f"{WIDGETS}/w", newer).expect(200)
    assert done["spec"]["size"] == 4 and done["metadata"]["generation"] == 3


def test_generation_and_status_subresource(api: Api) -> None:
    body = widget("w")
    body["status"] = {"phase": "Forged"}
    made = api.post(WIDGETS, body).expect(201)
    assert "status" not in made and made["metadata"]["generation"] == 1
    s = api.patch(f"{WIDGETS}/w/status", {"status": {"phase": "A"}, "spec": {"size": 50}})
    s_body = s.expect(200)
    assert s_body["status"] == {"phase": "A"} and s_body["spec"]["size"] == 1
    assert s_body["metadata"]["generation"] == 1
    m = api.patch(f"{WIDGETS}/w", {"status": {"phase": "B"}, "spec": {"size": 2}}).expect(200)
    assert m["status"] == {"phase": "A"} and m["metadata"]["generation"] == 2
    labelled = api.patch(f"{WIDGETS}/w", {"metadata": {"labels": {"k": "v"}}}).expect(200)
    assert labelled["metadata"]["generation"] == 2
    got = api.get(f"{WIDGETS}/w/status").expect(200)
    assert got["status"] == {"phase": "A"}
    put = copy.deepcopy(got)
    put["status"] = {"phase": "C"}
    put["spec"]["size"] = 77
    after = api.put(f"{WIDGETS}/w/status", put).expect(200)
    assert after["status"] == {"phase": "C"} and after["spec"]["size"] == 2
    api.post(f"{WIDGETS}/w/status", put).expect_status(405, "MethodNotAllowed")
    api.get(f"{CMS}/x/status").expect_status(404, "NotFound")


# ----------------------------------------------------------------------- patch


def test_patch_flavours(api: Api) -> None:
    api.post(WIDGETS, widget("w", color="red")).expect(201)
    merged = api.patch(f"{WIDGETS}/w", {"spec": {"color": None, "size": 3}}).expect(200)
    assert merged["spec"] == {"size": 3, "color": "blue"}  # deleted, then defaulted again
    rv = merged["metadata"]["resourceVersion"]
    failed = api.patch(
        f"{WIDGETS}/w",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
            {"op": "replace", "path": "/spec/size", "value": 9},
        ],
        kind="json",
    )
    failed.expect_status(422, "Invalid")
    ok = api.patch(
        f"{WIDGETS}/w",
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]},
        ],
        kind="json",
    )
    assert ok.expect(200)["metadata"]["finalizers"] == ["x/y"]
    # Strategic merge is refused for custom resources; server-side apply is not (and is
    # tested in test_apply.py).
    api.patch(f"{WIDGETS}/w", {"spec": {"size": 1}}, kind="strategic").expect_status(
        415, "UnsupportedMediaType"
    )
    api.request("PATCH", f"{WIDGETS}/w", {"spec": {}}).expect_status(
        415, "UnsupportedMediaType"
    )  # plain application/json is no patch type
    api.patch(f"{WIDGETS}/w", {"op": "add"}, kind="json").expect_status(400, "BadRequest")


def test_bad_json_patch_operations(api: Api) -> None:
    api.post(WIDGETS, widget("w")).expect(201)
    missing = api.patch(f"{WIDGETS}/w", [{"op": "remove", "path": "/spec/nope"}], kind="json")
    assert missing.status == 422, missing.raw
    unknown = api.patch(f"{WIDGETS}/w", [{"op": "frobnicate", "path": "/spec"}], kind="json")
    assert unknown.status in (400, 422), unknown.raw
    api.patch(
        f"{WIDGETS}/w", [{"op": "replace", "path": "/spec/size", "value": "big"}], kind="json"
    ).expect_status(422, "Invalid")


def test_strategic_merge_on_built_ins(api: Api) -> None:
    pods = "/api/v1/namespaces/default/pods"
    api.post(
        pods,
        {
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]},
        },
    ).expect(201)
    patched = api.patch(
        f"{pods}/p", {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}, kind="strategic"
    ).expect(200)
    # Containers merge by name: "a" stays, "b" is updated (a merge patch would replace).
    assert [(c["name"], c["image"]) for c in patched["spec"]["containers"]] == [
        ("a", "a:1"),
        ("b", "b:2"),
    ]
    assert patched["metadata"]["generation"] == 2
    cmp = api.patch(f"{CMS}", {}, kind="strategic")
    assert cmp.status == 405
    api.post(CMS, {"metadata": {"name": "c"}, "data": {"a": "1"}}).expect(201)
    got = api.patch(f"{CMS}/c", {"data": {"b": "2"}}, kind="strategic").expect(200)
    assert got["data"] == {"a": "1", "b": "2"}


# ---------------------------------------------------------------------- delete


def test_delete_with_finalizers_and_preconditions(api: Api) -> None:
    made = api.post(
        WIDGETS, {**widget("w"), "metadata": {"name": "w", "finalizers": ["x/y"]}}
    ).expect(201)
    api.delete(f"{WIDGETS}/w", {"preconditions": {"uid": "nope"}}).expect_status(409, "Conflict")
    api.delete(f"{WIDGETS}/w", {"preconditions": {"resourceVersion": "1"}}).expect_status(
        409, "Conflict"
    )
    deleting = api.delete(
        f"{WIDGETS}/w", {"preconditions": {"uid": made["metadata"]["uid"]}}
    ).expect(200)
    assert deleting["metadata"]["deletionTimestamp"]
    assert api.get(f"{WIDGETS}/w").expect(200)["metadata"]["deletionTimestamp"]
    api.patch(f"{WIDGETS}/w", {"metadata": {"finalizers": ["x/y", "x/z"]}}).expect_status(
        422, "Invalid"
    )
    api.patch(f"{WIDGETS}/w", {"metadata": {"finalizers": []}}).expect(200)
    api.get(f"{WIDGETS}/w").expect_status(404, "NotFound")


def test_a_delete_answers_as_kube_does_for_its_kind(api: Api) -> None:
    # Removed at once: a Success Status naming the resource (kube's finalizeDelete) for most
    # kinds, the object itself for those kube returns (ReturnDeletedObject: pods, ...).
    made = api.post(CMS, cm("a")).expect(201)
    assert api.delete(f"{CMS}/a").expect(200) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "a", "kind": "configmaps", "uid": made["metadata"]["uid"]},
    }
    deploys = "/apis/apps/v1/namespaces/default/deployments"
    api.post(deploys, {"metadata": {"name": "d"}, "spec": {}}).expect(201)
    details = api.delete(f"{deploys}/d").expect(200)["details"]
    assert (details["group"], details["kind"]) == ("apps", "deployments")
    pods = "/api/v1/namespaces/default/pods"
    pod = api.post(pods, {"metadata": {"name": "p"}, "spec": {}}).expect(201)
    gone = api.delete(f"{pods}/p").expect(200)
    assert gone["kind"] == "Pod" and gone["metadata"]["uid"] == pod["metadata"]["uid"]
    # Waiting for a finalizer: the object, with its deletionTimestamp, whatever the kind.
    api.post(CMS, {"metadata": {"name": "held", "finalizers": ["x/y"]}}).expect(201)
    held = api.delete(f"{CMS}/held").expect(200)
    assert held["kind"] == "ConfigMap" and held["metadata"]["deletionTimestamp"]


def test_owner_references_and_propagation(api: Api) -> None:
    p = api.post(WIDGETS, widget("p")).expect(201)
    ref = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "name": "p",
        "uid": p["metadata"]["uid"],
    }
    api.post(CMS, {"metadata": {"name": "dep", "ownerReferences": [ref]}}).expect(201)
    api.delete(f"{WIDGETS}/p", query={"propagationPolicy": "Orphan"}).expect(200)
    assert "ownerReferences" not in api.get(f"{CMS}/dep").expect(200)["metadata"]
    p2 = api.post(WIDGETS, widget("p2")).expect(201)
    ref["uid"], ref["name"] = p2["metadata"]["uid"], "p2"
    api.post(CMS, {"metadata": {"name": "dep2", "ownerReferences": [ref]}}).expect(201)
    api.delete(f"{WIDGETS}/p2").expect(200)  # Background by default
    api.get(f"{CMS}/dep2").expect_status(404, "NotFound")


def test_delete_collection(api: Api) -> None:
    seed(api)
    gone = api.delete(CMS, query={"labelSelector": "app=x"}).expect(200)
    assert sorted(names(gone)) == ["a", "c"]
    assert names(api.get(CMS).expect(200)) == ["b", "d"]
    api.delete(CMS, query={"fieldSelector": "metadata.name=b"}).expect(200)
    assert names(api.get(CMS).expect(200)) == ["d"]


def test_namespaces_have_no_delete_collection(api: Api) -> None:
    api.post("/api/v1/namespaces", {"metadata": {"name": "ns1"}}).expect(201)
    api.delete("/api/v1/namespaces").expect_status(405, "MethodNotAllowed")
    api.get("/api/v1/namespaces/ns1").expect(200)
    listed = {r["name"]: r for r in api.get("/api/v1").expect(200)["resources"]}
    assert "deletecollection" not in listed["namespaces"]["verbs"]
    assert "deletecollection" in listed["configmaps"]["verbs"]


def test_namespace_deletion_drains_it(api: Api) -> None:
    api.post("/api/v1/namespaces", {"metadata": {"name": "ns1"}}).expect(201)
    api.post("/api/v1/namespaces/ns1/configmaps", cm("a")).expect(201)
    terminating = api.delete("/api/v1/namespaces/ns1").expect(200)
    assert terminating["status"]["phase"] == "Terminating"
    api.get("/api/v1/namespaces/ns1").expect_status(404, "NotFound")
    assert names(api.get("/api/v1/namespaces/ns1/configmaps").expect(200)) == []


def test_dry_run_changes_nothing(server: FakeApiServer, api: Api) -> None:
    api.post(WIDGETS, widget("w")).expect(201)
    rv = server.store.resource_version
    dry = {"dryRun": "All"}
    made = api.post(WIDGETS, widget("x"), query=dry).expect(201)
    assert made["metadata"]["name"] == "x"
    assert (
        api.patch(f"{WIDGETS}/w", {"spec": {"size": 5}}, query=dry).expect(200)["spec"]["size"] == 5
    )
    api.delete(f"{WIDGETS}/w", query=dry).expect(200)
    api.delete(WIDGETS, query=dry).expect(200)
    assert server.store.resource_version == rv
    assert api.get(f"{WIDGETS}/w").expect(200)["spec"]["size"] == 1
    api.get(f"{WIDGETS}/x").expect_status(404, "NotFound")
    api.post(WIDGETS, widget("y"), query={"dryRun": "Some"}).expect_status(400, "BadRequest")


def test_dry_run_in_delete_options(server: FakeApiServer, api: Api) -> None:
    """kubectl delete --dry-run=server sends dryRun in the body, not the query."""
    api.post(CMS, cm("a")).expect(201)
    rv = server.store.resource_version
    options = {"propagationPolicy": "Background", "dryRun": ["All"]}
    assert api.delete(f"{CMS}/a", options).expect(200)["details"]["name"] == "a"
    assert names(api.delete(CMS, options).expect(200)) == ["a"]
    assert server.store.resource_version == rv
    api.get(f"{CMS}/a").expect(200)
    api.delete(f"{CMS}/a", {"dryRun": ["Maybe"]}).expect_status(400, "BadRequest")
    api.get(f"{CMS}/a").expect(200)


# ------------------------------------------------------------------------ CRDs


def test_crd_lifecycle_serves_and_unserves_the_resource(api: Api) -> None:
    gadgets = "/apis/toys.example.org/v1/gadgets"
    api.get(gadgets).expect_status(404, "NotFound")
    made = api.post(CRDS, gadget_crd()).expect(201)
    conditions = {c["type"]: c["status"] for c in made["status"]["conditions"]}
    assert conditions["Established"] == "True"
    groups = api.get("/apis").expect(200)
    assert groups["kind"] == "APIGroupList"
    assert "toys.example.org" in [g["name"] for g in groups["groups"]]
    resources = api.get("/apis/toys.example.org/v1").expect(200)
    listed = {r["name"]: r for r in resources["resources"]}
    assert set(listed) == {"gadgets", "gadgets/status"}
    assert listed["gadgets"]["namespaced"] is False
    assert {"list", "watch", "patch"} <= set(listed["gadgets"]["verbs"])
    assert listed["gadgets"]["singularName"] == "gadget"
    api.post(
        gadgets,
        {
            "apiVersion": "toys.example.org/v1",
            "kind": "Gadget",
            "metadata": {"name": "g1"},
            "spec": {"any": ["thing"]},
        },
    ).expect(201)
    root = api.get("/openapi/v3").expect(200)
    url = root["paths"]["apis/toys.example.org/v1"]["serverRelativeURL"]
    doc = api.get(url.split("?")[0]).expect(200)
    patch_op = doc["paths"]["/apis/toys.example.org/v1/gadgets/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch_op["parameters"]]
    api.delete(f"{CRDS}/gadgets.toys.example.org").expect(200)
    api.get(gadgets).expect_status(404, "NotFound")
    api.get("/apis/toys.example.org/v1").expect_status(404, "NotFound")
    assert "toys.example.org" not in [g["name"] for g in api.get("/apis").body["groups"]]
    # Recreated, it starts empty: the old objects went with it.
    api.post(CRDS, gadget_crd()).expect(201)
    assert api.get(gadgets).expect(200)["items"] == []


def test_invalid_crd_is_422(server: FakeApiServer, api: Api) -> None:
    crd = gadget_crd()
    crd["spec"]["scope"] = "Everywhere"
    before = server.store.resource_version
    err = api.post(CRDS, crd).expect_status(422, "Invalid")
    assert "spec.scope" in [c["field"] for c in err["details"]["causes"]]
    assert server.store.resource_version == before
    api.get("/apis/toys.example.org/v1").expect_status(404, "NotFound")


def test_crd_redefining_a_built_in_is_refused_without_side_effects(
    server: FakeApiServer, api: Api
) -> None:
    crd = gadget_crd()
    crd["metadata"]["name"] = "deployments.apps"
    crd["spec"].update(
        group="apps", scope="Namespaced", names={"plural": "deployments", "kind": "Deployment"}
    )
    before = server.store.resource_version
    r = api.post(CRDS, crd)
    assert 400 <= r.status < 500, r.raw
    assert server.store.resource_version == before
    api.get(f"{CRDS}/deployments.apps").expect_status(404, "NotFound")


def test_schema_validation_defaulting_and_pruning(api: Api) -> None:
    err = api.post(
        WIDGETS,
        {
            "apiVersion": "example.com/v1",
            "kind": "Widget",
            "metadata": {"name": "w"},
            "spec": {"size": "big"},
        },
    )
    body = err.expect_status(422, "Invalid")
    # kube adds a "<nil>" cause saying the CEL rules were skipped for an invalid object.
    assert next(c["field"] for c in body["details"]["causes"]) == "spec.size"
    assert "spec.size" in body["message"]
    r = api.post(WIDGETS, widget("w", unknown=1))
    made = r.expect(201)
    assert made["spec"] == {"size": 1, "color": "blue"}
    warning = r.headers["Warning"]
    assert warning.startswith("299 - ") and "spec.unknown" in warning
    strict = api.post(WIDGETS, widget("s", unknown=1), query={"fieldValidation": "Strict"})
    assert "spec.unknown" in strict.expect_status(400, "BadRequest")["message"]
    api.post(WIDGETS, widget("s"), query={"fieldValidation": "Loud"}).expect_status(
        400, "BadRequest"
    )
    immutable = api.post(WIDGETS, widget("o", owner="ann")).expect(201)
    assert immutable["spec"]["owner"] == "ann"
    api.patch(f"{WIDGETS}/o", {"spec": {"owner": "bob"}}).expect_status(422, "Invalid")


# ------------------------------------------------------------------- discovery


def test_discovery_formats(api: Api) -> None:
    legacy = api.get("/api", headers={"Accept": "*/*"})
    assert legacy.expect(200)["kind"] == "APIVersions"
    agg = api.get("/apis", headers={"Accept": AGGREGATED})
    assert agg.headers["Content-Type"] == AGGREGATED
    doc = agg.expect(200)
    assert doc["kind"] == "APIGroupDiscoveryList"
    example = next(i for i in doc["items"] if i["metadata"]["name"] == "example.com")
    res = example["versions"][0]["resources"][0]
    assert res["resource"] == "widgets" and res["subresources"][0]["subresource"] == "status"
    core = api.get("/api", headers={"Accept": AGGREGATED}).expect(200)
    assert [i["metadata"]["name"] for i in core["items"]] == [""]
    v1 = {r["name"] for r in api.get("/api/v1").expect(200)["resources"]}
    assert {"namespaces", "events", "configmaps", "secrets", "namespaces/status"} <= v1
    assert api.get("/apis/coordination.k8s.io/v1").expect(200)["resources"][0]["name"] == ("leases")
    group = api.get("/apis/example.com").expect(200)
    assert group["kind"] == "APIGroup" and group["preferredVersion"]["version"] == "v1"
    root = api.get("/openapi/v3").expect(200)["paths"]
    assert {"api/v1", "apis/example.com/v1", "apis/apiextensions.k8s.io/v1"} <= set(root)
    core = api.get("/openapi/v3/api/v1").expect(200)
    assert "/api/v1/namespaces/{namespace}/configmaps/{name}" in core["paths"]
    assert api.get("/version").expect(200)["major"] == "1"
    assert api.get("/healthz").status == 200
    api.get("/apis/nope.example/v1").expect_status(404, "NotFound")
    api.get("/openapi/v2").expect_status(404, "NotFound")


def test_table_get_and_list(api: Api) -> None:
    api.post(WIDGETS, widget("a", 3)).expect(201)
    r = api.get(WIDGETS, headers={"Accept": TABLE})
    assert r.headers["Content-Type"] == TABLE
    table = r.expect(200)
    assert table["kind"] == "Table" and table["metadata"]["resourceVersion"] == api.get(WIDGETS).rv
    assert table["rows"][0]["cells"][:2] == ["a", 3]
    one = api.get(f"{WIDGETS}/a", headers={"Accept": TABLE}).expect(200)
    assert one["kind"] == "Table" and len(one["rows"]) == 1
    full = api.get(WIDGETS, headers={"Accept": TABLE}, query={"includeObject": "Object"})
    assert full.expect(200)["rows"][0]["object"]["spec"]["size"] == 3


# ------------------------------------------------------------------- built-ins


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "/api/v1/namespaces/default/secrets",
            {"metadata": {"name": "s"}, "type": "Opaque", "data": {"k": "dg=="}},
        ),
        (
            "/apis/coordination.k8s.io/v1/namespaces/default/leases",
            {
                "metadata": {"name": "l"},
                "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15},
            },
        ),
        ("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "c"}, "data": {"k": "v"}}),
        (
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            {"metadata": {"name": "r"}, "rules": [{"verbs": ["get"], "resources": ["pods"]}]},
        ),
    ],
)
def test_built_ins_are_stored_generically(api: Api, path: str, body: dict[str, Any]) -> None:
    made = api.post(path, body).expect(201)
    name = body["metadata"]["name"]
    for k, v in body.items():
        if k != "metadata":
            assert made[k] == v
    patched = api.patch(f"{path}/{name}", {"metadata": {"annotations": {"a": "b"}}}).expect(200)
    assert patched["metadata"]["annotations"] == {"a": "b"}
    assert names(api.get(path).expect(200)) == [name]
    api.delete(f"{path}/{name}").expect(200)
    assert api.get(path).expect(200)["items"] == []


def test_lease_update_cycle(api: Api) -> None:
    path = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    lease = api.post(path, {"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}).expect(201)
    lease["spec"]["holderIdentity"] = "b"
    renewed = api.put(f"{path}/l", lease).expect(200)
    api.put(f"{path}/l", lease).expect_status(409, "Conflict")  # a stale takeover loses
    assert renewed["spec"]["holderIdentity"] == "b"


def test_crd_update_changes_validation_and_the_openapi_hash(api: Api) -> None:
    def hash_now() -> str:
        root = api.get("/openapi/v3").expect(200)["paths"]
        return str(root["apis/example.com/v1"]["serverRelativeURL"])

    before = hash_now()
    crd = api.get(f"{CRDS}/widgets.example.com").expect(200)
    props = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    props["spec"]["properties"]["size"]["maximum"] = 10
    api.put(f"{CRDS}/widgets.example.com", crd).expect(200)
    assert hash_now() != before  # kubectl refetches the document
    api.post(WIDGETS, widget("big", 11)).expect_status(422, "Invalid")
    api.post(WIDGETS, widget("small", 10)).expect(201)


def test_crd_selectable_fields(api: Api) -> None:
    crd = gadget_crd("sprockets", "Sprocket")
    crd["spec"]["versions"][0]["selectableFields"] = [{"jsonPath": ".spec.color"}]
    api.post(CRDS, crd).expect(201)
    path = "/apis/toys.example.org/v1/sprockets"
    for name, color in [("a", "red"), ("b", "blue")]:
        api.post(
            path,
            {
                "apiVersion": "toys.example.org/v1",
                "kind": "Sprocket",
                "metadata": {"name": name},
                "spec": {"color": color},
            },
        ).expect(201)
    assert names(api.get(path, query={"fieldSelector": "spec.color=blue"}).expect(200)) == ["b"]
    api.get(path, query={"fieldSelector": "spec.size=1"}).expect_status(400, "BadRequest")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda c: c.update(spec=["not", "an", "object"]), 400),
        (lambda c: c["spec"].update(names=["gadgets"]), 400),
        (lambda c: c["spec"]["names"].update(plural=5), 400),
        (lambda c: c["spec"].update(versions={"v1": {}}), 400),
        (lambda c: c["spec"]["versions"][0].update(subresources=["status"]), 400),
        (lambda c: c["spec"]["versions"][0].pop("name"), 422),
    ],
)
def test_malformed_crd_is_a_4xx_not_a_crash(
    server: FakeApiServer, api: Api, change: Any, code: int
) -> None:
    crd = gadget_crd()
    change(crd)
    before = server.store.resource_version
    r = api.post(CRDS, crd)
    r.expect_status(code, "BadRequest" if code == 400 else "Invalid")
    assert server.store.resource_version == before
    # And an update of a good one into that shape is refused the same way.
    good = api.post(CRDS, gadget_crd()).expect(201)
    bad = copy.deepcopy(good)
    change(bad)
    assert api.put(f"{CRDS}/gadgets.toys.example.org", bad).status == code


def test_a_put_creates_where_kube_allows_it_and_leases_need_their_version(api: Api) -> None:
    # kube's AllowCreateOnUpdate: Events, Endpoints, Leases and Services may be created
    # with a PUT (201); other kinds answer 404.
    leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"
    lease = {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a"}}
    made = api.put(f"{leases}/leader", lease).expect(201)
    assert made["spec"]["holderIdentity"] == "a" and made["metadata"]["uid"]
    api.put(f"{CMS}/absent", cm("absent")).expect_status(404, "NotFound")
    endpoints = "/api/v1/namespaces/default/endpoints"
    api.put(f"{endpoints}/svc", {"metadata": {"name": "svc"}}).expect(201)
    # kube's AllowUnconditionalUpdate is off for Leases: a PUT must name the version it
    # replaces (422, worded with the resource as kube words it); then it is an update.
    refused = api.put(f"{leases}/leader", lease).expect_status(422, "Invalid")
    assert refused["message"] == (
        'leases.coordination.k8s.io "leader" is invalid: metadata.resourceVersion: '
        "Invalid value: 0x0: must be specified for an update"
    )
    versioned = {
        **lease,
        "metadata": {
            **lease["metadata"],
            **{"resourceVersion": made["metadata"]["resourceVersion"]},
        },
    }
    versioned["spec"] = {"holderIdentity": "b"}
    assert api.put(f"{leases}/leader", versioned).expect(200)["spec"]["holderIdentity"] == "b"
    # ConfigMaps take unconditional updates.
    api.post(CMS, cm("c")).expect(201)
    api.put(f"{CMS}/c", {**cm("c"), "data": {"k": "v"}}).expect(200)


# -------------------------------------------------------------- ConfigMaps and Secrets

SECRETS = "/api/v1/namespaces/default/secrets"


def test_configmap_and_secret_keys_sizes_and_bytes_are_checked_as_kube_does(api: Api) -> None:
    bad_keys = {"metadata": {"name": "k"}, "data": {"ok.key": "v", "no space": "v", "..x": "v"}}
    causes = api.post(CMS, bad_keys).expect_status(422, "Invalid")["details"]["causes"]
    assert [(c["field"], c["message"].split(": ", 2)[-1][:40]) for c in causes] == [
        ("data[no space]", "a valid config key must consist of alpha"),
        ("data[..x]", "must not start with '..'"),
    ]
    both = {"metadata": {"name": "b"}, "data": {"k": "v"}, "binaryData": {"k": "dg=="}}
    causes = api.post(CMS, both).expect_status(422, "Invalid")["details"]["causes"]
    assert [c["field"] for c in causes] == ["data[k]"]
    big = {"metadata": {"name": "big"}, "data": {"k": "x" * (1024 * 1024 + 1)}}
    assert api.post(CMS, big).expect_status(422, "Invalid")["details"]["causes"][0]["message"] == (
        "Too long: must have at most 1048576 bytes"
    )
    # Bytes fields are base64 on the wire: anything else fails kube's decoding (400).
    reply = api.post(SECRETS, {"metadata": {"name": "s"}, "data": {"k": "not base64!"}})
    assert reply.expect_status(400, "BadRequest")["message"] == (
        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3'
    )
    api.post(SECRETS, {"metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}}).expect(201)
    api.patch(f"{SECRETS}/s", {"data": {"k": "%%%"}}).expect_status(400, "BadRequest")
    tls = {"metadata": {"name": "t"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}
    causes = api.post(SECRETS, tls).expect_status(422, "Invalid")["details"]["causes"]
    assert [(c["field"], c["message"]) for c in causes] == [("data[tls.key]", "Required value")]
    api.patch(f"{SECRETS}/s", {"type": "kubernetes.io/tls"}).expect_status(422, "Invalid")


def test_immutable_configmaps_and_secrets_keep_their_data(api: Api) -> None:
    api.post(CMS, {"metadata": {"name": "frozen"}, "data": {"k": "v"}, "immutable": True})
    api.patch(f"{CMS}/frozen", {"metadata": {"labels": {"a": "b"}}}).expect(200)  # metadata may
    causes = api.patch(f"{CMS}/frozen", {"data": {"k": "w"}, "immutable": False}).expect_status(
        422, "Invalid"
    )["details"]["causes"]
    assert [(c["field"], c["reason"]) for c in causes] == [
        ("immutable", "FieldValueForbidden"),
        ("data", "FieldValueForbidden"),
    ]
    secret = {"metadata": {"name": "sealed"}, "data": {"k": "dg=="}, "immutable": True}
    api.post(SECRETS, secret).expect(201)
    api.patch(f"{SECRETS}/sealed", {"stringData": {"k": "new"}}).expect_status(422, "Invalid")
    assert api.get(f"{SECRETS}/sealed").expect(200)["data"] == {"k": "dg=="}


SERVICES = "/api/v1/namespaces/default/services"


def test_services_get_kubes_defaults_cluster_ips_and_node_ports(api: Api) -> None:
    plain = {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}}
    a = api.post(SERVICES, plain).expect(201)["spec"]
    assert a == {
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "clusterIP": "10.96.0.10",
        "clusterIPs": ["10.96.0.10"],
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack",
        "internalTrafficPolicy": "Cluster",
    }
    node = {"metadata": {"name": "b"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}
    b = api.post(SERVICES, node).expect(201)["spec"]
    assert (b["clusterIP"], b["ports"][0]["nodePort"]) == ("10.96.0.11", 30000)
    # An update keeps what was allocated, and may not change the cluster IP.
    replaced = api.put(f"{SERVICES}/b", node).expect(200)["spec"]
    assert (replaced["clusterIP"], replaced["ports"][0]["nodePort"]) == ("10.96.0.11", 30000)
    moved = {**node, "spec": {**node["spec"], "clusterIP": "10.96.0.99"}}
    causes = api.put(f"{SERVICES}/b", moved).expect_status(422, "Invalid")["details"]["causes"]
    assert [c["field"] for c in causes] == ["spec.clusterIPs[0]"]
    taken = {"metadata": {"name": "c"}, "spec": {"clusterIP": "10.96.0.10", "ports": []}}
    api.post(SERVICES, taken).expect_status(422, "Invalid")
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}}
    assert api.post(SERVICES, headless).expect(201)["spec"]["clusterIPs"] == ["None"]
    external = {"metadata": {"name": "x"}, "spec": {"type": "ExternalName", "externalName": "e"}}
    assert "clusterIP" not in api.post(SERVICES, external).expect(201)["spec"]
    # A deleted Service's addresses are free again.
    api.delete(f"{SERVICES}/a").expect(200)
    api.post(SERVICES, {**taken, "spec": {"clusterIP": "10.96.0.10"}}).expect(201)


def test_workloads_and_pods_get_kubes_defaults(api: Api) -> None:
    deploys = "/apis/apps/v1/namespaces/default/deployments"
    container = {"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}
    body = {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [container]}}}}
    spec = api.post(deploys, body).expect(201)["spec"]
    assert {
        k: spec[k] for k in ("replicas", "revisionHistoryLimit", "progressDeadlineSeconds")
    } == {
        "replicas": 1,
        "revisionHistoryLimit": 10,
        "progressDeadlineSeconds": 600,
    }
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    pod = spec["template"]["spec"]
    assert {k: pod[k] for k in ("restartPolicy", "dnsPolicy", "terminationGracePeriodSeconds")} == {
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "terminationGracePeriodSeconds": 30,
    }
    assert pod["containers"][0] == {
        **container,
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "Always",  # (no tag: latest)
        "resources": {},
    }
    # A default is a value like any other: what the writer set stays, and a field it
    # removes comes back defaulted (a controller that diffs against its wish sees both).
    patch = {"spec": {"revisionHistoryLimit": None, "replicas": 3}}
    patched = api.patch(f"{deploys}/d", patch).expect(200)["spec"]
    assert (patched["revisionHistoryLimit"], patched["replicas"]) == (10, 3)
    jobs = "/apis/batch/v1/namespaces/default/jobs"
    job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [container]}}}}
    job_spec = api.post(jobs, job).expect(201)["spec"]
    assert (job_spec["completions"], job_spec["parallelism"], job_spec["backoffLimit"]) == (1, 1, 6)


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        ({}, "BestEffort"),
        ({"requests": {"cpu": "100m"}}, "Burstable"),
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed"),
        (
            {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}},
            "Burstable",
        ),
    ],
)
def test_a_new_pod_is_pending_with_its_qos_class(
    api: Api, resources: dict[str, Any], qos: str
) -> None:
    pods = "/api/v1/namespaces/default/pods"
    body = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "x:1", "resources": resources}]},
        "status": {"phase": "Running"},  # (a client's status is not kept: kube's strategy)
    }
    assert api.post(pods, body).expect(201)["status"] == {"phase": "Pending", "qosClass": qos}


def test_secret_size_counts_the_decoded_bytes(api: Api) -> None:
    limit = 1024 * 1024
    fits = base64.b64encode(b"x" * limit).decode()  # (its base64 is a third longer: fine)
    api.post(SECRETS, {"metadata": {"name": "fits"}, "data": {"k": fits}}).expect(201)
    over = base64.b64encode(b"x" * (limit + 1)).decode()
    api.post(SECRETS, {"metadata": {"name": "over"}, "data": {"k": over}}).expect_status(
        422, "Invalid"
    )
