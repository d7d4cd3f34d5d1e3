"""What kube's controllers see of the store: the Cluster protocol the store hands them.

The controllers run synchronously inside the store's writes (under its lock), as kube's
would run right after them, so a test sees a deletion's consequences in the same
resourceVersion order every time. They write as system identities, through the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..registry import Registry
from ..resources import ResourceType
from ..versions import Version, WriteContext

__all__ = ["Cluster", "Emptier"]


class Emptier(Protocol):
    """A controller that empties what an object holds before the object may go: kube's
    namespace controller (a namespace's contents) and CRD cleanup (a CRD's objects). The
    store asks it when such an object is deleted, and when its finalizers are gone."""

    def terminating(self, obj: dict[str, Any]) -> None:
        """Mark ``obj``, about to be stored with its deletionTimestamp (in place)."""

    def drain(self, owner: Version) -> None:
        """Delete what ``owner``, now terminating, holds; delete it once that is gone."""

    def may_go(self, name: str) -> bool:
        """Whether the object named ``name`` holds nothing any more."""


class Cluster(Protocol):
    """The store, as its controllers use it."""

    @property
    def registry(self) -> Registry:
        """The served types."""

    @property
    def objects(self) -> Mapping[str, Mapping[tuple[str, str], Version]]:
        """The live objects: storage key -> (namespace, name) -> latest version. Read it
        under the store's lock (the controllers always are), never write it."""

    def type_of(self, group: str, version: str, plural: str) -> ResourceType:
        """The served type at group/version/plural (NotFound if none)."""

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: dict[str, Any] | None,
        ctx: WriteContext,
    ) -> Version:
        """A delete, as any client's (finalizers and propagation honoured)."""

    def commit(
        self,
        rt: ResourceType,
        kind: str,
        obj: dict[str, Any],
        old: Version | None,
        ctx: WriteContext,
    ) -> Version:
        """Store ``obj`` as is (a system write: no checks), with its event of ``kind``."""

    def remove(self, rt: ResourceType, cur: Version, ctx: WriteContext) -> Version:
        """Remove the object for good (its finalizers are gone), with what follows."""
