"""Kubernetes protobuf bodies: kubectl's typed generators against the fake, and the decoder.

kubectl sends the objects its generators build (``kubectl create namespace``, ``… deployment``,
``auth can-i`` …) as ``application/vnd.kubernetes.protobuf``. Each kubectl test runs the real
command, checks that protobuf is what reached the server, that the body decodes to exactly
what ``kubectl … --dry-run=client -o json`` prints for the same object (Go's own JSON of it),
and then what the server stored, field by field. The decoder's own tests build bodies with
its message classes, and break them on purpose.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_client_kubectl import KUBECTL, Kubectl

from pytest_ntinvariants.apiserver import FakeApiServer, errors
from pytest_ntinvariants.apiserver import protobuf as pb
from pytest_ntinvariants.apiserver.hooks import Interceptor, RequestInfo

if TYPE_CHECKING:
    from conftest import Api

JSON = dict[str, Any]
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
CMS = "/api/v1/namespaces/default/configmaps"


class Bodies(Interceptor):
    """Every request body as the server received it, with its Content-Type."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    async def on_request(self, request: RequestInfo) -> None:
        """Record the body of each write."""
        if request.body:
            self.seen.append((request.content_type, request.body))


class Generators:
    """kubectl bound to one server, checking each generator's body against Go's JSON."""

    def __init__(self, server: FakeApiServer, workdir: Path) -> None:
        self.server = server
        self.kubectl = Kubectl(server, workdir)
        self.bodies = Bodies()
        server.interceptors.append(self.bodies)

    def create(self, *args: str) -> JSON:
        """Run ``kubectl create args…``; return the object kubectl sent, decoded.

        The object is first printed with ``--dry-run=client -o json``: that is the JSON of
        the object kubectl then sends as protobuf, and what the decoder must make of it.
        """
        __tracebackhide__ = True
        flags, command = list(args), []
        if "--" in flags:  # a command for the container goes last
            flags, command = flags[: flags.index("--")], flags[flags.index("--") :]
        expected = json.loads(
            self.kubectl("create", *flags, "--dry-run=client", "-o", "json", *command).ok()
        )
        before = len(self.bodies.seen)
        self.kubectl("create", *args).ok()
        sent = self.bodies.seen[before:]
        assert [ctype for ctype, _ in sent] == [pb.MEDIA_TYPE], sent
        decoded = pb.decode(sent[0][1])
        assert decoded == expected
        return decoded

    def stored(self, api_version: str, kind: str, name: str) -> JSON:
        """The object as the server keeps it."""
        return self.server.get(api_version, kind, name)


@pytest.fixture
def gen(server: FakeApiServer, tmp_path: Path) -> Generators:
    """kubectl's generators against the shared test server."""
    return Generators(server, tmp_path)


# ------------------------------------------------------------------ kubectl's generators


@needs_kubectl
def test_create_namespace(gen: Generators) -> None:
    gen.create("namespace", "team-a")
    ns = gen.stored("v1", "Namespace", "team-a")
    assert ns["metadata"]["name"] == "team-a"
    assert ns["status"] == {"phase": "Active"}
    assert ns["spec"] == {"finalizers": ["kubernetes"]}
    rows = gen.kubectl("get", "namespace", "team-a", "-o", "name").ok()
    assert rows == "namespace/team-a\n"


@needs_kubectl
def test_create_configmap_text_and_binary(gen: Generators, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xff\xfe")  # not UTF-8: kubectl puts it in binaryData
    gen.create(
        "configmap", "c", "--from-literal=a=b", "--from-literal=empty=", f"--from-file={blob}"
    )
    cm = gen.stored("v1", "ConfigMap", "c")
    assert cm["data"] == {"a": "b", "empty": ""}
    assert cm["binaryData"] == {"blob.bin": base64.b64encode(b"\x00\xff\xfe").decode()}
    assert "immutable" not in cm


@needs_kubectl
def test_create_secret_generic(gen: Generators) -> None:
    gen.create("secret", "generic", "s", "--from-literal=k=v", "--type=example.com/token")
    secret = gen.stored("v1", "Secret", "s")
    assert secret["data"] == {"k": base64.b64encode(b"v").decode()}
    assert secret["type"] == "example.com/token"
    gen.create("secret", "generic", "plain", "--from-literal=user=admin")
    assert gen.stored("v1", "Secret", "plain")["type"] == "Opaque"  # the server's default


@needs_kubectl
def test_create_serviceaccount(gen: Generators) -> None:
    sent = gen.create("serviceaccount", "robot")
    assert sent == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "robot", "creationTimestamp": None},
    }
    sa = gen.stored("v1", "ServiceAccount", "robot")
    assert set(sa) == {"apiVersion", "kind", "metadata"}
    assert sa["metadata"]["name"] == "robot" and sa["metadata"]["uid"]


