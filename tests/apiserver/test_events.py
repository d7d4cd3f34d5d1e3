"""core/v1 and events.k8s.io/v1 Events are one storage, as in kube-apiserver.

An Event written through either API is read, listed, watched, patched and deleted through
both, converted field by field (kube's pkg/apis/events/v1/conversion.go): ``regarding`` is
``involvedObject``, ``note`` is ``message``, ``reportingController`` is
``reportingComponent``, ``deprecatedSource``/``deprecatedFirstTimestamp``/
``deprecatedLastTimestamp``/``deprecatedCount`` are ``source``/``firstTimestamp``/
``lastTimestamp``/``count``; the other fields keep their names. One resourceVersion
sequence, one watch event per write whichever API watches. Every wait reads a line the
server must send; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api, Stream

JSON = dict[str, Any]
Watch = Callable[..., "Stream"]

CORE = "/api/v1/namespaces/default/events"
NEW = "/apis/events.k8s.io/v1/namespaces/default/events"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"

# Every field of each API, with its counterpart in the other (names as each API spells them).
REF = {
    "apiVersion": "v1",
    "kind": "Pod",
    "namespace": "default",
    "name": "web-0",
    "uid": "0b6c9d43-7d0e-4f4e-9c62-9a1f1d5c6e01",
    "resourceVersion": "17",
    "fieldPath": "spec.containers{app}",
}
RELATED = {"apiVersion": "v1", "kind": "Node", "name": "node-1"}
SOURCE = {"component": "kubelet", "host": "node-1"}
SERIES = {"count": 4, "lastObservedTime": "2026-01-01T00:05:00.000000Z"}
SHARED = {
    "reason": "BackOff",
    "type": "Warning",
    "action": "Restarting",
    "eventTime": "2026-01-01T00:00:00.000000Z",
    "series": SERIES,
    "related": RELATED,
    "reportingInstance": "kubelet-node-1",
}
CORE_FIELDS = {
    "involvedObject": REF,
    "message": "Back-off restarting failed container",
    "source": SOURCE,
    "firstTimestamp": "2026-01-01T00:00:00Z",
    "lastTimestamp": "2026-01-01T00:05:00Z",
    "count": 4,
    "reportingComponent": "kubelet",
    **SHARED,
}
NEW_FIELDS = {
    "regarding": REF,
    "note": "Back-off restarting failed container",
    "deprecatedSource": SOURCE,
    "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
    "deprecatedLastTimestamp": "2026-01-01T00:05:00Z",
    "deprecatedCount": 4,
    "reportingController": "kubelet",
    **SHARED,
}


def body_of(obj: JSON) -> JSON:
    """Everything but apiVersion, kind and metadata."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}


def core_event(name: str, target: str = "web-0", **fields: Any) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name},
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": target},
        "reason": "Started",
        "type": "Normal",
        **fields,
    }


def new_event(name: str, target: str = "web-0", **fields: Any) -> JSON:
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": name},
        "regarding": {"kind": "Pod", "namespace": "default", "name": target},
        "reason": "Started",
        "type": "Normal",
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "reportingController": "ctl",
        "reportingInstance": "ctl-1",
        "action": "Start",
        **fields,
    }


def names(listed: JSON) -> list[str]:
    return [i["metadata"]["name"] for i in listed["items"]]


# ------------------------------------------------------------------ conversion, field by field


def test_core_write_reads_through_events_api_with_every_field_converted(api: Api) -> None:
    created = api.post(CORE, {"metadata": {"name": "e1"}, **CORE_FIELDS}).expect(201)
    assert created["apiVersion"] == "v1" and body_of(created) == CORE_FIELDS
    got = api.get(f"{NEW}/e1").expect(200)
    assert got["apiVersion"] == "events.k8s.io/v1" and got["kind"] == "Event"
    assert body_of(got) == NEW_FIELDS
    # The same object: same uid, same version.
    assert got["metadata"] == created["metadata"]
    listed = api.get(NEW).expect(200)
    assert listed["kind"] == "EventList" and listed["apiVersion"] == "events.k8s.io/v1"
    assert [body_of(i) for i in listed["items"]] == [NEW_FIELDS]


