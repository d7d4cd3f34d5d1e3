"""CRD manifests and object builders for the real-client tests (``from crds import ...``).

The test directory has no ``__init__.py``, so pytest (prepend import mode) puts it on
``sys.path`` and this module imports by its plain name.
"""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]

GIZMO_GROUP = "clients.ntinv.example.com"
GIZMO_VERSION = "v1"
GIZMO_API_VERSION = f"{GIZMO_GROUP}/{GIZMO_VERSION}"
GIZMO_PLURAL = "gizmos"

# A namespaced kind with what every client exercises: a status subresource (kopf patches
# status through it), printer columns (kubectl's Table), a schema with a required field, a
# bounded integer and an enum with a default (422 messages, defaulting, pruning).
GIZMO_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{GIZMO_PLURAL}.{GIZMO_GROUP}"},
    "spec": {
        "group": GIZMO_GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": GIZMO_PLURAL,
            "singular": "gizmo",
            "kind": "Gizmo",
            "listKind": "GizmoList",
            "shortNames": ["gz"],
        },
        "versions": [
            {
                "name": GIZMO_VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {
                                        "type": "string",
                                        "enum": ["red", "green", "blue"],
                                        "default": "red",
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                # kopf stores handler results under status.<handler id>.
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def gizmo(name: str, size: int = 1, namespace: str = "default", **spec: Any) -> JSON:
    """A Gizmo manifest."""
    return {
        "apiVersion": GIZMO_API_VERSION,
        "kind": "Gizmo",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": size, **spec},
    }


GROUP = "example.com"
WIDGETS = f"/apis/{GROUP}/v1/namespaces/default/widgets"

# A CRD with everything the server implements for schemas: required fields, types,
# defaults, pruning, a CEL immutability rule and a status subresource.
WIDGET_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 0},
                                    "color": {"type": "string", "default": "blue"},
                                    "owner": {
                                        "type": "string",
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self == oldSelf",
                                                "message": "owner is immutable",
                                            },
                                        ],
                                    },
                                    "free": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "count": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}
