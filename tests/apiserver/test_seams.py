"""The server's named seams: the watch hub and the scheduler's gate on FakeApiServer, the
store's served view, the resourceVersion a response served (RequestInfo.served_rv), and the
store's injected clock in what the CRD machinery writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from crds import WIDGET_CRD

from pytest_ntinvariants.apiserver import FakeApiServer, Interceptor, RequestInfo, Store
from pytest_ntinvariants.apiserver.hooks import Gate

if TYPE_CHECKING:
    from conftest import Api

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


class Served(Interceptor):
    """Records (verb, status, served_rv) of every resource request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, str | None]] = []

    def on_response(self, request: RequestInfo, status: int, body: bytes) -> None:
        if request.verb:
            self.seen.append((request.verb, status, request.served_rv))


def test_the_hub_and_the_gate_are_the_servers(server: FakeApiServer) -> None:
    assert server.hub is server.handler.hub
    gate = Gate()
    server.gate = gate
    assert server.handler.gate is gate and server.gate is gate
    server.gate = None
    assert server.handler.gate is None


def test_a_response_names_the_resource_version_it_served(server: FakeApiServer, api: Api) -> None:
    served = Served()
    server.interceptors.append(served)
    made = api.post(CONFIGMAPS, {"metadata": {"name": "a"}}).expect(201)
    api.get(f"{CONFIGMAPS}/a").expect(200)
    listed = api.get(CONFIGMAPS).expect(200)
    api.post(CONFIGMAPS, {"metadata": {"name": "b"}}, query={"dryRun": "All"}).expect(201)
    api.get(f"{CONFIGMAPS}/missing").expect(404)
    rv = made["metadata"]["resourceVersion"]
    assert served.seen == [
        ("create", 201, rv),
        ("get", 200, rv),
        ("list", 200, listed["metadata"]["resourceVersion"]),
        ("create", 201, None),  # a dry-run create's object has no resourceVersion
        ("get", 404, None),
    ]


def test_the_store_serves_each_version_in_the_types_own_api_version() -> None:
    store = Store()
    core = store.registry.lookup("", "v1", "events")
    events = store.registry.lookup("events.k8s.io", "v1", "events")
    assert core is not None and events is not None
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started",
    }
    v = store.create(core, "default", event)
    assert store.served(v, core) is v
    assert store.served(v, events).obj["apiVersion"] == "events.k8s.io/v1"


def test_a_crds_status_is_written_at_the_stores_time() -> None:
    when = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    store = Store(clock=lambda: when)
    crds = store.registry.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    assert crds is not None
    crd = store.create(crds, "", WIDGET_CRD)
    times = {c["lastTransitionTime"] for c in crd.obj["status"]["conditions"]}
    assert times == {"2031-02-03T04:05:06Z"}
