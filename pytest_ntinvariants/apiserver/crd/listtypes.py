"""``x-kubernetes-list-type`` checks of custom resources (``schema/listtype/validation.go``).

Items of a ``set`` list, and the keys of a ``map`` list's items, must not repeat. Paths
here are ``field.Path``s: an ``additionalProperties`` key is ``spec.labels[foo]``.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from ..errors import Cause
from ..gotext import field_duplicate, field_invalid, go_json, path_child, path_key
from .tree import SchemaNode

__all__ = ["list_type_causes", "map_list_key"]


def _set_key(value: Any) -> Any:
    # A hashable form of a value, to count repeats: an object or a list by its JSON text.
    if isinstance(value, dict | list):
        return ("json", go_json(value))
    return (type(value), value)


def list_type_causes(
    x: Any, s: SchemaNode | None, path: str | None, skip: Container[str] = ()
) -> list[Cause]:
    """The duplicates in the set and map lists of object ``x`` and below (``path`` is its
    ``field.Path``), except in the root fields named in ``skip``."""
    if s is None or not s.lists_below or not isinstance(x, dict):
        return []
    causes: list[Cause] = []
    if s.additional is not None:
        for key, value in x.items():
            if key not in skip:
                causes.extend(_list_types_value(value, s.additional, path_key(path, key)))
    for key, value in x.items():
        prop = s.properties.get(key)
        if prop is not None and key not in skip:
            causes.extend(_list_types_value(value, prop, path_child(path, key)))
    return causes


def _list_types_value(x: Any, s: SchemaNode, path: str) -> list[Cause]:
    if isinstance(x, dict):
        return list_type_causes(x, s, path)
    if not isinstance(x, list):
        return []
    causes: list[Cause] = []
    if not s.lists_below and s.list_type not in ("set", "map"):
        return causes
    if s.list_type == "set":
        for i in _second_occurrences([_set_key(v) for v in x]):
            causes.append(field_duplicate(path_key(path, i), x[i]))
    elif s.list_type == "map":
        causes.extend(_list_map_duplicates(x, s, path))
    if s.items is not None:
        for i, value in enumerate(x):
            causes.extend(_list_types_value(value, s.items, path_key(path, i)))
    return causes


def _second_occurrences(keys: list[Any]) -> list[int]:
    seen: dict[Any, int] = {}
    result: list[int] = []
    for i, key in enumerate(keys):
        times = seen.get(key, 0)
        if times == 1:
            result.append(i)
        seen[key] = times + 1
    return result


def _list_map_duplicates(x: list[Any], s: SchemaNode, path: str) -> list[Cause]:
    for i, item in enumerate(x):
        if item is not None and not isinstance(item, dict):
            return [
                field_invalid(
                    path_key(path, i), item, "must be an object for an array of list-type map"
                )
            ]
    if len(x) <= 1:
        return []
    keys = [
        {k: item[k] for k in s.list_map_keys if k in item} if isinstance(item, dict) else {}
        for item in x
    ]
    dupes = _second_occurrences([_set_key(k) for k in keys])
    return [field_duplicate(path_key(path, i), keys[i]) for i in dupes]


def map_list_key(item: Any, keys: list[str]) -> Any:
    """The hashable key of an item of a list-type=map list (None for a non-object)."""
    if not isinstance(item, dict):
        return None
    return tuple(_set_key(item.get(k)) for k in keys)
