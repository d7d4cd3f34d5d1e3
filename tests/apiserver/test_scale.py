"""The scale subresource: an object's replicas as an autoscaling/v1 Scale, for the built-in
workloads and for custom resources whose CRD declares ``subresources.scale``."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import pytest
from test_client_kubectl import KUBECTL, Kubectl

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

JSON = dict[str, Any]
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
SELECTOR = {
    "matchLabels": {"app": "web"},
    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "edge"]}],
}
DEPLOYMENT: JSON = {
    "metadata": {"name": "web"},
    "spec": {"replicas": 2, "selector": SELECTOR, "template": {"metadata": {}, "spec": {}}},
}


def test_a_deployments_scale_reads_and_writes_its_replicas(api: Api) -> None:
    made = api.post(DEPLOYS, DEPLOYMENT).expect(201)
    scale = api.get(f"{DEPLOYS}/web/scale").expect(200)
    assert scale == {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: made["metadata"][k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": 2},
        "status": {"replicas": 0, "selector": "app=web,tier in (edge,front)"},
    }
    # A merge patch of the Scale is a write of the deployment: new version, new generation.
    patched = api.patch(f"{DEPLOYS}/web/scale", {"spec": {"replicas": 5}}).expect(200)
    assert patched["kind"] == "Scale" and patched["spec"]["replicas"] == 5
    stored = api.get(f"{DEPLOYS}/web").expect(200)
    assert stored["spec"]["replicas"] == 5 and stored["metadata"]["generation"] == 2
    assert patched["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert stored["spec"]["selector"] == SELECTOR  # nothing else changed
    # A PUT of the Scale: its resourceVersion is the precondition.
    stale = copy.deepcopy(scale)
    stale["spec"]["replicas"] = 7
    api.put(f"{DEPLOYS}/web/scale", stale).expect_status(409, "Conflict")
    fresh = {**patched, "spec": {"replicas": 3}}
    assert api.put(f"{DEPLOYS}/web/scale", fresh).expect(200)["spec"]["replicas"] == 3
    bad = api.patch(f"{DEPLOYS}/web/scale", {"spec": {"replicas": -1}})
    assert bad.expect_status(422, "Invalid")["message"] == (
        'Scale.autoscaling "web" is invalid: spec.replicas: Invalid value: -1: must be '
        "greater than or equal to 0"
    )
    api.get("/api/v1/namespaces/default/configmaps/x/scale").expect_status(404, "NotFound")


SCALED_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "pools.example.org"},
    "spec": {
        "group": "example.org",
        "scope": "Namespaced",
        "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.size",
                        "statusReplicasPath": ".status.ready",
                        "labelSelectorPath": ".status.selector",
                    },
                },
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


def test_a_custom_resource_scales_by_the_paths_its_crd_names(
    server: FakeApiServer, api: Api
) -> None:
    server.apply(SCALED_CRD)
    pools = "/apis/example.org/v1/namespaces/default/pools"
    api.post(pools, {"metadata": {"name": "p"}, "spec": {"size": 1}}).expect(201)
    status = {"status": {"ready": 1, "selector": "pool=p"}}
    api.patch(f"{pools}/p/status", status).expect(200)
    scale = api.get(f"{pools}/p/scale").expect(200)
    assert (scale["spec"], scale["status"]) == (
        {"replicas": 1},
        {"replicas": 1, "selector": "pool=p"},
    )
    api.patch(f"{pools}/p/scale", {"spec": {"replicas": 4}}).expect(200)
    assert api.get(f"{pools}/p").expect(200)["spec"] == {"size": 4}


@pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
def test_kubectl_scale(server: FakeApiServer, tmp_path: Any) -> None:
    kubectl = Kubectl(server, tmp_path)
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2").ok()
    assert kubectl("scale", "deployment", "web", "--replicas=5").ok().strip() == (
        "deployment.apps/web scaled"
    )
    assert kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}").ok() == "5"
    # --current-replicas is a precondition kubectl checks against the Scale.
    refused = kubectl("scale", "deployment", "web", "--current-replicas=2", "--replicas=1")
    assert refused.rc != 0 and "Expected replicas to be 2, was 5" in refused.stderr


def test_apply_to_scale_is_refused_clearly(api: Api) -> None:
    api.post(DEPLOYS, DEPLOYMENT).expect(201)
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"}}
    reply = api.patch(f"{DEPLOYS}/web/scale", scale, "apply", query={"fieldManager": "me"})
    assert (
        "patch (merge or json) or replace the Scale"
        in reply.expect_status(415, "UnsupportedMediaType")["message"]
    )
