"""Server-side apply and managedFields: the store's semantics, then the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from pytest_ntinvariants.apiserver import ResourceType, Store, WriteContext, errors
from pytest_ntinvariants.apiserver.store import MERGE_PATCH, STRATEGIC_PATCH

if TYPE_CHECKING:
    from conftest import Api

JSON = dict[str, Any]
GROUP = "racks.example.com"

# A CRD whose lists say how they merge: slots by name (map), tags as a set, a default
# (atomic) list, and an atomic map.
RACK_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"racks.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "racks", "singular": "rack", "kind": "Rack"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "slots": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "map",
                                        "x-kubernetes-list-map-keys": ["name"],
                                        "items": {
                                            "type": "object",
                                            "required": ["name"],
                                            "properties": {
                                                "name": {"type": "string"},
                                                "size": {"type": "integer"},
                                            },
                                        },
                                    },
                                    "tags": {
                                        "type": "array",
                                        "x-kubernetes-list-type": "set",
                                        "items": {"type": "string"},
                                    },
                                    "order": {"type": "array", "items": {"type": "string"}},
                                    "place": {
                                        "type": "object",
                                        "x-kubernetes-map-type": "atomic",
                                        "properties": {
                                            "row": {"type": "string"},
                                            "col": {"type": "string"},
                                        },
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {"phase": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}


class Clock:
    """A clock the test moves, so managedFields' times can be told apart."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self) -> None:
        self.now += timedelta(seconds=1)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def st(clock: Clock) -> Store:
    s = Store(seed=1, clock=clock)
    crds = s.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crds is not None
    s.create(crds, "", orjson.loads(orjson.dumps(RACK_CRD)))
    return s


def rt(store: Store, group: str, version: str, plural: str) -> ResourceType:
    t = store.registry.lookup(group, version, plural)
    assert t is not None
    return t


def ctx(manager: str = "", *, force: bool = False, agent: str = "") -> WriteContext:
    return WriteContext(verb="patch", field_manager=manager, force=force, user_agent=agent)


def cm(**data: str) -> JSON:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data}


def rack(**spec: Any) -> JSON:
    return {"apiVersion": f"{GROUP}/v1", "kind": "Rack", "metadata": {"name": "r"}, "spec": spec}


def managed(obj: JSON) -> dict[str, JSON]:
    """managedFields by manager (asserting one entry each)."""
    entries = obj["metadata"].get("managedFields", [])
    out = {e["manager"]: e for e in entries}
    assert len(out) == len(entries), entries
    return out


def fields(obj: JSON) -> dict[str, JSON]:
    return {m: e["fieldsV1"] for m, e in managed(obj).items()}


def test_apply_creates_then_repeats_as_a_no_op(st: Store, clock: Clock) -> None:
    cms = rt(st, "", "v1", "configmaps")
    events: list[Any] = []
    st.subscribe(events.append)
    v, created = st.apply(cms, "default", "c", cm(a="1", b="2"), ctx("m1"))
    assert created and v.obj["data"] == {"a": "1", "b": "2"}
    assert v.obj["metadata"]["managedFields"] == [
        {
            "manager": "m1",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": "2030-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:a": {}, "f:b": {}}},
        }
    ]
    clock.tick()
    again, created = st.apply(cms, "default", "c", cm(a="1", b="2"), ctx("m1"))
    assert not created
    assert again.rv == v.rv and len(events) == 1  # no write, no event
    assert again.obj["metadata"]["managedFields"][0]["time"] == "2030-01-01T00:00:00Z"


def test_dropping_a_field_removes_it_unless_another_manager_owns_it(st: Store) -> None:
    cms = rt(st, "", "v1", "configmaps")
    st.apply(cms, "default", "c", cm(a="1", b="2", c="3"), ctx("m1"))
    st.apply(cms, "default", "c", cm(b="2"), ctx("m2"))  # same value: shared, no conflict
    v, _ = st.apply(cms, "default", "c", cm(a="1"), ctx("m1"))
    # c was m1's alone: gone; b is m2's too: kept, and now m2's alone.
    assert v.obj["data"] == {"a": "1", "b": "2"}
    assert fields(v.obj) == {"m1": {"f:data": {"f:a": {}}}, "m2": {"f:data": {"f:b": {}}}}


