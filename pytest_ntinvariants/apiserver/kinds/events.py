"""Events, core/v1 and events.k8s.io/v1 alike (stored as core/v1): their two types, and
kube's ValidateEventCreate/Update, strict for writes through events.k8s.io/v1; and their Table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from .. import conversion
from ..errors import Cause
from ..gotext import go_quote
from ..objectmeta import bad_meta_key
from ..resources import ResourceType, builtin_type
from ..versions import WriteContext
from .base import JSON, BaseStrategy, Builtin
from .columns import Column, human_age

__all__ = ["EVENTS", "EVENTS_K8S_IO"]

_EVENTS_STRICT = "events.k8s.io/v1"
# kube's ReportingInstanceLengthLimit, ActionLengthLimit, ReasonLengthLimit, NoteLengthLimit.
_EVENT_LIMITS = (("reportingInstance", 128), ("action", 128), ("reason", 128))
_NOTE_LIMIT = 1024
# What an events.k8s.io/v1 update may not change (the storage names; the causes use kube's
# internal field names, which are core's but for reportingController).
_EVENT_IMMUTABLE = (
    ("involvedObject", "involvedObject"),
    ("reason", "reason"),
    ("message", "message"),
    ("source", "source"),
    ("firstTimestamp", "firstTimestamp"),
    ("lastTimestamp", "lastTimestamp"),
    ("count", "count"),
    ("reason", "reason"),  # (kube checks reason twice, and reports it twice)
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("action", "action"),
    ("related", "related"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
)


def _event_causes(obj: JSON, old: JSON | None, *, strict: bool) -> list[Cause]:
    """kube's ValidateEventCreate/Update (pkg/apis/core/validation/events.go) on an Event
    in its stored (core/v1) shape.

    Every write passes the legacy checks, through either API: an Event without
    ``eventTime`` must be in its object's namespace (or in "default" when the object has
    none); one with ``eventTime`` (a "new" Event) needs reportingController, a
    reportingInstance, an action and a reason, within kube's lengths. A write through
    events.k8s.io/v1 (``strict``) also needs, on create, an eventTime, a type of Normal
    or Warning, no deprecated field and a sound series; on update it may change only the
    series and metadata.
    """
    causes: list[Cause] = []
    ns = str(obj["metadata"].get("namespace") or "")
    involved = obj.get("involvedObject")
    involved_ns = str((involved if isinstance(involved, dict) else {}).get("namespace") or "")
    mismatch = Cause(
        "involvedObject.namespace",
        f"Invalid value: {go_quote(involved_ns)}: does not match event.namespace",
    )
    if not obj.get("eventTime"):
        if (not involved_ns and ns not in ("", "default")) or (involved_ns and ns != involved_ns):
            causes.append(mismatch)
    else:
        if not involved_ns and ns not in ("default", "kube-system"):
            causes.append(mismatch)
        controller = str(obj.get("reportingComponent") or "")
        if not controller:
            causes.append(Cause("reportingController", "Required value", "FieldValueRequired"))
        elif bad_meta_key(controller):
            causes.append(
                Cause(
                    "reportingController",
                    f"Invalid value: {go_quote(controller)}: name part must consist of "
                    f"alphanumeric characters, '-', '_' or '.', and must start and end with "
                    f"an alphanumeric character",
                )
            )
        for name, limit in _EVENT_LIMITS:
            value = str(obj.get(name) or "")
            if not value:
                causes.append(Cause(name, "Required value", "FieldValueRequired"))
            elif len(value) > limit:
                causes.append(
                    Cause(name, f'Invalid value: "": can have at most {limit} characters')
                )
        if len(str(obj.get("message") or "")) > _NOTE_LIMIT:
            causes.append(
                Cause("message", f'Invalid value: "": can have at most {_NOTE_LIMIT} characters')
            )
    if not strict:
        return causes
    # (in kube's order: the series, then the create's or the update's own checks)
    if old is None or obj.get("series") != old.get("series"):
        series = obj.get("series")
        if isinstance(series, dict):
            if not isinstance(series.get("count"), int) or series["count"] < 2:
                causes.append(Cause("series.count", 'Invalid value: "": should be at least 2'))
            if not series.get("lastObservedTime"):
                causes.append(
                    Cause("series.lastObservedTime", "Required value", "FieldValueRequired")
                )
    if old is None:
        if not obj.get("eventTime"):
            causes.append(Cause("eventTime", "Required value", "FieldValueRequired"))
        if obj.get("type") not in ("Normal", "Warning"):
            causes.append(
                Cause("type", f'Invalid value: "": has invalid value: {obj.get("type") or ""}')
            )
        for name in ("firstTimestamp", "lastTimestamp", "count"):
            if obj.get(name):
                causes.append(Cause(name, 'Invalid value: "": needs to be unset'))
        source = obj.get("source")
        if isinstance(source, dict) and (source.get("component") or source.get("host")):
            causes.append(Cause("source", 'Invalid value: "": needs to be unset'))
    else:
        for stored, name in _EVENT_IMMUTABLE:
            if obj.get(stored) != old.get(stored):
                shown = go_quote(orjson.dumps(obj.get(stored)).decode())
                causes.append(Cause(name, f"Invalid value: {shown}: field is immutable"))
    return causes


def _event_cells(obj: JSON, now: datetime) -> list[Any]:
    """kube's printEvent, through either Event API (the same columns for both)."""

    def pick(*names: str) -> Any:
        return next((obj[n] for n in names if obj.get(n)), None)

    first = pick("firstTimestamp", "deprecatedFirstTimestamp")
    first_seen = human_age(first or obj.get("eventTime"), now)
    last = pick("lastTimestamp", "deprecatedLastTimestamp")
    last_seen = human_age(last, now) if last else first_seen
    series = obj.get("series")
    count = pick("count", "deprecatedCount") or 1
    if isinstance(series, dict):
        last_seen = human_age(series.get("lastObservedTime"), now)
        count = series.get("count") or count
    ref = pick("involvedObject", "regarding") or {}
    kind = str(ref.get("kind") or "").lower()
    target = f"{kind}/{ref['name']}" if ref.get("name") else kind
    source = pick("source", "deprecatedSource") or {}
    shown_source = ", ".join(str(source[k]) for k in ("component", "host") if source.get(k))
    return [
        last_seen,
        obj.get("type") or "",
        obj.get("reason") or "",
        target,
        ref.get("fieldPath") or "",
        shown_source or pick("reportingComponent", "reportingController") or "",
        str(pick("message", "note") or "").strip(),
        first_seen,
        count,
        (obj.get("metadata") or {}).get("name"),
    ]


