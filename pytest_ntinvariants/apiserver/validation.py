"""The validation of one write, after kube-apiserver's order: the object's metadata, what
an update did to the system's fields, the kind's own rules (its strategy), then a custom
resource's schema (pruning, defaulting, validation and transition rules), with the
request's field validation (Ignore, Warn, Strict) deciding what unknown fields cost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import errors
from .crd import StructuralSchema
from .errors import Cause, invalid
from .gotext import go_json, go_quote
from .kinds import strategy_for
from .objectmeta import validate_meta
from .resources import ResourceType
from .versions import JSON, WriteContext

__all__ = ["validate_write"]

_MISSING: Any = object()


def validate_write(
    rt: ResourceType,
    obj: JSON,
    old: JSON | None,
    ctx: WriteContext,
    schema: StructuralSchema | None,
    *,
    shared: bool = False,
    unchanged: Sequence[str] = (),
    meta_unchanged: bool = False,
    update_causes: Sequence[Cause] = (),
) -> JSON:
    """Validate ``obj``; return it pruned and defaulted by ``schema`` (its CRD's), if any.

    Unless ``shared``, that is done in place (a create's body is all its own); with
    ``shared``, values below the root and metadata may belong to stored versions, so
    the schema's pruning and defaulting copy on write and the result may be a new dict.
    ``unchanged`` (with ``shared``): root fields whose values are those of a version this
    schema passed (the store's ``_checked``); the schema's walks may skip them. ``meta_unchanged``:
    what ``validate_meta`` reads is as in such a version, so it is not run again.
    ``update_causes``: what an update did to metadata kube refuses (``system_meta_update``),
    listed after the metadata's own causes as kube's rest.BeforeUpdate lists them.
    """
    meta = obj["metadata"]
    strategy = strategy_for(rt)
    causes = [] if meta_unchanged else validate_meta(meta, label_named=strategy.label_named)
    causes.extend(update_causes)
    causes.extend(strategy.validate(rt, obj, old, ctx))
    if schema is not None:
        # kube quotes the whole patched object in a patch's strict error: keep it.
        before = go_json(obj) if ctx.field_validation == "Strict" else ""
        still: Sequence[str] = ()
        if shared:
            normalized, pruned = schema.normalize(obj, unchanged)
            # validate() may skip only values normalize() returned as they were (all of
            # them when it returned the very same object: nothing at the root changed).
            if normalized is obj:
                still = unchanged
            else:
                still = [k for k in unchanged if normalized.get(k, _MISSING) is obj[k]]
            obj = normalized
        else:
            pruned = schema.prune(obj)
        if pruned:
            if ctx.field_validation == "Strict":
                strict = "strict decoding error: " + ", ".join(
                    f'unknown field "{p}"' for p in pruned
                )
                if ctx.verb == "patch":
                    # apiserver/pkg/endpoints/handlers/patch.go (jsonPatcher): a 422
                    # about the field "patch", its value the patched object.
                    raise invalid(
                        "",
                        "",
                        "",
                        [Cause("patch", f"Invalid value: {go_quote(before)}: {strict}")],
                    )
                # The strict decoder's words for a create or update body.
                raise errors.BadRequest(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a '
                    f"{rt.kind}: {strict}"
                )
            if ctx.field_validation in ("", "Warn"):
                ctx.warnings.extend(f'unknown field "{p}"' for p in pruned)
        if not shared:
            schema.apply_defaults(obj)  # (normalize has applied them)
        causes.extend(schema.validate(obj, still))
        if old is not None:
            causes.extend(schema.validate_update(obj, old))
    if causes:
        raise invalid(rt.kind, rt.group, str(meta.get("name", "")), causes)
    return obj
