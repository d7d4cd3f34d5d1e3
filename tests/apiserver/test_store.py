"""The store without HTTP: resourceVersions, events, write semantics, deletion, GC, schemas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from pytest_ntinvariants.apiserver import Event, ResourceType, Store, WriteContext, errors
from pytest_ntinvariants.apiserver.selectors import FieldSelector, LabelSelector
from pytest_ntinvariants.apiserver.store import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH

JSON = dict[str, Any]
GROUP = "example.com"


def rt(store: Store, group: str, version: str, plural: str) -> ResourceType:
    t = store.registry.lookup(group, version, plural)
    assert t is not None, plural
    return t


def widgets(store: Store) -> ResourceType:
    return rt(store, GROUP, "v1", "widgets")


def cms(store: Store) -> ResourceType:
    return rt(store, "", "v1", "configmaps")


def nss(store: Store) -> ResourceType:
    return rt(store, "", "v1", "namespaces")


def widget(name: str, size: int = 1, **spec: Any) -> JSON:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size, **spec},
    }


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> JSON:
    meta: JSON = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def record(store: Store) -> list[Event]:
    events: list[Event] = []
    store.subscribe(events.append)
    return events


def invalid_fields(exc: pytest.ExceptionInfo[errors.ApiError]) -> list[str]:
    assert exc.value.code == 422, exc.value
    return [c.field for c in exc.value.causes]


# ------------------------------------------------------------------ resourceVersion


def test_one_global_monotonic_resource_version_and_one_event_per_write(store: Store) -> None:
    events = record(store)
    start = store.resource_version
    a = store.create(cms(store), "default", cm("a"))
    w = store.create(widgets(store), "default", widget("w"))
    b = store.patch(cms(store), "default", "a", MERGE_PATCH, {"data": {"k": "v"}})
    d = store.delete(widgets(store), "default", "w")
    rvs = [a.rv, w.rv, b.rv, d.rv]
    # One counter across kinds, one step per write, like etcd's revision.
    assert rvs == list(range(start + 1, start + 5))
    assert [(e.type, e.rv) for e in events] == list(
        zip(["ADDED", "ADDED", "MODIFIED", "DELETED"], rvs, strict=True)
    )
    for v in (a, w, b, d):
        assert v.obj["metadata"]["resourceVersion"] == str(v.rv)
    assert store.resource_version == rvs[-1]


def test_noop_writes_keep_the_version_and_emit_nothing(store: Store) -> None:
    v = store.create(widgets(store), "default", widget("w", color="red"))
    events = record(store)
    same = store.patch(widgets(store), "default", "w", MERGE_PATCH, {"spec": {"size": 1}})
    assert same.rv == v.rv
    put = store.update(widgets(store), "default", "w", orjson.loads(v.raw))
    assert put.rv == v.rv
    js = store.patch(
        widgets(store),
        "default",
        "w",
        JSON_PATCH,
        [{"op": "replace", "path": "/spec/color", "value": "red"}],
    )
    assert js.rv == v.rv
    assert events == []
    assert store.resource_version == v.rv


def test_events_since_and_compaction(store: Store) -> None:
    base = store.resource_version
    for i in range(5):
        store.create(cms(store), "default", cm(f"c{i}"))
    assert [e.rv for e in store.events_since(base + 2)] == [base + 3, base + 4, base + 5]
    assert store.events_since(store.resource_version) == []
    store.compact(base + 3)
    assert [e.rv for e in store.events_since(base + 3)] == [base + 4, base + 5]
    with pytest.raises(errors.Expired) as exc:
        store.events_since(base + 2)
    assert exc.value.code == 410


def test_history_limit_compacts_the_oldest_events() -> None:
    store = Store(history_limit=3, namespaces=["default"])
    t = cms(store)
    for i in range(6):
        store.create(t, "default", cm(f"c{i}"))
    rv = store.resource_version
    assert [e.rv for e in store.events_since(rv - 3)] == [rv - 2, rv - 1, rv]
    with pytest.raises(errors.Expired):
        store.events_since(rv - 4)


# ------------------------------------------------------------------------- create


def test_create_fills_system_fields_and_drops_client_ones(store: Store) -> None:
    body = cm("a")
    body["metadata"].update(
        uid="mine",
        resourceVersion="99",
        creationTimestamp="x",
        deletionTimestamp="2020-01-01T00:00:00Z",
    )
    v = store.create(cms(store), "default", body)
    meta = v.obj["metadata"]
    assert meta["uid"] != "mine" and len(meta["uid"]) == 36
    assert meta["resourceVersion"] == str(v.rv)
    assert meta["creationTimestamp"].endswith("Z") and meta["creationTimestamp"] != "x"
    assert "deletionTimestamp" not in meta
    assert meta["namespace"] == "default"
    assert "generation" not in meta  # ConfigMaps have no spec, hence no generation
    w = store.create(widgets(store), "default", widget("w"))
    assert w.obj["metadata"]["generation"] == 1


def test_generate_name_is_seeded_and_replayable() -> None:
    def names(seed: int) -> list[str]:
        s = Store(seed=seed)
        return [
            s.create(cms(s), "default", {"metadata": {"generateName": "x-"}}).name for _ in range(3)
        ]

    first = names(11)
    assert first == names(11)
    assert first != names(12)
    assert all(n.startswith("x-") and len(n) == 7 for n in first)
    assert len(set(first)) == 3


def test_uids_are_unique_and_replay_with_the_seed() -> None:
    a, b = Store(seed=5), Store(seed=5)
    ua = [a.create(cms(a), "default", cm(f"c{i}")).obj["metadata"]["uid"] for i in range(3)]
    ub = [b.create(cms(b), "default", cm(f"c{i}")).obj["metadata"]["uid"] for i in range(3)]
    assert ua == ub and len(set(ua)) == 3


@pytest.mark.parametrize("name", ["Upper", "under_score", "-lead", "trail-", "a" * 254, "a b"])
def test_invalid_names_are_422_on_metadata_name(store: Store, name: str) -> None:
    with pytest.raises(errors.Invalid) as exc:
        store.create(cms(store), "default", cm(name))
    assert invalid_fields(exc) == ["metadata.name"]


def test_namespace_names_must_be_labels(store: Store) -> None:
    with pytest.raises(errors.Invalid) as exc:
        store.create(nss(store), "", {"metadata": {"name": "a.b"}})
    assert invalid_fields(exc) == ["metadata.name"]
    store.create(cms(store), "default", cm("a.b"))  # a subdomain is fine for ConfigMaps


def test_name_or_generate_name_is_required(store: Store) -> None:
    with pytest.raises(errors.Invalid) as exc:
        store.create(cms(store), "default", {"metadata": {}})
    assert invalid_fields(exc) == ["metadata.name"]


def test_namespace_must_exist_and_not_be_terminating(store: Store) -> None:
    with pytest.raises(errors.NotFound):
        store.create(cms(store), "nope", cm("a"))
    store.create(nss(store), "", {"metadata": {"name": "ns1"}})
    store.create(
        cms(store), "ns1", {**cm("held"), "metadata": {"name": "held", "finalizers": ["x/y"]}}
    )
    store.delete(nss(store), "", "ns1")
    assert store.get(nss(store), "", "ns1").obj["status"]["phase"] == "Terminating"
    with pytest.raises(errors.Forbidden) as exc:
        store.create(cms(store), "ns1", cm("b"))
    assert exc.value.code == 403


def test_already_exists_is_409(store: Store) -> None:
    store.create(cms(store), "default", cm("a"))
    with pytest.raises(errors.AlreadyExists) as exc:
        store.create(cms(store), "default", cm("a"))
    assert exc.value.code == 409 and exc.value.name == "a"


# --------------------------------------------------------------------------- list


def seeded_configmaps(store: Store) -> None:
    for name, labels in [
        ("a", {"app": "x", "tier": "web", "rank": "1"}),
        ("b", {"app": "y", "rank": "2"}),
        ("c", {"app": "x", "rank": "3"}),
        ("d", {"rank": "none"}),
    ]:
        store.create(cms(store), "default", cm(name, labels))


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=x", ["a", "c"]),
        ("app==x", ["a", "c"]),
        ("app!=x", ["b", "d"]),  # != matches objects without the label too
        ("app in (x,y)", ["a", "b", "c"]),
        ("app notin (x)", ["b", "d"]),
        ("tier", ["a"]),
        ("!tier", ["b", "c", "d"]),
        ("app=x,tier", ["a"]),
        ("rank>1", ["b", "c"]),  # kube's Gt/Lt on integer label values
        ("rank<2", ["a"]),
        ("rank>1,rank<3", ["b"]),
        ("", ["a", "b", "c", "d"]),
    ],
)
def test_list_label_selectors(store: Store, selector: str, expected: list[str]) -> None:
    seeded_configmaps(store)
    items, _, _, _ = store.list(cms(store), "default", labels=LabelSelector.parse(selector))
    assert [v.name for v in items] == expected


@pytest.mark.parametrize(
    "selector", ["=x", "a b", "app in x", "bad key!=1", "app=x,", "app in (a b)", "rank>x", "rank<"]
)
def test_bad_label_selectors_are_400(selector: str) -> None:
    with pytest.raises(errors.BadRequest):
        LabelSelector.parse(selector)


def test_list_field_selectors(store: Store) -> None:
    seeded_configmaps(store)
    store.create(nss(store), "", {"metadata": {"name": "other"}})
    store.create(cms(store), "other", cm("a"))
    t = cms(store)

    def names(text: str, ns: str | None = None) -> list[tuple[str, str]]:
        fields = FieldSelector.parse(text, t.field_selectors, t.kind)
        return [(v.namespace, v.name) for v in store.list(t, ns, fields=fields)[0]]

    assert names("metadata.name=a") == [("default", "a"), ("other", "a")]
    assert names("metadata.namespace=other") == [("other", "a")]
    assert names("metadata.name!=a", "default") == [
        ("default", "b"),
        ("default", "c"),
        ("default", "d"),
    ]
    with pytest.raises(errors.BadRequest):
        FieldSelector.parse("data.x=1", t.field_selectors, t.kind)
    with pytest.raises(errors.BadRequest):
        FieldSelector.parse("metadata.name", t.field_selectors, t.kind)


def test_list_limit_and_continue_keep_the_first_pages_version(store: Store) -> None:
    for i in range(5):
        store.create(cms(store), "default", cm(f"c{i}"))
    t = cms(store)
    page1, rv1, token, remaining = store.list(t, "default", limit=2)
    assert [v.name for v in page1] == ["c0", "c1"] and remaining == 3 and token
    # Writes between pages are invisible to later pages: they are served as of rv1.
    store.delete(t, "default", "c2")
    store.create(t, "default", cm("c9"))
    page2, rv2, token2, _ = store.list(t, "default", limit=2, continue_token=token)
    assert rv2 == rv1
    assert [v.name for v in page2] == ["c2", "c3"]
    page3, rv3, token3, remaining3 = store.list(t, "default", limit=2, continue_token=token2)
    assert [v.name for v in page3] == ["c4"] and rv3 == rv1
    assert token3 == "" and remaining3 is None


def test_continue_token_of_a_compacted_version_is_410(store: Store) -> None:
    for i in range(3):
        store.create(cms(store), "default", cm(f"c{i}"))
    _, _, token, _ = store.list(cms(store), "default", limit=1)
    store.create(cms(store), "default", cm("later"))
    store.compact()
    with pytest.raises(errors.Expired) as exc:
        store.list(cms(store), "default", limit=1, continue_token=token)
    assert exc.value.code == 410


def test_garbage_continue_token_is_400(store: Store) -> None:
    with pytest.raises(errors.BadRequest):
        store.list(cms(store), "default", continue_token="!!!not-base64")


def test_list_as_of_an_older_version(store: Store) -> None:
    store.create(cms(store), "default", cm("a", k="1"))
    rv = store.resource_version
    store.patch(cms(store), "default", "a", MERGE_PATCH, {"data": {"k": "2"}})
    store.create(cms(store), "default", cm("b"))
    items, list_rv, _, _ = store.list(cms(store), "default", at=rv)
    assert list_rv == rv
    assert [(v.name, v.obj["data"]) for v in items] == [("a", {"k": "1"})]
    assert store.get(cms(store), "default", "a", at=rv).obj["data"] == {"k": "1"}


# ------------------------------------------------------------------------- update


def test_reads_beyond_the_current_version_are_too_large(store: Store) -> None:
    """A resourceVersion the store has not reached, exact (``at``) or as a minimum
    (``min_rv``), is kube's 504; a stale view older than the minimum is served at it."""
    t = cms(store)
    first = store.create(t, "default", cm("a", x="1"))
    second = store.patch(t, "default", "a", MERGE_PATCH, {"data": {"x": "2"}})
    now = store.resource_version
    reads: list[Callable[[], object]] = [
        lambda: store.get(t, "default", "a", at=now + 1),
        lambda: store.get(t, "default", "a", min_rv=now + 1),
        lambda: store.list(t, "default", at=now + 1),
        lambda: store.list(t, "default", min_rv=now + 1),
    ]
    for read in reads:
        with pytest.raises(errors.Timeout) as exc:
            read()
        assert (
            exc.value.message == f"Timeout: Too large resource version: {now + 1}, current: {now}"
        )
        assert exc.value.status()["details"] == {
            "causes": [
                {"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}
            ],
            "retryAfterSeconds": 1,
        }
        assert exc.value.headers == {"Retry-After": "1"}
    assert store.get(t, "default", "a", at=first.rv).obj["data"] == {"x": "1"}
    assert store.get(t, "default", "a", at=first.rv, min_rv=second.rv).rv == second.rv
    assert store.list(t, "default", at=first.rv, min_rv=second.rv)[1] == second.rv
    assert store.get(t, "default", "a", at=now, min_rv=now).rv == second.rv


def test_update_with_a_stale_version_is_409(store: Store) -> None:
    v = store.create(widgets(store), "default", widget("w"))
    store.patch(widgets(store), "default", "w", MERGE_PATCH, {"spec": {"size": 2}})
    stale = orjson.loads(v.raw)
    stale["spec"]["size"] = 3
    with pytest.raises(errors.Conflict) as exc:
        store.update(widgets(store), "default", "w", stale)
    assert exc.value.code == 409 and exc.value.reason == "Conflict"


def test_update_of_a_custom_resource_requires_a_resource_version(store: Store) -> None:
    store.create(widgets(store), "default", widget("w"))
    with pytest.raises(errors.Invalid) as exc:
        store.update(widgets(store), "default", "w", widget("w", 2))
    assert invalid_fields(exc) == ["metadata.resourceVersion"]
    # Built-ins allow unconditional updates.
    store.create(cms(store), "default", cm("a"))
    assert store.update(cms(store), "default", "a", cm("a", k="v")).obj["data"] == {"k": "v"}


def test_update_name_mismatch_is_400(store: Store) -> None:
    store.create(cms(store), "default", cm("a"))
    with pytest.raises(errors.BadRequest):
        store.update(cms(store), "default", "a", cm("b"))


@pytest.mark.parametrize("subresource", ["", "status"])
def test_patched_metadata_is_checked_on_the_main_resource_and_status(
    store: Store, subresource: str
) -> None:
    # A patch that leaves metadata alone skips these checks (the stored metadata passed
    # them); one that reaches it gets them all, through /status too.
    t = widgets(store)
    v = store.create(t, "default", widget("w"))
    store.patch(t, "default", "w", MERGE_PATCH, {"spec": {"size": 2}})
    change = {"status": {"phase": "p"}} if subresource else {"spec": {"size": 4}}

    def patch(meta: JSON) -> Any:
        body = {"metadata": meta, **change}
        return store.patch(t, "default", "w", MERGE_PATCH, body, subresource=subresource)

    with pytest.raises(errors.Conflict):
        patch({"resourceVersion": v.obj["metadata"]["resourceVersion"]})
    with pytest.raises(errors.BadRequest, match="does not match the name"):
        patch({"name": "other"})
    with pytest.raises(errors.BadRequest, match="does not match the namespace"):
        patch({"namespace": "kube-system"})
    with pytest.raises(errors.BadRequest, match="cannot unmarshal number"):
        patch({"uid": 7})
    current = store.get(t, "default", "w")
    assert patch({"resourceVersion": current.obj["metadata"]["resourceVersion"]}).rv > current.rv


def test_a_patch_that_leaves_metadata_alone_keeps_the_system_fields(store: Store) -> None:
    t = widgets(store)
    v = store.create(t, "default", widget("w"))
    new = store.patch(t, "default", "w", MERGE_PATCH, {"spec": {"size": 3}}, owned=True)
    meta, old = new.obj["metadata"], v.obj["metadata"]
    assert meta is not old  # a write's metadata is its own ...
    assert {k: meta[k] for k in ("uid", "creationTimestamp", "name", "namespace")} == {
        k: old[k] for k in ("uid", "creationTimestamp", "name", "namespace")
    }
    assert meta["resourceVersion"] == str(new.rv) and meta["generation"] == 2
    assert old["resourceVersion"] == str(v.rv) and old["generation"] == 1  # ... never shared


def test_a_versions_json_is_encoded_once_read_and_then_shared(store: Store) -> None:
    t = widgets(store)
    store.create(t, "default", widget("w"))
    v = store.patch(t, "default", "w", MERGE_PATCH, {"spec": {"size": 3}})
    # A write's own response takes its bytes without keeping them in history ...
    assert orjson.loads(v.encoded()) == v.obj
    assert v.encoded() is not v.encoded()
    # ... the first reader encodes and keeps them, and every later one shares them.
    raw = store.get(t, "default", "w").raw
    assert raw is v.raw and orjson.loads(raw) == v.obj
    assert v.encoded() is raw


def test_update_keeps_system_metadata(store: Store) -> None:
    """kube's rest.BeforeUpdate: a creationTimestamp sent is replaced by the stored one, a
    uid left out is the stored one; another uid is refused (next test)."""
    v = store.create(cms(store), "default", cm("a"))
    body = orjson.loads(v.raw)
    body["metadata"].update(creationTimestamp="2000-01-01T00:00:00Z")
    del body["metadata"]["uid"]
    body["data"] = {"k": "v"}
    new = store.update(cms(store), "default", "a", body)
    assert new.obj["metadata"]["uid"] == v.obj["metadata"]["uid"]
    assert new.obj["metadata"]["creationTimestamp"] == v.obj["metadata"]["creationTimestamp"]


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
def test_an_update_changing_system_metadata_is_refused(
    store: Store, meta: JSON, message: str
) -> None:
    """ValidateObjectMetaAccessorUpdate's immutable fields, through every write, and nothing
    changes: not the object, not the resourceVersion, no event."""
    t = cms(store)
    v = store.create(t, "default", cm("a"))
    events = record(store)
    body = orjson.loads(v.raw)
    body["metadata"].update(meta)
    field = next(iter(meta))
    writes: list[Callable[[], object]] = [
        lambda: store.update(t, "default", "a", body),
        lambda: store.patch(t, "default", "a", MERGE_PATCH, {"metadata": meta}),
        lambda: store.patch(t, "default", "a", STRATEGIC_PATCH, {"metadata": meta}),
        lambda: store.patch(
            t,
            "default",
            "a",
            JSON_PATCH,
            [{"op": "add", "path": f"/metadata/{field}", "value": meta[field]}],
        ),
        lambda: store.apply(
            t,
            "default",
            "a",
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", **meta}},
            WriteContext(verb="patch", field_manager="m"),
        ),
    ]
    for write in writes:
        with pytest.raises(errors.Invalid) as exc:
            write()
        assert exc.value.message == f'ConfigMap "a" is invalid: {message}'
        assert set(invalid_fields(exc)) == {f"metadata.{field}"}
    assert store.get(t, "default", "a").raw == v.raw
    assert store.resource_version == v.rv
    assert events == []


def test_generation_bumps_on_spec_changes_only(store: Store) -> None:
    t = widgets(store)
    store.create(t, "default", widget("w"))
    v = store.patch(t, "default", "w", MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}})
    assert v.obj["metadata"]["generation"] == 1
    v = store.patch(
        t, "default", "w", MERGE_PATCH, {"status": {"phase": "x"}}, subresource="status"
    )
    assert v.obj["metadata"]["generation"] == 1
    v = store.patch(t, "default", "w", MERGE_PATCH, {"spec": {"size": 5}})
    assert v.obj["metadata"]["generation"] == 2
    # A client cannot set generation itself.
    v = store.patch(t, "default", "w", MERGE_PATCH, {"metadata": {"generation": 40}})
    assert v.obj["metadata"]["generation"] == 2


