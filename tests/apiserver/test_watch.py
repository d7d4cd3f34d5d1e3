"""Watch streams over real HTTP: versions, resume, 410, bookmarks, selectors, Tables, fan-out.

Every wait here is for a line the server must send; nothing sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from pytest_ntinvariants.apiserver import FakeApiServer, Interceptor, RequestInfo, Watcher

if TYPE_CHECKING:
    from conftest import Api, Stream

CMS = "/api/v1/namespaces/default/configmaps"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
Watch = Callable[..., "Stream"]


def cm(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": {},
    }


def widget(name: str, size: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": size},
    }


def rv_of(event: dict[str, Any]) -> str:
    rv = event["object"]["metadata"]["resourceVersion"]
    assert isinstance(rv, str)
    return rv


def list_rv(api: Api, path: str) -> str:
    return api.get(path).rv


def test_each_write_sends_one_event_with_the_writes_version(api: Api, watch: Watch) -> None:
    w = watch(WIDGETS, resourceVersion=list_rv(api, WIDGETS))
    assert w.status == 200 and w.resp.headers["Content-Type"] == "application/json"
    created = api.post(WIDGETS, widget("a")).expect(201)
    patched = api.patch(f"{WIDGETS}/a", {"spec": {"size": 2}}).expect(200)
    status = api.patch(f"{WIDGETS}/a/status", {"status": {"phase": "Up"}}).expect(200)
    # A no-op write (same values) gets the old version back and sends no event.
    noop = api.patch(f"{WIDGETS}/a", {"spec": {"size": 2}}).expect(200)
    assert noop["metadata"]["resourceVersion"] == status["metadata"]["resourceVersion"]
    put = api.put(f"{WIDGETS}/a", noop).expect(200)
    assert put["metadata"]["resourceVersion"] == status["metadata"]["resourceVersion"]
    # A custom resource deleted at once answers with a Success Status, as kube does.
    deleted = api.delete(f"{WIDGETS}/a").expect(200)
    assert deleted["status"] == "Success"
    assert deleted["details"]["uid"] == created["metadata"]["uid"]
    events = w.take(4)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"]
    assert [rv_of(e) for e in events] == [
        *(r["metadata"]["resourceVersion"] for r in (created, patched, status)),
        list_rv(api, WIDGETS),
    ]
    assert [int(rv_of(e)) for e in events] == sorted(int(rv_of(e)) for e in events)
    assert events[2]["object"]["status"] == {"phase": "Up"}


def test_resume_from_any_version_in_history(api: Api, watch: Watch) -> None:
    start = int(list_rv(api, CMS))
    rvs = [int(api.post(CMS, cm(f"c{i}")).rv) for i in range(4)]
    api.patch(f"{CMS}/c0", {"data": {"k": "v"}}).expect(200)
    rvs.append(int(api.get(f"{CMS}/c0").rv))
    for since in [start, *rvs[:-1]]:
        w = watch(CMS, resourceVersion=str(since))
        expected = [rv for rv in rvs if rv > since]
        got = w.take(len(expected))
        assert [int(rv_of(e)) for e in got] == expected, since
        w.close()
    # Nothing beyond: the next line after the last one is a fresh write.
    w = watch(CMS, resourceVersion=str(rvs[-1]))
    marker = api.post(CMS, cm("marker")).rv
    assert rv_of(w.take(1)[0]) == marker


def test_compacted_version_gets_an_in_stream_410(
    server: FakeApiServer, api: Api, watch: Watch
) -> None:
    old = list_rv(api, CMS)
    api.post(CMS, cm("a")).expect(201)
    server.store.compact()
    w = watch(CMS, resourceVersion=old)
    # HTTP 200 with an ERROR event: kopf relists on it, and dies on an HTTP 410.
    assert w.status == 200
    event = w.next()
    assert event is not None and event["type"] == "ERROR"
    status = event["object"]
    assert status["kind"] == "Status" and status["code"] == 410
    assert status["reason"] == "Expired" and status["status"] == "Failure"
    assert w.next() is None  # and the stream ends
    # The compacted version itself is still fine (history after it is complete).
    w2 = watch(CMS, resourceVersion=str(server.store.resource_version))
    marker = api.post(CMS, cm("b")).rv
    assert rv_of(w2.take(1)[0]) == marker


@pytest.mark.parametrize("rv", [None, "0"])
def test_no_version_sends_existing_objects_then_live(
    api: Api, watch: Watch, rv: str | None
) -> None:
    api.post(CMS, cm("a")).expect(201)
    api.post(CMS, cm("b")).expect(201)
    w = watch(CMS, **({} if rv is None else {"resourceVersion": rv}))
    first = w.take(2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in first] == [
        ("ADDED", "a"),
        ("ADDED", "b"),
    ]
    live = api.post(CMS, cm("c")).rv
    e = w.take(1)[0]
    assert (e["type"], rv_of(e)) == ("ADDED", live)


def test_bookmarks_when_asked(server: FakeApiServer, api: Api, watch: Watch) -> None:
    rv = list_rv(api, WIDGETS)
    plain = watch(WIDGETS, resourceVersion=rv)
    w = watch(WIDGETS, resourceVersion=rv, allowWatchBookmarks="true")
    bookmark = w.until(lambda e: e["type"] == "BOOKMARK")
    obj = bookmark["object"]
    assert obj["kind"] == "Widget" and obj["apiVersion"] == "example.com/v1"
    assert obj["metadata"]["resourceVersion"] == rv
    created = api.post(WIDGETS, widget("a")).rv
    assert rv_of(w.take(1)[0]) == created
    later = w.until(lambda e: e["type"] == "BOOKMARK")
    assert later["object"]["metadata"]["resourceVersion"] == created
    # A watch that did not ask gets none: its next line is the next event.
    second = api.post(WIDGETS, widget("b")).rv
    got = [plain.next(), plain.next()]
    assert [e["type"] for e in got if e] == ["ADDED", "ADDED"]
    assert rv_of(got[1]) == second  # type: ignore[arg-type]


def test_timeout_seconds_zero_means_the_servers_limit(api: Api, watch: Watch) -> None:
    w = watch(CMS, resourceVersion=list_rv(api, CMS), timeoutSeconds="0")
    made = api.post(CMS, cm("a")).rv
    assert rv_of(w.take(1)[0]) == made  # still open: 0 is "no limit of mine", not "now"


@pytest.mark.parametrize("timeout", ["0.2", "1"])  # kopf sends floats as str(float)
def test_timeout_seconds_closes_the_stream(api: Api, watch: Watch, timeout: str) -> None:
    w = watch(CMS, resourceVersion=list_rv(api, CMS), timeoutSeconds=timeout)
    assert w.status == 200
    assert w.rest() == []


def test_bad_timeout_is_400(api: Api) -> None:
    api.get(CMS, query={"watch": "true", "timeoutSeconds": "soon"}).expect_status(400, "BadRequest")


def test_send_initial_events(api: Api, watch: Watch) -> None:
    api.post(CMS, cm("a")).expect(201)
    rv = list_rv(api, CMS)
    w = watch(
        CMS,
        sendInitialEvents="true",
        allowWatchBookmarks="true",
        resourceVersionMatch="NotOlderThan",
        resourceVersion="",
    )
    added = w.next()
    assert added is not None and added["type"] == "ADDED"
    end = w.until(lambda e: e["type"] == "BOOKMARK")
    meta = end["object"]["metadata"]
    assert meta["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert meta["resourceVersion"] == rv
    live = api.post(CMS, cm("b")).rv
    assert rv_of(w.take(1)[0]) == live


@pytest.mark.parametrize(
    "query",
    [
        {"sendInitialEvents": "true"},
        {"sendInitialEvents": "true", "allowWatchBookmarks": "true"},
        {"sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan"},
    ],
)
def test_send_initial_events_without_its_companions_is_422(api: Api, query: dict[str, str]) -> None:
    api.get(CMS, query={"watch": "true", **query}).expect_status(422, "Invalid")


def test_label_selector_transitions(api: Api, watch: Watch) -> None:
    w = watch(CMS, resourceVersion=list_rv(api, CMS), labelSelector="app=x")
    api.post(CMS, cm("a", app="y")).expect(201)  # outside: nothing
    entered = api.patch(f"{CMS}/a", {"metadata": {"labels": {"app": "x"}}}).rv
    inside = api.patch(f"{CMS}/a", {"data": {"k": "v"}}).rv
    left = api.patch(f"{CMS}/a", {"metadata": {"labels": {"app": "z"}}}).rv
    api.patch(f"{CMS}/a", {"data": {"k": "w"}}).expect(200)  # outside again: nothing
    marker = api.post(CMS, cm("m", app="x")).rv
    events = w.take(4)
    assert [(e["type"], rv_of(e)) for e in events] == [
        ("ADDED", entered),
        ("MODIFIED", inside),
        ("DELETED", left),
        ("ADDED", marker),
    ]


def test_field_selector_on_name(api: Api, watch: Watch) -> None:
    w = watch(CMS, resourceVersion=list_rv(api, CMS), fieldSelector="metadata.name=b")
    api.post(CMS, cm("a")).expect(201)
    mine = api.post(CMS, cm("b")).rv
    api.post(CMS, cm("c")).expect(201)
    api.delete(f"{CMS}/b").expect(200)
    gone = list_rv(api, CMS)
    assert [(e["type"], rv_of(e)) for e in w.take(2)] == [("ADDED", mine), ("DELETED", gone)]


def test_deprecated_watch_path_prefix(api: Api, watch: Watch) -> None:
    rv = list_rv(api, CMS)
    w = watch("/api/v1/watch/namespaces/default/configmaps", resourceVersion=rv, watch=None)
    one = watch("/api/v1/watch/namespaces/default/configmaps/b", resourceVersion=rv, watch=None)
    a = api.post(CMS, cm("a")).rv
    b = api.post(CMS, cm("b")).rv
    assert [rv_of(e) for e in w.take(2)] == [a, b]
    # The single-object form watches that object only.
    assert [rv_of(e) for e in one.take(1)] == [b]


def test_watch_query_on_an_object_path_is_a_get(api: Api) -> None:
    api.post(CMS, cm("a")).expect(201)
    # kube resolves ?watch on a named path as a plain GET (RequestInfoFactory).
    got = api.get(f"{CMS}/a", query={"watch": "true"}).expect(200)
    assert got["metadata"]["name"] == "a"


def test_table_watch(api: Api, watch: Watch) -> None:
    w = watch(WIDGETS, resourceVersion=list_rv(api, WIDGETS), headers={"Accept": TABLE})
    assert w.resp.headers["Content-Type"] == TABLE
    created = api.post(WIDGETS, widget("a", 4)).rv
    e = w.take(1)[0]
    table = e["object"]
    assert e["type"] == "ADDED" and table["kind"] == "Table"
    assert table["metadata"]["resourceVersion"] == created
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:2] == ["Name", "Size"]
    row = table["rows"][0]
    assert row["cells"][:2] == ["a", 4]
    assert row["object"]["metadata"]["name"] == "a"


def test_watch_of_a_cluster_scoped_kind(api: Api, watch: Watch) -> None:
    w = watch("/api/v1/namespaces", resourceVersion=list_rv(api, "/api/v1/namespaces"))
    made = api.post("/api/v1/namespaces", {"metadata": {"name": "ns1"}}).rv
    e = w.take(1)[0]
    assert (e["type"], rv_of(e), e["object"]["status"]["phase"]) == ("ADDED", made, "Active")


class _WriteOnOpen(Interceptor):
    """Writes to the store the moment a watch opens, before its backlog is queued."""

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server
        self.written: list[str] = []

    def on_watch_open(self, request: RequestInfo, watcher: Watcher) -> None:
        v = self.server.apply(cm(f"live{len(self.written)}"))[0]
        self.written.append(v["metadata"]["resourceVersion"])


def test_events_written_while_a_watch_opens_come_after_its_backlog(
    server: FakeApiServer, api: Api, watch: Watch
) -> None:
    api.post(CMS, cm("old")).expect(201)
    hook = _WriteOnOpen(server)
    server.add_interceptor(hook)
    w = watch(CMS)
    events = w.take(2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "old"),
        ("ADDED", "live0"),
    ]
    assert rv_of(events[1]) == hook.written[0]


def test_concurrent_watchers_each_see_every_event_once_in_order(api: Api, watch: Watch) -> None:
    # Api opens a connection per request, so one instance serves every thread.
    rv = list_rv(api, CMS)
    streams = [watch(CMS, resourceVersion=rv) for _ in range(6)]
    writes = 40
    expected: list[str] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        for j in range(writes // 4):
            r = api.post(CMS, cm(f"w{i}-{j}")).rv
            with lock:
                expected.append(r)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = sorted(expected, key=int)
    for s in streams:
        assert [rv_of(e) for e in s.take(writes)] == want
    # Exactly once: the next line on each stream is a fresh marker.
    marker = api.post(CMS, cm("marker")).rv
    for s in streams:
        assert rv_of(s.take(1)[0]) == marker


def test_watch_serves_its_own_version_of_a_multi_version_crd(api: Api, watch: Watch) -> None:
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
    api.post(
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        {
            "metadata": {"name": "things.ex.io"},
            "spec": {
                "group": "ex.io",
                "scope": "Namespaced",
                "names": {"plural": "things", "kind": "Thing"},
                "versions": versions,
            },
        },
    ).expect(201)
    v1 = "/apis/ex.io/v1/namespaces/default/things"
    w = watch(v1, resourceVersion=list_rv(api, v1))
    made = api.post(
        "/apis/ex.io/v2/namespaces/default/things",
        {"apiVersion": "ex.io/v2", "kind": "Thing", "metadata": {"name": "a"}},
    )
    assert made.expect(201)["apiVersion"] == "ex.io/v2"
    # Written through v2, watched through v1: the event is a v1 object, as a GET would be.
    assert w.take(1)[0]["object"]["apiVersion"] == "ex.io/v1"
    assert api.get(f"{v1}/a").expect(200)["apiVersion"] == "ex.io/v1"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_watch_replay_matches_list_under_random_writes(api: Api, watch: Watch, seed: int) -> None:
    """Model check: folding a selector watch's events gives exactly what a LIST returns."""
    import random

    rng = random.Random(seed)
    start = list_rv(api, CMS)
    selector = "app=x"
    watches = [
        watch(CMS, resourceVersion=start, labelSelector=selector),
        watch(CMS, resourceVersion=start),
    ]
    names = [f"o{i}" for i in range(6)]
    for _ in range(60):
        name, op = rng.choice(names), rng.random()
        labels = {"app": rng.choice(["x", "y"])}
        if op < 0.35:
            api.post(CMS, cm(name, **labels))  # 409 when it exists: fine, no event
        elif op < 0.75:
            api.patch(
                f"{CMS}/{name}",
                {"metadata": {"labels": labels}, "data": {"n": str(rng.randrange(3))}},
            )
        else:
            api.delete(f"{CMS}/{name}")
    marker = api.post(CMS, cm("marker", app="x")).rv
    for w, query in zip(watches, [{"labelSelector": selector}, {}], strict=True):
        seen: dict[str, str] = {}
        last = 0
        while True:
            e = w.take(1)[0]
            rv = int(rv_of(e))
            assert rv > last, "events arrive in resourceVersion order"
            last = rv
            name = e["object"]["metadata"]["name"]
            if e["type"] == "DELETED":
                assert seen.pop(name, None) is not None, f"DELETED for unseen {name}"
            else:
                assert (e["type"] == "ADDED") == (name not in seen), e["type"]
                seen[name] = rv_of(e)
            if rv_of(e) == marker:
                break
        listed = api.get(CMS, query=query).expect(200)
        assert seen == {
            i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listed["items"]
        }