def test_conflict_with_another_applier_then_force(st: Store) -> None:
    cms = rt(st, "", "v1", "configmaps")
    st.apply(cms, "default", "c", cm(a="1", b="2"), ctx("m1"))
    with pytest.raises(errors.Conflict) as info:
        st.apply(cms, "default", "c", cm(a="9", b="8"), ctx("m2"))
    status = info.value.status()
    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 2 conflicts: conflicts with "m1":\n- .data.a\n- .data.b'
    )
    assert status["details"] == {
        "causes": [
            {"reason": "FieldManagerConflict", "message": 'conflict with "m1"', "field": ".data.a"},
            {"reason": "FieldManagerConflict", "message": 'conflict with "m1"', "field": ".data.b"},
        ]
    }
    assert st.get(cms, "default", "c").obj["data"] == {"a": "1", "b": "2"}  # untouched
    v, _ = st.apply(cms, "default", "c", cm(a="9"), ctx("m2", force=True))
    assert v.obj["data"] == {"a": "9", "b": "2"}
    assert fields(v.obj) == {"m1": {"f:data": {"f:b": {}}}, "m2": {"f:data": {"f:a": {}}}}


def test_update_managers_and_before_first_apply(st: Store, clock: Clock) -> None:
    cms = rt(st, "", "v1", "configmaps")
    created = st.create(cms, "default", cm(a="1"), WriteContext(verb="create"))
    assert "managedFields" not in created.obj["metadata"]  # never applied: not tracked
    clock.tick()
    v, _ = st.apply(cms, "default", "c", cm(b="2"), ctx("m1"))
    entries = managed(v.obj)
    assert entries["before-first-apply"] == {
        "manager": "before-first-apply",
        "operation": "Update",
        "apiVersion": "v1",
        "time": "2030-01-01T00:00:01Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {".": {}, "f:a": {}}},
    }
    # A merge patch by kubectl (named after its User-Agent) is an Update of what it changed.
    p = st.patch(
        cms, "default", "c", MERGE_PATCH, {"data": {"b": "3"}}, ctx(agent="kubectl/v1.32.0 (x)")
    )
    assert fields(p.obj)["kubectl"] == {"f:data": {"f:b": {}}}
    assert "m1" not in fields(p.obj)  # it lost its only field
    with pytest.raises(errors.Conflict) as info:
        st.apply(cms, "default", "c", cm(b="4"), ctx("m1"))
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "kubectl" using v1: .data.b'
    )
    assert [c.message for c in info.value.causes] == ['conflict with "kubectl" using v1']


def test_managed_fields_sent_by_clients(st: Store) -> None:
    cms = rt(st, "", "v1", "configmaps")
    v, _ = st.apply(cms, "default", "c", cm(a="1"), ctx("m1"))
    # Echoed back unchanged (a GET-modify-PUT): kept, and the writer recorded.
    body = orjson.loads(orjson.dumps(v.obj))
    body["data"]["z"] = "9"
    u = st.update(cms, "default", "c", body, WriteContext(verb="update", field_manager="ed"))
    assert set(fields(u.obj)) == {"m1", "ed"}
    # An explicit empty list clears them.
    body = orjson.loads(orjson.dumps(u.obj))
    body["metadata"]["managedFields"] = []
    cleared = st.update(cms, "default", "c", body, WriteContext(verb="update"))
    assert "managedFields" not in cleared.obj["metadata"]
    # Garbage is refused or ignored, never a crash.
    body = orjson.loads(orjson.dumps(u.obj))
    body["metadata"]["managedFields"] = "nope"
    with pytest.raises(errors.BadRequest):
        st.update(cms, "default", "c", body, WriteContext(verb="update"))
    bad = st.patch(
        cms, "default", "c", MERGE_PATCH, {"metadata": {"managedFields": [{"operation": 1}]}}
    )
    assert "managedFields" not in bad.obj["metadata"]
    # Apply refuses a configuration that carries them.
    config = cm(a="1")
    config["metadata"]["managedFields"] = []
    with pytest.raises(errors.BadRequest, match=r"metadata\.managedFields must be nil"):
        st.apply(cms, "default", "c", config, ctx("m1"))