def test_status_subresource_semantics(store: Store) -> None:
    t = widgets(store)
    body = widget("w")
    body["status"] = {"phase": "Forged"}
    v = store.create(t, "default", body)
    assert "status" not in v.obj  # create drops status
    v = store.patch(
        t, "default", "w", MERGE_PATCH, {"status": {"phase": "A"}}, subresource="status"
    )
    assert v.obj["status"] == {"phase": "A"}
    # The main resource keeps the old status, whatever the write says.
    v = store.patch(t, "default", "w", MERGE_PATCH, {"spec": {"size": 9}, "status": {"phase": "B"}})
    assert v.obj["status"] == {"phase": "A"} and v.obj["spec"]["size"] == 9
    put = orjson.loads(v.raw)
    del put["status"]
    v = store.update(t, "default", "w", put)
    assert v.obj["status"] == {"phase": "A"}
    # /status writes change only status: spec and labels in them are ignored.
    v = store.patch(
        t,
        "default",
        "w",
        MERGE_PATCH,
        {"spec": {"size": 100}, "metadata": {"labels": {"x": "y"}}, "status": {"phase": "C"}},
        subresource="status",
    )
    assert v.obj["spec"]["size"] == 9 and "labels" not in v.obj["metadata"]
    assert v.obj["status"] == {"phase": "C"}
    # A main-resource write that changes only status is a no-op.
    events = record(store)
    same = store.patch(t, "default", "w", MERGE_PATCH, {"status": {"phase": "D"}})
    assert same.rv == v.rv and events == []