def test_events_api_write_reads_through_core_with_every_field_converted(api: Api) -> None:
    # kube refuses the deprecated* fields on an events.k8s.io create ("needs to be unset"):
    # they come from core writes only (the round trip below carries them back).
    deprecated = ("deprecatedSource", "deprecatedFirstTimestamp", "deprecatedLastTimestamp")
    fields = {k: v for k, v in NEW_FIELDS.items() if k not in (*deprecated, "deprecatedCount")}
    created = api.post(NEW, {"metadata": {"name": "e1"}, **fields}).expect(201)
    assert created["apiVersion"] == "events.k8s.io/v1" and body_of(created) == fields
    got = api.get(f"{CORE}/e1").expect(200)
    assert got["apiVersion"] == "v1" and got["metadata"] == created["metadata"]
    assert body_of(got) == {
        k: v
        for k, v in CORE_FIELDS.items()
        if k not in ("source", "firstTimestamp", "lastTimestamp", "count")
    }


def test_what_either_api_shows_written_back_through_it_changes_nothing(api: Api) -> None:
    created = api.post(CORE, {"metadata": {"name": "e1"}, **CORE_FIELDS}).expect(201)
    rv = created["metadata"]["resourceVersion"]
    # Converted to events.k8s.io and back, every field lands where it was: a no-op write
    # (no new resourceVersion), and core still shows exactly what it stored.
    shown = api.get(f"{NEW}/e1").expect(200)
    assert api.put(f"{NEW}/e1", shown).expect(200)["metadata"]["resourceVersion"] == rv
    core = api.get(f"{CORE}/e1").expect(200)
    assert body_of(core) == CORE_FIELDS
    assert api.put(f"{CORE}/e1", core).expect(200)["metadata"]["resourceVersion"] == rv
    # A change through events.k8s.io is one new version, seen through core.
    shown["metadata"]["labels"] = {"seen": "yes"}
    changed = api.put(f"{NEW}/e1", shown).expect(200)
    assert int(changed["metadata"]["resourceVersion"]) == int(rv) + 1
    core = api.get(f"{CORE}/e1").expect(200)
    assert core["metadata"]["labels"] == {"seen": "yes"} and body_of(core) == CORE_FIELDS


def test_both_apis_share_names_and_one_resource_version_sequence(api: Api) -> None:
    first = api.post(CORE, core_event("e1")).rv
    api.post(NEW, new_event("e1")).expect_status(409, "AlreadyExists")
    second = api.post(NEW, new_event("e2")).rv
    assert int(second) == int(first) + 1
    assert names(api.get(CORE).expect(200)) == names(api.get(NEW).expect(200)) == ["e1", "e2"]
    # Errors name the resource that was asked for, as kube's do.
    missing = api.get(f"{NEW}/nope").expect_status(404, "NotFound")
    assert missing["message"] == 'events.events.k8s.io "nope" not found'
    assert missing["details"] == {"name": "nope", "group": "events.k8s.io", "kind": "events"}
    assert api.get(f"{CORE}/nope").expect(404)["message"] == 'events "nope" not found'


def test_a_field_only_the_other_api_defines_is_dropped_with_a_warning(api: Api) -> None:
    # "message" is core's name: events.k8s.io does not know it (kube's decoder drops it).
    reply = api.post(NEW, new_event("e1", note="kept", message="dropped"))
    assert reply.expect(201)["note"] == "kept" and "message" not in reply.body
    assert reply.headers["Warning"] == '299 - "unknown field \\"message\\""'
    assert api.get(f"{CORE}/e1").expect(200)["message"] == "kept"
    strict = api.post(NEW, new_event("e2", message="x"), query={"fieldValidation": "Strict"})
    assert "strict decoding error" in strict.expect_status(400, "BadRequest")["message"]
    api.get(f"{CORE}/e2").expect(404)


# ------------------------------------------------------------------------------- reads