@needs_kubectl
def test_create_deployment(gen: Generators) -> None:
    gen.create("deployment", "web", "--image=nginx", "--replicas=2", "--port=8080")
    spec = gen.stored("apps/v1", "Deployment", "web")["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    template = spec["template"]
    assert template["metadata"]["labels"] == {"app": "web"}
    (container,) = template["spec"]["containers"]
    assert {k: container[k] for k in ("name", "image", "ports", "resources")} == {
        "name": "nginx",
        "image": "nginx",
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],  # (protocol: kube's default)
        "resources": {},
    }
    # kubectl sends an empty strategy; kube stores its defaults.
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }


@needs_kubectl
def test_create_deployment_with_zero_replicas_keeps_the_zero(gen: Generators) -> None:
    # replicas is a pointer in Go: 0 on the wire is "zero replicas", not "unset".
    gen.create("deployment", "idle", "--image=nginx", "--replicas=0")
    assert gen.stored("apps/v1", "Deployment", "idle")["spec"]["replicas"] == 0


@needs_kubectl
def test_create_role_and_rolebinding(gen: Generators) -> None:
    gen.create("role", "reader", "--verb=get,list", "--resource=pods,deployments.apps")
    assert gen.stored("rbac.authorization.k8s.io/v1", "Role", "reader")["rules"] == [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["get", "list"], "apiGroups": ["apps"], "resources": ["deployments"]},
    ]
    gen.create("rolebinding", "rb", "--role=reader", "--user=alice", "--serviceaccount=default:sa")
    rb = gen.stored("rbac.authorization.k8s.io/v1", "RoleBinding", "rb")
    assert rb["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
        {"kind": "ServiceAccount", "name": "sa", "namespace": "default"},
    ]
    assert rb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "reader",
    }


@needs_kubectl
def test_create_clusterrole_and_clusterrolebinding(gen: Generators) -> None:
    gen.create("clusterrole", "pod-reader", "--verb=get", "--resource=pods", "--resource-name=p1")
    gen.create("clusterrole", "logs", "--verb=get", "--non-resource-url=/logs/*")
    gen.create("clusterrole", "aggregate", "--aggregation-rule=rbac.example.com/agg=true")
    rbac = "rbac.authorization.k8s.io/v1"
    assert gen.stored(rbac, "ClusterRole", "pod-reader")["rules"] == [
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["p1"]}
    ]
    assert gen.stored(rbac, "ClusterRole", "logs")["rules"] == [
        {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}
    ]
    aggregate = gen.stored(rbac, "ClusterRole", "aggregate")
    # Rules has no omitempty in Go: a role without rules says null, as kube's does.
    assert aggregate["rules"] is None
    assert aggregate["aggregationRule"] == {
        "clusterRoleSelectors": [{"matchLabels": {"rbac.example.com/agg": "true"}}]
    }
    gen.create("clusterrolebinding", "crb", "--clusterrole=pod-reader", "--group=devs")
    crb = gen.stored(rbac, "ClusterRoleBinding", "crb")
    assert crb["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"}
    ]
    assert crb["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "pod-reader",
    }


@needs_kubectl
def test_create_job_and_cronjob(gen: Generators) -> None:
    gen.create("job", "j", "--image=busybox", "--", "echo", "hi")
    pod = gen.stored("batch/v1", "Job", "j")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert {k: container[k] for k in ("name", "image", "command", "resources")} == {
        "name": "j",
        "image": "busybox",
        "command": ["echo", "hi"],
        "resources": {},
    }
    assert pod["restartPolicy"] == "Never"
    gen.create("cronjob", "cj", "--image=busybox", "--schedule=*/5 * * * *")
    spec = gen.stored("batch/v1", "CronJob", "cj")["spec"]
    assert spec["schedule"] == "*/5 * * * *"
    assert spec["jobTemplate"]["metadata"]["name"] == "cj"
    job_pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert job_pod["containers"][0]["image"] == "busybox"
    assert job_pod["restartPolicy"] == "OnFailure"