def test_deployment_containers_merge_by_name(st: Store) -> None:
    deps = rt(st, "apps", "v1", "deployments")

    def dep(*containers: JSON, **spec: Any) -> JSON:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": list(containers)}}, **spec},
        }

    st.apply(deps, "default", "d", dep({"name": "app", "image": "a:1"}, replicas=2), ctx("ci"))
    v, _ = st.apply(deps, "default", "d", dep({"name": "side", "image": "s:1"}), ctx("mesh"))
    containers = v.obj["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("app", "a:1"), ("side", "s:1")]
    assert fields(v.obj)["mesh"] == {
        "f:spec": {
            "f:template": {
                "f:spec": {
                    "f:containers": {'k:{"name":"side"}': {".": {}, "f:image": {}, "f:name": {}}}
                }
            }
        }
    }
    with pytest.raises(errors.Conflict) as info:
        st.apply(deps, "default", "d", dep({"name": "app", "image": "a:2"}), ctx("mesh"))
    assert [c.field for c in info.value.causes] == [
        '.spec.template.spec.containers[name="app"].image'
    ]
    # ci drops replicas from its configuration: nobody else owns it, so it goes, and kube's
    # default takes its place.
    v, _ = st.apply(deps, "default", "d", dep({"name": "app", "image": "a:2"}), ctx("ci"))
    assert v.obj["spec"]["replicas"] == 1
    assert [c["image"] for c in v.obj["spec"]["template"]["spec"]["containers"]] == ["a:2", "s:1"]
    # A strategic merge patch is an Update by its manager, keyed the same way.
    p = st.patch(
        deps,
        "default",
        "d",
        STRATEGIC_PATCH,
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "s:2"}]}}}},
        ctx("hotfix"),
    )
    assert fields(p.obj)["hotfix"] == {
        "f:spec": {
            "f:template": {"f:spec": {"f:containers": {'k:{"name":"side"}': {"f:image": {}}}}}
        }
    }


def test_crd_list_types(st: Store) -> None:
    racks = rt(st, GROUP, "v1", "racks")
    first = rack(slots=[{"name": "a", "size": 1}], tags=["x"], order=["1", "2"], place={"row": "r"})
    st.apply(racks, "default", "r", first, ctx("one"))
    v, _ = st.apply(
        racks,
        "default",
        "r",
        rack(slots=[{"name": "b", "size": 2}], tags=["y"], order=["3"]),
        ctx("two", force=True),
    )
    spec = v.obj["spec"]
    assert spec["slots"] == [{"name": "a", "size": 1}, {"name": "b", "size": 2}]  # by key
    assert spec["tags"] == ["x", "y"]  # a set: union
    assert spec["order"] == ["3"]  # atomic: replaced, and taken over
    assert fields(v.obj) == {
        "one": {
            "f:spec": {
                "f:place": {},
                "f:slots": {'k:{"name":"a"}': {".": {}, "f:name": {}, "f:size": {}}},
                "f:tags": {'v:"x"': {}},
            }
        },
        "two": {
            "f:spec": {
                "f:order": {},
                "f:slots": {'k:{"name":"b"}': {".": {}, "f:name": {}, "f:size": {}}},
                "f:tags": {'v:"y"': {}},
            }
        },
    }
    # An atomic map is replaced whole by its owner's next apply.
    v, _ = st.apply(
        racks,
        "default",
        "r",
        rack(slots=[{"name": "a", "size": 1}], place={"col": "c"}),
        ctx("one"),
    )
    assert v.obj["spec"]["place"] == {"col": "c"}
    assert v.obj["spec"]["tags"] == ["y"]  # "x" was one's alone


def test_status_apply_and_status_updates(st: Store) -> None:
    racks = rt(st, GROUP, "v1", "racks")
    config = rack(tags=["x"])
    config["status"] = {"phase": "Ignored"}  # the main resource ignores status
    v, _ = st.apply(racks, "default", "r", config, ctx("user"))
    assert "status" not in v.obj
    status = {"apiVersion": f"{GROUP}/v1", "kind": "Rack", "metadata": {"name": "r"}}
    status["status"] = {"phase": "Ready"}
    s, created = st.apply(racks, "default", "r", status, ctx("ctl"), subresource="status")
    assert not created and s.obj["status"] == {"phase": "Ready"}
    assert managed(s.obj)["ctl"]["subresource"] == "status"
    assert fields(s.obj)["ctl"] == {"f:status": {"f:phase": {}}}
    assert s.obj["metadata"]["generation"] == v.obj["metadata"]["generation"]
    # A merge patch of /status is an Update with subresource status.
    p = st.patch(
        racks,
        "default",
        "r",
        MERGE_PATCH,
        {"status": {"phase": "Done"}},
        ctx("other"),
        subresource="status",
    )
    other = managed(p.obj)["other"]
    assert other["operation"] == "Update" and other["subresource"] == "status"
    assert "ctl" not in managed(p.obj)  # lost its only field
    with pytest.raises(errors.Conflict) as info:
        st.apply(racks, "default", "r", status, ctx("ctl"), subresource="status")
    assert info.value.message == (
        'Apply failed with 1 conflict: conflict with "other" with subresource "status" '
        "using racks.example.com/v1: .status.phase"
    )


