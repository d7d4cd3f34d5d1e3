"""NetworkPolicies (networking.k8s.io/v1) over real HTTP: kube's defaults (policyTypes, a
port's protocol, the always-written podSelector), its validation, kubectl's columns and
manifests, the official client."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from kubernetes import client, config

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

JSON = dict[str, Any]
NETPOLS = "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies"
KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")


def netpol(name: str, **spec: Any) -> JSON:
    """A NetworkPolicy manifest."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_a_policy_without_types_is_an_ingress_policy(api: Api) -> None:
    made = api.post(NETPOLS, netpol("deny-all", podSelector={})).expect(201)
    assert made["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert made["metadata"]["generation"] == 1
    assert "status" not in made
    # (the podSelector is a struct: Go writes it even when none was sent)
    assert api.post(NETPOLS, netpol("bare")).expect(201)["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }


def test_egress_rules_add_the_egress_type_and_ports_get_tcp(api: Api) -> None:
    sent = netpol(
        "web",
        podSelector={"matchLabels": {"app": "web"}},
        ingress=[{"ports": [{"port": 80}, {"port": "dns", "protocol": "UDP"}]}],
        egress=[{"to": [{"namespaceSelector": {}}], "ports": [{"port": 53}]}],
    )
    made = api.post(NETPOLS, sent).expect(201)
    assert made["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert made["spec"]["ingress"] == [
        {"ports": [{"port": 80, "protocol": "TCP"}, {"port": "dns", "protocol": "UDP"}]}
    ]
    assert made["spec"]["egress"][0]["ports"] == [{"port": 53, "protocol": "TCP"}]
    # Types given are kept; an update is defaulted too.
    sent = netpol("out", egress=[{}], policyTypes=["Egress"])
    assert api.post(NETPOLS, sent).expect(201)["spec"]["policyTypes"] == ["Egress"]
    patched = api.patch(f"{NETPOLS}/out", {"spec": {"policyTypes": None}}).expect(200)
    assert patched["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert patched["metadata"]["generation"] == 2


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
            [
                (
                    "spec.podSelector.matchExpressions[0].values",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                )
            ],
        ),
        (
            {"ingress": [{"ports": [{"port": 0}, {"port": 70000, "protocol": "ICMP"}]}]},
            [
                (
                    "spec.ingress[0].ports[0].port",
                    "Invalid value: 0: must be between 1 and 65535, inclusive",
                ),
                (
                    "spec.ingress[0].ports[1].protocol",
                    'Unsupported value: "ICMP": supported values: "TCP", "UDP", "SCTP"',
                ),
                (
                    "spec.ingress[0].ports[1].port",
                    "Invalid value: 70000: must be between 1 and 65535, inclusive",
                ),
            ],
        ),
        (
            {
                "egress": [
                    {"ports": [{"port": 8080, "endPort": 80}, {"port": "http", "endPort": 90}]}
                ]
            },
            [
                (
                    "spec.egress[0].ports[0].endPort",
                    "Invalid value: 8080: must be greater than or equal to `port`",
                ),
                (
                    "spec.egress[0].ports[1].endPort",
                    "Invalid value: 90: may not be specified when `port` is non-numeric",
                ),
            ],
        ),
        (
            {"ingress": [{"ports": [{"port": "Web--"}]}]},
            [
                (
                    "spec.ingress[0].ports[0].port",
                    'Invalid value: "Web--": must contain only alpha-numeric characters '
                    "(a-z, 0-9), and hyphens (-)",
                ),
                (
                    "spec.ingress[0].ports[0].port",
                    'Invalid value: "Web--": must not contain consecutive hyphens',
                ),
                (
                    "spec.ingress[0].ports[0].port",
                    'Invalid value: "Web--": must not begin or end with a hyphen',
                ),
            ],
        ),
        (
            {
                "ingress": [
                    {
                        "from": [
                            {},
                            {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
                            {"ipBlock": {}},
                        ]
                    }
                ]
            },
            [
                ("spec.ingress[0].from[0]", "Required value: must specify a peer"),
                (
                    "spec.ingress[0].from[1]",
                    "Forbidden: may not specify both ipBlock and another peer",
                ),
                ("spec.ingress[0].from[2].ipBlock.cidr", "Required value"),
            ],
        ),
        (
            {"policyTypes": ["Ingress", "Sideways"]},
            [
                (
                    "spec.policyTypes[1]",
                    'Unsupported value: "Sideways": supported values: "Ingress", "Egress"',
                )
            ],
        ),
        (
            {"policyTypes": ["Ingress", "Egress", "Ingress"]},
            [
                (
                    "spec.policyTypes",
                    'Invalid value: []networking.PolicyType{"Ingress", "Egress", "Ingress"}: '
                    "may not specify more than two policyTypes",
                )
            ],
        ),
    ],
)
def test_kubes_validation_of_the_spec(
    api: Api, spec: JSON, expected: list[tuple[str, str]]
) -> None:
    assert api.post(NETPOLS, netpol("bad", **spec)).invalid_causes() == expected


def test_an_update_is_validated_too(api: Api) -> None:
    api.post(NETPOLS, netpol("web", podSelector={})).expect(201)
    refused = api.patch(f"{NETPOLS}/web", {"spec": {"ingress": [{"from": [{}]}]}})
    assert refused.invalid_causes() == [
        ("spec.ingress[0].from[0]", "Required value: must specify a peer")
    ]


def test_the_table_prints_the_pod_selector(api: Api) -> None:
    api.post(NETPOLS, netpol("all")).expect(201)
    sent = netpol(
        "web",
        podSelector={
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
        },
    )
    api.post(NETPOLS, sent).expect(201)
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io"
    table = api.get(NETPOLS, headers={"Accept": accept}).expect(200)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Pod-Selector", "Age"]
    assert [r["cells"][:2] for r in table["rows"]] == [
        ["all", "<none>"],
        ["web", "app=web,tier in (a,b)"],
    ]


def test_the_official_client_reads_and_writes_policies(server: FakeApiServer) -> None:
    path = server.kubeconfig("python")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api:
        networking = client.NetworkingV1Api(api)
        body = client.V1NetworkPolicy(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1NetworkPolicySpec(
                pod_selector=client.V1LabelSelector(match_labels={"app": "web"}),
                egress=[
                    client.V1NetworkPolicyEgressRule(
                        ports=[client.V1NetworkPolicyPort(port=443)],
                        to=[
                            client.V1NetworkPolicyPeer(ip_block=client.V1IPBlock(cidr="0.0.0.0/0"))
                        ],
                    )
                ],
            ),
        )
        made = networking.create_namespaced_network_policy("default", body)
        assert made.spec.policy_types == ["Ingress", "Egress"]
        assert made.spec.egress[0].ports[0].protocol == "TCP"
        listed = networking.list_namespaced_network_policy("default")
        assert [p.metadata.name for p in listed.items] == ["web"]
        read = networking.read_namespaced_network_policy("web", "default")
        assert read.spec.pod_selector.match_labels == {"app": "web"}
        with pytest.raises(client.ApiException) as refused:
            body.metadata.name = "bad"
            body.spec.policy_types = ["Sideways"]
            networking.create_namespaced_network_policy("default", body)
        assert refused.value.status == 422
        networking.delete_namespaced_network_policy("web", "default")
        assert networking.list_namespaced_network_policy("default").items == []


@needs_kubectl
def test_kubectl_applies_policies_and_prints_kubes_columns(kubectl: Any) -> None:
    manifests = [
        netpol("deny-all", podSelector={}),
        netpol(
            "web",
            podSelector={"matchLabels": {"app": "web"}},
            ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "lb"}}}]}],
            egress=[{"ports": [{"port": 53, "protocol": "UDP"}]}],
        ),
    ]
    applied = kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
    assert applied.splitlines() == [
        "networkpolicy.networking.k8s.io/deny-all created",
        "networkpolicy.networking.k8s.io/web created",
    ]
    rows = [line.split()[:-1] for line in kubectl("get", "netpol").splitlines()]
    assert rows == [["NAME", "POD-SELECTOR"], ["deny-all", "<none>"], ["web", "app=web"]]
    shown = yaml.safe_load(kubectl("get", "networkpolicy", "web", "-o", "yaml"))
    assert shown["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert shown["spec"]["ingress"] == [
        {"from": [{"podSelector": {"matchLabels": {"role": "lb"}}}]}
    ]
    # A second apply of the same manifests changes nothing.
    again = kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests))
    assert again.splitlines() == [
        "networkpolicy.networking.k8s.io/deny-all unchanged",
        "networkpolicy.networking.k8s.io/web unchanged",
    ]
