"""CustomResourceDefinitions: their type, and the status kube's apiextensions controllers
give one (what its schema serves is the registry's and the crd package's)."""

from __future__ import annotations

from ..resources import builtin_type
from .base import JSON, BaseStrategy, Builtin
from .columns import Column, path

__all__ = ["CUSTOM_RESOURCE_DEFINITIONS", "crd_status"]


class _Crd(BaseStrategy):
    """A CustomResourceDefinition: what it serves is the registry's (see the store)."""

    # CRDs print their creation time as is, and no Age (apiextensions' table convertor).
    columns: tuple[Column, ...] = (
        Column("Created At", "date", path(".metadata.creationTimestamp")),
    )
    prints_age = False


CUSTOM_RESOURCE_DEFINITIONS = Builtin(
    builtin_type(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        status=True,
    ),
    _Crd(),
)


def crd_status(crd: JSON, now: str) -> JSON:
    """The status kube's apiextensions controllers give a new CRD at time ``now``: its
    names accepted, its storage version recorded, Established."""
    names = dict((crd.get("spec") or {}).get("names") or {})
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    return {
        "acceptedNames": names,
        "storedVersions": [
            v["name"] for v in (crd.get("spec") or {}).get("versions") or [] if v.get("storage")
        ],
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
    }