def test_field_selectors_of_each_api_match_the_converted_object(api: Api) -> None:
    api.post(CORE, core_event("c1", "a", source={"component": "kubelet"})).expect(201)
    api.post(CORE, core_event("c2", "b", reason="Killing", reportingComponent="rc")).expect(201)
    api.post(NEW, new_event("n1", "a", type="Warning")).expect(201)
    # (kube refuses a deprecated field on an events.k8s.io create: n2 comes through core)
    n2 = core_event("n2", "b", source={"component": "old"}, reportingComponent="ctl")
    api.post(CORE, n2).expect(201)

    def select(path: str, selector: str) -> list[str]:
        return names(api.get(path, query={"fieldSelector": selector}).expect(200))

    assert select(NEW, "regarding.name=a") == select(CORE, "involvedObject.name=a") == ["c1", "n1"]
    assert select(NEW, "regarding.kind=Pod,regarding.namespace=default") == [
        "c1",
        "c2",
        "n1",
        "n2",
    ]
    assert select(NEW, "reportingController=ctl") == select(CORE, "reportingComponent=ctl")
    assert select(CORE, "reportingComponent=ctl") == ["n1", "n2"]
    assert select(NEW, "reportingController=rc") == ["c2"]
    # "source" is source.component, else the reporting component (EventToSelectableFields).
    assert select(CORE, "source=kubelet") == select(NEW, "source=kubelet") == ["c1"]
    assert select(CORE, "source=ctl") == select(NEW, "source=ctl") == ["n1"]
    assert select(NEW, "source=rc") == ["c2"] and select(CORE, "source=old") == ["n2"]
    assert select(NEW, "type=Warning") == select(CORE, "type=Warning") == ["n1"]
    assert select(NEW, "reason!=Started") == ["c2"]
    assert select(NEW, "metadata.name=n2") == ["n2"]
    # Each API accepts its own names only, as kube's field label conversions do.
    api.get(NEW, query={"fieldSelector": "involvedObject.name=a"}).expect_status(400, "BadRequest")
    api.get(CORE, query={"fieldSelector": "regarding.name=a"}).expect_status(400, "BadRequest")
    api.get(NEW, query={"fieldSelector": "note=x"}).expect_status(400, "BadRequest")


def test_limit_continue_and_stale_reads_through_either_api(api: Api) -> None:
    api.post(NEW, new_event("e0")).expect(201)
    api.post(CORE, core_event("e1")).expect(201)
    api.post(NEW, new_event("e2")).expect(201)
    page = api.get(NEW, query={"limit": "2"}).expect(200)
    assert names(page) == ["e0", "e1"] and page["metadata"]["remainingItemCount"] == 1
    # A write between pages (through the other API) is not in the rest of the snapshot.
    api.patch(f"{CORE}/e2", {"message": "later"}).expect(200)
    rest = api.get(NEW, query={"limit": "2", "continue": page["metadata"]["continue"]})
    assert names(rest.expect(200)) == ["e2"] and "note" not in rest.body["items"][0]
    # An exact older version, read through the API that did not write it.
    before = page["metadata"]["resourceVersion"]
    old = api.get(NEW, query={"resourceVersion": before, "resourceVersionMatch": "Exact"})
    assert old.expect(200)["metadata"]["resourceVersion"] == before
    assert all("note" not in i for i in old.body["items"])
    assert api.get(f"{NEW}/e2").expect(200)["note"] == "later"


def test_table_output_of_the_events_api(api: Api) -> None:
    api.post(CORE, core_event("e1", message=" hello ", count=3)).expect(201)
    for path in (NEW, CORE):  # kube prints both APIs' Events alike (printEvent)
        table = api.get(path, headers={"Accept": TABLE}).expect(200)
        columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
        assert [name for name, priority in columns if priority == 0] == [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Message",
        ]
        assert dict(zip([n for n, _ in columns], table["rows"][0]["cells"], strict=True)) == {
            "Last Seen": "<unknown>",  # (no timestamp at all: kube's zero time)
            "Type": "Normal",
            "Reason": "Started",
            "Object": "pod/web-0",
            "Subobject": "",
            "Source": "",
            "Message": "hello",
            "First Seen": "<unknown>",
            "Count": 3,
            "Name": "e1",
        }


# ------------------------------------------------------------------------------ writes


SERIES_2 = {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}