@needs_kubectl
def test_create_services(gen: Generators) -> None:
    gen.create("service", "clusterip", "s", "--tcp=80:8080")
    spec = gen.stored("v1", "Service", "s")["spec"]
    assert spec["ports"] == [{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}]
    assert spec["selector"] == {"app": "s"}
    assert spec["type"] == "ClusterIP"
    gen.create("service", "nodeport", "np", "--tcp=443:https", "--node-port=30443")
    (port,) = gen.stored("v1", "Service", "np")["spec"]["ports"]
    assert port["targetPort"] == "https"  # an IntOrString holding a string
    assert port["nodePort"] == 30443


@needs_kubectl
def test_create_quota_pdb_and_ingress(gen: Generators) -> None:
    gen.create("quota", "q", "--hard=pods=3,requests.cpu=500m")
    assert gen.stored("v1", "ResourceQuota", "q")["spec"] == {
        "hard": {"pods": "3", "requests.cpu": "500m"}
    }
    gen.create("poddisruptionbudget", "pdb", "--selector=app=web", "--max-unavailable=25%")
    assert gen.stored("policy/v1", "PodDisruptionBudget", "pdb")["spec"] == {
        "maxUnavailable": "25%",
        "selector": {"matchLabels": {"app": "web"}},
    }
    gen.create("ingress", "ing", "--rule=example.com/api*=api:8080")
    rules = gen.stored("networking.k8s.io/v1", "Ingress", "ing")["spec"]["rules"]
    assert rules == [
        {
            "host": "example.com",
            "http": {
                "paths": [
                    {
                        "path": "/api",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "api", "port": {"number": 8080}}},
                    }
                ]
            },
        }
    ]


@needs_kubectl
def test_run_creates_a_pod(gen: Generators) -> None:
    # kubectl run builds its Pod as unstructured JSON, not protobuf: it worked before too.
    gen.kubectl("run", "p", "--image=nginx", "--labels=tier=web").ok()
    pod = gen.stored("v1", "Pod", "p")
    assert pod["metadata"]["labels"] == {"tier": "web"}
    assert [(c["name"], c["image"]) for c in pod["spec"]["containers"]] == [("p", "nginx")]


@needs_kubectl
def test_auth_can_i(gen: Generators) -> None:
    assert gen.kubectl("auth", "can-i", "create", "pods").ok() == "yes\n"
    assert gen.kubectl("auth", "can-i", "get", "/healthz").ok() == "yes\n"
    rows = [line.split() for line in gen.kubectl("auth", "can-i", "--list").ok().splitlines()]
    assert rows[0] == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert ["*.*", "[]", "[]", "[*]"] in rows
    assert all(ctype == pb.MEDIA_TYPE for ctype, _ in gen.bodies.seen)
    assert len(gen.bodies.seen) == 3


@needs_kubectl
def test_whoami_over_http_is_anonymous(gen: Generators) -> None:
    # kubectl keeps its bearer token from a plain-http server.
    rows = [line.split() for line in gen.kubectl("auth", "whoami").ok().splitlines()]
    assert ["Username", "system:anonymous"] in rows


@needs_kubectl
def test_whoami_over_tls_is_the_kubeconfig_identity(tmp_path: Path) -> None:
    with FakeApiServer(tls=True) as server:
        gen = Generators(server, tmp_path)
        rows = [line.split() for line in gen.kubectl("auth", "whoami").ok().splitlines()]
        assert ["Username", "kubectl"] in rows  # the identity test_client_kubectl's helper uses
        assert ["Groups", "[system:authenticated]"] in rows
        assert [ctype for ctype, _ in gen.bodies.seen] == [pb.MEDIA_TYPE]


# ---------------------------------------------------------------------------- the decoder


def message(name: str, **fields: Any) -> Any:
    """A message of the decoder's own layout for ``name``."""
    return pb.message_class(name)(**fields)


def body(api_version: str, kind: str, msg: Any) -> bytes:
    """A complete protobuf request body holding ``msg``."""
    return pb.envelope(api_version, kind, msg.SerializeToString())


def field_bytes(number: int, wire_type: int, payload: bytes) -> bytes:
    """One protobuf field, written out by hand: for fields no layout has (test data only)."""
    out, tag = bytearray(), (number << 3) | wire_type
    while tag >= 0x80:
        out.append(tag & 0x7F | 0x80)
        tag >>= 7
    out.append(tag)
    return bytes(out) + payload


