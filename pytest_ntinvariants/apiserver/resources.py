"""Resource types the fake API server serves: built-in kinds and CRD-defined ones.

A ``ResourceType`` is everything the server needs to know about one
group/version/resource: names for discovery, scope, verbs, subresources, which
field selectors it accepts, its structural schema (for CRDs) and printer columns.
The ``Registry`` maps URL coordinates to types and is updated when a
CustomResourceDefinition is created, changed or deleted.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .conversion import EVENTS_V1, Converter
from .crd import validate_schema_document
from .errors import BadRequest, Cause, Invalid, invalid

__all__ = ["BUILTIN_TYPES", "PrinterColumn", "Registry", "ResourceType", "crd_resource_types"]

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
    # A custom resource's scale subresource: (specReplicasPath, statusReplicasPath,
    # labelSelectorPath or None). None for built-ins, whose scale maps spec.replicas.
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


def _b(
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
    extra_sub: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    returns_deleted: bool = False,
    create_on_update: bool = False,
    unconditional_update: bool = True,
) -> ResourceType:
    subs = set(extra_sub)
    if status:
        subs.add("status")
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
    )


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

# The built-in kinds. They are stored generically (no schema), like moto stores
# resources it does not model: enough for controllers that read and write them.
BUILTIN_TYPES: tuple[ResourceType, ...] = (
    # No deletecollection for namespaces (kube serves none): one DELETE must not empty a cluster.
    _b(
        "",
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short=("ns",),
        status=True,
        generation=False,
        fields=("status.phase",),
        extra_sub=("finalize",),
        verbs=tuple(v for v in ALL_VERBS if v != "deletecollection"),
        returns_deleted=True,
    ),
    _b("", "v1", "configmaps", "ConfigMap", short=("cm",), generation=False),
    _b("", "v1", "secrets", "Secret", generation=False, fields=("type",)),
    _b(
        "",
        "v1",
        "events",
        "Event",
        short=("ev",),
        generation=False,
        fields=_EVENT_FIELDS,
        create_on_update=True,
    ),
    _b(
        "",
        "v1",
        "pods",
        "Pod",
        short=("po",),
        status=True,
        fields=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        categories=("all",),
        returns_deleted=True,
    ),
    _b(
        "",
        "v1",
        "services",
        "Service",
        short=("svc",),
        status=True,
        categories=("all",),
        returns_deleted=True,
        create_on_update=True,
    ),
    _b(
        "",
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        short=("sa",),
        generation=False,
        returns_deleted=True,
    ),
    _b("", "v1", "endpoints", "Endpoints", short=("ep",), generation=False, create_on_update=True),
    _b(
        "",
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        short=("pvc",),
        status=True,
        returns_deleted=True,
    ),
    _b(
        "",
        "v1",
        "persistentvolumes",
        "PersistentVolume",
        namespaced=False,
        short=("pv",),
        status=True,
        returns_deleted=True,
    ),
    _b("", "v1", "nodes", "Node", namespaced=False, short=("no",), status=True),
    _b("", "v1", "resourcequotas", "ResourceQuota", short=("quota",), status=True),
    _b("", "v1", "limitranges", "LimitRange", short=("limits",)),
    _b(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        short=("deploy",),
        status=True,
        extra_sub=("scale",),
        categories=("all",),
    ),
    _b(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        short=("rs",),
        status=True,
        extra_sub=("scale",),
        categories=("all",),
    ),
    _b(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        short=("sts",),
        status=True,
        extra_sub=("scale",),
        categories=("all",),
    ),
    _b("apps", "v1", "daemonsets", "DaemonSet", short=("ds",), status=True, categories=("all",)),
    _b("batch", "v1", "jobs", "Job", status=True, categories=("all",)),
    _b("batch", "v1", "cronjobs", "CronJob", short=("cj",), status=True, categories=("all",)),
    _b(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        generation=False,
        create_on_update=True,
        unconditional_update=False,
    ),
    # One storage with core/v1 Events, in their shape (kube's cohabitating resources: the
    # internal Event is core's, and etcd holds core/v1): see conversion.py.
    dataclasses.replace(
        _b("events.k8s.io", "v1", "events", "Event", short=("ev",), generation=False),
        selectable_fields=_EVENTS_V1_FIELDS,
        storage_key="/events",
        converter=EVENTS_V1,
        create_on_update=True,
    ),
    _b(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short=("crd", "crds"),
        status=True,
    ),
    _b("rbac.authorization.k8s.io", "v1", "roles", "Role", generation=False),
    _b("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", generation=False),
    _b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "ClusterRole",
        namespaced=False,
        generation=False,
    ),
    _b(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
        generation=False,
    ),
    _b("networking.k8s.io", "v1", "ingresses", "Ingress", short=("ing",), status=True),
    _b("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", short=("netpol",)),
    _b("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True),
    # Reviews: created and answered, never stored (see reviews.py).
    *(
        _b(group, "v1", plural, kind, namespaced=plural.startswith("local"), verbs=("create",))
        for group, plural, kind in (
            ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
            ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
            ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
            ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview"),
            ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
            ("authentication.k8s.io", "tokenreviews", "TokenReview"),
        )
    ),
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