def test_json_patch_test_failure_is_422(store: Store) -> None:
    v = store.create(widgets(store), "default", widget("w"))
    with pytest.raises(errors.Invalid):
        store.patch(
            widgets(store),
            "default",
            "w",
            JSON_PATCH,
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
                {"op": "replace", "path": "/spec/size", "value": 3},
            ],
        )
    ok = store.patch(
        widgets(store),
        "default",
        "w",
        JSON_PATCH,
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": str(v.rv)},
            {"op": "replace", "path": "/spec/size", "value": 3},
        ],
    )
    assert ok.obj["spec"]["size"] == 3


def test_dry_run_changes_nothing(store: Store) -> None:
    store.create(widgets(store), "default", widget("w"))
    before = store.resource_version
    events = record(store)
    dry = WriteContext(dry_run=True)
    store.create(widgets(store), "default", widget("x"), dry)
    store.patch(widgets(store), "default", "w", MERGE_PATCH, {"spec": {"size": 7}}, dry)
    store.delete(widgets(store), "default", "w", None, dry)
    store.delete_collection(widgets(store), "default", ctx=dry)
    assert store.resource_version == before and events == []
    assert store.get(widgets(store), "default", "w").obj["spec"]["size"] == 1
    with pytest.raises(errors.NotFound):
        store.get(widgets(store), "default", "x")