def test_a_deployment_round_trips_to_kube_json() -> None:
    d = message("Deployment")
    d.metadata.name = "web"
    d.metadata.labels["app"] = "web"
    d.metadata.deletionTimestamp.seconds = 1_700_000_000
    d.metadata.creationTimestamp.SetInParent()  # present but empty: the zero time
    spec = d.spec
    spec.replicas = 3
    spec.selector.matchExpressions.add(key="tier", operator="In", values=["a", "b"])
    spec.strategy.type = "RollingUpdate"
    spec.strategy.rollingUpdate.maxSurge.type = 1
    spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    spec.strategy.rollingUpdate.maxUnavailable.intVal = 1
    pod = spec.template.spec
    container = pod.containers.add(name="app", image="nginx:1.27", args=["-g", "daemon off;"])
    container.ports.add(containerPort=80, protocol="TCP")
    container.env.add(name="MODE", value="prod")
    container.env.add(name="POD", valueFrom={"fieldRef": {"fieldPath": "metadata.name"}})
    container.resources.limits["cpu"].string = "500m"
    probe = container.readinessProbe.inline1  # Probe embeds ProbeHandler
    probe.httpGet.path = "/healthz"
    probe.httpGet.port.intVal = 8080
    container.readinessProbe.periodSeconds = 5
    volume = pod.volumes.add(name="config")
    volume.inline2.configMap.inline1.name = "web-config"  # two embedded structs deep
    container.volumeMounts.add(name="config", mountPath="/etc/web", readOnly=True)
    pod.terminationGracePeriodSeconds = 0
    pod.nodeSelector["disk"] = "ssd"

    assert pb.decode(body("apps/v1", "Deployment", d)) == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "creationTimestamp": None,
            "deletionTimestamp": "2023-11-14T22:13:20Z",
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": 3,
            "selector": {
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]
            },
            "template": {
                "metadata": {"creationTimestamp": None},
                "spec": {
                    "volumes": [{"name": "config", "configMap": {"name": "web-config"}}],
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.27",
                            "args": ["-g", "daemon off;"],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "env": [
                                {"name": "MODE", "value": "prod"},
                                {
                                    "name": "POD",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                            ],
                            "resources": {"limits": {"cpu": "500m"}},
                            "volumeMounts": [
                                {"name": "config", "readOnly": True, "mountPath": "/etc/web"}
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8080},
                                "periodSeconds": 5,
                            },
                        }
                    ],
                    "terminationGracePeriodSeconds": 0,
                    "nodeSelector": {"disk": "ssd"},
                },
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "25%"},
            },
        },
        "status": {},
    }


def test_zero_values_follow_go_pointers_and_omitempty() -> None:
    cm = message("ConfigMap", immutable=False)  # *bool: present, so written
    cm.metadata.name = "c"
    cm.metadata.generateName = ""  # plain string with omitempty: gone, as in Go's JSON
    cm.metadata.generation = 0
    cm.data["empty"] = ""  # a map entry is content, whatever its value
    assert pb.decode(body("v1", "ConfigMap", cm)) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c", "creationTimestamp": None},
        "data": {"empty": ""},
        "immutable": False,
    }
    role = message("Role")
    role.rules.add()  # verbs has no omitempty: an empty list is null
    decoded = pb.decode(body("rbac.authorization.k8s.io/v1", "Role", role))
    assert decoded["rules"] == [{"verbs": None}]
    pod = message("Pod")
    pod.spec.containers.add(name="c").ports.add()  # containerPort has no omitempty: 0
    decoded = pb.decode(body("v1", "Pod", pod))
    assert decoded["spec"]["containers"] == [
        {"name": "c", "ports": [{"containerPort": 0}], "resources": {}}
    ]


def test_secret_bytes_become_base64_and_bad_utf8_becomes_replacement_characters() -> None:
    secret = message("Secret", type="Opaque")
    secret.metadata.MergeFromString(field_bytes(1, 2, b"\x02\xffs"))  # name: 0xff, "s"
    secret.data["token"] = b"\x00\x01binary"
    decoded = pb.decode(body("v1", "Secret", secret))
    assert decoded["metadata"]["name"] == "\ufffds"
    assert decoded["data"] == {"token": base64.b64encode(b"\x00\x01binary").decode()}
    assert decoded["type"] == "Opaque"