class _Event(BaseStrategy):
    """An Event: validated as kube validates it, the stricter way through events.k8s.io/v1;
    printed as kube's printEvent prints it."""

    # kube's event table: no leading NAME and no AGE, the wide columns (priority 1) between;
    # the cells are _event_cells'.
    prints_name = False
    prints_age = False
    columns: tuple[Column, ...] = (
        Column("Last Seen", "string"),
        Column("Type", "string"),
        Column("Reason", "string"),
        Column("Object", "string"),
        Column("Subobject", "string", priority=1),
        Column("Source", "string", priority=1),
        Column("Message", "string"),
        Column("First Seen", "string", priority=1),
        Column("Count", "string", priority=1),
        Column("Name", "string", priority=1),
    )

    def cells(self, obj: JSON, now: datetime) -> list[Any]:
        """kube's printEvent."""
        return _event_cells(obj, now)

    def validate(
        self, rt: ResourceType, obj: JSON, old: JSON | None, ctx: WriteContext
    ) -> Sequence[Cause]:
        """kube's ValidateEventCreate/Update for the API the write came through."""
        return _event_causes(obj, old, strict=ctx.api_version == _EVENTS_STRICT)


_EVENT = _Event()

_REF_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
# The field selectors each Event API accepts (kube's AddFieldLabelConversionsForEvent in
# pkg/apis/core/v1 and pkg/apis/events/v1); "source" selects source.component, or the
# reporting component when there is none (EventToSelectableFields).
_EVENT_FIELDS = (
    *(f"involvedObject.{f}" for f in _REF_FIELDS),
    "reason",
    "reportingComponent",
    "source",
    "type",
)
_EVENTS_V1_FIELDS = (
    *(f"regarding.{f}" for f in _REF_FIELDS),
    "reason",
    "reportingController",
    "source",
    "type",
)

EVENTS = Builtin(
    builtin_type(
        "",
        "v1",
        "events",
        "Event",
        short=("ev",),
        generation=False,
        fields=_EVENT_FIELDS,
        create_on_update=True,
    ),
    _EVENT,
)
# One storage with core/v1 Events, in their shape (kube's cohabitating resources: the
# internal Event is core's, and etcd holds core/v1): see conversion.py.
EVENTS_K8S_IO = Builtin(
    dataclasses.replace(
        builtin_type("events.k8s.io", "v1", "events", "Event", short=("ev",), generation=False),
        selectable_fields=_EVENTS_V1_FIELDS,
        storage_key="/events",
        converter=conversion.EVENTS_V1,
        create_on_update=True,
    ),
    _EVENT,
)
