"""Pruning and defaulting of custom resources, as kube-apiserver does them while decoding.

Pruning follows ``apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm.go``
and the null pruning of ``schema/defaulting/prunenulls.go``; defaulting follows
``schema/defaulting/algorithm.go``. ``normalize`` fuses the three walks, copy-on-write.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from ..gotext import path_dotted
from ..jsonvalues import copy_json
from .tree import SchemaNode, field_schema

__all__ = ["META_FIELDS", "PRUNE", "apply_defaults", "normalize", "prune", "prune_nulls"]


# Fields of the root (and of embedded resources) that the schema never prunes
# (pruning/algorithm.go, metaFields).
META_FIELDS = frozenset(("apiVersion", "kind", "metadata"))


def prune(x: Any, s: SchemaNode | None, path: str, out: list[str], is_root: bool = False) -> None:
    """Remove the fields of ``x`` that ``s`` does not declare, in place, adding their paths
    (``path`` is the dotted path of ``x``, "" at the root) to ``out``."""
    if s is not None and s.preserve_unknown:
        _skip_prune(x, s, path, out, is_root)
        return
    if isinstance(x, dict):
        if s is None:
            out.extend(path_dotted(path, k) for k in x)
            x.clear()
            return
        keep_meta = s.embedded or is_root
        for key in list(x):
            if keep_meta and key in META_FIELDS:
                continue
            prop = s.properties.get(key)
            if prop is not None:
                prune(x[key], prop, path_dotted(path, key), out)
            elif s.additional_allows is not None:
                prune(x[key], s.additional, path_dotted(path, key), out)
            else:
                if key not in META_FIELDS or path:
                    out.append(path_dotted(path, key))
                del x[key]
    elif isinstance(x, list):
        item = s.items if s is not None else None
        for i, v in enumerate(x):
            prune(v, item, f"{path}[{i}]", out)


def _skip_prune(x: Any, s: SchemaNode | None, path: str, out: list[str], is_root: bool) -> None:
    # pruning/algorithm.go skipPrune: unknown fields stay, declared ones are pruned; items
    # of a list are walked with skipPrune again (a kube quirk kept as is).
    if s is None:
        return
    if isinstance(x, dict):
        keep_meta = s.embedded or is_root
        for key, value in x.items():
            if keep_meta and key in META_FIELDS:
                continue
            prop = s.properties.get(key)
            if prop is not None:
                prune(value, prop, path_dotted(path, key), out)
            elif s.additional_allows is not None:
                prune(value, s.additional, path_dotted(path, key), out)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _skip_prune(v, s.items, f"{path}[{i}]", out, False)


def prune_nulls(x: Any, s: SchemaNode | None) -> None:
    """Remove, in place, the nulls of fields that are neither nullable nor defaulted."""
    if s is None:
        # Below a value without a schema every field schema is None too: nothing to remove.
        return
    if isinstance(x, dict):
        for key in list(x):
            sub = field_schema(s, key)
            value = x[key]
            if value is None and sub is not None and not sub.nullable and not sub.has_default:
                del x[key]
            else:
                prune_nulls(value, sub)
    elif isinstance(x, list):
        item = s.items if s is not None else None
        for v in x:
            prune_nulls(v, item)


def apply_defaults(x: Any, s: SchemaNode | None) -> None:
    """Set the defaults of ``s`` on ``x``, in place: absent fields (and non-nullable nulls)
    of present objects get a copy of their default, defaulted further in turn."""
    if s is None:
        return
    if isinstance(x, dict):
        for key, prop in s.properties.items():
            if not prop.has_default:
                continue
            if key not in x or (x[key] is None and not prop.nullable):
                x[key] = copy_json(prop.default)
        for key, value in x.items():
            declared = s.properties.get(key)
            if declared is not None:
                apply_defaults(value, declared)
            elif s.additional is not None:
                extra = s.additional
                if value is None and not extra.nullable and extra.has_default:
                    x[key] = value = copy_json(extra.default)
                apply_defaults(value, extra)
    elif isinstance(x, list) and s.items is not None:
        item = s.items
        for i, value in enumerate(x):
            if value is None and not item.nullable and item.has_default:
                x[i] = value = copy_json(item.default)
            apply_defaults(value, item)


# How ``normalize`` prunes a value: as ``prune``, as ``_skip_prune``, or not at all (root
# metadata, unknown fields kept by x-kubernetes-preserve-unknown-fields: ``prune`` never
# reaches them, while ``prune_nulls`` and ``apply_defaults`` still do).
PRUNE, _SKIP, _KEEP = 0, 1, 2


def _defaulted(default: Any, s: SchemaNode) -> Any:
    value = copy_json(default)
    apply_defaults(value, s)
    return value


def normalize(
    x: Any,
    s: SchemaNode | None,
    path: str,
    out: list[str],
    mode: int,
    is_root: bool = False,
    unchanged: Container[str] = (),
) -> Any:
    """``prune`` (or ``_skip_prune``), ``prune_nulls`` and ``apply_defaults`` of one value, fused.

    The three passes each change a node only by its own keys, and recurse with the same
    field schema (``field_schema``) wherever more than one of them goes, so applying all
    three to a node and then to each child that stays is the same as three whole walks:
    prune's deletions, then null removal (a null child stays null through the walk), then
    defaults, which are appended in schema order after the deletions, as the whole walks
    do. Copy-on-write: ``x`` is returned as is when nothing in it changes.

    Callers pass ``mode=PRUNE`` (the other modes are the walk's own, below a field that
    ``prune`` would skip or keep); ``unchanged``: see ``StructuralSchema.normalize``.
    """
    if mode == PRUNE and s is not None and s.preserve_unknown:
        mode = _SKIP
    if isinstance(x, dict):
        if s is None:
            if mode == PRUNE and x:
                out.extend(path_dotted(path, k) for k in x)
                return {}
            return x  # nulls and defaults need a schema: nothing else to do
        new = x
        keep_meta = s.embedded or is_root
        props = s.properties
        # (loop invariants, read once)
        additional = s.additional
        open_ = s.additional_allows is not None
        keep_all = mode == _KEEP
        skip_mode = mode == _SKIP
        for key, value in x.items():
            prop = props.get(key)
            sub = prop if prop is not None else additional
            if keep_all or (keep_meta and key in META_FIELDS):
                child_mode = _KEEP
            elif prop is not None or open_:
                child_mode = PRUNE
            elif skip_mode:
                child_mode = _KEEP  # unknown, kept; its field schema is None
            else:
                if key not in META_FIELDS or path:
                    out.append(path_dotted(path, key))
                if new is x:
                    new = dict(x)
                del new[key]
                continue
            if value is None:
                # prune_nulls; a kept null is left for the defaults below.
                if sub is not None and not sub.nullable and not sub.has_default:
                    if new is x:
                        new = dict(x)
                    del new[key]
                elif prop is None and sub is not None and sub.has_default and not sub.nullable:
                    if new is x:
                        new = dict(x)
                    new[key] = _defaulted(sub.default, sub)
                continue
            # (a tuple: isinstance with a tuple is faster than with dict | list)
            if not isinstance(value, (dict, list)) or (sub is None and child_mode != PRUNE):
                continue  # what normalize would return unchanged, without the call
            if (
                unchanged
                and key in unchanged
                and child_mode == PRUNE  # (never a kept root field: apiVersion, kind, metadata)
                and (sub is None or not sub.container_defaults)
            ):
                continue  # already normalized by this schema: see normalize()
            changed = normalize(
                value, sub, path_dotted(path, key) if child_mode != _KEEP else "", out, child_mode
            )
            if changed is not value:
                if new is x:
                    new = dict(x)
                new[key] = changed
        for key, prop in s.defaulted:
            if key not in new or (new[key] is None and not prop.nullable):
                if new is x:
                    new = dict(x)
                new[key] = _defaulted(prop.default, prop)
        return new
    if isinstance(x, list):
        item = s.items if s is not None else None
        if mode == _SKIP and item is None:
            mode = _KEEP  # _skip_prune stops where there is no schema
        new_list = x
        for i, value in enumerate(x):
            if value is None:
                if item is not None and item.has_default and not item.nullable:
                    if new_list is x:
                        new_list = list(x)
                    new_list[i] = _defaulted(item.default, item)
                continue
            if not isinstance(value, (dict, list)) or (item is None and mode != PRUNE):
                continue  # unchanged by normalize, as above
            changed = normalize(value, item, f"{path}[{i}]" if mode != _KEEP else "", out, mode)
            if changed is not value:
                if new_list is x:
                    new_list = list(x)
                new_list[i] = changed
        return new_list
    return x
