"""The table of built-in kinds: every type the server serves from the start, with its kind's
strategy, in the order discovery lists them. A built-in kind is one module of this package
(or a row of one, for a kind of an existing family) and one row here."""

from __future__ import annotations

from ..resources import ResourceType
from . import (
    access,
    cluster,
    crds,
    data,
    events,
    namespaces,
    networking,
    policy,
    scheduling,
    services,
    workloads,
)
from .base import DEFAULT, Builtin, Strategy

__all__ = [
    "BUILTIN",
    "BUILTIN_KINDS",
    "BUILTIN_TYPES",
    "DEFAULT",
    "UNSERVED_PATCH_ROOTS",
    "strategy_for",
]

BUILTIN_KINDS: tuple[Builtin, ...] = (
    namespaces.NAMESPACES,
    data.CONFIG_MAPS,
    data.SECRETS,
    events.EVENTS,
    workloads.PODS,
    services.SERVICES,
    cluster.SERVICE_ACCOUNTS,
    cluster.ENDPOINTS,
    cluster.PERSISTENT_VOLUME_CLAIMS,
    cluster.PERSISTENT_VOLUMES,
    cluster.NODES,
    cluster.RESOURCE_QUOTAS,
    cluster.LIMIT_RANGES,
    workloads.DEPLOYMENTS,
    workloads.REPLICA_SETS,
    workloads.STATEFUL_SETS,
    workloads.DAEMON_SETS,
    workloads.JOBS,
    workloads.CRON_JOBS,
    cluster.LEASES,
    events.EVENTS_K8S_IO,  # stored with core/v1 Events, in their shape
    crds.CUSTOM_RESOURCE_DEFINITIONS,
    access.ROLES,
    access.ROLE_BINDINGS,
    access.CLUSTER_ROLES,
    access.CLUSTER_ROLE_BINDINGS,
    services.INGRESSES,
    networking.NETWORK_POLICIES,
    policy.POD_DISRUPTION_BUDGETS,
    scheduling.PRIORITY_CLASSES,
    *access.REVIEWS,
)

BUILTIN_TYPES: tuple[ResourceType, ...] = tuple(row.type for row in BUILTIN_KINDS)
# Storage key -> strategy (the types that share a storage share its strategy).
BUILTIN: dict[str, Strategy] = {row.type.key: row.strategy for row in BUILTIN_KINDS}


def strategy_for(rt: ResourceType) -> Strategy:
    """The strategy of a type: its kind's (by storage key), or the default's."""
    return BUILTIN.get(rt.key, DEFAULT) if rt.builtin else DEFAULT


# (API group, kind) -> root struct of kinds not served here (strategic merge patch knows
# their tags, for patches applied outside the store).
UNSERVED_PATCH_ROOTS: dict[tuple[str, str], str] = {
    **workloads.UNSERVED_PATCH_ROOTS,
    **cluster.UNSERVED_PATCH_ROOTS,
}
