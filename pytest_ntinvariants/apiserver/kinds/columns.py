"""The server-side columns a kind prints (``kubectl get``'s Table), and the cells they are
made of: kube's pkg/printers/internalversion, kind by kind in the kind modules."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["AGE", "Column", "count", "human_age", "int_at", "jsonpath", "path", "ratio"]

JSON = dict[str, Any]


def _no_cell(obj: JSON) -> None:
    return None


@dataclass(frozen=True)
class Column:
    """One column of a built-in kind's Table: its name, type and how a row's cell is read."""

    name: str
    type: str
    # (none for the columns of a kind whose strategy makes a row's cells itself: Events)
    cell: Callable[[JSON], Any] = _no_cell
    description: str = ""
    # The object's age, as kubectl shows it (read at the Table's own time, not by ``cell``).
    age: bool = False
    # kubectl shows a column of priority 1 only with ``-o wide``.
    priority: int = 0


# The Age column, where a kind prints it other than last (nodes).
AGE = Column("Age", "string", _no_cell, "CreationTimestamp is a timestamp.", age=True)


_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def jsonpath(obj: Any, path: str) -> Any:
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


def count(*fields: str) -> Callable[[JSON], int]:
    """A cell: how many entries the fields hold, together."""

    def count(obj: JSON) -> int:
        return sum(len(obj.get(f) or ()) for f in fields)

    return count


def path(path: str) -> Callable[[JSON], Any]:
    """A cell: the value at ``path``."""
    return lambda obj: jsonpath(obj, path)


def int_at(path: str) -> Callable[[JSON], int]:
    """A cell: the integer at ``path`` (0 if none)."""

    def read(obj: JSON) -> int:
        value = jsonpath(obj, path)
        return value if isinstance(value, int) else 0

    return read


def ratio(ready: str, total: str, default_total: int = 0) -> Callable[[JSON], str]:
    """A cell: ``ready/total`` of two integers (``total`` defaulting to ``default_total``)."""

    def read(obj: JSON) -> str:
        total_value = jsonpath(obj, total)
        if not isinstance(total_value, int):
            total_value = default_total
        return f"{int_at(ready)(obj)}/{total_value}"

    return read