def test_access_review_bodies() -> None:
    review = message("SubjectAccessReview")
    review.spec.user = "bob"
    review.spec.extra["scopes"].items.extend(["a", "b"])
    review.spec.resourceAttributes.verb = "list"
    review.spec.resourceAttributes.labelSelector.rawSelector = "tier=web"
    decoded = pb.decode(body("authorization.k8s.io/v1", "SubjectAccessReview", review))
    assert decoded["spec"] == {
        "resourceAttributes": {"verb": "list", "labelSelector": {"rawSelector": "tier=web"}},
        "user": "bob",
        "extra": {"scopes": ["a", "b"]},
    }
    assert decoded["status"] == {"allowed": False}


def test_every_kind_has_a_layout() -> None:
    for (api_version, kind), name in pb.KINDS.items():
        empty = pb.decode(pb.envelope(api_version, kind, b""))
        assert (empty["apiVersion"], empty["kind"]) == (api_version, kind)
        assert empty["metadata"] == {"creationTimestamp": None}, name


def test_an_unknown_field_is_refused_with_its_number() -> None:
    d = message("Deployment")
    d.metadata.name = "web"
    d.spec.template.spec.MergeFromString(field_bytes(99, 0, b"\x01"))
    with pytest.raises(errors.UnsupportedMediaType) as refused:
        pb.decode(body("apps/v1", "Deployment", d))
    assert "field 99 of PodSpec" in refused.value.message
    assert "Deployment.spec.template.spec" in refused.value.message
    assert "kubectl create -f" in refused.value.message
    # A deprecated volume plugin is left out of the layout on purpose: refused the same way.
    pod = message("Pod")
    volume = pod.spec.volumes.add(name="old")
    volume.inline2.MergeFromString(field_bytes(4, 2, b"\x00"))  # awsElasticBlockStore: {}
    with pytest.raises(errors.UnsupportedMediaType, match="field 4 of VolumeSource"):
        pb.decode(body("v1", "Pod", pod))


@pytest.mark.parametrize(
    ("api_version", "kind"),
    [("apps/v1", "ReplicaSet"), ("v1", "Deployment"), ("example.com/v1", "Widget")],
)
def test_an_unknown_kind_is_refused_by_name(api_version: str, kind: str) -> None:
    with pytest.raises(errors.UnsupportedMediaType) as refused:
        pb.decode(pb.envelope(api_version, kind, b""))
    assert f"{api_version} {kind}" in refused.value.message
    assert "kubectl create -f" in refused.value.message


def test_malformed_bodies_are_bad_requests() -> None:
    good = body("v1", "ConfigMap", message("ConfigMap", data={"a": "b"}))
    wrong_wire_type = message("Namespace")
    wrong_wire_type.metadata.MergeFromString(field_bytes(1, 0, b"\x05"))  # name as a varint
    for bad, words in [
        (b"", "magic"),
        (b'{"kind": "ConfigMap"}', "magic"),
        (b"k8s\x01" + good[4:], "magic"),
        (good[:-1], "malformed"),  # truncated
        (pb.MAGIC + b"\x0a\x05\x0a", "malformed"),  # a typeMeta longer than the body
        (body("v1", "Namespace", wrong_wire_type), "field 1 (name) of ObjectMeta"),
        (pb.envelope("v1", "", b""), "no kind"),
    ]:
        with pytest.raises(errors.BadRequest) as refused:
            pb.decode(bad)
        assert words in refused.value.message, (bad, refused.value.message)


def test_over_http_bodies_are_decoded_or_refused_with_a_status(api: Api) -> None:
    cm = message("ConfigMap", data={"k": "v"})
    cm.metadata.name = "from-protobuf"
    made = api.post(CMS, None, raw=body("v1", "ConfigMap", cm), content_type=pb.MEDIA_TYPE)
    assert made.expect(201)["data"] == {"k": "v"}
    refused = api.post(
        CMS, None, raw=pb.envelope("apps/v1", "ReplicaSet", b""), content_type=pb.MEDIA_TYPE
    )
    assert "apps/v1 ReplicaSet" in refused.expect_status(415, "UnsupportedMediaType")["message"]
    truncated = body("v1", "ConfigMap", cm)[:-3]
    api.post(CMS, None, raw=truncated, content_type=pb.MEDIA_TYPE).expect_status(400, "BadRequest")
    # The kind in the body must be the resource's, as for JSON.
    wrong = body("v1", "Secret", message("Secret"))
    api.post(CMS, None, raw=wrong, content_type=pb.MEDIA_TYPE).expect_status(400, "BadRequest")
