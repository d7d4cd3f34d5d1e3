"""kube's customresourcecleanup finalizer, as the identity system:apiextensions-controller:
a terminating CRD's objects are deleted (their finalizers honoured), then the CRD."""

from __future__ import annotations

from ..errors import NotFound
from ..resources import CRD_KEY
from ..versions import JSON, Version, WriteContext
from .base import Cluster

__all__ = ["CrdCleanup"]


class CrdCleanup:
    """The CRD cleanup of one store."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def terminating(self, obj: JSON) -> None:
        """Nothing to mark: a terminating CRD shows only its deletionTimestamp."""

    def drain(self, crd: Version) -> None:
        """Delete every object of a terminating CRD, as kube's customresourcecleanup
        finalizer does: their finalizers are honoured (a controller's delete handlers run),
        and the CRD itself goes once the last of them has."""
        spec = crd.obj.get("spec") or {}
        key = f"{spec.get('group', '')}/{(spec.get('names') or {}).get('plural', '')}"
        types = self._cluster.registry.by_key(key)
        cleanup = WriteContext(identity="system:apiextensions-controller", verb="delete")
        if types:
            for ons, oname in list(self._cluster.objects.get(key, {})):
                try:
                    self._cluster.delete(types[0], ons, oname, None, cleanup)
                except NotFound:  # collected with its owner meanwhile
                    continue
        self.maybe_finish(crd.name)

    def maybe_finish(self, crd_name: str) -> None:
        """Delete a terminating CRD once its objects are gone and no finalizer is left."""
        crdv = self._cluster.objects.get(CRD_KEY, {}).get(("", crd_name))
        if crdv is None:
            return
        meta = crdv.obj["metadata"]
        if "deletionTimestamp" not in meta or meta.get("finalizers"):
            return
        spec = crdv.obj.get("spec") or {}
        plural = (spec.get("names") or {}).get("plural", "")
        if self._cluster.objects.get(f"{spec.get('group', '')}/{plural}"):
            return
        self._cluster.remove(
            self._cluster.type_of("apiextensions.k8s.io", "v1", "customresourcedefinitions"),
            crdv,
            WriteContext(identity="system:apiextensions-controller", verb="delete"),
        )

    def may_go(self, name: str) -> bool:
        """Whether CRD ``name``, being deleted, may go once its finalizers are: once none
        of its objects is left."""
        crdv = self._cluster.objects.get(CRD_KEY, {}).get(("", name))
        spec = (crdv.obj.get("spec") or {}) if crdv is not None else {}
        plural = (spec.get("names") or {}).get("plural", "")
        return not self._cluster.objects.get(f"{spec.get('group', '')}/{plural}")
