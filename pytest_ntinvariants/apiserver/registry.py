"""The registry of served resource types: the built-in kinds' (``kinds.BUILTIN_TYPES``),
and each CustomResourceDefinition's while it exists.

It maps URL coordinates to types and is updated when a CRD is created, changed or deleted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from .errors import Invalid
from .kinds import BUILTIN_TYPES
from .resources import ResourceType

__all__ = ["Registry"]


class Registry:
    """Which resource types are served; thread-safe; changed by CRD writes."""

    def __init__(self, types: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._lock = threading.Lock()
        self._by_gvr: dict[tuple[str, str, str], ResourceType] = {}
        self._crd_types: dict[str, list[ResourceType]] = {}
        self.generation = 0  # bumped on every change, so discovery caches know to rebuild
        for t in types:
            self._by_gvr[(t.group, t.version, t.plural)] = t

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``group/version/plural``, or None."""
        return self._by_gvr.get((group, version, plural))

    def by_key(self, key: str) -> list[ResourceType]:
        """Every served version of the resource stored under ``key``, the storage's own
        shape first (types with a converter last): callers that handle stored objects
        directly take the first."""
        types = [t for t in self._by_gvr.values() if t.key == key]
        return sorted(types, key=lambda t: t.converter is not None)

    def kind_in(self, group: str, version: str, kind: str) -> ResourceType | None:
        """The type for a kind in a group/version (e.g. to resolve ownerReferences)."""
        for t in self._by_gvr.values():
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def __iter__(self) -> Iterator[ResourceType]:
        return iter(list(self._by_gvr.values()))

    def groups(self) -> dict[str, list[str]]:
        """Served versions per group, in a stable order (core group is ``""``)."""
        out: dict[str, list[str]] = {}
        for t in self._by_gvr.values():
            versions = out.setdefault(t.group, [])
            if t.version not in versions:
                versions.append(t.version)
        return out

    def check_crd(self, crd_name: str, types: list[ResourceType]) -> None:
        """Raise ``Invalid`` if the CRD's types would replace built-in ones.

        The store calls this before it commits the CRD, so a refused one leaves no trace.
        """
        for t in types:
            existing = self._by_gvr.get((t.group, t.version, t.plural))
            if existing is not None and existing.builtin:
                raise Invalid(
                    f"{t.group_resource} is a built-in resource and cannot be redefined",
                    name=crd_name,
                )

    def set_crd(self, crd_name: str, types: list[ResourceType]) -> None:
        """Serve (or re-serve, after an update) the types of one CRD."""
        with self._lock:
            self.check_crd(crd_name, types)
            self._drop(crd_name)
            for t in types:
                self._by_gvr[(t.group, t.version, t.plural)] = t
            self._crd_types[crd_name] = types
            self.generation += 1

    def remove_crd(self, crd_name: str) -> list[ResourceType]:
        """Stop serving a CRD's types; returns them (so the store can drop their objects)."""
        with self._lock:
            dropped = self._drop(crd_name)
            self.generation += 1
            return dropped

    def _drop(self, crd_name: str) -> list[ResourceType]:
        dropped = self._crd_types.pop(crd_name, [])
        for t in dropped:
            self._by_gvr.pop((t.group, t.version, t.plural), None)
        return dropped
