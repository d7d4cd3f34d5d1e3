"""Resource types the fake API server serves: built-in kinds and CRD-defined ones.

A ``ResourceType`` is everything the server needs to know about one
group/version/resource: names for discovery, scope, verbs, subresources, which
field selectors it accepts, its structural schema (for CRDs) and printer columns.
Each built-in kind defines its type with ``builtin_type`` in its module of ``kinds/``;
a CustomResourceDefinition's are built here (``crd_resource_types``). The registry of
served types is ``registry.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .conversion import Converter
from .crd import validate_schema_document
from .errors import BadRequest, Cause, invalid

__all__ = [
    "ALL_VERBS",
    "CRD_KEY",
    "NAMESPACE_KEY",
    "SUBRESOURCE_VERBS",
    "PrinterColumn",
    "ResourceType",
    "builtin_type",
    "crd_resource_types",
]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")

# Fields every kind can be selected on (kube-apiserver's DefaultMetaFieldsSet).
META_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class PrinterColumn:
    """One column of ``kubectl get`` output (CRD ``additionalPrinterColumns``)."""

    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0


@dataclass(frozen=True)
class ResourceType:
    """One served group/version/resource and everything the server knows about it."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: frozenset[str] = frozenset()
    # Extra field-selector paths beyond metadata.name/namespace (e.g. events' involvedObject.*).
    selectable_fields: tuple[str, ...] = ()
    # Whether writes bump metadata.generation (kinds with a spec do; ConfigMaps don't).
    has_generation: bool = True
    # Built-in kinds accept strategic merge patch; custom resources answer 415.
    builtin: bool = True
    # A DELETE that removes the object at once answers with the object itself (kube's
    # ReturnDeletedObject: pods, services, ...) rather than a Success Status.
    returns_deleted: bool = False
    # kube's AllowCreateOnUpdate: a PUT of a missing object creates it (events, endpoints,
    # leases, services).
    create_on_update: bool = False
    # kube's AllowUnconditionalUpdate: a PUT without metadata.resourceVersion replaces the
    # object; off for custom resources and leases (422: it must be specified).
    unconditional_update: bool = True
    # The scale subresource's paths: (specReplicasPath, statusReplicasPath,
    # labelSelectorPath or None: the LabelSelector at spec.selector, formatted), as a CRD
    # names them or a built-in kind's module states them; None for a type without one.
    scale: tuple[str, str, str | None] | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    # The CRD's openAPIV3Schema (None for built-ins, which are stored as given).
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    # Overrides ``key`` for kinds that share storage under another name: events.k8s.io/v1
    # Events are kept with core/v1 Events ("/events"), as kube-apiserver keeps them.
    storage_key: str = ""
    # For a kind stored in another type's shape (events.k8s.io/v1 Events): how its objects
    # convert. None for every other kind, which is stored as served and pays nothing.
    converter: Converter | None = field(default=None, compare=False, hash=False)

    # key and api_version are read several times by every write: computed once per type
    # (the fields are frozen), kept in the instance __dict__, outside eq, hash and repr.
    @functools.cached_property
    def api_version(self) -> str:
        """``group/version``, or ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``plural.group`` as kube names it in messages (``widgets.example.com``)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def list_kind(self) -> str:
        """The kind of a list of these objects."""
        return f"{self.kind}List"

    @property
    def has_status(self) -> bool:
        """Whether ``/status`` is a subresource (then the main resource ignores status)."""
        return "status" in self.subresources

    @functools.cached_property
    def key(self) -> str:
        """Version-independent storage key: objects of all served versions share it."""
        return self.storage_key or f"{self.group}/{self.plural}"

    @property
    def field_selectors(self) -> tuple[str, ...]:
        """Field paths accepted in ``fieldSelector``."""
        return META_FIELDS + self.selectable_fields

    @property
    def field_paths(self) -> Mapping[str, str] | None:
        """Field-selector labels that select another path of the stored object, if any."""
        return self.converter.field_labels if self.converter is not None else None

    def base_path(self, namespace: str | None) -> str:
        """The collection's URL path."""
        prefix = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{prefix}/namespaces/{namespace}/{self.plural}"
        return f"{prefix}/{self.plural}"


def builtin_type(
    group: str,
    version: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    status: bool = False,
    generation: bool = True,
    fields: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    returns_deleted: bool = False,
    create_on_update: bool = False,
    unconditional_update: bool = True,
    subresources: tuple[str, ...] = (),
    scale: tuple[str, str, str | None] | None = None,
) -> ResourceType:
    """A built-in kind's type: its singular is its kind in lower case; ``status`` serves
    the status subresource, ``scale`` (its paths) the scale subresource, ``subresources``
    any other."""
    subs = set(subresources)
    if status:
        subs.add("status")
    if scale is not None:
        subs.add("scale")
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        categories=categories,
        subresources=frozenset(subs),
        selectable_fields=fields,
        has_generation=generation,
        builtin=True,
        verbs=verbs,
        returns_deleted=returns_deleted,
        create_on_update=create_on_update,
        unconditional_update=unconditional_update,
        scale=scale,
    )