# Through events.k8s.io kube lets an update change only series and metadata (the rest is
# immutable there, ValidateEventUpdate): what an events.k8s.io recorder patches.
@pytest.mark.parametrize(
    ("kind", "patch"),
    [
        ("merge", {"series": SERIES_2, "metadata": {"labels": {"a": "b"}}}),
        (
            "json",
            [
                # Paths in this API's names: its view is what the patch applies to.
                {"op": "test", "path": "/note", "value": "first"},
                {"op": "test", "path": "/regarding/name", "value": "web-0"},
                {"op": "add", "path": "/series", "value": SERIES_2},
                {"op": "add", "path": "/metadata/labels", "value": {"a": "b"}},
            ],
        ),
        ("strategic", {"series": SERIES_2, "metadata": {"labels": {"a": "b"}}}),
    ],
)
def test_patch_through_events_api_applies_to_its_view(
    api: Api, kind: str, patch: JSON | list[JSON]
) -> None:
    api.post(CORE, core_event("e1", message="first", count=1)).expect(201)
    patched = api.patch(f"{NEW}/e1", patch, kind).expect(200)
    assert patched["apiVersion"] == "events.k8s.io/v1"
    assert patched["series"] == SERIES_2 and patched["note"] == "first"
    assert patched["deprecatedCount"] == 1 and patched["metadata"]["labels"] == {"a": "b"}
    assert "message" not in patched and "count" not in patched
    core = api.get(f"{CORE}/e1").expect(200)
    assert core["series"] == SERIES_2 and core["message"] == "first" and core["count"] == 1
    assert core["involvedObject"]["name"] == "web-0" and core["metadata"]["labels"] == {"a": "b"}
    assert "note" not in core and "deprecatedCount" not in core and "regarding" not in core
    assert core["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    # A failed test op (core's name for the field does not exist in this view) writes nothing.
    failed = api.patch(f"{NEW}/e1", [{"op": "test", "path": "/message", "value": "first"}], "json")
    failed.expect(422)
    assert api.get(f"{CORE}/e1").rv == core["metadata"]["resourceVersion"]


def test_patch_through_core_reads_through_events_api(api: Api) -> None:
    api.post(NEW, new_event("e1", note="first")).expect(201)
    api.patch(f"{CORE}/e1", {"involvedObject": {"name": "web-1"}, "count": 3}).expect(200)
    got = api.get(f"{NEW}/e1").expect(200)
    assert got["regarding"] == {"kind": "Pod", "namespace": "default", "name": "web-1"}
    assert got["deprecatedCount"] == 3 and got["note"] == "first"
    # A json patch's path is in the patching API's names: core has no /note.
    api.patch(f"{CORE}/e1", [{"op": "replace", "path": "/note", "value": "x"}], "json").expect(422)
    # Removing a field through one API removes its counterpart for the other.
    api.patch(f"{CORE}/e1", {"message": None}).expect(200)
    assert "note" not in api.get(f"{NEW}/e1").expect(200)


def test_update_with_a_stale_version_conflicts_in_the_callers_words(api: Api) -> None:
    created = api.post(NEW, new_event("e1")).expect(201)
    api.patch(f"{CORE}/e1", {"message": "moved on"}).expect(200)
    created["metadata"]["labels"] = {"mine": "yes"}
    stale = api.put(f"{NEW}/e1", created).expect_status(409, "Conflict")
    assert 'events.events.k8s.io "e1"' in stale["message"]


def test_delete_through_one_api_is_gone_from_both(api: Api) -> None:
    api.post(CORE, core_event("c1")).expect(201)
    api.post(NEW, new_event("n1")).expect(201)
    done = api.delete(f"{NEW}/c1").expect(200)
    assert done["status"] == "Success" and done["details"]["group"] == "events.k8s.io"
    api.delete(f"{CORE}/n1").expect(200)
    for path in (CORE, NEW):
        for name in ("c1", "n1"):
            api.get(f"{path}/{name}").expect(404)
        assert names(api.get(path).expect(200)) == []


def test_deletecollection_through_events_api_with_a_field_selector(api: Api) -> None:
    api.post(CORE, core_event("c1", "a")).expect(201)
    api.post(CORE, core_event("c2", "b")).expect(201)
    api.post(NEW, new_event("n1", "a")).expect(201)
    gone = api.delete(NEW, query={"fieldSelector": "regarding.name=a"}).expect(200)
    assert gone["apiVersion"] == "events.k8s.io/v1" and names(gone) == ["c1", "n1"]
    assert all("regarding" in i for i in gone["items"])
    assert names(api.get(CORE).expect(200)) == ["c2"]


def test_server_side_apply_through_events_api(api: Api) -> None:
    api.post(CORE, core_event("e1", message="first", series=SERIES)).expect(201)

    def apply(name: str, body: JSON, **query: str) -> Any:
        return api.patch(f"{NEW}/{name}", body, "apply", query={"fieldManager": "me", **query})

    series = {**SERIES, "count": 5}
    config = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"}}
    # The fields the core create set belong to before-first-apply, in the events API's names.
    conflict = apply("e1", {**config, "series": series}).expect_status(409, "Conflict")
    assert {c["field"] for c in conflict["details"]["causes"]} == {".series.count"}
    forced = apply("e1", {**config, "series": series}, force="true").expect(200)
    assert forced["series"]["count"] == 5
    assert api.get(f"{CORE}/e1").expect(200)["series"]["count"] == 5
    # kube's events.k8s.io update may change only the series: the note stays as created.
    refused = apply("e1", {**config, "series": series, "note": "a"}, force="true")
    causes = refused.expect_status(422, "Invalid")["details"]["causes"]
    assert [(c["field"], c["message"].endswith("field is immutable")) for c in causes] == [
        ("message", True)
    ]
    created = apply("e2", new_event("e2", note="made by apply"))
    assert created.expect(201)["note"] == "made by apply"
    assert api.get(f"{CORE}/e2").expect(200)["message"] == "made by apply"


def test_namespace_deletion_removes_events_written_through_either_api(api: Api) -> None:
    api.post("/api/v1/namespaces", {"metadata": {"name": "gone"}}).expect(201)
    pod = {"kind": "Pod", "namespace": "gone", "name": "p"}  # (an Event is in its object's)
    api.post("/api/v1/namespaces/gone/events", core_event("c1", involvedObject=pod)).expect(201)
    api.post(
        "/apis/events.k8s.io/v1/namespaces/gone/events", new_event("n1", regarding=pod)
    ).expect(201)
    api.delete("/api/v1/namespaces/gone").expect(200)
    api.get("/api/v1/namespaces/gone").expect(404)
    assert names(api.get("/apis/events.k8s.io/v1/events").expect(200)) == []


# ------------------------------------------------------------------------------- watches


def writes_through_both(api: Api) -> list[str]:
    """Create, patch and delete through alternating APIs; return each write's version."""
    rvs = [
        api.post(CORE, core_event("e1", message="one")).rv,
        api.post(NEW, new_event("e2", note="two")).rv,
        # (an update through events.k8s.io may change only the series and metadata)
        api.patch(f"{NEW}/e1", {"series": SERIES}).rv,
        api.patch(f"{CORE}/e2", {"message": "two!"}).rv,
    ]
    api.delete(f"{NEW}/e2").expect(200)  # (answered with a Status: the list says its version)
    return [*rvs, api.get(NEW).rv]


def seen(events: list[JSON]) -> list[tuple[str, str, str, str | None]]:
    """(type, name, resourceVersion, the message in the stream's own names) per event."""
    out = []
    for e in events:
        obj = e["object"]
        text = obj.get("note", obj.get("message"))
        out.append((e["type"], obj["metadata"]["name"], obj["metadata"]["resourceVersion"], text))
    return out


def test_each_api_watches_the_others_writes_converted_once_each_in_order(
    api: Api, watch: Watch
) -> None:
    start = api.get(CORE).rv
    core_w = watch(CORE, resourceVersion=start)
    new_w = watch(NEW, resourceVersion=start)
    rvs = writes_through_both(api)
    assert [int(r) for r in rvs] == list(range(int(start) + 1, int(start) + 6))
    expected = [
        ("ADDED", "e1", rvs[0], "one"),
        ("ADDED", "e2", rvs[1], "two"),
        ("MODIFIED", "e1", rvs[2], "one"),
        ("MODIFIED", "e2", rvs[3], "two!"),
        ("DELETED", "e2", rvs[4], "two!"),
    ]
    core_events, new_events = core_w.take(5), new_w.take(5)
    assert seen(core_events) == seen(new_events) == expected
    assert all(e["object"]["apiVersion"] == "v1" for e in core_events)
    assert all("message" in e["object"] and "note" not in e["object"] for e in core_events)
    assert all(e["object"]["apiVersion"] == "events.k8s.io/v1" for e in new_events)
    assert all("note" in e["object"] and "message" not in e["object"] for e in new_events)
    assert all(e["object"]["regarding"]["name"] == "web-0" for e in new_events)
    # Exactly one event per write: the next line of each is a later write's.
    marker = api.post(CORE, core_event("marker")).rv
    assert seen(new_w.take(1))[0][2] == seen(core_w.take(1))[0][2] == marker
    # And resumed from history, either API replays the same writes in its own shape.
    for path, key in ((NEW, "note"), (CORE, "message")):
        resumed = watch(path, resourceVersion=start).take(6)
        assert seen(resumed)[:5] == expected
        assert all(key in e["object"] for e in resumed[:5])


def test_watch_with_events_api_field_selector_sees_core_writes(api: Api, watch: Watch) -> None:
    w = watch(NEW, resourceVersion=api.get(NEW).rv, fieldSelector="regarding.name=a")
    api.post(CORE, core_event("other", "b")).expect(201)
    mine = api.post(CORE, core_event("mine", "a")).rv
    # Patched out of the selection: DELETED for this watch (the watch cache's translation).
    gone = api.patch(f"{CORE}/mine", {"involvedObject": {"name": "c"}}).rv
    got = w.take(2)
    assert [(e["type"], e["object"]["metadata"]["resourceVersion"]) for e in got] == [
        ("ADDED", mine),
        ("DELETED", gone),
    ]
    assert got[0]["object"]["regarding"]["name"] == "a"


def test_events_api_watch_bookmarks_and_initial_events(api: Api, watch: Watch) -> None:
    api.post(CORE, core_event("e1")).expect(201)
    w = watch(
        NEW,
        allowWatchBookmarks="true",
        sendInitialEvents="true",
        resourceVersionMatch="NotOlderThan",
    )
    first = w.take(1)[0]
    assert first["type"] == "ADDED" and first["object"]["regarding"]["name"] == "web-0"
    end = w.until(lambda e: e["type"] == "BOOKMARK")["object"]
    assert end["apiVersion"] == "events.k8s.io/v1" and end["kind"] == "Event"
    assert end["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_table_watch_of_the_events_api_sees_core_writes(api: Api, watch: Watch) -> None:
    w = watch(NEW, resourceVersion=api.get(NEW).rv, headers={"Accept": TABLE})
    made = api.post(CORE, core_event("e1")).rv
    table = w.take(1)[0]["object"]
    assert table["kind"] == "Table" and table["metadata"]["resourceVersion"] == made
    assert table["rows"][0]["object"]["metadata"]["name"] == "e1"


def test_one_store_event_per_write_whichever_api(server: FakeApiServer, api: Api) -> None:
    start = server.store.resource_version
    writes_through_both(api)
    history = server.store.events_since(start)
    assert [e.type for e in history] == ["ADDED", "ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    # Kept as the storage kind, in its shape (what the ledger records).
    assert {(e.resource.group, e.resource.plural) for e in history} == {("", "events")}
    assert all(e.obj["apiVersion"] == "v1" and "note" not in e.obj for e in history)


# ------------------------------------------------------------------------- real clients


@pytest.fixture
def api_client(server: FakeApiServer) -> Iterator[client.ApiClient]:
    """The official python client, configured from the server's kubeconfig."""
    path = server.kubeconfig("python")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as c:
        yield c


def test_python_client_writes_through_one_api_reads_through_the_other(
    api_client: client.ApiClient,
) -> None:
    core, events = client.CoreV1Api(api_client), client.EventsV1Api(api_client)
    core.create_namespaced_event(
        "default",
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="old-style"),
            involved_object=client.V1ObjectReference(kind="Pod", name="web-0", namespace="default"),
            reason="Pulled",
            message="pulled the image",
            type="Normal",
            source=client.V1EventSource(component="kubelet", host="node-1"),
            count=3,
            # This client's EventsV1Event requires eventTime when it reads one back (kube
            # would send null for a core Event without it, which the client refuses too);
            # with it, kube wants the reporter and the action too.
            event_time=datetime(2026, 1, 1, tzinfo=UTC),
            reporting_component="kubelet",
            reporting_instance="kubelet-node-1",
            action="Pulling",
        ),
    )
    when = datetime(2026, 1, 2, tzinfo=UTC)
    events.create_namespaced_event(
        "default",
        client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="new-style"),
            event_time=when,
            regarding=client.V1ObjectReference(kind="Pod", name="web-0", namespace="default"),
            reason="Scheduled",
            note="assigned to node-1",
            type="Normal",
            action="Binding",
            reporting_controller="scheduler",
            reporting_instance="scheduler-1",
        ),
    )
    listed = events.list_namespaced_event("default", field_selector="regarding.name=web-0")
    by_name = {e.metadata.name: e for e in listed.items}
    assert sorted(by_name) == ["new-style", "old-style"]
    old = by_name["old-style"]
    assert (old.note, old.deprecated_count, old.regarding.kind) == ("pulled the image", 3, "Pod")
    assert old.deprecated_source.component == "kubelet"
    new = core.read_namespaced_event("new-style", "default")
    assert (new.message, new.reporting_component, new.involved_object.name) == (
        "assigned to node-1",
        "scheduler",
        "web-0",
    )
    assert new.event_time == when and new.action == "Binding"
    picked = core.list_namespaced_event("default", field_selector="source=scheduler")
    assert [e.metadata.name for e in picked.items] == ["new-style"]
    events.patch_namespaced_event(
        "old-style", "default", {"series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00Z"}}
    )
    assert core.read_namespaced_event("old-style", "default").series.count == 2
    core.delete_namespaced_event("new-style", "default")
    with pytest.raises(ApiException) as gone:
        events.read_namespaced_event("new-style", "default")
    assert gone.value.status == 404


