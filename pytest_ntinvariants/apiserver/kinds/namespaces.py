"""Namespaces: created Active, with kube's finalizer; names are DNS-1123 labels.

Their deletion (Terminating, then emptied) is the namespace controller's
(``controllers/namespaces.py``)."""

from __future__ import annotations

from typing import Any

from ..resources import ALL_VERBS, ResourceType, builtin_type
from ..versions import WriteContext
from .base import JSON, BaseStrategy, Builtin
from .columns import Column, path

__all__ = ["NAMESPACES"]


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


NAMESPACES = Builtin(
    # No deletecollection (kube serves none): one DELETE must not empty a cluster.
    builtin_type(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short=("ns",),
        status=True,
        generation=False,
        fields=("status.phase",),
        subresources=("finalize",),
        verbs=tuple(v for v in ALL_VERBS if v != "deletecollection"),
        returns_deleted=True,
    ),
    _Namespace(),
)
