"""The table of built-in kinds: storage key -> strategy. A built-in kind with rules of its
own is one module of this package and one row here; the rest take ``BaseStrategy``."""

from __future__ import annotations

from ..resources import ResourceType
from .base import BaseStrategy, Strategy
from .cluster import ENDPOINTS, LEASE, NODE, PERSISTENT_VOLUME_CLAIM, SERVICE_ACCOUNT
from .cluster import UNSERVED_PATCH_ROOTS as CLUSTER_UNSERVED
from .crds import CRD
from .data import CONFIG_MAP, SECRET
from .events import EVENT
from .namespaces import NAMESPACE
from .policy import POD_DISRUPTION_BUDGET
from .services import SERVICE
from .workloads import POD, WORKLOADS
from .workloads import UNSERVED_PATCH_ROOTS as WORKLOADS_UNSERVED

__all__ = ["BUILTIN", "DEFAULT", "UNSERVED_PATCH_ROOTS", "strategy_for"]

DEFAULT: Strategy = BaseStrategy()

BUILTIN: dict[str, Strategy] = {
    "/namespaces": NAMESPACE,
    "/configmaps": CONFIG_MAP,
    "/secrets": SECRET,
    "/events": EVENT,  # core/v1 and events.k8s.io/v1 Events, stored as core/v1
    "/services": SERVICE,
    "/pods": POD,
    **WORKLOADS,
    "/serviceaccounts": SERVICE_ACCOUNT,
    "/endpoints": ENDPOINTS,
    "/nodes": NODE,
    "/persistentvolumeclaims": PERSISTENT_VOLUME_CLAIM,
    "coordination.k8s.io/leases": LEASE,
    "apiextensions.k8s.io/customresourcedefinitions": CRD,
    "policy/poddisruptionbudgets": POD_DISRUPTION_BUDGET,
}


def strategy_for(rt: ResourceType) -> Strategy:
    """The strategy of a type: its kind's (by storage key), or the default's."""
    return BUILTIN.get(rt.key, DEFAULT) if rt.builtin else DEFAULT


# (API group, kind) -> root struct of kinds not served here (strategic merge patch knows
# their tags, for patches applied outside the store).
UNSERVED_PATCH_ROOTS: dict[tuple[str, str], str] = {**WORKLOADS_UNSERVED, **CLUSTER_UNSERVED}