def test_python_client_watch_of_the_events_api_sees_core_writes(
    api_client: client.ApiClient,
) -> None:
    core, events = client.CoreV1Api(api_client), client.EventsV1Api(api_client)
    rv = events.list_namespaced_event("default").metadata.resource_version
    core.create_namespaced_event(
        "default",
        client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="e1"),
            involved_object=client.V1ObjectReference(kind="Pod", name="web-0"),
            message="hello",
            event_time=datetime(2026, 1, 1, tzinfo=UTC),  # (see the test above)
            reason="Greeted",
            action="Greeting",
            reporting_component="greeter",
            reporting_instance="greeter-1",
        ),
    )
    core.delete_namespaced_event("e1", "default")
    w = watch.Watch()
    seen = []
    for item in w.stream(
        events.list_namespaced_event, "default", resource_version=rv, timeout_seconds=10
    ):
        seen.append((item["type"], item["object"].note, item["object"].regarding.name))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "hello", "web-0"), ("DELETED", "hello", "web-0")]


KUBECTL = shutil.which("kubectl")


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_gets_events_through_both_apis(
    server: FakeApiServer, api: Api, tmp_path: Path
) -> None:
    assert KUBECTL is not None
    api.post(CORE, core_event("from-core", message="core says")).expect(201)
    # (kubectl events selects on involvedObject.apiVersion too)
    pod = {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "web-1"}
    api.post(NEW, new_event("from-new", note="new says", regarding=pod)).expect(201)
    kubeconfig = server.kubeconfig("kubectl", tmp_path / "kubeconfig")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "KUBECONFIG": str(kubeconfig)}

    def kubectl(*args: str) -> str:
        argv = [KUBECTL, f"--cache-dir={tmp_path / 'cache'}", *args]
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=30, check=False
        )
        assert done.returncode == 0 and done.stderr == "", done.stderr
        return done.stdout

    rows = kubectl("get", "events").splitlines()
    assert rows[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert [r.split()[-3:] for r in rows[1:]] == [
        ["pod/web-0", "core", "says"],
        ["pod/web-1", "new", "says"],
    ]
    as_core = json.loads(kubectl("get", "events", "-o", "json"))
    assert [i["message"] for i in as_core["items"]] == ["core says", "new says"]
    as_new = json.loads(kubectl("get", "events.v1.events.k8s.io", "-o", "json"))
    assert {i["apiVersion"] for i in as_new["items"]} == {"events.k8s.io/v1"}
    assert [i["note"] for i in as_new["items"]] == ["core says", "new says"]
    selected = kubectl(
        "get", "events.events.k8s.io", "--field-selector", "regarding.name=web-1", "-o", "name"
    )
    assert selected.split() == ["event.events.k8s.io/from-new"]
    shown = kubectl("events", "--for", "Pod/web-1")
    assert "new says" in shown and "core says" not in shown


# ------------------------------------------------------------------------------ validation


def test_every_event_write_passes_kubes_legacy_checks(api: Api) -> None:
    # An old-style Event (no eventTime) is in its object's namespace, or about an object
    # without one while in "default".
    elsewhere = {"kind": "Pod", "namespace": "other", "name": "p"}
    assert api.post(CORE, core_event("a", involvedObject=elsewhere)).invalid_causes() == [
        ("involvedObject.namespace", 'Invalid value: "other": does not match event.namespace')
    ]
    api.post(CORE, core_event("b", involvedObject={"kind": "Node", "name": "n"})).expect(201)
    # A new-style one (with eventTime) names its reporter and its action, through core too.
    new_style = core_event("c", eventTime="2026-01-01T00:00:00.000000Z", reason="")
    assert api.post(CORE, new_style).invalid_causes() == [
        ("reportingController", "Required value"),
        ("reportingInstance", "Required value"),
        ("action", "Required value"),
        ("reason", "Required value"),
    ]
    long = core_event(
        "d",
        eventTime="2026-01-01T00:00:00.000000Z",
        reportingComponent="not a name!",
        reportingInstance="i" * 129,
        action="a",
        message="m" * 1025,
    )
    assert api.post(CORE, long).invalid_causes() == [
        (
            "reportingController",
            'Invalid value: "not a name!": name part must consist of alphanumeric characters, '
            "'-', '_' or '.', and must start and end with an alphanumeric character",
        ),
        ("reportingInstance", 'Invalid value: "": can have at most 128 characters'),
        ("message", 'Invalid value: "": can have at most 1024 characters'),
    ]
    # Through core, an update may change anything the legacy checks allow.
    api.patch(f"{CORE}/b", {"message": "changed", "count": 2}).expect(200)


def test_events_api_writes_get_kubes_strict_checks(api: Api) -> None:
    bare = {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": "x"},
        "regarding": {"kind": "Pod", "namespace": "default", "name": "p"},
        "type": "Info",
        "deprecatedCount": 3,
        "deprecatedSource": {"component": "old"},
        "series": {"count": 1},
    }
    assert api.post(NEW, bare).invalid_causes() == [
        ("series.count", 'Invalid value: "": should be at least 2'),
        ("series.lastObservedTime", "Required value"),
        ("eventTime", "Required value"),
        ("type", 'Invalid value: "": has invalid value: Info'),
        ("count", 'Invalid value: "": needs to be unset'),
        ("source", 'Invalid value: "": needs to be unset'),
    ]
    api.post(NEW, new_event("ok")).expect(201)
    # An update through events.k8s.io may change the series and metadata, nothing else.
    api.patch(f"{NEW}/ok", {"series": SERIES, "metadata": {"labels": {"a": "b"}}}).expect(200)
    refused = api.patch(f"{NEW}/ok", {"note": "rewritten", "reason": "Other"})
    assert [f for f, _ in refused.invalid_causes()] == ["reason", "message", "reason"]
    assert api.get(f"{NEW}/ok").expect(200).get("note") is None
    # The same change through core is allowed (legacy checks only), as in kube.
    api.patch(f"{CORE}/ok", {"message": "rewritten"}).expect(200)


def test_a_put_of_a_missing_event_creates_it_through_either_api(api: Api) -> None:
    made = api.put(f"{NEW}/p1", new_event("p1")).expect(201)  # kube's AllowCreateOnUpdate
    assert api.get(f"{CORE}/p1").expect(200)["metadata"]["uid"] == made["metadata"]["uid"]
    api.put(f"{CORE}/p2", core_event("p2")).expect(201)
    # Created through a PUT, still validated as a create of that API.
    fields = [f for f, _ in api.put(f"{NEW}/p3", {**new_event("p3"), "type": "X"}).invalid_causes()]
    assert fields == ["type"]
