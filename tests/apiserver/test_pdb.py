"""PodDisruptionBudgets (policy/v1) over real HTTP: kube's empty status on create, its
validation, kubectl's columns and its protobuf generator, the official client."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client, config

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

JSON = dict[str, Any]
PDBS = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"
ZERO_STATUS = {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def pdb(name: str, **spec: Any) -> JSON:
    """A PodDisruptionBudget manifest selecting app=web."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec},
    }


def test_a_budget_is_created_with_kubes_empty_status(api: Api) -> None:
    sent = pdb("web", minAvailable=2)
    sent["status"] = {"disruptionsAllowed": 5}  # (a create's status is the server's)
    made = api.post(PDBS, sent).expect(201)
    assert made["spec"] == {"selector": {"matchLabels": {"app": "web"}}, "minAvailable": 2}
    assert made["status"] == ZERO_STATUS
    assert made["metadata"]["generation"] == 1
    # The disruption controller's write of status; its counters are written as Go does.
    status = {"status": {"disruptionsAllowed": 1, "expectedPods": 3}}
    written = api.patch(f"{PDBS}/web/status", status).expect(200)
    assert written["status"] == {**ZERO_STATUS, "disruptionsAllowed": 1, "expectedPods": 3}
    assert written["metadata"]["generation"] == 1
    # A spec change bumps generation and keeps the status.
    changed = api.patch(f"{PDBS}/web", {"spec": {"minAvailable": "50%"}}).expect(200)
    assert (changed["metadata"]["generation"], changed["status"]) == (2, written["status"])


def test_min_available_and_max_unavailable_cannot_be_both_set(api: Api) -> None:
    ((field, message),) = api.post(
        PDBS, pdb("both", minAvailable=1, maxUnavailable=1)
    ).invalid_causes()
    assert field == "spec"
    assert message.startswith("Invalid value: policy.PodDisruptionBudgetSpec{MinAvailable:")
    assert message.endswith(": minAvailable and maxUnavailable cannot be both set")
    api.post(PDBS, pdb("one", minAvailable=1)).expect(201)
    refused = api.patch(f"{PDBS}/one", {"spec": {"maxUnavailable": 1}})
    assert [f for f, _ in refused.invalid_causes()] == ["spec"]


@pytest.mark.parametrize(
    ("spec", "field", "detail"),
    [
        ({"minAvailable": -1}, "spec.minAvailable", "Invalid value: -1: must be greater than"),
        ({"maxUnavailable": "half"}, "spec.maxUnavailable", "a valid percent string must be"),
        ({"maxUnavailable": "150%"}, "spec.maxUnavailable", "must not be greater than 100%"),
        (
            {"unhealthyPodEvictionPolicy": "Never"},
            "spec.unhealthyPodEvictionPolicy",
            'Unsupported value: "Never": supported values: "AlwaysAllow", "IfHealthyBudget"',
        ),
        (
            {"selector": {"matchExpressions": [{"key": "app", "operator": "Is"}]}},
            "spec.selector.matchExpressions[0].operator",
            'Invalid value: "Is": not a valid selector operator',
        ),
        (
            {"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
            "spec.selector.matchExpressions[0].values",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ),
    ],
)
def test_kubes_validation_of_the_spec(api: Api, spec: JSON, field: str, detail: str) -> None:
    ((got_field, message),) = api.post(PDBS, pdb("bad", **spec)).invalid_causes()
    assert got_field == field
    assert detail in message


def test_status_counters_are_never_negative(api: Api) -> None:
    api.post(PDBS, pdb("web", maxUnavailable="25%")).expect(201)
    refused = api.patch(f"{PDBS}/web/status", {"status": {"currentHealthy": -1}})
    assert refused.invalid_causes() == [
        ("status.currentHealthy", "Invalid value: -1: must be greater than or equal to 0")
    ]


def test_the_official_client_reads_and_writes_budgets(server: FakeApiServer) -> None:
    path = server.kubeconfig("python")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api:
        policy = client.PolicyV1Api(api)
        body = client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=1,
                selector=client.V1LabelSelector(match_labels={"app": "web"}),
            ),
        )
        made = policy.create_namespaced_pod_disruption_budget("default", body)
        assert made.status.disruptions_allowed == 0 and made.status.expected_pods == 0
        policy.patch_namespaced_pod_disruption_budget_status(
            "web", "default", {"status": {"disruptionsAllowed": 1, "currentHealthy": 2}}
        )
        read = policy.read_namespaced_pod_disruption_budget("web", "default")
        assert (read.status.disruptions_allowed, read.status.current_healthy) == (1, 2)
        with pytest.raises(client.ApiException) as refused:
            body.metadata.name = "both"
            body.spec.max_unavailable = "10%"
            policy.create_namespaced_pod_disruption_budget("default", body)
        assert refused.value.status == 422


@needs_kubectl
def test_kubectl_creates_budgets_and_prints_kubes_columns(
    kubectl: Any, server: FakeApiServer
) -> None:
    # kubectl's generator sends the budget as protobuf (kinds/policy.py lays it out).
    kubectl("create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=2")
    kubectl("create", "pdb", "api", "--selector=app=api", "--max-unavailable=25%")
    assert server.get("policy/v1", "PodDisruptionBudget", "web")["spec"] == {
        "minAvailable": 2,
        "selector": {"matchLabels": {"app": "web"}},
    }
    rows = [line.split()[:-1] for line in kubectl("get", "pdb").splitlines()]
    assert rows == [
        ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS"],
        ["api", "N/A", "25%", "0"],
        ["web", "2", "N/A", "0"],
    ]