# ------------------------------------------------------------------------- delete


def test_delete_with_finalizers(store: Store) -> None:
    t = widgets(store)
    body = widget("w")
    body["metadata"]["finalizers"] = ["a/one", "a/two"]
    store.create(t, "default", body)
    events = record(store)
    v = store.delete(t, "default", "w")
    assert v.obj["metadata"]["deletionTimestamp"]
    assert v.obj["metadata"]["generation"] == 2  # bumped as deletion starts (rest.BeforeDelete)
    assert [e.type for e in events] == ["MODIFIED"]
    with pytest.raises(errors.Invalid) as exc:
        store.patch(
            t,
            "default",
            "w",
            MERGE_PATCH,
            {"metadata": {"finalizers": ["a/one", "a/two", "a/three"]}},
        )
    assert invalid_fields(exc) == ["metadata.finalizers"]
    assert exc.value.message == (
        'Widget.example.com "w" is invalid: metadata.finalizers: Forbidden: no new finalizers '
        'can be added if the object is being deleted, found new finalizers []string{"a/three"}'
    )
    store.patch(t, "default", "w", MERGE_PATCH, {"metadata": {"finalizers": ["a/two"]}})
    assert store.get(t, "default", "w").obj["metadata"]["finalizers"] == ["a/two"]
    last = store.get(t, "default", "w")
    answer = store.patch(
        t, "default", "w", JSON_PATCH, [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    # The update that empties the finalizers is the deletion (kube's deleteWithoutFinalizers):
    # no MODIFIED, the DELETED of the stored version at the deletion's resourceVersion, and
    # the request answered with the object it made, at the version it was made on.
    assert [e.type for e in events] == ["MODIFIED", "MODIFIED", "DELETED"]
    assert events[-1].rv == events[-2].rv + 1 == store.resource_version
    assert events[-1].obj == {
        **last.obj,
        "metadata": {**last.obj["metadata"], "resourceVersion": str(events[-1].rv)},
    }
    assert "finalizers" not in answer.obj["metadata"]
    assert answer.obj["metadata"]["resourceVersion"] == str(last.rv)
    assert store.version_rvs(t, "default", "w")[-2:] == [last.rv, events[-1].rv]
    with pytest.raises(errors.NotFound):
        store.get(t, "default", "w")


def test_delete_preconditions(store: Store) -> None:
    v = store.create(cms(store), "default", cm("a"))
    with pytest.raises(errors.Conflict):
        store.delete(cms(store), "default", "a", {"preconditions": {"uid": "other"}})
    with pytest.raises(errors.Conflict):
        store.delete(cms(store), "default", "a", {"preconditions": {"resourceVersion": "1"}})
    store.delete(
        cms(store),
        "default",
        "a",
        {"preconditions": {"uid": v.obj["metadata"]["uid"], "resourceVersion": str(v.rv)}},
    )
    with pytest.raises(errors.NotFound):
        store.get(cms(store), "default", "a")


def owned(name: str, *owners: JSON) -> JSON:
    body = cm(name)
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": o["apiVersion"],
            "kind": o["kind"],
            "name": o["metadata"]["name"],
            "uid": o["metadata"]["uid"],
        }
        for o in owners
    ]
    return body


