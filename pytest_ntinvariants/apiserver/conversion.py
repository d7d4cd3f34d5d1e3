"""Kinds served by one API but stored in the shape of another (kube's cohabitating resources).

kube-apiserver keeps events.k8s.io/v1 Events in the storage of core/v1 Events: one etcd
prefix, one resourceVersion sequence, objects converted field by field on the way in and
out. A ``Converter`` hangs off the served ``ResourceType`` (``converter``); every other
type has None there, so only these kinds pay for conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EVENTS_V1", "Converter"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class Converter:
    """Renames of top-level fields between a served shape and the storage shape.

    Both shapes hold the same information (a bijection on the fields the two APIs
    define); nested values are shared, never copied, as stored versions are never mutated.
    """

    # The storage type's group, version and plural (looked up in the registry).
    storage: tuple[str, str, str]
    storage_api_version: str
    served_api_version: str
    # (storage name, served name) for the fields the two shapes name differently.
    renames: tuple[tuple[str, str], ...]
    # Served field-selector labels that select another storage path (kube's field label
    # conversion); labels absent here select the path of the same name.
    field_labels: Mapping[str, str] = field(default_factory=dict)
    # The renames as lookups, storage -> served and back (derived, set once).
    _out: dict[str, str] = field(init=False, repr=False, compare=False)
    _back: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # (frozen: the derived fields are set the way dataclasses set fields themselves)
        object.__setattr__(self, "_out", dict(self.renames))
        object.__setattr__(self, "_back", {served: stored for stored, served in self.renames})

    def from_storage(self, obj: JSON) -> JSON:
        """``obj`` (storage shape) as the served API shows it.

        A stored field named like one of the served shape's renamed fields is not one the
        storage API defines (kube's decoding would have dropped it): it is left out, so it
        cannot shadow the renamed value.
        """
        return _renamed(obj, self._out, self._back, self.served_api_version)

    def foreign(self, obj: JSON) -> list[str]:
        """Fields of ``obj`` (served shape) that only the storage shape defines."""
        out = self._out
        return [key for key in obj if key in out]

    def to_storage(self, obj: JSON) -> JSON:
        """``obj`` (served shape) as it is stored; ``foreign`` fields are dropped."""
        return _renamed(obj, self._back, self._out, self.storage_api_version)


def _renamed(obj: JSON, renames: dict[str, str], drop: dict[str, str], api_version: str) -> JSON:
    """``obj``'s top-level fields renamed by ``renames``, those named in ``drop`` left out
    (the other shape's names for them), under ``api_version``."""
    out: JSON = {}
    for key, value in obj.items():
        name = renames.get(key)
        if name is not None:
            out[name] = value
        elif key not in drop:
            out[key] = value
    out["apiVersion"] = api_version
    return out


# events.k8s.io/v1 Event <-> core/v1 Event, as kube's Convert_v1_Event_To_core_Event and
# back (pkg/apis/events/v1/conversion.go): the internal type is core's, and core/v1 names
# its ReportingController field "reportingComponent". The other fields (eventTime, series,
# action, reason, type, related, reportingInstance, metadata) are named alike, and their
# nested types (ObjectReference, EventSource, EventSeries) are the same in both APIs.
EVENTS_V1 = Converter(
    storage=("", "v1", "events"),
    storage_api_version="v1",
    served_api_version="events.k8s.io/v1",
    renames=(
        ("involvedObject", "regarding"),
        ("message", "note"),
        ("reportingComponent", "reportingController"),
        ("source", "deprecatedSource"),
        ("firstTimestamp", "deprecatedFirstTimestamp"),
        ("lastTimestamp", "deprecatedLastTimestamp"),
        ("count", "deprecatedCount"),
    ),
    # AddFieldLabelConversionsForEvent in the same file: events.k8s.io labels select the
    # internal (core) field set; "source" stays "source".
    field_labels={
        **{
            f"regarding.{f}": f"involvedObject.{f}"
            for f in (
                "kind",
                "namespace",
                "name",
                "uid",
                "apiVersion",
                "resourceVersion",
                "fieldPath",
            )
        },
        "reportingController": "reportingComponent",
    },
)
