"""Namespaces: created Active, with kube's finalizer; names are DNS-1123 labels.

Their deletion (Terminating, then emptied) is the namespace controller's
(``controllers/namespaces.py``)."""

from __future__ import annotations

from typing import Any

from ..resources import ResourceType
from ..versions import WriteContext
from .base import JSON, BaseStrategy
from .columns import Column, path

__all__ = ["NAMESPACE"]


class _Namespace(BaseStrategy):
    """A Namespace: its spec and status are the system's on create."""

    label_named = True
    patch_root = "WithStatusConditions"
    columns: tuple[Column, ...] = (Column("Status", "string", path(".status.phase")),)

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The namespace, Active, with the finalizer kube's namespace controller removes."""
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}
        return obj


NAMESPACE = _Namespace()
