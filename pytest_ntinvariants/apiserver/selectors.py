"""Label and field selectors, parsed once per request and matched against objects.

The grammar follows ``k8s.io/apimachinery/pkg/labels`` (``=``, ``==``, ``!=``, ``in``,
``notin``, ``key``, ``!key``) and ``pkg/fields`` (``=``, ``==``, ``!=``). Parse errors
are 400 BadRequest with kube's wording, so a typo in a selector reads the same as
against a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import BadRequest

__all__ = ["FieldSelector", "LabelSelector", "field_value"]

_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class _Requirement:
    key: str
    op: str  # "in", "notin", "exists", "!exists", "=", "!="
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("in", "="):
            return present and labels[self.key] in self.values
        if self.op in ("gt", "lt"):
            # kube's Gt/Lt: only labels whose value is an integer can match.
            try:
                value, bound = int(labels[self.key]), int(next(iter(self.values)))
            except (KeyError, ValueError):
                return False
            return value > bound if self.op == "gt" else value < bound
        # "!=" and "notin" match objects without the label too (kube semantics).
        return not present or labels[self.key] not in self.values


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( … )`` value sets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


@dataclass(frozen=True)
class LabelSelector:
    """A parsed ``labelSelector``; the empty selector matches everything."""

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse the query-string form; raise ``BadRequest`` on a malformed selector."""
        if not text or not text.strip():
            return cls()
        reqs = []
        for part in _split_top_level(text):
            if not part:
                raise BadRequest(
                    f"unable to parse requirement: found '', expected: identifier "
                    f"(selector {text!r})"
                )
            reqs.append(cls._parse_one(part, text))
        return cls(tuple(reqs))

    @staticmethod
    def _parse_one(part: str, whole: str) -> _Requirement:
        m = re.fullmatch(r"\s*(\S+?)\s+(in|notin)\s*\((.*)\)\s*", part)
        if m:
            key, op, raw = m.group(1), m.group(2), m.group(3)
            values = frozenset(v.strip() for v in raw.split(",") if v.strip())
            LabelSelector._check(key, values, whole)
            return _Requirement(key, op, values)
        for op in ("!=", "==", "=", ">", "<"):
            if op in part:
                key, _, value = part.partition(op)
                key, value = key.strip(), value.strip()
                LabelSelector._check(key, frozenset([value]), whole)
                if op in (">", "<"):
                    # kube's "key>N" / "key<N" (selection.GreaterThan/LessThan): N an integer.
                    if not re.fullmatch(r"-?\d+", value):
                        raise BadRequest(
                            f"unable to parse requirement: for 'Gt', 'Lt' "
                            f"operators, the value must be an integer "
                            f"(selector {whole!r})"
                        )
                    return _Requirement(key, "gt" if op == ">" else "lt", frozenset([value]))
                return _Requirement(key, "!=" if op == "!=" else "=", frozenset([value]))
        if part.startswith("!"):
            key = part[1:].strip()
            LabelSelector._check(key, frozenset(), whole)
            return _Requirement(key, "!exists", frozenset())
        LabelSelector._check(part, frozenset(), whole)
        return _Requirement(part, "exists", frozenset())

    @staticmethod
    def _check(key: str, values: frozenset[str], whole: str) -> None:
        if not _KEY.match(key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise BadRequest(
                f"unable to parse requirement: invalid label key {key!r} (selector {whole!r})"
            )
        for v in values:
            if len(v) > 63 or not _VALUE.match(v):
                raise BadRequest(
                    f"unable to parse requirement: invalid label value {v!r} (selector {whole!r})"
                )

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether the object's labels satisfy every requirement."""
        if not self.requirements:
            return True
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string value of a dotted field path (``""`` when absent), as kube compares it."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return ""
        node = node.get(part)
    if isinstance(node, dict) or (node is None and path == "source"):
        # Event's ``source`` is selected by its component, or by reportingComponent when it
        # has none (kube's EventToSelectableFields): Events written through events.k8s.io
        # rarely carry a deprecatedSource.
        component = node.get("component") if node else None
        if not component and path == "source":
            component = obj.get("reportingComponent")
        return str(component or "")
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed ``fieldSelector``, checked against the fields the resource supports."""

    terms: tuple[tuple[str, bool, str], ...] = ()  # (path, equal?, value)

    @classmethod
    def parse(
        cls,
        text: str | None,
        allowed: Sequence[str],
        kind: str,
        paths: Mapping[str, str] | None = None,
    ) -> FieldSelector:
        """Parse; a field the kind does not support is 400 like kube's conversion error.

        ``paths``: labels that select another path of the stored object (kube's field label
        conversion, e.g. events.k8s.io's ``regarding.name`` is core's ``involvedObject.name``).
        """
        if not text or not text.strip():
            return cls()
        terms = []
        for part in _split_top_level(text):
            for op in ("!=", "==", "="):
                if op in part:
                    path, _, value = part.partition(op)
                    path = path.strip()
                    break
            else:
                raise BadRequest(f"invalid selector: '{text}'; can't understand '{part}'")
            if path not in allowed:
                raise BadRequest(f"field label not supported: {path}", kind=kind)
            if paths:
                path = paths.get(path, path)
            terms.append((path, op != "!=", value.strip()))
        return cls(tuple(terms))

    def matches(self, obj: dict[str, Any]) -> bool:
        """Whether the object satisfies every term."""
        return all((field_value(obj, p) == v) == eq for p, eq, v in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def name(self) -> str | None:
        """The name pinned by ``metadata.name=X``, if any (a fast path for lookups)."""
        for p, eq, v in self.terms:
            if p == "metadata.name" and eq:
                return v
        return None


Matcher = Callable[[dict[str, Any]], bool]
