"""Decoded JSON values (dict, list, str, int, float, bool, None): copying and comparing.

The fake keeps objects as Python decodes JSON; kube keeps them as Go's ``interface{}``
values decoded from the same JSON, where an integer fits an int64 and numbers compare by
value. These helpers give the Python values the Go values' semantics where they differ.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["INT64_MAX", "INT64_MIN", "as_json", "copy_json", "json_equal"]

# The range of Go's int64, which kube decodes JSON integers into.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value; faster than ``copy.deepcopy`` for JSON-shaped data.

    Only exact dicts and lists are copied: a subclass of either is returned itself, which
    callers that tag values with such a subclass rely on.
    """
    t = type(value)
    if t is dict:
        return {k: copy_json(v) for k, v in value.items()}
    if t is list:
        return [copy_json(v) for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON values: numbers by value, booleans apart from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def as_json(value: Any) -> Any:
    """A deep copy in JSON form, which the caller may mutate: what encoding ``value`` and
    decoding it back gives (tuples become lists, dict subclasses dicts); an orjson round
    trip, faster than a walk in Python for the objects the store copies whole."""
    return orjson.loads(orjson.dumps(value))
