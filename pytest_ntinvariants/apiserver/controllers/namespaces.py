"""kube's namespace controller, as the identity system:namespace-controller: a terminating
namespace is emptied, then deleted once nothing (and no finalizer) is left in it."""

from __future__ import annotations

from ..errors import NotFound
from ..resources import NAMESPACE_KEY
from ..versions import JSON, Version, WriteContext
from .base import Cluster

__all__ = ["NamespaceController"]


class NamespaceController:
    """The namespace controller of one store."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def terminating(self, obj: JSON) -> None:
        """A terminating namespace says so in its phase."""
        obj.setdefault("status", {})["phase"] = "Terminating"

    def drain(self, owner: Version) -> None:
        """Delete everything in a terminating namespace (the namespace controller's job)."""
        ns = owner.name
        nsctl = WriteContext(identity="system:namespace-controller", verb="delete")
        for key, bucket in list(self._cluster.objects.items()):
            types = self._cluster.registry.by_key(key)
            if not types or not types[0].namespaced:
                continue
            for ons, oname in [k for k in bucket if k[0] == ns]:
                try:
                    self._cluster.delete(types[0], ons, oname, None, nsctl)
                except NotFound:
                    continue
        self.maybe_finish(ns)

    def maybe_finish(self, ns: str) -> None:
        """Delete a terminating namespace once it is empty and has no finalizer left."""
        nsv = self._cluster.objects.get(NAMESPACE_KEY, {}).get(("", ns))
        if nsv is None or "deletionTimestamp" not in nsv.obj["metadata"]:
            return
        if nsv.obj["metadata"].get("finalizers"):
            return  # a controller's own finalizer on the namespace holds it too
        for key, bucket in self._cluster.objects.items():
            if key != NAMESPACE_KEY and any(k[0] == ns for k in bucket):
                return
        rt = self._cluster.type_of("", "v1", "namespaces")
        self._cluster.commit(
            rt,
            "DELETED",
            nsv.obj,
            nsv,
            WriteContext(identity="system:namespace-controller", verb="delete"),
        )

    def may_go(self, name: str) -> bool:
        """Whether namespace ``name``, being deleted, may go once its finalizers are: once
        nothing is left in it."""
        return not any(
            key != NAMESPACE_KEY and any(k[0] == name for k in bucket)
            for key, bucket in self._cluster.objects.items()
        )