def test_watches_opened_during_writes_fold_to_the_final_list(api: Api, watch: Watch) -> None:
    """rv=0 watches opened while writers run: backlog then live, no gap, no duplicate."""
    stop = threading.Event()

    def writer(i: int) -> None:
        n = 0
        while not stop.is_set():
            api.patch(f"{CMS}/w{i}", {"data": {"n": str(n)}}).expect(200)
            n += 1

    for i in range(3):
        api.post(CMS, cm(f"w{i}")).expect(201)
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        streams = [watch(CMS) for _ in range(5)]
    finally:
        stop.set()
        for t in threads:
            t.join()
    marker = api.post(CMS, cm("marker")).rv
    final = {
        i["metadata"]["name"]: i["metadata"]["resourceVersion"]
        for i in api.get(CMS).expect(200)["items"]
    }
    for s in streams:
        seen: dict[str, str] = {}
        last = 0
        for e in iter(s.next, None):
            rv = int(rv_of(e))
            name = e["object"]["metadata"]["name"]
            if e["type"] == "MODIFIED":
                assert rv > last, "live events come after the backlog, in order"
                assert name in seen
            last = max(last, rv)
            seen[name] = rv_of(e)
            if rv_of(e) == marker:
                break
        assert seen == final


class _Interleave(Interceptor):
    """On one GET, a write from another thread, then one from the server's own thread.

    The loop is busy in this hook while the other thread writes, so that write's
    delivery is still queued when the loop-thread write happens.
    """

    def __init__(self, server: FakeApiServer) -> None:
        self.server = server

    async def on_request(self, request: RequestInfo) -> None:
        if request.verb == "get" and request.name == "trigger":
            other = threading.Thread(target=self.server.apply, args=(cm("from-thread"),))
            other.start()
            other.join()
            self.server.apply(cm("from-loop"))


