"""The ``scale`` subresource: an object's replicas seen, and set, as an autoscaling/v1 Scale.

``kubectl scale`` and autoscalers read ``…/scale`` and patch or replace it; kube-apiserver
maps the Scale onto the object through the paths its type names (``ResourceType.scale``):
a built-in workload's module states them (``spec.replicas``, ``status.replicas`` and the
label selector of ``spec.selector``), a custom resource's CRD names them
(``subresources.scale``: ``specReplicasPath``, ``statusReplicasPath``,
``labelSelectorPath``). A write through ``/scale`` is a write of the object (a new
resourceVersion, a generation bump), and its answer is the new Scale.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .errors import Cause, invalid
from .objectmeta import format_label_selector
from .resources import ResourceType

__all__ = ["scale_of", "with_scale"]

JSON = dict[str, Any]

# The paths of a scale subresource whose type names none (a CRD's ``scale`` that is not
# an object): the replicas at spec.replicas and status.replicas.
_UNNAMED = (".spec.replicas", ".status.replicas", None)


def _paths(rt: ResourceType) -> tuple[str, str, str | None]:
    return rt.scale if rt.scale is not None else _UNNAMED


def _split(path: str) -> list[str]:
    return [p for p in path.lstrip(".").split(".") if p]


def _read(obj: Any, path: str) -> Any:
    for part in _split(path):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _with(obj: JSON, path: str, value: Any) -> JSON:
    """``obj`` with ``value`` at ``path``: the dicts on the path copied, the rest shared."""
    parts = _split(path)
    out = dict(obj)
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = child = dict(child) if isinstance(child, dict) else {}
        node = child
    node[parts[-1]] = value
    return out


def scale_of(rt: ResourceType, obj: JSON) -> JSON:
    """The autoscaling/v1 Scale of ``obj``."""
    spec_path, status_path, selector_path = _paths(rt)
    meta = obj.get("metadata") or {}
    replicas = _read(obj, spec_path)
    status: JSON = {"replicas": _read(obj, status_path) or 0}
    if selector_path is None:
        selector = format_label_selector((obj.get("spec") or {}).get("selector"))
    else:
        selector = _read(obj, selector_path)
    if selector:
        status["selector"] = selector
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": replicas if isinstance(replicas, int) else 0},
        "status": status,
    }


def with_scale(rt: ResourceType, obj: JSON, scale: Any) -> JSON:
    """``obj`` with the replicas of ``scale`` (a Scale, as written to ``/scale``).

    The Scale's resourceVersion becomes the write's precondition (none: unconditional);
    its name must be the object's. Raises BadRequest for what is not a Scale and Invalid
    for negative replicas, as kube's ValidateScale does.
    """
    if not isinstance(scale, dict):
        raise errors.BadRequest("the body of the request must be a Scale object")
    if scale.get("kind") not in (None, "", "Scale") or scale.get("apiVersion") not in (
        None,
        "",
        "autoscaling/v1",
    ):
        raise errors.BadRequest(
            f"the body of the request must be an autoscaling/v1 Scale, not "
            f"{scale.get('apiVersion')} {scale.get('kind')}"
        )
    raw_meta, raw_spec = scale.get("metadata"), scale.get("spec")
    meta: JSON = raw_meta if isinstance(raw_meta, dict) else {}
    name = str((obj.get("metadata") or {}).get("name", ""))
    if meta.get("name", name) != name:
        raise errors.name_mismatch(meta.get("name"), name)
    spec: JSON = raw_spec if isinstance(raw_spec, dict) else {}
    replicas = spec.get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.BadRequest(
            'Scale in version "v1" cannot be handled as a Scale: json: cannot unmarshal '
            "value into Go struct field ScaleSpec.spec.replicas of type int32"
        )
    if replicas < 0:
        raise invalid(
            "Scale",
            "autoscaling",
            name,
            [
                Cause(
                    "spec.replicas",
                    f"Invalid value: {replicas}: must be greater than or equal to 0",
                )
            ],
        )
    out = _with(obj, _paths(rt)[0], replicas)
    out["metadata"] = new_meta = dict(obj.get("metadata") or {})
    if meta.get("resourceVersion"):
        new_meta["resourceVersion"] = meta["resourceVersion"]
    else:
        new_meta.pop("resourceVersion", None)
    return out