CRD_KEY = "apiextensions.k8s.io/customresourcedefinitions"
NAMESPACE_KEY = "/namespaces"


def _columns(raw: Iterable[dict[str, Any]]) -> tuple[PrinterColumn, ...]:
    return tuple(
        PrinterColumn(
            name=str(c.get("name", "")),
            type=str(c.get("type", "string")),
            json_path=str(c.get("jsonPath", "")),
            description=str(c.get("description", "")),
            format=str(c.get("format", "")),
            priority=int(c.get("priority", 0)),
        )
        for c in raw
    )


def crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves, one per served version.

    Raises ``Invalid`` (422 with field paths) for a definition the real server refuses, and
    ``BadRequest`` (400, as kube's decoding) for one whose parts have the wrong JSON type.
    """
    try:
        return _crd_resource_types(crd)
    except (AttributeError, TypeError, ValueError, KeyError) as e:
        # A list where an object belongs, a number for a name, ...: kube never gets as far
        # as validation with those, and a fake must not answer them with a 500.
        raise BadRequest(
            f'CustomResourceDefinition in version "v1" cannot be handled as a '
            f"CustomResourceDefinition: unexpected shape ({type(e).__name__}: {e})"
        ) from None


def _crd_resource_types(crd: dict[str, Any]) -> list[ResourceType]:
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    name = (crd.get("metadata") or {}).get("name", "")
    versions = spec.get("versions") or []
    texts = [group, name, *(names.get(k) for k in ("plural", "singular", "kind", "listKind"))]
    texts += [n for k in ("shortNames", "categories") for n in names.get(k) or ()]
    texts += [v.get("name") for v in versions]
    if any(t is not None and not isinstance(t, str) for t in texts):
        raise TypeError("names, group and version names must be strings")
    causes: list[Cause] = []
    causes += [
        Cause(f"spec.versions[{i}].name", "Required value", "FieldValueRequired")
        for i, v in enumerate(versions)
        if not v.get("name")
    ]
    if not group:
        causes.append(Cause("spec.group", "Required value", "FieldValueRequired"))
    elif "." not in group:
        # kube's ValidateCustomResourceDefinitionSpec; it also keeps CRDs off the built-in
        # groups without dots (apps, batch, policy).
        causes.append(
            Cause(
                "spec.group", f'Invalid value: "{group}": should be a domain with at least one dot'
            )
        )
    for f in ("plural", "kind"):
        if not names.get(f):
            causes.append(Cause(f"spec.names.{f}", "Required value", "FieldValueRequired"))
    scope = spec.get("scope")
    if scope not in ("Namespaced", "Cluster"):
        causes.append(
            Cause(
                "spec.scope",
                f'Unsupported value: "{scope}": supported values: "Cluster", "Namespaced"',
                "FieldValueNotSupported",
            )
        )
    if not versions:
        causes.append(Cause("spec.versions", "Required value", "FieldValueRequired"))
    if names.get("plural") and group and name != f"{names['plural']}.{group}":
        causes.append(
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    storage = [v for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        causes.append(
            Cause(
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    for i, v in enumerate(versions):
        # kube's ValidateCustomResourceDefinition: each version's schema must be
        # structural, with the keywords and extensions it allows, and defaults that
        # validate; a v1 CRD without a schema is refused.
        schema = (v.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        causes += validate_schema_document(schema, f"spec.versions[{i}].schema.openAPIV3Schema")
    if causes:
        raise invalid("CustomResourceDefinition", "apiextensions.k8s.io", name, causes)
    plural = names["plural"]
    out = []
    for v in versions:
        if not v.get("served", True):
            continue
        subresources = v.get("subresources") or spec.get("subresources") or {}
        subs = set(subresources.keys())
        scale = subresources.get("scale") if isinstance(subresources, dict) else None
        scale_paths = (
            (
                str(scale.get("specReplicasPath") or ".spec.replicas"),
                str(scale.get("statusReplicasPath") or ".status.replicas"),
                str(scale["labelSelectorPath"]) if scale.get("labelSelectorPath") else None,
            )
            if isinstance(scale, dict)
            else None
        )
        schema = (v.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
        selectable = tuple(
            str(s.get("jsonPath", "")).lstrip(".") for s in v.get("selectableFields") or ()
        )
        out.append(
            ResourceType(
                group=group,
                version=str(v.get("name")),
                plural=plural,
                singular=names.get("singular") or str(names["kind"]).lower(),
                kind=names["kind"],
                namespaced=scope == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(subs),
                selectable_fields=selectable,
                has_generation=True,
                builtin=False,
                unconditional_update=False,
                scale=scale_paths,
                printer_columns=_columns(v.get("additionalPrinterColumns") or ()),
                schema=schema,
            )
        )
    return out
