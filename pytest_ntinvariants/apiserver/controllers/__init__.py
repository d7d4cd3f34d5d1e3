"""kube's controllers that a real cluster runs beside the API server and that clients
observe in the API: garbage collection, namespace deletion, CRD cleanup. Each acts as a
system identity through the store's ``Cluster`` view (base.py), called by the store at
the points of a deletion where kube's would act."""

from __future__ import annotations

from .base import Cluster, Emptier
from .crds import CrdCleanup
from .garbage import FOREGROUND, GarbageCollector
from .namespaces import NamespaceController

__all__ = [
    "FOREGROUND",
    "Cluster",
    "CrdCleanup",
    "Emptier",
    "GarbageCollector",
    "NamespaceController",
]
