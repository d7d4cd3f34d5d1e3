"""Regression: a watch resumed from a resourceVersion replays only its own resource's
history, although history is global (kopf's CRD watcher died on a NotificationRequest
event replayed to it after a dropped stream)."""

from __future__ import annotations

import json
import urllib.request

from pytest_ntinvariants.apiserver import FakeApiServer


def test_resumed_watch_replays_only_its_resource() -> None:
    with FakeApiServer() as server:
        start = server.store.resource_version
        server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
        server.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}})
        server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}})
        url = (
            f"{server.url}/api/v1/namespaces/default/configmaps?watch=true"
            f"&resourceVersion={start}&timeoutSeconds=0.2"
        )
        with urllib.request.urlopen(url, timeout=5) as resp:
            events = [json.loads(line) for line in resp]
    assert [(e["type"], e["object"]["kind"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "ConfigMap", "c"),
        ("ADDED", "ConfigMap", "d"),
    ]