def test_garbage_collection_of_dependents(store: Store) -> None:
    t = cms(store)
    p1 = store.create(widgets(store), "default", widget("p1")).obj
    p2 = store.create(widgets(store), "default", widget("p2")).obj
    store.create(t, "default", owned("only-p1", p1))
    store.create(t, "default", owned("both", p1, p2))
    store.delete(widgets(store), "default", "p1", {"propagationPolicy": "Background"})
    with pytest.raises(errors.NotFound):
        store.get(t, "default", "only-p1")
    survivor = store.get(t, "default", "both").obj
    # The dependent with another live owner survives, without the dangling reference.
    assert [r["uid"] for r in survivor["metadata"]["ownerReferences"]] == [p2["metadata"]["uid"]]


def test_orphan_deletion_strips_the_owner_reference(store: Store) -> None:
    t = cms(store)
    p = store.create(widgets(store), "default", widget("p")).obj
    store.create(t, "default", owned("dep", p))
    store.delete(widgets(store), "default", "p", {"propagationPolicy": "Orphan"})
    dep = store.get(t, "default", "dep").obj
    assert "ownerReferences" not in dep["metadata"]


def test_bad_propagation_policy_is_422(store: Store) -> None:
    store.create(cms(store), "default", cm("a"))
    with pytest.raises(errors.Invalid):
        store.delete(cms(store), "default", "a", {"propagationPolicy": "Sideways"})


