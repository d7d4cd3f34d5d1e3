"""The strategy of a kind: what a write of that kind does beyond what every write does.

kube-apiserver gives each kind a ``rest.Strategy`` (PrepareForCreate, PrepareForUpdate,
Validate, ValidateUpdate, ...) and keeps the generic registry apart from them; the fake
does the same. The store runs every write's generic steps (metadata, resourceVersion,
generation, the CRD schema, commit) and asks the kind's strategy for the rest. Each kind
family is one module of this package, which defines its kinds' types (``Builtin``: the
discovery definition and the strategy together); ``builtin.py`` is the table of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ..errors import Cause
from ..resources import ResourceType
from ..versions import WriteContext
from .columns import Column, human_age
from .mergekeys import OBJECT_ROOT, Structs

__all__ = ["DEFAULT", "JSON", "BaseStrategy", "Builtin", "Strategy"]

JSON = dict[str, Any]


class Strategy(Protocol):
    """What the store asks of a kind. Objects may share values with stored versions,
    which are never mutated: a strategy copies what it changes below the object's root."""

    # Names of this kind are DNS-1123 labels (namespaces, services), not subdomains.
    label_named: bool
    # The columns of its Table (kube's printers): whether NAME leads, the kind's own after
    # it, and whether AGE follows them.
    prints_name: bool
    columns: tuple[Column, ...]
    prints_age: bool
    # The protobuf layout of its messages, in protobuf.py's notation, the kind's own named
    # after it; "" for a kind that protobuf.py lays out itself, or not at all.
    protobuf_layout: str
    # Its strategic-merge-patch tags (mergekeys.py): the root struct of its objects, and
    # the structs its module contributes (shared by the kinds of that module).
    patch_root: str
    patch_structs: Structs

    def new_state(self) -> Any:
        """Per-store state of the kind (allocators), or None; passed back to every call."""

    def cells(self, obj: JSON, now: datetime) -> list[Any]:
        """The cells of ``obj``'s Table row under ``columns``, ages as of ``now``."""

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The object a create stores (defaults filled in), refusing what kube's decoding
        refuses; ``obj`` itself or a new dict."""

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The object an update stores, given the stored one (``old``)."""

    def validate(
        self, rt: ResourceType, obj: JSON, old: JSON | None, ctx: WriteContext
    ) -> Sequence[Cause]:
        """kube's Validate (``old`` None) or ValidateUpdate of the kind's own fields."""

    def deleted(self, obj: JSON, state: Any) -> None:
        """The object was removed for good: release what it held (its allocations)."""


class BaseStrategy:
    """The strategy of a kind with no rules of its own (and every custom resource's):
    nothing to default, nothing to validate beyond metadata and the CRD's schema."""

    label_named = False
    prints_name = True
    columns: tuple[Column, ...] = ()
    prints_age = True
    protobuf_layout = ""
    patch_root = OBJECT_ROOT
    patch_structs: Structs = {}

    def new_state(self) -> Any:
        """No state."""
        return None

    def cells(self, obj: JSON, now: datetime) -> list[Any]:
        """Each column's cell (an age column's: the object's age)."""
        return [
            human_age((obj.get("metadata") or {}).get("creationTimestamp"), now)
            if c.age
            else c.cell(obj)
            for c in self.columns
        ]

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The object as sent."""
        return obj

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The object as sent."""
        return obj

    def validate(
        self, rt: ResourceType, obj: JSON, old: JSON | None, ctx: WriteContext
    ) -> Sequence[Cause]:
        """No causes."""
        return ()

    def deleted(self, obj: JSON, state: Any) -> None:
        """Nothing to release."""


DEFAULT: Strategy = BaseStrategy()


@dataclass(frozen=True)
class Builtin:
    """One row of the table of built-in kinds: a served type and its kind's strategy (the
    default's for a kind with no rules of its own). Types that share a storage (core/v1 and
    events.k8s.io/v1 Events) are a row each, with the one strategy."""

    type: ResourceType
    strategy: Strategy = DEFAULT
