"""PriorityClasses (scheduling.k8s.io/v1) over real HTTP: kube's default preemption policy,
its validation on create and update, kubectl's columns and its protobuf generator, the
official client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

JSON = dict[str, Any]
CLASSES = "/apis/scheduling.k8s.io/v1/priorityclasses"
RESERVED = "Forbidden: priority class names with 'system-' prefix are reserved for system use only."


def priority_class(name: str, value: int = 1000, **fields: Any) -> JSON:
    """A PriorityClass manifest."""
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": name},
        "value": value,
        **fields,
    }


def test_a_class_is_defaulted_and_keeps_generation_one(api: Api) -> None:
    made = api.post(CLASSES, priority_class("high", description="batch")).expect(201)
    assert (made["value"], made["preemptionPolicy"]) == (1000, "PreemptLowerPriority")
    assert "globalDefault" not in made  # (false, and Go's JSON omits it)
    assert made["metadata"]["generation"] == 1
    assert "namespace" not in made["metadata"]
    # What may change does, and kube's strategy never bumps generation.
    changed = api.patch(f"{CLASSES}/high", {"description": "later", "globalDefault": True})
    body = changed.expect(200)
    assert (body["description"], body["globalDefault"]) == ("later", True)
    assert body["metadata"]["generation"] == 1
    assert api.get(f"{CLASSES}/high").expect(200) == body


def test_value_and_preemption_policy_are_immutable(api: Api) -> None:
    api.post(CLASSES, priority_class("never", preemptionPolicy="Never")).expect(201)
    assert api.patch(f"{CLASSES}/never", {"value": 7}).invalid_causes() == [
        ("value", "Forbidden: may not be changed in an update.")
    ]
    moved = api.patch(f"{CLASSES}/never", {"preemptionPolicy": "PreemptLowerPriority"})
    assert moved.invalid_causes() == [
        ("preemptionPolicy", 'Invalid value: "PreemptLowerPriority": field is immutable')
    ]
    # A PUT that leaves the policy out asks for the default, which is a change here.
    current = api.get(f"{CLASSES}/never").expect(200)
    del current["preemptionPolicy"]
    assert [f for f, _ in api.put(f"{CLASSES}/never", current).invalid_causes()] == [
        "preemptionPolicy"
    ]
    assert api.get(f"{CLASSES}/never").expect(200)["preemptionPolicy"] == "Never"


@pytest.mark.parametrize(
    ("sent", "cause"),
    [
        (
            priority_class("too-high", 1_000_000_001),
            ("value", "Forbidden: maximum allowed value of a user defined priority is 1000000000"),
        ),
        (
            priority_class("system-mine", 5),
            (
                "metadata.name",
                f"{RESERVED} error: system-mine is not a known system priority class",
            ),
        ),
        (
            priority_class("system-node-critical", 5),
            (
                "metadata.name",
                f"{RESERVED} error: value of system-node-critical PriorityClass must be 2000001000",
            ),
        ),
        (
            priority_class("system-cluster-critical", 2_000_000_000, globalDefault=True),
            (
                "metadata.name",
                f"{RESERVED} error: globalDefault of system-cluster-critical PriorityClass "
                "must be false",
            ),
        ),
        (
            priority_class("odd", preemptionPolicy="Sometimes"),
            (
                "preemptionPolicy",
                'Unsupported value: "Sometimes": supported values: "PreemptLowerPriority", "Never"',
            ),
        ),
        (priority_class("blank", preemptionPolicy=""), ("preemptionPolicy", "Required value")),
    ],
    ids=["over-1e9", "unknown-system", "system-value", "system-default", "policy", "empty"],
)
def test_kubes_validation_on_create(api: Api, sent: JSON, cause: tuple[str, str]) -> None:
    assert api.post(CLASSES, sent).invalid_causes() == [cause]


def test_the_system_classes_may_be_created_with_their_values(api: Api) -> None:
    for name, value in (("system-node-critical", 2_000_001_000), ("system-cluster-critical", 2e9)):
        api.post(CLASSES, priority_class(name, int(value))).expect(201)
    names = [item["metadata"]["name"] for item in api.get(CLASSES).expect(200)["items"]]
    assert names == ["system-cluster-critical", "system-node-critical"]


def test_the_official_client_reads_and_writes_classes(server: FakeApiServer) -> None:
    path = server.kubeconfig("python")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api:
        scheduling = client.SchedulingV1Api(api)
        body = client.V1PriorityClass(
            metadata=client.V1ObjectMeta(name="batch"), value=100, description="batch jobs"
        )
        made = scheduling.create_priority_class(body)
        assert (made.value, made.preemption_policy, made.global_default) == (
            100,
            "PreemptLowerPriority",
            None,
        )
        listed = scheduling.list_priority_class()
        assert [c.metadata.name for c in listed.items] == ["batch"]
        with pytest.raises(client.ApiException) as refused:
            scheduling.patch_priority_class("batch", {"value": 200})
        assert refused.value.status == 422
        scheduling.delete_priority_class("batch")
        assert scheduling.list_priority_class().items == []


def test_kubectl_creates_classes_and_prints_kubes_columns(
    kubectl: Any, server: FakeApiServer
) -> None:
    # kubectl's generator sends the class as protobuf (kinds/scheduling.py lays it out).
    kubectl("create", "priorityclass", "high", "--value=1000", "--description=urgent")
    kubectl("create", "pc", "low", "--value=-5", "--preemption-policy=Never")
    high = server.get("scheduling.k8s.io/v1", "PriorityClass", "high")
    assert (high["value"], high["description"], high["preemptionPolicy"]) == (
        1000,
        "urgent",
        "PreemptLowerPriority",
    )
    rows = [line.split() for line in kubectl("get", "pc").splitlines()]
    assert [row[:3] + row[4:] for row in rows] == [
        ["NAME", "VALUE", "GLOBAL-DEFAULT", "PREEMPTIONPOLICY"],
        ["high", "1000", "false", "PreemptLowerPriority"],
        ["low", "-5", "false", "Never"],
    ]
    resources = kubectl("api-resources", "--api-group=scheduling.k8s.io").splitlines()
    assert resources[1].split() == [
        "priorityclasses",
        "pc",
        "scheduling.k8s.io/v1",
        "false",
        "PriorityClass",
    ]