def test_namespace_deletion_drains_it(store: Store) -> None:
    store.create(nss(store), "", {"metadata": {"name": "ns1"}})
    store.create(cms(store), "ns1", cm("a"))
    store.create(widgets(store), "ns1", widget("w"))
    store.create(cms(store), "default", cm("stays"))
    events = record(store)
    store.delete(nss(store), "", "ns1")
    with pytest.raises(errors.NotFound):
        store.get(nss(store), "", "ns1")
    assert store.list(cms(store), "ns1")[0] == []
    assert store.list(widgets(store), "ns1")[0] == []
    assert store.get(cms(store), "default", "stays")
    kinds = [(e.type, e.resource.kind) for e in events]
    assert kinds[0] == ("MODIFIED", "Namespace")  # Terminating first
    assert kinds[-1] == ("DELETED", "Namespace")  # gone when empty
    assert sorted(kinds[1:-1]) == [("DELETED", "ConfigMap"), ("DELETED", "Widget")]


def test_terminating_namespace_waits_for_finalized_objects(store: Store) -> None:
    store.create(nss(store), "", {"metadata": {"name": "ns1"}})
    body = widget("w")
    body["metadata"]["finalizers"] = ["a/b"]
    store.create(widgets(store), "ns1", body)
    store.delete(nss(store), "", "ns1")
    assert store.get(nss(store), "", "ns1")  # still there while w is finalizing
    store.patch(widgets(store), "ns1", "w", MERGE_PATCH, {"metadata": {"finalizers": None}})
    with pytest.raises(errors.NotFound):
        store.get(nss(store), "", "ns1")


def test_delete_collection_with_selectors(store: Store) -> None:
    seeded_configmaps(store)
    t = cms(store)
    gone = store.delete_collection(t, "default", labels=LabelSelector.parse("app=x"))
    assert sorted(v.name for v in gone) == ["a", "c"]
    assert [v.name for v in store.list(t, "default")[0]] == ["b", "d"]


# --------------------------------------------------------------------------- CRDs


