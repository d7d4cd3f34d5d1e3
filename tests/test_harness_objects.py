"""``ntinv.get`` and ``ntinv.list``: private copies of what the server holds."""

from __future__ import annotations

import re

import pytest

from pytest_ntinvariants.apiserver import ApiError
from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.report import timeline


def cm(name: str, namespace: str = "default", **labels: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
    }


def test_list_filters_by_namespace_and_selectors(ntinv: Harness) -> None:
    ntinv.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    ntinv.apply(cm("a", app="x", tier="web"))
    ntinv.apply(cm("b", app="x", tier="db"))
    ntinv.apply(cm("c", "other", app="x"))

    def names(objs: list[dict[str, object]]) -> list[str]:
        return [o["metadata"]["name"] for o in objs]  # type: ignore[index]

    assert names(ntinv.list("v1", "ConfigMap")) == ["a", "b", "c"]  # by namespace, then name
    assert names(ntinv.list("v1", "ConfigMap", "default")) == ["a", "b"]
    assert names(ntinv.list("v1", "ConfigMap", label_selector="app=x,tier!=db")) == ["a", "c"]
    assert names(ntinv.list("v1", "ConfigMap", field_selector="metadata.name=b")) == ["b"]
    copy = ntinv.list("v1", "ConfigMap", "default")[0]
    copy["metadata"]["labels"]["app"] = "changed"  # type: ignore[index]
    assert ntinv.get("v1", "ConfigMap", "a")["metadata"]["labels"]["app"] == "x"
    with pytest.raises(ApiError, match="unable to parse requirement"):
        ntinv.list("v1", "ConfigMap", label_selector="a in (")


def test_apply_of_an_existing_object_is_recorded_as_an_update(ntinv: Harness) -> None:
    """The timeline once labelled it "(create)"."""
    ntinv.apply(cm("a"))
    ntinv.apply(cm("a", app="y"))
    verbs = [(v.type, v.verb) for v in ntinv.ledger.versions(name="a")]
    assert verbs == [("ADDED", "create"), ("MODIFIED", "update")]


def test_the_timeline_labels_an_apply_by_what_the_server_did(ntinv: Harness) -> None:
    """And says what the update changed (once "metadata changed": every write changes the
    resourceVersion)."""
    ntinv.apply(cm("a", app="x"))
    ntinv.apply(cm("a", app="y"))
    text = timeline(ntinv.ledger)
    assert re.search(r"test  created ConfigMap default/a rv \d+$", text, re.M), text
    assert re.search(
        r"test  wrote ConfigMap default/a rv \d+ \(update\): metadata.labels changed$", text, re.M
    ), text
