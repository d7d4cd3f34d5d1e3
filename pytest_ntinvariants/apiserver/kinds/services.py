"""Services: kube's defaulting, and the allocation of cluster IPs and node ports (kube's
allocators), which a Service holds until it is deleted; and the Ingresses that route
traffic to them, stored as given."""

from __future__ import annotations

from typing import Any

from .. import errors
from ..errors import Cause, invalid
from ..resources import ResourceType, builtin_type
from ..versions import WriteContext
from .base import JSON, BaseStrategy, Builtin
from .columns import Column
from .mergekeys import Structs, merge, struct

__all__ = ["INGRESSES", "SERVICES", "Allocations"]


class Allocations:
    """The cluster IPs and node ports in use, one set per store."""

    def __init__(self) -> None:
        self.cluster_ips: set[str] = set()
        self.node_ports: set[int] = set()

    def free_cluster_ip(self) -> str:
        """The first cluster IP not in use."""
        # 10.96.0.1 is kube's own "kubernetes" Service; the rest in order, never reused twice.
        n = 10
        while f"10.96.{n // 256}.{n % 256}" in self.cluster_ips:
            n += 1
        return f"10.96.{n // 256}.{n % 256}"

    def free_node_port(self) -> int:
        """The first node port not in use."""
        port = 30000
        while port in self.node_ports:
            port += 1
        if port > 32767:
            raise errors.InternalError("no node port left in 30000-32767")
        return port


def _allocate(obj: JSON, old: JSON | None, ctx: WriteContext, held: Allocations) -> None:
    """kube's Service defaulting and allocation: type, session affinity, port protocol and
    target port, a cluster IP from 10.96.0.0/12 (none for ExternalName, "None" for a
    headless Service), node ports from 30000-32767, the IP family fields and traffic
    policies. An update keeps what was allocated; a cluster IP may not change."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    spec = obj["spec"] = dict(spec)  # (a stored version's spec is never written to)
    before = (old or {}).get("spec") or {}
    kind = spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    previous = {
        (p.get("port"), p.get("protocol", "TCP")): p
        for p in before.get("ports") or ()
        if isinstance(p, dict)
    }
    if isinstance(spec.get("ports"), list):
        ports = []
        for port in spec["ports"]:
            if isinstance(port, dict):
                port = dict(port)
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
                if kind in ("NodePort", "LoadBalancer") and not port.get("nodePort"):
                    was = previous.get((port.get("port"), port["protocol"])) or {}
                    port["nodePort"] = was.get("nodePort") or held.free_node_port()
                if port.get("nodePort") and not ctx.dry_run:
                    held.node_ports.add(port["nodePort"])
            ports.append(port)
        spec["ports"] = ports
    if kind == "ExternalName":
        return
    ip = spec.get("clusterIP")
    old_ip = before.get("clusterIP")
    if old_ip and ip and ip != old_ip:
        raise invalid(
            "Service",
            "",
            str(obj["metadata"].get("name", "")),
            [
                Cause(
                    "spec.clusterIPs[0]",
                    f'Invalid value: []string{{"{ip}"}}: may not change once set',
                )
            ],
        )
    if not ip:
        ip = spec["clusterIP"] = old_ip or held.free_cluster_ip()
    elif ip != "None" and ip != old_ip and ip in held.cluster_ips:
        raise invalid(
            "Service",
            "",
            str(obj["metadata"].get("name", "")),
            [
                Cause(
                    "spec.clusterIPs",
                    f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: '
                    f"provided IP is already allocated",
                )
            ],
        )
    if ip != "None" and not ctx.dry_run:
        held.cluster_ips.add(ip)
    spec.setdefault("clusterIPs", [ip])
    spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if kind in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if kind == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)


def _svc_cluster_ip(obj: JSON) -> str:
    return str((obj.get("spec") or {}).get("clusterIP") or "<none>")


def _svc_external_ip(obj: JSON) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    external = list(spec.get("externalIPs") or [])
    if spec.get("type") == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        external += [i.get("ip") or i.get("hostname") for i in ingress if isinstance(i, dict)]
        return ",".join(str(e) for e in external if e) or "<pending>"
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    return ",".join(str(e) for e in external) or "<none>"


def _svc_ports(obj: JSON) -> str:
    ports = []
    for p in (obj.get("spec") or {}).get("ports") or []:
        if not isinstance(p, dict):
            continue
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        ports.append(f"{p.get('port')}{node}/{p.get('protocol') or 'TCP'}")
    return ",".join(ports) or "<none>"


class _Service(BaseStrategy):
    """A Service: defaulted and allocated on every write; released when deleted."""

    label_named = True
    patch_root = "Service"
    patch_structs: Structs = {
        "Service": {
            "metadata": struct("ObjectMeta"),
            "spec": struct("ServiceSpec"),
            "status": struct("Conditions"),
        },
        "ServiceSpec": {"ports": merge("port")},
    }
    columns: tuple[Column, ...] = (
        Column("Type", "string", lambda o: (o.get("spec") or {}).get("type") or "ClusterIP"),
        Column("Cluster-IP", "string", _svc_cluster_ip),
        Column("External-IP", "string", _svc_external_ip),
        Column("Port(s)", "string", _svc_ports),
    )

    def new_state(self) -> Allocations:
        """The store's allocations."""
        return Allocations()

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The Service, defaulted and allocated."""
        _allocate(obj, None, ctx, state)
        return obj

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The Service, keeping what was allocated to it."""
        _allocate(obj, old, ctx, state)
        return obj

    def deleted(self, obj: JSON, state: Any) -> None:
        """Release the Service's cluster IP and node ports."""
        spec = obj.get("spec") or {}
        state.cluster_ips.discard(str(spec.get("clusterIP")))
        for port in spec.get("ports") or ():
            if isinstance(port, dict):
                state.node_ports.discard(port.get("nodePort"))


SERVICES = Builtin(
    builtin_type(
        "",
        "v1",
        "services",
        "Service",
        short=("svc",),
        status=True,
        categories=("all",),
        returns_deleted=True,
        create_on_update=True,
    ),
    _Service(),
)
INGRESSES = Builtin(
    builtin_type("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",), status=True)
)