def test_deleting_a_crd_stops_serving_it_and_removes_its_objects(store: Store) -> None:
    store.create(widgets(store), "default", widget("w"))
    crds = rt(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
    events = record(store)
    store.delete(crds, "", f"widgets.{GROUP}")
    assert store.registry.lookup(GROUP, "v1", "widgets") is None
    # As kube's customresourcecleanup finalizer: terminating, the objects, then the CRD.
    assert [(e.type, e.resource.kind) for e in events] == [
        ("MODIFIED", "CustomResourceDefinition"),
        ("DELETED", "Widget"),
        ("DELETED", "CustomResourceDefinition"),
    ]


def test_a_deleted_crd_waits_for_its_objects_finalizers(store: Store) -> None:
    body = widget("w")
    body["metadata"]["finalizers"] = ["example.com/cleanup"]
    store.create(widgets(store), "default", body)
    crds = rt(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
    store.delete(crds, "", f"widgets.{GROUP}")
    # The operator's delete handlers can still run: the object is only being deleted.
    w = store.get(widgets(store), "default", "w")
    assert w.obj["metadata"]["deletionTimestamp"]
    assert store.get(crds, "", f"widgets.{GROUP}").obj["metadata"]["deletionTimestamp"]
    with pytest.raises(errors.MethodNotAllowed):
        store.create(widgets(store), "default", widget("new"))
    events = record(store)
    store.patch(widgets(store), "default", "w", MERGE_PATCH, {"metadata": {"finalizers": None}})
    assert [(e.type, e.resource.kind) for e in events] == [
        ("DELETED", "Widget"),
        ("DELETED", "CustomResourceDefinition"),
    ]
    assert store.registry.lookup(GROUP, "v1", "widgets") is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda c: c["spec"].update(scope="Global"), "spec.scope"),
        (lambda c: c["spec"]["names"].pop("plural"), "spec.names.plural"),
        (lambda c: c["metadata"].update(name="wrong.example.com"), "metadata.name"),
        (lambda c: c["spec"]["versions"][0].update(storage=False), "spec.versions"),
    ],
)
def test_invalid_crd_is_422(change: Any, field: str) -> None:
    store = Store()
    crd: JSON = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"plural": "things", "kind": "Thing"},
            "versions": [{"name": "v1", "served": True, "storage": True}],
        },
    }
    change(crd)
    before = store.resource_version
    with pytest.raises(errors.Invalid) as exc:
        store.create(rt(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions"), "", crd)
    assert field in invalid_fields(exc)
    assert store.resource_version == before
    assert store.registry.lookup("example.com", "v1", "things") is None


def test_schema_validation_reports_field_paths(store: Store) -> None:
    with pytest.raises(errors.Invalid) as exc:
        store.create(
            widgets(store),
            "default",
            {
                "apiVersion": f"{GROUP}/v1",
                "kind": "Widget",
                "metadata": {"name": "w"},
                "spec": {"color": 5},
            },
        )
    fields = invalid_fields(exc)
    assert "spec.size" in fields and "spec.color" in fields
    with pytest.raises(errors.Invalid) as exc:
        store.create(widgets(store), "default", widget("w", -1))
    assert invalid_fields(exc) == ["spec.size"]


def test_schema_defaults_and_pruning(store: Store) -> None:
    ctx = WriteContext(verb="create")
    v = store.create(
        widgets(store), "default", widget("w", extra="gone", free={"kept": {"deep": 1}}), ctx
    )
    assert v.obj["spec"]["color"] == "blue"  # defaulted
    assert "extra" not in v.obj["spec"]  # pruned, with a warning
    assert v.obj["spec"]["free"] == {"kept": {"deep": 1}}  # preserve-unknown-fields
    assert any("spec.extra" in w for w in ctx.warnings), ctx.warnings
    with pytest.raises(errors.BadRequest):
        store.create(
            widgets(store), "default", widget("x", extra=1), WriteContext(field_validation="Strict")
        )
    quiet = WriteContext(field_validation="Ignore")
    store.create(widgets(store), "default", widget("y", extra=1), quiet)
    assert quiet.warnings == []


def test_transition_rule_self_equals_old_self(store: Store) -> None:
    store.create(widgets(store), "default", widget("w", owner="ann"))
    store.patch(widgets(store), "default", "w", MERGE_PATCH, {"spec": {"size": 2}})
    with pytest.raises(errors.Invalid) as exc:
        store.patch(widgets(store), "default", "w", MERGE_PATCH, {"spec": {"owner": "bob"}})
    assert invalid_fields(exc) == ["spec.owner"]
    assert "owner is immutable" in exc.value.message


def test_listener_sees_events_in_order_under_concurrent_writes(store: Store) -> None:
    import threading

    events = record(store)
    t = cms(store)

    def writer(i: int) -> None:
        for j in range(20):
            store.create(t, "default", cm(f"w{i}-{j}"))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rvs = [e.rv for e in events]
    assert rvs == sorted(rvs) and len(set(rvs)) == 80 == len(rvs)


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_system_namespaces_cannot_be_deleted(store: Store, name: str) -> None:
    with pytest.raises(errors.Forbidden) as exc:
        store.delete(nss(store), "", name)
    assert "may not be deleted" in exc.value.message
    assert "deletionTimestamp" not in store.get(nss(store), "", name).obj["metadata"]


def two_version_crd(store: Store) -> None:
    versions = [
        {
            "name": v,
            "served": True,
            "storage": v == "v1",
            "schema": {
                "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            },
        }
        for v in ("v1", "v2")
    ]
    store.create(
        rt(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions"),
        "",
        {
            "metadata": {"name": "things.ex.io"},
            "spec": {
                "group": "ex.io",
                "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": versions,
            },
        },
    )


def test_a_write_through_another_version_is_still_a_no_op(store: Store) -> None:
    two_version_crd(store)
    v1, v2 = rt(store, "ex.io", "v1", "things"), rt(store, "ex.io", "v2", "things")
    made = store.create(v1, "default", {"metadata": {"name": "a"}, "spec": {"x": 1}})
    events = record(store)
    same = store.patch(v2, "default", "a", MERGE_PATCH, {"spec": {"x": 1}})
    assert same.rv == made.rv and events == []
    assert same.obj["apiVersion"] == "ex.io/v2"  # served in the version asked for
    body = orjson.loads(same.raw)
    body["metadata"]["labels"] = {"k": "v"}
    changed = store.update(v2, "default", "a", body)
    assert changed.obj["metadata"]["generation"] == 1  # labels only: no spec change


def test_crd_scope_is_immutable(store: Store) -> None:
    crds = rt(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
    with pytest.raises(errors.Invalid) as exc:
        store.patch(crds, "", f"widgets.{GROUP}", MERGE_PATCH, {"spec": {"scope": "Cluster"}})
    assert invalid_fields(exc) == ["spec.scope"]
    assert widgets(store).namespaced


def test_patches_share_what_they_leave_alone_and_never_mutate_stored_versions(
    store: Store,
) -> None:
    # An owned merge patch copies only what it reaches and the status strategy keeps the
    # stored spec: versions share values, which is safe only because no write ever mutates
    # a stored version. Each must still be exactly the bytes it was committed as.
    t, c = widgets(store), cms(store)
    # Each version's JSON as committed (a version encodes lazily: take it now).
    committed: list[bytes] = []
    store.subscribe(lambda event: committed.append(orjson.dumps(event.obj)))
    versions = [
        store.create(c, "default", cm("c", labels={"a": "b"}, x="0")),
        store.create(t, "default", widget("w", 1, free={"k": {"n": 1}})),
    ]
    for i in range(3):
        data = {"data": {"x": str(i + 1)}}
        status = {"status": {"phase": f"p{i}", "count": i, "extra": {"a": None}}}
        spec = {"spec": {"size": i + 2, "color": None, "free": {"k": {"m": i}}}}
        versions += [
            store.patch(c, "default", "c", MERGE_PATCH, data, owned=True),
            store.patch(t, "default", "w", MERGE_PATCH, status, subresource="status", owned=True),
            store.patch(t, "default", "w", MERGE_PATCH, spec, owned=True),
        ]
    assert [orjson.loads(raw) for raw in committed] == [v.obj for v in versions]
    cm1, cm2 = versions[2], versions[5]
    assert cm2.obj["data"] == {"x": "2"} and cm2.obj["metadata"]["labels"] == {"a": "b"}
    assert cm2.obj["metadata"]["labels"] is cm1.obj["metadata"]["labels"]
    spec_write, status_write = versions[4], versions[6]
    assert status_write.obj["spec"] is spec_write.obj["spec"]
    assert status_write.obj["status"] == {"phase": "p1", "count": 1}  # extra pruned
    assert spec_write.obj["spec"]["color"] == "blue"  # null of a defaulted field: the default
    assert spec_write.obj["spec"]["free"] == {"k": {"n": 1, "m": 0}}


def test_a_write_after_a_schema_change_validates_the_fields_it_leaves_alone(store: Store) -> None:
    # A write need not walk the fields it leaves in place while the schema that passed them
    # is the one in force; after a CRD update the next write checks every field again.
    t = widgets(store)
    store.create(t, "default", widget("w", 5))
    status = {"status": {"phase": "a"}}
    store.patch(t, "default", "w", MERGE_PATCH, status, subresource="status", owned=True)
    crds = rt(store, "apiextensions.k8s.io", "v1", "customresourcedefinitions")
    crd = orjson.loads(store.get(crds, "", f"widgets.{GROUP}").raw)
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["properties"]["size"]["maximum"] = 3
    store.update(crds, "", f"widgets.{GROUP}", crd)
    with pytest.raises(errors.ApiError) as exc:
        store.patch(widgets(store), "default", "w", MERGE_PATCH, status, subresource="status")
    assert invalid_fields(exc) == ["spec.size"]


def test_a_namespace_waits_for_its_own_finalizers_and_its_contents(store: Store) -> None:
    store.create(nss(store), "", {"metadata": {"name": "ns1", "finalizers": ["x.io/hold"]}})
    body = widget("w")
    body["metadata"]["finalizers"] = ["x.io/hold"]
    store.create(widgets(store), "ns1", body)
    store.delete(nss(store), "", "ns1")
    # Its own finalizer goes first: the namespace stays while its contents remain.
    events = record(store)
    store.patch(nss(store), "", "ns1", MERGE_PATCH, {"metadata": {"finalizers": None}})
    assert store.get(nss(store), "", "ns1").obj["status"]["phase"] == "Terminating"
    store.patch(widgets(store), "ns1", "w", MERGE_PATCH, {"metadata": {"finalizers": None}})
    with pytest.raises(errors.NotFound):
        store.get(nss(store), "", "ns1")
    # Stored without finalizers while its contents remain, then gone with the last of them.
    assert [(e.type, e.resource.kind) for e in events] == [
        ("MODIFIED", "Namespace"),
        ("DELETED", "Widget"),
        ("DELETED", "Namespace"),
    ]


def test_an_empty_namespace_waits_for_its_own_finalizer(store: Store) -> None:
    store.create(nss(store), "", {"metadata": {"name": "ns1", "finalizers": ["x.io/hold"]}})
    store.delete(nss(store), "", "ns1")
    assert store.get(nss(store), "", "ns1").obj["metadata"]["deletionTimestamp"]
    events = record(store)
    store.patch(nss(store), "", "ns1", MERGE_PATCH, {"metadata": {"finalizers": None}})
    with pytest.raises(errors.NotFound):
        store.get(nss(store), "", "ns1")
    assert [e.type for e in events] == ["DELETED"]  # (the emptying update is the deletion)


def test_foreground_deletion_waits_for_blocking_dependents(store: Store) -> None:
    t = cms(store)
    p = store.create(widgets(store), "default", widget("p")).obj
    ref = {
        "apiVersion": p["apiVersion"],
        "kind": "Widget",
        "name": "p",
        "uid": p["metadata"]["uid"],
    }
    store.create(
        t,
        "default",
        {
            "metadata": {
                "name": "blocking",
                "finalizers": ["x.io/slow"],
                "ownerReferences": [dict(ref, blockOwnerDeletion=True)],
            }
        },
    )
    store.create(t, "default", {"metadata": {"name": "plain", "ownerReferences": [ref]}})
    v = store.delete(widgets(store), "default", "p", {"propagationPolicy": "Foreground"})
    assert v.obj["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert v.obj["metadata"]["deletionTimestamp"]
    with pytest.raises(errors.NotFound):
        store.get(t, "default", "plain")  # not blocking: deleted, not waited for
    assert store.get(t, "default", "blocking").obj["metadata"]["deletionTimestamp"]
    assert store.get(widgets(store), "default", "p")  # waits for "blocking"
    events = record(store)
    store.patch(t, "default", "blocking", MERGE_PATCH, {"metadata": {"finalizers": None}})
    # Each update emptying the finalizers deletes at once (the collector's for "p" too).
    assert [(e.type, e.obj["metadata"]["name"]) for e in events] == [
        ("DELETED", "blocking"),
        ("DELETED", "p"),
    ]
    assert events[1].obj["metadata"]["finalizers"] == ["foregroundDeletion"]  # as stored


def test_foreground_deletion_without_dependents_completes(store: Store) -> None:
    store.create(widgets(store), "default", widget("p"))
    events = record(store)
    store.delete(widgets(store), "default", "p", {"propagationPolicy": "Foreground"})
    assert [e.type for e in events] == ["MODIFIED", "DELETED"]
    with pytest.raises(errors.NotFound):
        store.get(widgets(store), "default", "p")


def test_a_patch_validates_the_metadata_it_changes(store: Store) -> None:
    # The metadata a write leaves in place is not checked again (it passed), what it changes is.
    c = cms(store)
    store.create(c, "default", cm("c", labels={"a": "b"}, x="1"))
    store.patch(c, "default", "c", MERGE_PATCH, {"data": {"x": "2"}}, owned=True)
    for patch in (
        {"metadata": {"labels": {"a": "-bad-"}}},
        {"metadata": {"labels": {"bad key!": "v"}}},
        {"metadata": {"annotations": {"bad key!": "v"}}},
        {"metadata": {"finalizers": [1]}},
    ):
        with pytest.raises(errors.ApiError) as exc:
            store.patch(c, "default", "c", MERGE_PATCH, patch, owned=True)
        assert invalid_fields(exc)[0].startswith("metadata."), patch
    v = store.patch(c, "default", "c", MERGE_PATCH, {"data": {"x": "3"}}, owned=True)
    assert v.obj["data"] == {"x": "3"} and v.obj["metadata"]["labels"] == {"a": "b"}


def test_defaults_of_built_ins_never_write_into_stored_versions(store: Store) -> None:
    deps = rt(store, "apps", "v1", "deployments")
    committed: list[bytes] = []  # each version's JSON as committed
    store.subscribe(lambda event: committed.append(orjson.dumps(event.obj)))
    body = {"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [{}]}}}}
    versions = [store.create(deps, "default", body)]
    for replicas in (2, 3):
        patch = {"spec": {"replicas": replicas, "strategy": None}}
        versions.append(store.patch(deps, "default", "d", MERGE_PATCH, patch, owned=True))
    # Each version is still exactly what it was committed as (its defaults included).
    assert [orjson.loads(raw) for raw in committed] == [v.obj for v in versions]
    assert [v.obj["spec"]["strategy"]["type"] for v in versions] == ["RollingUpdate"] * 3
    containers = [v.obj["spec"]["template"]["spec"]["containers"] for v in versions]
    assert containers[1] is containers[0]  # what no default touched is shared, not copied
