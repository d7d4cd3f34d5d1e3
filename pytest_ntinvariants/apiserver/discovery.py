"""Discovery, OpenAPI and Table documents, built from the registry.

Two discovery formats are served: the legacy ``APIVersions``/``APIGroupList``/
``APIResourceList`` that kopf parses, and aggregated discovery v2 that kubectl asks for
by ``Accept``. kopf crashes on the
aggregated body, so it is only ever sent to a client that asked for it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .resources import SUBRESOURCE_VERBS, Registry, ResourceType

__all__ = [
    "aggregated_discovery",
    "api_group",
    "api_group_list",
    "api_versions",
    "openapi_group_version",
    "openapi_root",
    "resource_list",
    "table",
]

JSON = dict[str, Any]
KUBE_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-ntinvariants",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def api_versions(server_address: str) -> JSON:
    """``GET /api``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(group: str, versions: list[str]) -> JSON:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(registry: Registry) -> JSON:
    """``GET /apis`` (legacy)."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_entry(g, vs) for g, vs in registry.groups().items() if g],
    }


def api_group(registry: Registry, group: str) -> JSON | None:
    """``GET /apis/{group}``."""
    versions = registry.groups().get(group)
    if not group or not versions:
        return None
    return dict(_group_entry(group, versions), kind="APIGroup", apiVersion="v1")


def _types(registry: Registry, group: str, version: str) -> list[ResourceType]:
    return [t for t in registry if t.group == group and t.version == version]


def resource_list(registry: Registry, group: str, version: str) -> JSON | None:
    """``GET /api/v1`` or ``/apis/{group}/{version}``: the ``APIResourceList``."""
    types = _types(registry, group, version)
    if not types:
        return None
    resources: list[JSON] = []
    for t in types:
        entry: JSON = {
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
        }
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        resources.append(entry)
        for sub in sorted(t.subresources):
            # kopf needs "<plural>/status" here, or it folds status into the main patch,
            # where status-subresource semantics silently drop it.
            sub_kind = "Scale" if sub == "scale" else t.kind
            resources.append(
                {
                    "name": f"{t.plural}/{sub}",
                    "singularName": "",
                    "namespaced": t.namespaced,
                    "kind": sub_kind,
                    "verbs": list(SUBRESOURCE_VERBS),
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def aggregated_discovery(registry: Registry, core: bool) -> JSON:
    """``GET /api`` or ``/apis`` with the aggregated v2 ``Accept`` (kubectl)."""
    items = []
    for group, versions in registry.groups().items():
        if bool(group) == core:
            continue
        vdocs = []
        for v in versions:
            resources = []
            for t in _types(registry, group, v):
                gvk = {"group": t.group, "version": t.version, "kind": t.kind}
                doc: JSON = {
                    "resource": t.plural,
                    "responseKind": gvk,
                    "scope": "Namespaced" if t.namespaced else "Cluster",
                    "singularResource": t.singular,
                    "verbs": list(t.verbs),
                }
                if t.short_names:
                    doc["shortNames"] = list(t.short_names)
                if t.categories:
                    doc["categories"] = list(t.categories)
                if t.subresources:
                    doc["subresources"] = [
                        {
                            "subresource": s,
                            "responseKind": gvk
                            if s != "scale"
                            else {"group": "autoscaling", "version": "v1", "kind": "Scale"},
                            "verbs": list(SUBRESOURCE_VERBS),
                        }
                        for s in sorted(t.subresources)
                    ]
                resources.append(doc)
            vdocs.append({"version": v, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vdocs})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _hash(registry: Registry, group: str, version: str) -> str:
    # A content hash, so kubectl's openapi cache notices a changed CRD.
    text = repr([(t.plural, t.kind, t.schema) for t in _types(registry, group, version)])
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper()


def openapi_root(registry: Registry) -> JSON:
    """``GET /openapi/v3``: one entry per served group-version."""
    paths = {}
    for group, versions in registry.groups().items():
        for v in versions:
            path = _gv_path(group, v)
            digest = _hash(registry, group, v)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def _schema_name(t: ResourceType) -> str:
    reversed_group = ".".join(reversed(t.group.split("."))) if t.group else "io.k8s.api.core"
    return f"{reversed_group}.{t.version}.{t.kind}"


def openapi_group_version(registry: Registry, group: str, version: str) -> JSON | None:
    """``GET /openapi/v3/{api|apis/group}/{version}``.

    kubectl's strict validation looks for a PATCH operation declaring the
    ``fieldValidation`` query parameter for the kind it writes, and validates the body
    against the component schema (CRD schemas as given; built-ins accept any fields).
    """
    types = _types(registry, group, version)
    if not types:
        return None
    params = [
        {"name": n, "in": "query", "schema": {"type": "string"}}
        for n in ("dryRun", "fieldManager", "fieldValidation")
    ]
    paths: JSON = {}
    schemas: JSON = {}
    for t in types:
        gvk = {"group": t.group, "version": t.version, "kind": t.kind}
        name = _schema_name(t)
        ref = {"$ref": f"#/components/schemas/{name}"}
        # No strategic-merge-patch+json here, though built-ins accept it: when the PATCH
        # operation lists it, kubectl apply builds its patch from this document's schemas
        # (kubectl/pkg/cmd/apply/patcher.go, gvkSupportsPatchOpenAPIV3), which would need
        # every built-in's real schema, ObjectMeta included; against the schemaless
        # stand-ins it warns 'error calculating patch from openapi v3 spec: unable to
        # find api field "metadata"'. Unlisted, kubectl uses its compiled-in types for
        # built-ins (the same strategic patch) and a JSON merge patch for custom
        # resources, which is what a real server's CRD document leads it to.
        body = {
            "content": {
                m: {"schema": ref}
                for m in (
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                )
            }
        }
        scope = "namespaces/{namespace}/" if t.namespaced else ""
        item = f"/{_gv_path(group, version)}/{scope}{t.plural}/{{name}}"
        collection = item.rsplit("/", 1)[0]
        op = {
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
            },
        }
        paths[item] = {
            "get": dict(op, **{"x-kubernetes-action": "get"}),
            "put": dict(
                op,
                **{
                    "x-kubernetes-action": "put",
                    "requestBody": {"content": {"application/json": {"schema": ref}}},
                },
            ),
            "patch": dict(op, **{"x-kubernetes-action": "patch", "requestBody": body}),
            "delete": dict(op, **{"x-kubernetes-action": "delete"}),
        }
        paths[collection] = {
            "post": dict(
                op,
                **{
                    "x-kubernetes-action": "post",
                    "requestBody": {"content": {"application/json": {"schema": ref}}},
                },
            ),
            "get": dict(op, **{"x-kubernetes-action": "list"}),
        }
        schema: JSON = (
            dict(t.schema)
            if t.schema
            else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        )
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[name] = schema
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": KUBE_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": schemas},
    }


# ---------------------------------------------------------------------------- Table

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _jsonpath(obj: Any, path: str) -> Any:
    """The simple JSONPath subset printer columns use (``.a.b``, ``.a[0].b``)."""
    node = obj
    for m in _PATH_PART.finditer(path.strip().lstrip(".").strip("{}")):
        key, index = m.group(1), m.group(2)
        if key is not None:
            node = node.get(key) if isinstance(node, dict) else None
        else:
            i = int(index)
            node = node[i] if isinstance(node, list) and i < len(node) else None
        if node is None:
            return None
    return node


def human_age(created: str | None, now: datetime | None = None) -> str:
    """kubectl's short duration (``5s``, ``3m2s``, ``4h``, ``2d``) since ``created``."""
    if not created:
        return "<unknown>"
    try:
        then = datetime.strptime(created.split(".")[0].rstrip("Z") + "Z", "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return "<invalid>"
    then = then.replace(tzinfo=UTC)
    seconds = max(0, int(((now or datetime.now(UTC)) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _count(*fields: str) -> Callable[[JSON], int]:
    def count(obj: JSON) -> int:
        return sum(len(obj.get(f) or ()) for f in fields)

    return count


def _path(path: str) -> Callable[[JSON], Any]:
    return lambda obj: _jsonpath(obj, path)


def _int(path: str) -> Callable[[JSON], int]:
    def read(obj: JSON) -> int:
        value = _jsonpath(obj, path)
        return value if isinstance(value, int) else 0

    return read


def _ratio(ready: str, total: str, default_total: int = 0) -> Callable[[JSON], str]:
    def read(obj: JSON) -> str:
        total_value = _jsonpath(obj, total)
        if not isinstance(total_value, int):
            total_value = default_total
        return f"{_int(ready)(obj)}/{total_value}"

    return read


def _pod_ready(obj: JSON) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for c in statuses if isinstance(c, dict) and c.get("ready"))
    return f"{ready}/{len((obj.get('spec') or {}).get('containers') or [])}"


def _pod_status(obj: JSON) -> str:
    # kube's printPod, in short: a deletion, a waiting or terminated container's reason,
    # else the pod's reason or phase.
    status = obj.get("status") or {}
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {} if isinstance(c, dict) else {}
        for kind in ("waiting", "terminated"):
            reason = (state.get(kind) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _pod_restarts(obj: JSON) -> int:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return sum(int(c.get("restartCount") or 0) for c in statuses if isinstance(c, dict))


def _svc_external_ip(obj: JSON) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    external = list(spec.get("externalIPs") or [])
    if spec.get("type") == "LoadBalancer":
        ingress = (status.get("loadBalancer") or {}).get("ingress") or []
        external += [i.get("ip") or i.get("hostname") for i in ingress if isinstance(i, dict)]
        return ",".join(str(e) for e in external if e) or "<pending>"
    if spec.get("type") == "ExternalName":
        return str(spec.get("externalName") or "<none>")
    return ",".join(str(e) for e in external) or "<none>"


def _svc_ports(obj: JSON) -> str:
    ports = []
    for p in (obj.get("spec") or {}).get("ports") or []:
        if not isinstance(p, dict):
            continue
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        ports.append(f"{p.get('port')}{node}/{p.get('protocol') or 'TCP'}")
    return ",".join(ports) or "<none>"


def _job_status(obj: JSON) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    true = {c.get("type") for c in conditions if isinstance(c, dict) and c.get("status") == "True"}
    for kind in ("Failed", "Complete", "SuccessCriteriaMet", "FailureTarget", "Suspended"):
        if kind in true:
            return kind
    return "Running"


def _endpoints(obj: JSON) -> str:
    out = []
    for subset in obj.get("subsets") or []:
        if not isinstance(subset, dict):
            continue
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or [{}]:
                ip = (address or {}).get("ip", "")
                out.append(f"{ip}:{port.get('port')}" if port.get("port") else str(ip))
    return ",".join(out) or "<none>"


def _node_status(obj: JSON) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"), None)
    status = (
        "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    )
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: JSON) -> str:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in labels if k.startswith(prefix) and k != prefix)
    return ",".join(roles) or "<none>"


def _age_here(obj: JSON) -> None:
    """Marks where a kind's Age column goes when it is not the last one (nodes)."""
    return None


# The server-side columns of the built-ins users most often ``kubectl get`` (kube's
# pkg/printers/internalversion); other built-ins print NAME and AGE.
_BUILTIN_COLUMNS: dict[str, tuple[tuple[str, str, Callable[[JSON], Any]], ...]] = {
    "/namespaces": (("Status", "string", _path(".status.phase")),),
    "/configmaps": (("Data", "integer", _count("data", "binaryData")),),
    "/secrets": (("Type", "string", _path(".type")), ("Data", "integer", _count("data"))),
    "/serviceaccounts": (("Secrets", "integer", _count("secrets")),),
    "/pods": (
        ("Ready", "string", _pod_ready),
        ("Status", "string", _pod_status),
        ("Restarts", "string", _pod_restarts),
    ),
    "/services": (
        ("Type", "string", lambda o: (o.get("spec") or {}).get("type") or "ClusterIP"),
        ("Cluster-IP", "string", lambda o: (o.get("spec") or {}).get("clusterIP") or "<none>"),
        ("External-IP", "string", _svc_external_ip),
        ("Port(s)", "string", _svc_ports),
    ),
    "/endpoints": (("Endpoints", "string", _endpoints),),
    "/nodes": (
        ("Status", "string", _node_status),
        ("Roles", "string", _node_roles),
        ("Age", "string", _age_here),
        ("Version", "string", _path(".status.nodeInfo.kubeletVersion")),
    ),
    "apps/deployments": (
        ("Ready", "string", _ratio(".status.readyReplicas", ".spec.replicas", 1)),
        ("Up-to-date", "integer", _int(".status.updatedReplicas")),
        ("Available", "integer", _int(".status.availableReplicas")),
    ),
    "apps/replicasets": (
        ("Desired", "integer", _int(".spec.replicas")),
        ("Current", "integer", _int(".status.replicas")),
        ("Ready", "integer", _int(".status.readyReplicas")),
    ),
    "apps/statefulsets": (
        ("Ready", "string", _ratio(".status.readyReplicas", ".spec.replicas", 1)),
    ),
    "batch/jobs": (
        ("Status", "string", _job_status),
        ("Completions", "string", _ratio(".status.succeeded", ".spec.completions", 1)),
    ),
    "coordination.k8s.io/leases": (("Holder", "string", _path(".spec.holderIdentity")),),
    # CRDs print their creation time as is, and no Age (apiextensions' table convertor).
    "apiextensions.k8s.io/customresourcedefinitions": (
        ("Created At", "date", _path(".metadata.creationTimestamp")),
    ),
}
_NO_AGE = frozenset({"apiextensions.k8s.io/customresourcedefinitions", "/nodes"})


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


# kube's event table: no leading Name, and the wide columns (priority 1) between.
_EVENT_COLUMNS = (
    ("Last Seen", "string", 0),
    ("Type", "string", 0),
    ("Reason", "string", 0),
    ("Object", "string", 0),
    ("Subobject", "string", 1),
    ("Source", "string", 1),
    ("Message", "string", 0),
    ("First Seen", "string", 1),
    ("Count", "string", 1),
    ("Name", "string", 1),
)


def table(
    t: ResourceType, objs: list[JSON], *, list_meta: JSON | None, include_object: str = "Metadata"
) -> JSON:
    """A ``meta.k8s.io/v1`` Table of the objects, with the type's printer columns."""
    columns: list[JSON] = [
        {
            "name": "Name",
            "type": "string",
            "format": "name",
            "description": "Name must be unique within a namespace.",
            "priority": 0,
        }
    ]
    for c in t.printer_columns:
        columns.append(
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            }
        )
    if t.builtin and t.key == "/events":
        return _table_of_events(objs, list_meta, include_object)
    builtin = _BUILTIN_COLUMNS.get(t.key, ()) if t.builtin else ()
    for name, kind, cell in builtin:
        description = "CreationTimestamp is a timestamp." if cell is _age_here else ""
        columns.append(
            {"name": name, "type": kind, "format": "", "description": description, "priority": 0}
        )
    has_age = any(c.name == "Age" for c in t.printer_columns) or (t.builtin and t.key in _NO_AGE)
    if not has_age:
        columns.append(
            {
                "name": "Age",
                "type": "date",
                "format": "",
                "description": "CreationTimestamp is a timestamp.",
                "priority": 0,
            }
        )
    rows = []
    now = datetime.now(UTC)
    for obj in objs:
        meta = obj.get("metadata") or {}
        cells: list[Any] = [meta.get("name")]
        for c in t.printer_columns:
            value = _jsonpath(obj, c.json_path)
            if c.type == "date" and isinstance(value, str):
                value = human_age(value, now)
            cells.append(value)
        cells.extend(
            human_age(meta.get("creationTimestamp"), now) if cell is _age_here else cell(obj)
            for _, _, cell in builtin
        )
        if not has_age:
            cells.append(human_age(meta.get("creationTimestamp"), now))
        rows.append({"cells": cells, "object": _row_object(obj, include_object)})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": columns,
        "rows": rows,
    }


def _row_object(obj: JSON, include_object: str) -> Any:
    """What a row carries of its object (``includeObject``: None, Metadata or Object)."""
    if include_object == "Object":
        return obj
    if include_object == "None":
        return None
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata") or {},
    }


def _table_of_events(objs: list[JSON], list_meta: JSON | None, include_object: str) -> JSON:
    now = datetime.now(UTC)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": [
            {"name": name, "type": kind, "format": "", "description": "", "priority": priority}
            for name, kind, priority in _EVENT_COLUMNS
        ],
        "rows": [
            {"cells": _event_cells(obj, now), "object": _row_object(obj, include_object)}
            for obj in objs
        ],
    }
