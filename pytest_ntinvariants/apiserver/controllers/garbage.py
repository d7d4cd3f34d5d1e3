"""kube's garbage collector, as the identity system:garbage-collector: dependents whose
last owner is gone are deleted, an Orphan deletion's dependents are released, and a
Foreground deletion waits for the dependents that block it."""

from __future__ import annotations

from ..errors import NotFound
from ..jsonvalues import as_json
from ..resources import ResourceType
from ..versions import Version, WriteContext
from .base import Cluster

__all__ = ["FOREGROUND", "GarbageCollector"]

FOREGROUND = "foregroundDeletion"  # the finalizer of a Foreground deletion


class GarbageCollector:
    """The garbage collector of one store, run synchronously by its deletes."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster

    def orphan_dependents(self, owner: Version) -> None:
        """An Orphan deletion: remove the owner's references from its dependents."""
        uid = owner.obj["metadata"].get("uid")
        gc = WriteContext(identity="system:garbage-collector", verb="update")
        for rt, v in self._owners_of(str(uid)):
            new = as_json(v.obj)
            new["metadata"]["ownerReferences"] = [
                r for r in new["metadata"].get("ownerReferences", []) if r.get("uid") != uid
            ]
            if not new["metadata"]["ownerReferences"]:
                del new["metadata"]["ownerReferences"]
            self._cluster.commit(rt, "MODIFIED", new, v, gc)

    def delete_dependents_first(self, owner: Version) -> None:
        """Foreground deletion, as kube's garbage collector does it: delete the dependents
        (those that block their owner's deletion in the foreground as well), and drop the
        owner's foregroundDeletion finalizer once no blocking dependent is left."""
        uid = str(owner.obj["metadata"].get("uid"))
        gc = WriteContext(identity="system:garbage-collector", verb="delete")
        for drt, dep in self._owners_of(uid):
            refs = dep.obj["metadata"].get("ownerReferences") or ()
            blocking = any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in refs)
            try:
                self._cluster.delete(
                    drt,
                    dep.namespace,
                    dep.name,
                    {"propagationPolicy": "Foreground" if blocking else "Background"},
                    gc,
                )
            except NotFound:
                continue
        self.maybe_finish_foreground(uid)

    def maybe_finish_foreground(self, uid: str) -> None:
        """Drop the foregroundDeletion finalizer of owner ``uid`` once no dependent blocks it
        (and so delete the owner, if it was the last finalizer)."""
        found = next(((t, v) for t, v in self._by_uid(uid)), None)
        if found is None:
            return
        rt, owner = found
        finalizers = owner.obj["metadata"].get("finalizers") or []
        if FOREGROUND not in finalizers or "deletionTimestamp" not in owner.obj["metadata"]:
            return
        for _, dep in self._owners_of(uid):
            if any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in dep.obj["metadata"].get("ownerReferences") or ()
            ):
                return  # still waiting for a blocking dependent
        gc = WriteContext(identity="system:garbage-collector", verb="update")
        rest = [f for f in finalizers if f != FOREGROUND]
        if not rest:
            # The collector's update emptying the finalizers is the deletion (see Store._update).
            self._cluster.remove(rt, owner, gc)
            return
        new = as_json(owner.obj)
        new["metadata"]["finalizers"] = rest
        self._cluster.commit(rt, "MODIFIED", new, owner, gc)

    def collect_dependents(self, uid: str) -> None:
        """A minimal garbage collector: delete dependents whose last owner is gone."""
        dependents = self._owners_of(uid)
        if not dependents:
            return
        live = self._live_uids()
        gc = WriteContext(identity="system:garbage-collector", verb="delete")
        for rt, v in dependents:
            refs = v.obj["metadata"].get("ownerReferences") or []
            others = [r for r in refs if r.get("uid") != uid and r.get("uid") in live]
            current = self._cluster.objects.get(rt.key, {}).get((v.namespace, v.name))
            if current is None:
                continue
            if others:
                new = as_json(current.obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                self._cluster.commit(rt, "MODIFIED", new, current, gc)
            else:
                self._cluster.delete(
                    rt, v.namespace, v.name, {"propagationPolicy": "Background"}, gc
                )

    def _owners_of(self, uid: str) -> list[tuple[ResourceType, Version]]:
        out = []
        for key, bucket in self._cluster.objects.items():
            types = self._cluster.registry.by_key(key)
            if not types:
                continue
            for v in bucket.values():
                for ref in v.obj["metadata"].get("ownerReferences") or ():
                    if ref.get("uid") == uid:
                        out.append((types[0], v))
                        break
        return out

    def _by_uid(self, uid: str) -> list[tuple[ResourceType, Version]]:
        out = []
        for key, bucket in self._cluster.objects.items():
            types = self._cluster.registry.by_key(key)
            if types:
                out += [
                    (types[0], v) for v in bucket.values() if v.obj["metadata"].get("uid") == uid
                ]
        return out

    def _live_uids(self) -> set[str]:
        return {
            str(v.obj["metadata"].get("uid"))
            for bucket in self._cluster.objects.values()
            for v in bucket.values()
        }