def test_apply_refuses_what_kube_refuses(st: Store) -> None:
    cms = rt(st, "", "v1", "configmaps")
    with pytest.raises(errors.Invalid) as info:
        st.apply(cms, "default", "c", cm(a="1"), ctx(""))
    assert info.value.status()["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
        "for apply patch"
    )
    wrong = cm(a="1")
    wrong["kind"] = "Secret"
    with pytest.raises(errors.BadRequest, match="invalid object type: /v1, Kind=Secret"):
        st.apply(cms, "default", "c", wrong, ctx("m"))
    with pytest.raises(errors.BadRequest, match=r"name of the object \(c\) does not match"):
        st.apply(cms, "default", "other", cm(a="1"), ctx("m"))
    with pytest.raises(errors.BadRequest):
        st.apply(cms, "default", "c", ["not", "an", "object"], ctx("m"))
    racks = rt(st, GROUP, "v1", "racks")
    with pytest.raises(errors.BadRequest) as keyless:
        st.apply(racks, "default", "r", rack(slots=[{"size": 1}]), ctx("m"))
    assert keyless.value.message == (
        "failed to create typed patch object (racks.example.com/v1, Kind=Rack): .spec.slots: "
        'element 0: associative list with keys has an element that omits key field "name" '
        "(and doesn't have default value)"
    )
    with pytest.raises(errors.BadRequest, match=r"duplicate entries for key \{\"name\":\"a\"\}"):
        st.apply(racks, "default", "r", rack(slots=[{"name": "a"}, {"name": "a"}]), ctx("m"))
    with pytest.raises(errors.BadRequest, match="error decoding YAML"):
        st.apply(cms, "default", "c", {**cm(), "data": {1: "x"}}, ctx("m"))
    dry = WriteContext(verb="patch", field_manager="m", dry_run=True)
    v, created = st.apply(cms, "default", "c", cm(a="1"), dry)
    assert created and v.obj["data"] == {"a": "1"}
    with pytest.raises(errors.NotFound):
        st.get(cms, "default", "c")


# ------------------------------------------------------------------------------ wire


def test_apply_over_http(api: Api) -> None:
    path = "/api/v1/namespaces/default/configmaps/c"
    yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: '1'\n"
    ctype = "application/apply-patch+yaml"
    missing = api.request("PATCH", path, raw=yaml_body, content_type=ctype)
    status = missing.expect_status(422, "Invalid")
    assert status["details"] == {
        "group": "meta.k8s.io",
        "kind": "PatchOptions",
        "causes": [
            {
                "reason": "FieldValueRequired",
                "message": "Required value: is required for apply patch",
                "field": "fieldManager",
            }
        ],
    }
    q = {"fieldManager": "tool"}
    dry = api.request(
        "PATCH", path, raw=yaml_body, content_type=ctype, query={**q, "dryRun": "All"}
    )
    assert dry.expect(201)["data"] == {"a": "1"}
    api.get(path).expect_status(404, "NotFound")
    created = api.request("PATCH", path, raw=yaml_body, content_type=ctype, query=q).expect(201)
    assert created["metadata"]["managedFields"][0]["manager"] == "tool"
    again = api.request("PATCH", path, raw=yaml_body, content_type=ctype, query=q).expect(200)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    # JSON is YAML too; a merge patch by a client named by its User-Agent conflicts.
    api.patch(path, {"data": {"a": "2"}}, headers={"User-Agent": "OpenAPI-Generator/1.0/py"})
    conflict = api.patch(path, {**_cm_json("3")}, kind="apply", query=q)
    body = conflict.expect_status(409, "Conflict")
    assert body["message"] == (
        'Apply failed with 1 conflict: conflict with "OpenAPI-Generator" using v1: .data.a'
    )
    forced = api.patch(path, _cm_json("3"), kind="apply", query={**q, "force": "true"})
    assert forced.expect(200)["data"] == {"a": "3"}
    api.patch(path, {"data": {}}, query={"force": "true"}).expect_status(422, "Invalid")
    bad = api.request("PATCH", path, raw=b"a: [", content_type=ctype, query=q)
    assert bad.expect_status(400, "BadRequest")["message"].startswith("error decoding YAML")


def _cm_json(value: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"a": value},
    }
