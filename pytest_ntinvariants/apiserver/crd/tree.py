"""The compiled form of a structural schema: a tree of ``SchemaNode``s.

Each node reads its keywords once (a keyword of the wrong type is ignored, never an
error) and precomputes what the walks over an object ask of it on every write: whether
anything below it has rules, list types, defaults or numbers, and which values it can
report nothing about.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..gotext import path_child, path_key
from .formats import kept_format

if TYPE_CHECKING:
    from .rules import Rule

__all__ = ["RuleCompiler", "SchemaNode", "field_schema"]

# How a node compiles its x-kubernetes-validations entries: (entry, field path of the
# node, whether it is under allOf/anyOf/oneOf/not) to the rule, which the schema's owner
# also keeps count of (see StructuralSchema).
RuleCompiler = Callable[[Mapping[str, Any], str | None, bool], "Rule"]


class SchemaNode:
    """One schema node, with its keywords read once (wrong-typed keywords are ignored)."""

    __slots__ = (
        "additional",
        "additional_allows",
        "all_of",
        "any_of",
        "container_defaults",
        "default",
        "defaulted",
        "embedded",
        "enum",
        "enum_strings",
        "exclusive_maximum",
        "exclusive_minimum",
        "format",
        "has_default",
        "has_junctors",
        "has_number",
        "int_or_string",
        "items",
        "list_map_keys",
        "list_type",
        "lists_below",
        "map_type",
        "max_items",
        "max_length",
        "max_properties",
        "maximum",
        "min_items",
        "min_length",
        "min_properties",
        "minimum",
        "multiple_of",
        "not_",
        "nullable",
        "number_checks",
        "one_of",
        "pattern",
        "pattern_re",
        "plain_object",
        "preserve_unknown",
        "properties",
        "quiet_scalars",
        "required",
        "rules",
        "rules_below",
        "string_checks",
        "type",
        "types",
        "unique_items",
    )

    def __init__(
        self,
        raw: Mapping[str, Any],
        compile_rule: RuleCompiler,
        path: str | None,
        nested: bool = False,
    ) -> None:
        get = raw.get
        type_ = get("type")
        self.type: str = type_ if isinstance(type_, str) else ""
        self.int_or_string = get("x-kubernetes-int-or-string") is True
        # validation.go ConvertJSONSchemaProps: int-or-string becomes two types.
        self.types: tuple[str, ...] = (
            ("integer", "string") if self.int_or_string else ((self.type,) if self.type else ())
        )
        self.nullable = get("nullable") is True
        fmt = get("format")
        self.format = kept_format(fmt if isinstance(fmt, str) else "", self.types)
        enum = get("enum")
        self.enum: list[Any] | None = enum if isinstance(enum, list) and enum else None
        self.maximum = _number(get("maximum"))
        self.minimum = _number(get("minimum"))
        self.exclusive_maximum = get("exclusiveMaximum") is True
        self.exclusive_minimum = get("exclusiveMinimum") is True
        self.multiple_of = _number(get("multipleOf"))
        self.max_length = _count(get("maxLength"))
        self.min_length = _count(get("minLength"))
        self.max_items = _count(get("maxItems"))
        self.min_items = _count(get("minItems"))
        self.max_properties = _count(get("maxProperties"))
        self.min_properties = _count(get("minProperties"))
        self.unique_items = get("uniqueItems") is True
        pattern = get("pattern")
        self.pattern: str = pattern if isinstance(pattern, str) else ""
        self.pattern_re: re.Pattern[str] | None = None
        if self.pattern:
            try:
                self.pattern_re = re.compile(self.pattern)
            except re.error:
                self.pattern_re = None  # RE2-only syntax: not checked (module docstring)
        required = get("required")
        self.required: list[str] = (
            [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        )
        # A null default is no default (kube: Default.Object == nil).
        self.default = get("default")
        self.has_default = self.default is not None
        self.preserve_unknown = get("x-kubernetes-preserve-unknown-fields") is True
        self.embedded = get("x-kubernetes-embedded-resource") is True
        list_type = get("x-kubernetes-list-type")
        self.list_type: str | None = list_type if isinstance(list_type, str) else None
        keys = get("x-kubernetes-list-map-keys")
        self.list_map_keys: list[str] = (
            [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
        )
        map_type = get("x-kubernetes-map-type")
        self.map_type: str | None = map_type if isinstance(map_type, str) else None

        props = get("properties")
        self.properties: dict[str, SchemaNode] = {}
        if isinstance(props, Mapping):
            for name, sub in props.items():
                if isinstance(sub, Mapping):
                    self.properties[name] = SchemaNode(
                        sub, compile_rule, path_child(path, name), nested
                    )
        additional = get("additionalProperties")
        self.additional: SchemaNode | None = None
        # None: no additionalProperties; True/False: the boolean form.
        self.additional_allows: bool | None = None
        if isinstance(additional, Mapping):
            self.additional = SchemaNode(additional, compile_rule, path_key(path, "*"), nested)
            self.additional_allows = True
        elif isinstance(additional, bool):
            self.additional_allows = additional
        items = get("items")
        self.items: SchemaNode | None = (
            SchemaNode(items, compile_rule, path_key(path, "*"), nested)
            if isinstance(items, Mapping)
            else None
        )
        self.all_of = _subschemas(get("allOf"), compile_rule, path)
        self.any_of = _subschemas(get("anyOf"), compile_rule, path)
        self.one_of = _subschemas(get("oneOf"), compile_rule, path)
        not_ = get("not")
        self.not_: SchemaNode | None = (
            SchemaNode(not_, compile_rule, path, True) if isinstance(not_, Mapping) else None
        )

        self.rules: list[Rule] = []
        rules = get("x-kubernetes-validations")
        if isinstance(rules, list):
            for rule in rules:
                if isinstance(rule, Mapping):
                    compiled = compile_rule(rule, path, nested)
                    if not nested:
                        self.rules.append(compiled)
        children = [*self.properties.values(), self.additional, self.items]
        # The properties with a default, in order (what defaulting iterates).
        self.defaulted: tuple[tuple[str, SchemaNode], ...] = tuple(
            (name, prop) for name, prop in self.properties.items() if prop.has_default
        )
        # Whether a default here or below is an object or array: only such a default can
        # hold what a later normalize() would change (unknown fields, nulls, defaults).
        self.container_defaults: bool = isinstance(self.default, dict | list) or any(
            c is not None and c.container_defaults for c in children
        )
        self.rules_below: bool = any(
            c is not None and (bool(c.rules) or c.rules_below) for c in children
        )
        self.has_number: bool = self.type == "number" or any(
            c is not None and c.has_number for c in children
        )
        # Precomputed so that the walks skip what a node cannot report.
        self.has_junctors = bool(self.all_of or self.any_of or self.one_of or self.not_)
        self.lists_below: bool = any(
            c is not None and (c.list_type in ("set", "map") or c.lists_below) for c in children
        )
        self.string_checks = (
            self.max_length is not None
            or self.min_length is not None
            or self.pattern_re is not None
            or bool(self.format)
        )
        self.number_checks = (
            self.multiple_of is not None
            or self.minimum is not None
            or self.maximum is not None
            or bool(self.format)
        )
        # The exact str members of enum: a str value is found here without json_equal.
        self.enum_strings: frozenset[str] = frozenset(e for e in self.enum or () if type(e) is str)
        # The Python types of scalar values validate_value can report nothing about (their
        # JSON type is allowed and there is no keyword left to check), so that the walks skip
        # them without a call. An int must also be an int64 (a larger one is a JSON "number").
        quiet: set[type] = set()
        if not (self.format or self.has_junctors or self.enum is not None):
            types = self.types
            if (not types or "string" in types) and not self.string_checks:
                quiet.add(str)
            if not types or "boolean" in types:
                quiet.add(bool)
            if not self.number_checks and (not types or "number" in types):
                quiet.update((int, float))
            elif not self.number_checks and "integer" in types:
                quiet.add(int)
        self.quiet_scalars: frozenset[type] = frozenset(quiet)
        # Whether validate_value of a dict here comes down to its object checks alone: the
        # JSON type object is allowed and no format, junctor or enum applies.
        self.plain_object = not (self.format or self.has_junctors or self.enum is not None) and (
            not self.types or "object" in self.types
        )


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _subschemas(value: Any, compile_rule: RuleCompiler, path: str | None) -> list[SchemaNode]:
    if not isinstance(value, list):
        return []
    return [SchemaNode(v, compile_rule, path, True) for v in value if isinstance(v, Mapping)]


def field_schema(s: SchemaNode | None, key: str) -> SchemaNode | None:
    """The schema of field ``key`` of an object ``s`` describes (its additionalProperties
    for an undeclared field), or None: below a value without a schema, there is none."""
    if s is None:
        return None
    prop = s.properties.get(key)
    return prop if prop is not None else s.additional
