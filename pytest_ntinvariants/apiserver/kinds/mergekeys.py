"""The strategic-merge-patch tags of the built-in kinds (``patchStrategy`` and
``patchMergeKey`` on the fields of k8s.io/api's Go types), as the kinds' strategies declare
them: a struct is a mapping of field name -> ``PatchField``, named so that structs refer to
each other; a strategy names its kind's root struct (``patch_root``) and the structs its
module contributes (``patch_structs``). Strategic merge patch (patch.py) and server-side
apply (apply.py) read them. Only the fields on the way to a merge list are listed; the rest
take the default strategy (objects merge, lists are replaced). ``retainKeys`` (Deployment
strategy, Pod volumes) matters only when a client builds a patch; applying one honours any
``$retainKeys`` directive, so it needs no entry here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_FIELD",
    "OBJECT_ROOT",
    "SHARED_STRUCTS",
    "PatchField",
    "Structs",
    "merge",
    "struct",
]


@dataclass(frozen=True)
class PatchField:
    """The SMP tags of one field: ``patchStrategy``, ``patchMergeKey`` and its type."""

    strategy: str = ""  # "merge", "replace" or "" (the default: objects merge, lists replace)
    merge_key: str = ""
    type: str | None = None  # struct type of the field (of its elements, for lists)


# The tags of an untagged field: objects merge, lists are replaced.
DEFAULT_FIELD = PatchField()

Structs = Mapping[str, Mapping[str, PatchField]]


def merge(key: str = "", type_: str | None = None) -> PatchField:
    """A list merged by ``key`` (a set, without one), its items of struct ``type_``."""
    return PatchField("merge", key, type_)


def struct(type_: str) -> PatchField:
    """A field of struct ``type_``, merged by that struct's tags."""
    return PatchField(type=type_)


# The root of a kind with no tags of its own: only its metadata's.
OBJECT_ROOT = "Object"

# What every kind shares (k8s.io/apimachinery meta/v1), and the status conditions that
# several kinds merge by type.
SHARED_STRUCTS: Structs = {
    "ObjectMeta": {
        "finalizers": merge(),
        "ownerReferences": merge("uid"),
    },
    OBJECT_ROOT: {"metadata": struct("ObjectMeta")},
    "Conditions": {"conditions": merge("type")},
    # Namespace and PersistentVolumeClaim: only status.conditions merges.
    "WithStatusConditions": {"metadata": struct("ObjectMeta"), "status": struct("Conditions")},
}
