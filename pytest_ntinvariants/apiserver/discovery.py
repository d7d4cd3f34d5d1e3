"""Discovery, OpenAPI and Table documents, built from the registry.

Two discovery formats are served: the legacy ``APIVersions``/``APIGroupList``/
``APIResourceList`` that kopf parses, and aggregated discovery v2 that kubectl asks for
by ``Accept``. kopf crashes on the
aggregated body, so it is only ever sent to a client that asked for it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from .kinds import strategy_for
from .kinds.columns import human_age, jsonpath
from .registry import Registry
from .resources import SUBRESOURCE_VERBS, ResourceType

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


def table(
    t: ResourceType, objs: list[JSON], *, list_meta: JSON | None, include_object: str = "Metadata"
) -> JSON:
    """A ``meta.k8s.io/v1`` Table of the objects, with the type's printer columns."""
    # A built-in kind's columns are its strategy's (kube's printers); a custom resource's,
    # its CRD's additionalPrinterColumns.
    strategy = strategy_for(t)
    columns: list[JSON] = []
    if strategy.prints_name:
        columns.append(
            {
                "name": "Name",
                "type": "string",
                "format": "name",
                "description": "Name must be unique within a namespace.",
                "priority": 0,
            }
        )
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
    for b in strategy.columns:
        columns.append(
            {
                "name": b.name,
                "type": b.type,
                "format": "",
                "description": b.description,
                "priority": b.priority,
            }
        )
    has_age = any(c.name == "Age" for c in t.printer_columns) or not strategy.prints_age
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
        cells: list[Any] = [meta.get("name")] if strategy.prints_name else []
        for c in t.printer_columns:
            value = jsonpath(obj, c.json_path)
            if c.type == "date" and isinstance(value, str):
                value = human_age(value, now)
            cells.append(value)
        cells.extend(strategy.cells(obj, now))
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
