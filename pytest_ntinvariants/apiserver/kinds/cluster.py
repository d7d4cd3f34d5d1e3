"""The cluster's bookkeeping kinds that controllers read and kubectl prints: Nodes,
Endpoints, ServiceAccounts, Leases, volumes and claims, quotas and limit ranges. Stored as
given; only their types and columns are theirs."""

from __future__ import annotations

from ..resources import builtin_type
from .base import JSON, BaseStrategy, Builtin
from .columns import AGE, Column, count, path
from .mergekeys import OBJECT_ROOT, Structs, merge, struct

__all__ = [
    "ENDPOINTS",
    "LEASES",
    "LIMIT_RANGES",
    "NODES",
    "PERSISTENT_VOLUMES",
    "PERSISTENT_VOLUME_CLAIMS",
    "RESOURCE_QUOTAS",
    "SERVICE_ACCOUNTS",
    "UNSERVED_PATCH_ROOTS",
]

# Their strategic-merge-patch tags (k8s.io/api core/v1 types.go).
_PATCH_STRUCTS: Structs = {
    "Node": {
        "metadata": struct("ObjectMeta"),
        "spec": struct("NodeSpec"),
        "status": struct("NodeStatus"),
    },
    "NodeSpec": {"podCIDRs": merge()},
    "NodeStatus": {"conditions": merge("type"), "addresses": merge("type")},
    "ServiceAccount": {"metadata": struct("ObjectMeta"), "secrets": merge("name")},
    "ComponentStatus": {"metadata": struct("ObjectMeta"), "conditions": merge("type")},
}
# Kinds this server does not serve whose tags strategic merge patch knows all the same.
UNSERVED_PATCH_ROOTS = {("", "ComponentStatus"): "ComponentStatus"}


class _Printed(BaseStrategy):
    """A kind with nothing of its own but the columns it prints and its patch tags."""

    patch_structs = _PATCH_STRUCTS

    def __init__(
        self,
        columns: tuple[Column, ...],
        *,
        prints_age: bool = True,
        patch_root: str = OBJECT_ROOT,
    ) -> None:
        self.columns = columns
        self.prints_age = prints_age
        self.patch_root = patch_root


def _endpoints(obj: JSON) -> str:
    out = []
    for subset in obj.get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or [{}]:
                ip = (address or {}).get("ip", "")
                out.append(f"{ip}:{port.get('port')}" if port.get("port") else str(ip))
    return ",".join(out) or "<none>"


def _node_status(obj: JSON) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
    status = (
        "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    )
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: JSON) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in labels if k.startswith(prefix) and k != prefix)
    return ",".join(roles) or "<none>"


SERVICE_ACCOUNTS = Builtin(
    builtin_type(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        short=("sa",),
        generation=False,
        returns_deleted=True,
    ),
    _Printed((Column("Secrets", "integer", count("secrets")),), patch_root="ServiceAccount"),
)
ENDPOINTS = Builtin(
    builtin_type(
        "", "v1", "endpoints", "Endpoints", short=("ep",), generation=False, create_on_update=True
    ),
    _Printed((Column("Endpoints", "string", _endpoints),)),
)
PERSISTENT_VOLUME_CLAIMS = Builtin(
    builtin_type(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short=("pvc",),
        status=True,
        returns_deleted=True,
    ),
    # (only its status conditions merge; it prints NAME and AGE)
    _Printed((), patch_root="WithStatusConditions"),
)
PERSISTENT_VOLUMES = Builtin(
    builtin_type(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        namespaced=False,
        short=("pv",),
        status=True,
        returns_deleted=True,
    )
)
NODES = Builtin(
    builtin_type("", "v1", "nodes", "Node", namespaced=False, short=("no",), status=True),
    _Printed(
        (
            Column("Status", "string", _node_status),
            Column("Roles", "string", _node_roles),
            AGE,
            Column("Version", "string", path(".status.nodeInfo.kubeletVersion")),
        ),
        prints_age=False,
        patch_root="Node",
    ),
)
RESOURCE_QUOTAS = Builtin(
    builtin_type("", "v1", "resourcequotas", "ResourceQuota", short=("quota",), status=True)
)
LIMIT_RANGES = Builtin(builtin_type("", "v1", "limitranges", "LimitRange", short=("limits",)))
LEASES = Builtin(
    builtin_type(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        generation=False,
        create_on_update=True,
        unconditional_update=False,
    ),
    _Printed((Column("Holder", "string", path(".spec.holderIdentity")),)),
)