def test_writes_from_other_threads_and_the_loop_stay_in_order(
    server: FakeApiServer, api: Api, watch: Watch
) -> None:
    w = watch(CMS, resourceVersion=list_rv(api, CMS))
    server.add_interceptor(_Interleave(server))
    api.get(f"{CMS}/trigger")
    events = w.take(2)
    assert [e["object"]["metadata"]["name"] for e in events] == ["from-thread", "from-loop"]
    assert int(rv_of(events[0])) < int(rv_of(events[1]))


def test_deleting_the_crd_ends_the_watches_of_its_resource(api: Api, watch: Watch) -> None:
    # kube tears the resource's storage down with its CRD: every watch of it ends, after
    # the DELETED events of the objects the CRD's cleanup removed; other watches go on.
    api.post(WIDGETS, widget("a")).expect(201)
    start = list_rv(api, WIDGETS)
    widgets = watch(WIDGETS, resourceVersion=start)
    everywhere = watch("/apis/example.com/v1/widgets", resourceVersion=start)
    configmaps = watch(CMS, resourceVersion=list_rv(api, CMS))
    api.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    for stream in (widgets, everywhere):
        rest = [e for e in stream.rest() if e["type"] != "BOOKMARK"]
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in rest] == [("DELETED", "a")]
    api.get(WIDGETS).expect_status(404, "NotFound")
    mine = api.post(CMS, cm("still")).rv
    assert [rv_of(e) for e in configmaps.take(1)] == [mine]
