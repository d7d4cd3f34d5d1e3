"""CRD structural schemas: pruning, defaulting and validation as kube-apiserver does them.

``StructuralSchema`` is built once from a CRD version's ``openAPIV3Schema`` and then
applied to every write of a custom resource, in kube's order::

    pruned = schema.prune(obj)            # unknown fields out (Warning 299 / strict 400)
    schema.apply_defaults(obj)
    causes = schema.validate(obj)         # OpenAPI + list types + CEL rules without oldSelf
    if old is not None:
        causes += schema.validate_update(obj, old)   # CEL transition rules (oldSelf)

Sources followed (kube 1.32 unless said otherwise), so that paths, messages and reasons
are the real server's:

* pruning: ``apiextensions-apiserver/pkg/apiserver/schema/pruning/algorithm.go`` and the
  null pruning of ``schema/defaulting/prunenulls.go`` (both run while decoding);
* defaulting: ``schema/defaulting/algorithm.go``;
* validation: ``k8s.io/kube-openapi/pkg/validation/validate`` (the messages, e.g.
  ``spec.x in body should be less than or equal to 10``), turned into causes by
  ``apiserver/validation/validation.go`` ``kubeOpenAPIResultToFieldErrors`` (the
  ``Invalid value: 11: ...`` prefixes and reasons) and rendered by
  ``apimachinery/pkg/util/validation/field/errors.go``;
* list types: ``schema/listtype/validation.go``; CEL: ``schema/cel/validation.go``;
* the schema document checks: ``apis/apiextensions/validation/validation.go`` and
  ``schema/validation.go`` (structural invariants).

Surprises of the real server kept on purpose: ``maxLength`` counts characters but says
"bytes"; errors that kube-openapi does not attach to a field (``anyOf``/``oneOf``/
``allOf``/``not`` failures, the CEL root, "rules were not checked") carry the field
``<nil>``; ``additionalProperties`` keys are ``spec.labels.foo`` in schema errors but
``spec.labels[foo]`` in list-type and CEL errors; CEL rules are not run at all when the
object already has a "blocking" error (Required, NotSupported, TooLong, TooMany,
TypeInvalid), a single ``<nil>`` cause says so instead.

Not supported (documented, never silently wrong):

* CEL beyond the subset below: a rule that does not parse, or calls a function outside
  it, is listed in ``unevaluated_rules`` and skipped; ``warning()`` says so in one line.
  Supported: literals (int, uint as int, double, string, bool, null, lists, maps),
  ``self``/``oldSelf`` and field selection/indexing, ``has()``, ``size()``, ``in``,
  ``! - * / % + < <= > >= == != && || ?:``, ``all exists exists_one map filter``,
  ``startsWith endsWith contains matches lowerAscii upperAscii``, ``int uint double
  string bool dyn``. No cost budget, no timestamps, durations, quantities or optionals.
* ``messageExpression`` is evaluated when it is in the subset, else the rule's
  ``message`` (or ``failed rule: <rule>``) is used, as kube does when it fails.
* Validation ratcheting (unchanged invalid fields passing on update, GA in 1.30) and the
  validation of ``metadata`` inside embedded resources are not done.
* Formats: ``int32``/``int64`` (and ``float``) are range checked as kube 1.36 does (1.32
  ignored them); string formats date-time, date, byte, uuid(3/4/5), ipv4, ipv6, cidr,
  hostname (ASCII only), mac, hexcolor, duration, email and uri are checked, the last
  three approximately; other kube formats (isbn, creditcard, ssn...) are accepted.
* Patterns are Python ``re`` searches; RE2 syntax python lacks (``\\pL``) disables the
  pattern instead of rejecting the CRD.
* ``anyOf``/``oneOf`` report the sub-schema with the fewest errors, where kube-openapi
  ranks them by an internal match count.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import ipaddress
import math
import re
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import Cause
from .gotext import field_duplicate as _duplicate
from .gotext import field_forbidden as _forbidden
from .gotext import field_invalid as _invalid
from .gotext import field_not_supported as _not_supported
from .gotext import field_required as _required
from .gotext import field_too_many as _too_many
from .gotext import go_float as _go_float
from .gotext import go_float_g as _go_g
from .gotext import go_json as _go_json
from .gotext import go_quote as _go_quote
from .gotext import path_child as _child
from .gotext import path_key as _sub
from .gotext import path_shown as _shown
from .jsonvalues import copy_json as _copy
from .jsonvalues import json_equal as _json_equal

__all__ = ["StructuralSchema", "UnevaluatedRule", "compiled_schema", "validate_schema_document"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Fields of the root (and of embedded resources) that the schema never prunes
# (pruning/algorithm.go, metaFields).
_META_FIELDS = frozenset(("apiVersion", "kind", "metadata"))

# Reasons that stop CEL evaluation (registry/customresource/strategy.go, hasBlockingErr).
_BLOCKING = frozenset(
    (
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    )
)
# field.Invalid(nil, nil, ...): a nil value renders as "null" in 1.32's ErrorBody.
_NOT_CHECKED = Cause(
    "<nil>",
    'Invalid value: "null": some validation rules were not checked because the object was '
    "invalid; correct the existing errors to complete validation",
    "FieldValueInvalid",
)


# --------------------------------------------------------------------------------------
# Go-style rendering of values in messages


# --------------------------------------------------------------------------------------
# Formats (kube-openapi strfmt, as kept by apiextensions' StripUnsupportedFormats)

_RX_DATE_TIME_TAIL = re.compile(
    r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$"
)
_RX_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_RX_UUID = {
    "uuid": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid3": re.compile(r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"),
    "uuid4": re.compile(
        r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
    ),
    "uuid5": re.compile(
        r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
    ),
}
_RX_HOSTNAME = re.compile(
    r"^([a-zA-Z0-9]((-?[a-zA-Z0-9]{0,62})?)|([a-zA-Z0-9](([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)"
    r"(\.)){1,}([a-zA-Z]){2,63})$"
)
_RX_MAC = re.compile(
    r"^(?:[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){5}|[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){7}"
    r"|[0-9a-fA-F]{2}(?:[:-][0-9a-fA-F]{2}){19}|[0-9a-fA-F]{4}(?:\.[0-9a-fA-F]{4}){2,9})$"
)
_RX_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_RX_DURATION = re.compile(
    r"^(?:[-+]?(?:[0-9]*\.?[0-9]+(?:ns|us|µs|μs|ms|s|m|h))+|0"
    r"|[0-9]+\s*(?:ns|us|µs|ms|s|m|h|d|w|nanoseconds?|microseconds?|milliseconds?|seconds?"
    r"|minutes?|hours?|days?|weeks?))$"
)
_RX_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_RX_URI = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*|/[^\s]*)$")


def _is_date(text: str) -> bool:
    if not _RX_DATE.match(text):
        return False
    try:
        datetime.date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _is_date_time(text: str) -> bool:
    # strfmt.IsDateTime: a date, a "t", then hh:mm:ss[.frac](z|+hh:mm), lower-cased.
    if len(text) < 4:
        return False
    parts = text.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = _RX_DATE_TIME_TAIL.match(parts[1])
    if match is None:
        return False
    return match[1] <= "23" and match[2] <= "59" and match[3] <= "59"


def _is_byte(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _is_ip(text: str, marker: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return marker in text


def _is_cidr(text: str) -> bool:
    if "/" not in text:
        return False
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True


def _rx(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda text: pattern.match(text) is not None


def _is_hostname(text: str) -> bool:
    if not _RX_HOSTNAME.match(text) or len(text) > 255:
        return False
    return all(len(part) <= 63 for part in text.split("."))


_STRING_FORMATS: dict[str, Callable[[str], bool]] = {
    "datetime": _is_date_time,
    "date": _is_date,
    "byte": _is_byte,
    "uuid": _rx(_RX_UUID["uuid"]),
    "uuid3": _rx(_RX_UUID["uuid3"]),
    "uuid4": _rx(_RX_UUID["uuid4"]),
    "uuid5": _rx(_RX_UUID["uuid5"]),
    "ipv4": lambda s: _is_ip(s, "."),
    "ipv6": lambda s: _is_ip(s, ":"),
    "cidr": _is_cidr,
    "hostname": _is_hostname,
    "mac": _rx(_RX_MAC),
    "hexcolor": _rx(_RX_HEXCOLOR),
    "duration": _rx(_RX_DURATION),
    "email": _rx(_RX_EMAIL),
    "uri": _rx(_RX_URI),
}
# Formats kube keeps but this fake does not check (accepted as any string).
_UNCHECKED_FORMATS = frozenset(
    ("bsonobjectid", "isbn", "isbn10", "isbn13", "creditcard", "ssn", "rgbcolor", "password")
)


def _kept_format(fmt: str, types: tuple[str, ...]) -> str:
    """The format kube validates, or "" (StripUnsupportedFormatsPostProcessorForVersion)."""
    if not fmt:
        return ""
    single = types[0] if len(types) == 1 else ""
    if single in ("", "string"):
        normalized = fmt.replace("-", "")
        return fmt if normalized in _STRING_FORMATS else ""
    if single == "integer":
        return fmt if fmt in ("int32", "int64") else ""
    if single == "number":
        return fmt if fmt == "float" else ""
    return ""


# --------------------------------------------------------------------------------------
# The compiled schema tree


class _Node:
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
        owner: StructuralSchema,
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
        self.format = _kept_format(fmt if isinstance(fmt, str) else "", self.types)
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
        self.properties: dict[str, _Node] = {}
        if isinstance(props, Mapping):
            for name, sub in props.items():
                if isinstance(sub, Mapping):
                    self.properties[name] = _Node(sub, owner, _child(path, name), nested)
        additional = get("additionalProperties")
        self.additional: _Node | None = None
        # None: no additionalProperties; True/False: the boolean form.
        self.additional_allows: bool | None = None
        if isinstance(additional, Mapping):
            self.additional = _Node(additional, owner, _sub(path, "*"), nested)
            self.additional_allows = True
        elif isinstance(additional, bool):
            self.additional_allows = additional
        items = get("items")
        self.items: _Node | None = (
            _Node(items, owner, _sub(path, "*"), nested) if isinstance(items, Mapping) else None
        )
        self.all_of = _subschemas(get("allOf"), owner, path)
        self.any_of = _subschemas(get("anyOf"), owner, path)
        self.one_of = _subschemas(get("oneOf"), owner, path)
        not_ = get("not")
        self.not_: _Node | None = (
            _Node(not_, owner, path, True) if isinstance(not_, Mapping) else None
        )

        self.rules: list[_Rule] = []
        rules = get("x-kubernetes-validations")
        if isinstance(rules, list):
            for rule in rules:
                if isinstance(rule, Mapping):
                    compiled = owner._compile_rule(rule, path, nested)
                    if not nested:
                        self.rules.append(compiled)
        children = [*self.properties.values(), self.additional, self.items]
        # The properties with a default, in order (what defaulting iterates).
        self.defaulted: tuple[tuple[str, _Node], ...] = tuple(
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
        # The exact str members of enum: a str value is found here without _json_equal.
        self.enum_strings: frozenset[str] = frozenset(e for e in self.enum or () if type(e) is str)
        # The Python types of scalar values _check can report nothing about (their JSON type
        # is allowed and there is no keyword left to check), so that the walks skip them
        # without a call. An int must also be an int64 (a larger one is a JSON "number").
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
        # Whether _check of a dict here comes down to _check_object: the JSON type object is
        # allowed and no format, junctor or enum applies.
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


def _subschemas(value: Any, owner: StructuralSchema, path: str | None) -> list[_Node]:
    if not isinstance(value, list):
        return []
    return [_Node(v, owner, path, True) for v in value if isinstance(v, Mapping)]


# --------------------------------------------------------------------------------------
# The public class


def _clipped(text: str, limit: int = 120) -> str:
    # A warning is one header line: a rule of thousands of characters is named, not quoted.
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class UnevaluatedRule:
    """An ``x-kubernetes-validations`` rule this fake cannot evaluate, and why."""

    path: str  # the schema node, as a field path: "" for the root, "[*]" for items/keys
    rule: str
    reason: str


class StructuralSchema:
    """A CRD version's ``openAPIV3Schema``, compiled for prune/default/validate.

    Construction never fails on a malformed document (keywords of the wrong type are
    ignored); use ``validate_schema_document`` to reject a CRD the way kube does.
    """

    def __init__(self, openapi_v3_schema: Mapping[str, Any] | None) -> None:
        self.unevaluated_rules: list[UnevaluatedRule] = []
        self._rule_count = 0
        self._has_transition_rules = False
        doc = openapi_v3_schema if isinstance(openapi_v3_schema, Mapping) else {}
        self._root = _Node(doc, self, None)

    # -- compile-time hook used by _Node

    def _compile_rule(self, raw: Mapping[str, Any], path: str | None, nested: bool) -> _Rule:
        rule = _Rule(raw, path)
        self._rule_count += 1
        if nested:
            # kube forbids rules under allOf/anyOf/oneOf/not for CRDs; never run them here.
            rule.error = "rules under allOf/anyOf/oneOf/not are not evaluated"
        if rule.program is None or nested:
            self.unevaluated_rules.append(
                UnevaluatedRule("" if path is None else path, rule.text, rule.error or "")
            )
        elif rule.uses_old_self:
            self._has_transition_rules = True
        return rule

    # -- the public API

    def warning(self) -> str | None:
        """A one-line warning naming the rules that are skipped, or None if there are none."""
        if not self.unevaluated_rules:
            return None
        shown = "; ".join(
            f"{r.path or '<root>'}: {_clipped(r.rule)!r} ({r.reason})"
            for r in self.unevaluated_rules
        )
        count = len(self.unevaluated_rules)
        return (
            f"{count} of {self._rule_count} x-kubernetes-validations rule(s) cannot be "
            f"evaluated by this fake API server and are skipped: {shown}"
        ).replace("\n", " ")

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Remove fields the schema does not declare, in place; return their paths, sorted.

        Root ``apiVersion``, ``kind`` and ``metadata`` are kept, and so are the same fields
        of ``x-kubernetes-embedded-resource`` objects; ``x-kubernetes-preserve-unknown-fields``
        keeps unknown fields (declared ones below it are still pruned). Then, like kube's
        decoder, nulls of non-nullable fields without a default are removed (not reported):
        that is what turns ``"field": null`` into a missing field before validation.
        """
        paths: list[str] = []
        _prune(obj, self._root, "", paths, is_root=True)
        _prune_nulls(obj, self._root)
        paths.sort()
        return paths

    def apply_defaults(self, obj: dict[str, Any]) -> None:
        """Set ``default`` values of absent fields, in place, like kube's defaulter.

        Defaults apply to absent fields (and non-nullable nulls) of objects that are
        present; a defaulted value is itself defaulted further, so nested defaults apply
        after a parent default. Defaults are copied, never shared.
        """
        _default(obj, self._root)

    def normalize(
        self, obj: dict[str, Any], unchanged: Container[str] = ()
    ) -> tuple[dict[str, Any], list[str]]:
        """``prune`` then ``apply_defaults``, in one walk and copy-on-write.

        Returns what ``prune(obj)`` followed by ``apply_defaults(obj)`` would leave in
        ``obj`` (equal, with the same key order) and the paths ``prune`` would report, but
        leaves ``obj`` and everything in it untouched: a dict or list that needs a change is
        copied (as a plain dict or list), the rest is shared with ``obj``. The store uses
        this because its versions share unchanged subtrees with each other.

        ``unchanged`` names root fields (never apiVersion, kind or metadata) whose values
        are, untouched, what an earlier ``normalize`` by this schema returned for the same
        field. Those are not walked again where no default below them is an object or an
        array: pruning and dropping nulls again change nothing, and scalar defaults are
        already in place, so the walk would return them as they are and report nothing.
        """
        paths: list[str] = []
        result = _normalize(obj, self._root, "", paths, _PRUNE, is_root=True, unchanged=unchanged)
        paths.sort()
        return result, paths

    def validate(self, obj: dict[str, Any], unchanged: Container[str] = ()) -> list[Cause]:
        """Validate a whole object as on create: OpenAPI keywords, list types, CEL rules.

        CEL rules that use ``oldSelf`` (transition rules) are not run here (see
        ``validate_update``). Causes come in kube's order: schema, list types, CEL.

        ``unchanged`` names root fields (never apiVersion, kind or metadata) whose values
        are, untouched, values of an object this schema normalized and then validated
        with no causes at all. Their subtrees are not walked again: every check below a
        root field depends only on its value and path, so they would add no cause (their
        CEL rules run only when nothing blocks, as they did then, and passed). Checks of
        the root itself (required, properties counts, its rules and junctors) still see
        the whole object.
        """
        causes: list[Cause] = []
        _check(obj, self._root, "", None, causes, unchanged)
        if self._root.lists_below:  # (else _list_types finds nothing)
            causes.extend(_list_types(obj, self._root, None, unchanged))
        if self._rule_count:
            if any(c.reason in _BLOCKING for c in causes):
                causes.append(_NOT_CHECKED)
            else:
                _cel_walk(obj, None, self._root, None, False, causes, unchanged)
        return causes

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
        """The causes an update adds to ``validate(new)``: CEL transition rules.

        Rules that use ``oldSelf`` run where the old object has a value to compare with
        (object fields, map keys, list-type=map items matched by key), as in kube. When
        ``new`` already has a blocking error, ``validate(new)`` reported that rules were
        not checked, and nothing is added here.
        """
        if not self._has_transition_rules:
            return []
        base: list[Cause] = []
        _check(new, self._root, "", None, base)
        base.extend(_list_types(new, self._root, None))
        if any(c.reason in _BLOCKING for c in base):
            return []
        causes: list[Cause] = []
        _cel_walk(new, old, self._root, None, True, causes)
        return causes


# --------------------------------------------------------------------------------------
# Pruning and defaulting


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _prune(x: Any, s: _Node | None, path: str, out: list[str], is_root: bool = False) -> None:
    if s is not None and s.preserve_unknown:
        _skip_prune(x, s, path, out, is_root)
        return
    if isinstance(x, dict):
        if s is None:
            out.extend(_join(path, k) for k in x)
            x.clear()
            return
        keep_meta = s.embedded or is_root
        for key in list(x):
            if keep_meta and key in _META_FIELDS:
                continue
            prop = s.properties.get(key)
            if prop is not None:
                _prune(x[key], prop, _join(path, key), out)
            elif s.additional_allows is not None:
                _prune(x[key], s.additional, _join(path, key), out)
            else:
                if key not in _META_FIELDS or path:
                    out.append(_join(path, key))
                del x[key]
    elif isinstance(x, list):
        item = s.items if s is not None else None
        for i, v in enumerate(x):
            _prune(v, item, f"{path}[{i}]", out)


def _skip_prune(x: Any, s: _Node | None, path: str, out: list[str], is_root: bool) -> None:
    # pruning/algorithm.go skipPrune: unknown fields stay, declared ones are pruned; items
    # of a list are walked with skipPrune again (a kube quirk kept as is).
    if s is None:
        return
    if isinstance(x, dict):
        keep_meta = s.embedded or is_root
        for key, value in x.items():
            if keep_meta and key in _META_FIELDS:
                continue
            prop = s.properties.get(key)
            if prop is not None:
                _prune(value, prop, _join(path, key), out)
            elif s.additional_allows is not None:
                _prune(value, s.additional, _join(path, key), out)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _skip_prune(v, s.items, f"{path}[{i}]", out, False)


def _field_schema(s: _Node | None, key: str) -> _Node | None:
    if s is None:
        return None
    prop = s.properties.get(key)
    return prop if prop is not None else s.additional


def _prune_nulls(x: Any, s: _Node | None) -> None:
    if s is None:
        # Below a value without a schema every field schema is None too: nothing to remove.
        return
    if isinstance(x, dict):
        for key in list(x):
            sub = _field_schema(s, key)
            value = x[key]
            if value is None and sub is not None and not sub.nullable and not sub.has_default:
                del x[key]
            else:
                _prune_nulls(value, sub)
    elif isinstance(x, list):
        item = s.items if s is not None else None
        for v in x:
            _prune_nulls(v, item)


def _default(x: Any, s: _Node | None) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        for key, prop in s.properties.items():
            if not prop.has_default:
                continue
            if key not in x or (x[key] is None and not prop.nullable):
                x[key] = _copy(prop.default)
        for key, value in x.items():
            declared = s.properties.get(key)
            if declared is not None:
                _default(value, declared)
            elif s.additional is not None:
                extra = s.additional
                if value is None and not extra.nullable and extra.has_default:
                    x[key] = value = _copy(extra.default)
                _default(value, extra)
    elif isinstance(x, list) and s.items is not None:
        item = s.items
        for i, value in enumerate(x):
            if value is None and not item.nullable and item.has_default:
                x[i] = value = _copy(item.default)
            _default(value, item)


# How ``_normalize`` prunes a value: as ``_prune``, as ``_skip_prune``, or not at all (root
# metadata, unknown fields kept by x-kubernetes-preserve-unknown-fields: ``_prune`` never
# reaches them, while ``_prune_nulls`` and ``_default`` still do).
_PRUNE, _SKIP, _KEEP = 0, 1, 2


def _defaulted(default: Any, s: _Node) -> Any:
    value = _copy(default)
    _default(value, s)
    return value


def _normalize(
    x: Any,
    s: _Node | None,
    path: str,
    out: list[str],
    mode: int,
    is_root: bool = False,
    unchanged: Container[str] = (),
) -> Any:
    """``_prune`` (or ``_skip_prune``), ``_prune_nulls`` and ``_default`` of one value, fused.

    The three passes each change a node only by its own keys, and recurse with the same
    field schema (``_field_schema``) wherever more than one of them goes, so applying all
    three to a node and then to each child that stays is the same as three whole walks:
    prune's deletions, then null removal (a null child stays null through the walk), then
    defaults, which are appended in schema order after the deletions, as the whole walks
    do. Copy-on-write: ``x`` is returned as is when nothing in it changes.
    """
    if mode == _PRUNE and s is not None and s.preserve_unknown:
        mode = _SKIP
    if isinstance(x, dict):
        if s is None:
            if mode == _PRUNE and x:
                out.extend(_join(path, k) for k in x)
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
            if keep_all or (keep_meta and key in _META_FIELDS):
                child_mode = _KEEP
            elif prop is not None or open_:
                child_mode = _PRUNE
            elif skip_mode:
                child_mode = _KEEP  # unknown, kept; its field schema is None
            else:
                if key not in _META_FIELDS or path:
                    out.append(_join(path, key))
                if new is x:
                    new = dict(x)
                del new[key]
                continue
            if value is None:
                # _prune_nulls; a kept null is left for the defaults below.
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
            if not isinstance(value, (dict, list)) or (sub is None and child_mode != _PRUNE):
                continue  # what _normalize would return unchanged, without the call
            if (
                unchanged
                and key in unchanged
                and child_mode == _PRUNE  # (never a kept root field: apiVersion, kind, metadata)
                and (sub is None or not sub.container_defaults)
            ):
                continue  # already normalized by this schema: see normalize()
            changed = _normalize(
                value, sub, _join(path, key) if child_mode != _KEEP else "", out, child_mode
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
            if not isinstance(value, (dict, list)) or (item is None and mode != _PRUNE):
                continue  # unchanged by _normalize, as above
            changed = _normalize(value, item, f"{path}[{i}]" if mode != _KEEP else "", out, mode)
            if changed is not value:
                if new_list is x:
                    new_list = list(x)
                new_list[i] = changed
        return new_list
    return x


# --------------------------------------------------------------------------------------
# OpenAPI validation (kube-openapi SchemaValidator, with kube's cause rendering)


def _err_field(name: str, base: str | None) -> str:
    """kubeOpenAPIResultToFieldErrors: ``fldPath.Child(TrimPrefix(name, "."))``."""
    if not name or name == ".":
        return _shown(base)
    trimmed = name[1:] if name.startswith(".") else name
    return _child(base, trimmed)


def _composite(message: str, base: str | None) -> Cause:
    # A kube-openapi error that is not a *Validation: field.Invalid(fldPath, "", msg).
    return _invalid(_shown(base), "", message)


# _type_info of the exact types whose answer does not depend on the value.
_TYPE_INFO: dict[type, tuple[str, str]] = {
    bool: ("boolean", ""),
    str: ("string", ""),
    float: ("number", "float64"),
    list: ("array", ""),
    dict: ("object", ""),
}


def _is_quiet(value: Any, n: _Node) -> bool:
    """Whether ``_check(value, n, ...)`` certainly reports nothing (see ``quiet_scalars``)."""
    kind = type(value)
    return kind in n.quiet_scalars and (kind is not int or _INT64_MIN <= value <= _INT64_MAX)


def _type_info(data: Any) -> tuple[str, str]:
    """kube-openapi schemaInfoForType: the JSON type and format of a decoded value."""
    info = _TYPE_INFO.get(type(data))
    if info is not None:
        return info
    if isinstance(data, bool):
        return "boolean", ""
    if isinstance(data, str):
        return "string", ""
    if isinstance(data, int):
        if _INT64_MIN <= data <= _INT64_MAX:
            return "integer", "int64"
        return "number", "float64"  # Go decodes an out-of-range integer as a float64
    if isinstance(data, float):
        return "number", "float64"
    if isinstance(data, list):
        return "array", ""
    return "object", ""


def _type_error(path: str, expected: str, got: str, base: str | None) -> Cause:
    return _invalid(
        _err_field(path, base),
        got,
        f"{path} in body must be of type {expected}: {_go_quote(got)}",
        "FieldValueTypeInvalid",
    )


def _check(
    data: Any,
    n: _Node,
    path: str,
    base: str | None,
    out: list[Cause],
    skip: Container[str] = (),
) -> None:
    """Validate ``data`` against ``n`` at kube-openapi path ``path``, appending causes.

    The validators run in kube-openapi's order (type, allOf/anyOf/oneOf/not, string,
    format, number, array, enum, object), each when it applies to the value's kind,
    whatever the schema's type: that is how the real validator behaves.
    """
    if type(data) is dict and n.plain_object:
        _check_object(data, n, path, base, out, skip)  # all the checks below that apply
        return
    if data is None:
        if n.types and not n.nullable:
            out.append(_type_error(path, ",".join(n.types), "null", base))
        if n.enum is not None:
            _check_enum(data, n, path, base, out)
        return
    sch_type, fmt = _type_info(data)
    if n.format or (n.types and sch_type not in n.types):
        _check_type(data, n, path, base, out, sch_type, fmt)
    if n.has_junctors:
        _check_junctors(data, n, path, base, out)
    if sch_type == "string":
        if n.string_checks:
            _check_string(data, n, path, base, out)
            if n.format:
                _check_format(data, n, path, base, out)
    elif sch_type in ("integer", "number"):
        if n.number_checks:
            _check_number(data, n, path, base, out, sch_type == "integer")
    elif sch_type == "array":
        _check_array(data, n, path, base, out)
    if n.enum is not None:
        _check_enum(data, n, path, base, out)
    if sch_type == "object":
        _check_object(data, n, path, base, out, skip)


def _check_type(
    data: Any, n: _Node, path: str, base: str | None, out: list[Cause], sch_type: str, fmt: str
) -> None:
    types = n.types
    is_float_int = (
        sch_type == "number"
        and isinstance(data, float)
        and data.is_integer()
        and "integer" in types
    )
    is_int_float = sch_type == "integer" and "number" in types
    if (
        sch_type not in ("string", "array")
        and n.format
        and not (sch_type in types or fmt == n.format or is_float_int or is_int_float)
    ):
        out.append(_type_error(path, n.format, fmt, base))
        return
    if sch_type in ("string", "array") and n.format and not ({"number", "integer"} & set(types)):
        return
    if not (sch_type in types or is_float_int or is_int_float):
        out.append(_type_error(path, ",".join(types), sch_type, base))


def _check_string(data: str, n: _Node, path: str, base: str | None, out: list[Cause]) -> None:
    # utf8.RuneCount, yet field.TooLong says "bytes" (kube 1.32 wording).
    if n.max_length is not None and len(data) > n.max_length:
        detail = f"may not be more than {n.max_length} bytes" if n.max_length >= 0 else ""
        out.append(
            Cause(
                _err_field(path, base),
                f"Too long: {detail or 'value is too long'}",
                "FieldValueTooLong",
            )
        )
        return
    if n.min_length is not None and len(data) < n.min_length:
        msg = f"{path} in body should be at least {n.min_length} chars long"
        out.append(_invalid(_err_field(path, base), data, msg))
        return
    if n.pattern_re is not None and n.pattern_re.search(data) is None:
        msg = f"{path} in body should match '{n.pattern}'"
        out.append(_invalid(_err_field(path, base), data, msg))


def _check_format(data: str, n: _Node, path: str, base: str | None, out: list[Cause]) -> None:
    check = _STRING_FORMATS.get(n.format.replace("-", ""))
    if check is not None and not check(data):
        msg = f"{path} in body must be of type {n.format}: {_go_quote(data)}"
        out.append(_invalid(_err_field(path, base), data, msg, "FieldValueTypeInvalid"))


_FORMAT_RANGES = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (_INT64_MIN, _INT64_MAX),
}


def _check_number(
    data: int | float, n: _Node, path: str, base: str | None, out: list[Cause], is_int: bool
) -> None:
    # kube 1.36 checks int32/int64/float ranges ("Checked value must be of type ...").
    if n.format in _FORMAT_RANGES and n.types == ("integer",):
        lo, hi = _FORMAT_RANGES[n.format]
        ok = (is_int or (isinstance(data, float) and data.is_integer())) and lo <= data <= hi
        if not ok:
            out.append(
                _composite(
                    f"Checked value must be of type integer with format {n.format} in {path}",
                    base,
                )
            )
    elif n.format == "float" and n.types == ("number",) and abs(data) > 3.4028234663852886e38:
        out.append(
            _composite(f"Checked value must be of type number with format float in {path}", base)
        )
    # (the causes' field, _err_field(path, base), is only built when there is a cause)
    if n.multiple_of is not None:
        # MultipleOfNativeType: an int value is checked against int64(factor).
        factor: float | int = int(n.multiple_of) if is_int else float(n.multiple_of)
        if factor <= 0:
            msg = f"factor MultipleOf declared for {path} must be positive: {_num_text(factor)}"
            out.append(_composite(msg, base))
        elif is_int:
            if int(data) % int(factor):
                msg = f"{path} in body should be a multiple of {factor}"
                out.append(_invalid(_err_field(path, base), data, msg))
        else:
            mult = (1 / factor * data) if factor < 1 else (data / factor)
            if not _is_json_integer(mult):
                msg = f"{path} in body should be a multiple of {_num_text(factor)}"
                out.append(_invalid(_err_field(path, base), data, msg))
    # MinimumNativeType / MaximumNativeType: an int value compares with int64(bound).
    if n.minimum is not None:
        bound: float | int = int(n.minimum) if is_int else float(n.minimum)
        low = data < bound or (n.exclusive_minimum and data == bound)
        if low:
            word = "greater than" if n.exclusive_minimum else "greater than or equal to"
            msg = f"{path} in body should be {word} {_num_text(bound)}"
            out.append(_invalid(_err_field(path, base), data, msg))
    if n.maximum is not None:
        bound = int(n.maximum) if is_int else float(n.maximum)
        high = data > bound or (n.exclusive_maximum and data == bound)
        if high:
            word = "less than" if n.exclusive_maximum else "less than or equal to"
            msg = f"{path} in body should be {word} {_num_text(bound)}"
            out.append(_invalid(_err_field(path, base), data, msg))


def _num_text(value: float | int) -> str:
    return _go_float(value) if isinstance(value, float) else str(value)


def _is_json_integer(value: float) -> bool:
    # swag.IsFloat64AJSONInteger, with its 1e-9 tolerance.
    if not math.isfinite(value):
        return False
    return abs(value - round(value)) < 1e-9 * max(1.0, abs(value))


def _check_array(data: list[Any], n: _Node, path: str, base: str | None, out: list[Cause]) -> None:
    if n.items is not None:
        for i, value in enumerate(data):
            if not _is_quiet(value, n.items):
                _check(value, n.items, f"{path}[{i}]", base, out)
    fld = _err_field(path, base)
    size = len(data)
    if n.min_items is not None and size < n.min_items:
        out.append(_invalid(fld, size, f"{path} in body should have at least {n.min_items} items"))
    if n.max_items is not None and size > n.max_items:
        out.append(_too_many(fld, size, n.max_items))
    if n.unique_items:
        for i, value in enumerate(data):
            if any(_json_equal(value, other) for other in data[:i]):
                out.append(_invalid(fld, "", f"{path} in body shouldn't contain duplicates"))
                break


def _check_enum(data: Any, n: _Node, path: str, base: str | None, out: list[Cause]) -> None:
    assert n.enum is not None
    if type(data) is str and data in n.enum_strings:
        return  # what the loop below finds for a str, without it
    if data is not None and any(_json_equal(data, e) for e in n.enum):
        return
    shown = [e if isinstance(e, str) else _go_json(e) for e in n.enum]
    out.append(_not_supported(_err_field(path, base), data, shown))


def _check_object(
    data: dict[str, Any],
    n: _Node,
    path: str,
    base: str | None,
    out: list[Cause],
    skip: Container[str] = (),
) -> None:
    """``skip``: fields whose values are not checked (see StructuralSchema.validate)."""
    # The field and the paths of values are only built when they are reported.
    count = len(data)
    if n.min_properties is not None and count < n.min_properties:
        msg = f"{path} in body should have at least {n.min_properties} properties"
        out.append(_invalid(_err_field(path, base), count, msg))
    if n.max_properties is not None and count > n.max_properties:
        out.append(_too_many(_err_field(path, base), count, n.max_properties))
    if n.additional_allows is False:
        for key in data:
            if key not in n.properties:
                msg = f"{path}.{key} in body is a forbidden property"
                out.append(_invalid(_err_field(path, base), key, msg))
    elif n.additional is not None:
        extra = n.additional
        for key, value in data.items():
            if key not in n.properties and not _is_quiet(value, extra) and key not in skip:
                _check(value, extra, f"{path}.{key}", base, out)
    for name, prop in n.properties.items():
        if name in data and name not in skip:
            value = data[name]
            if not _is_quiet(value, prop):
                _check(value, prop, _join(path, name), base, out)
    for name in n.required:
        if name not in data:
            out.append(_required(_err_field(f"{path}.{name}", base)))


def _check_junctors(data: Any, n: _Node, path: str, base: str | None, out: list[Cause]) -> None:
    quoted = _go_quote(path)
    if n.any_of:
        best: list[Cause] | None = None
        for sub in n.any_of:
            errs: list[Cause] = []
            _check(data, sub, path, base, errs)
            if not errs:
                best = None
                break
            if best is None or len(errs) < len(best):
                best = errs
        else:
            out.append(_composite(f"{quoted} must validate at least one schema (anyOf)", base))
        if best:
            out.extend(best)
    if n.one_of:
        valid = 0
        best = None
        for sub in n.one_of:
            errs = []
            _check(data, sub, path, base, errs)
            if not errs:
                valid += 1
                best = None
            elif valid == 0 and (best is None or len(errs) < len(best)):
                best = errs
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            out.append(
                _composite(f"{quoted} must validate one and only one schema (oneOf). {found}", base)
            )
            if best:
                out.extend(best)
    if n.all_of:
        valid = 0
        for sub in n.all_of:
            errs = []
            _check(data, sub, path, base, errs)
            valid += not errs
            out.extend(errs)
        if valid != len(n.all_of):
            tail = ". None validated" if valid == 0 else ""
            out.append(_composite(f"{quoted} must validate all the schemas (allOf){tail}", base))
    if n.not_ is not None:
        errs = []
        _check(data, n.not_, path, base, errs)
        if not errs:
            out.append(_composite(f"{quoted} must not validate the schema (not)", base))


# --------------------------------------------------------------------------------------
# x-kubernetes-list-type (listtype/validation.go)


def _set_key(value: Any) -> Any:
    if isinstance(value, dict | list):
        return ("json", _go_json(value))
    return (type(value), value)


def _list_types(
    x: Any, s: _Node | None, path: str | None, skip: Container[str] = ()
) -> list[Cause]:
    if s is None or not s.lists_below or not isinstance(x, dict):
        return []
    causes: list[Cause] = []
    if s.additional is not None:
        for key, value in x.items():
            if key not in skip:
                causes.extend(_list_types_value(value, s.additional, _sub(path, key)))
    for key, value in x.items():
        prop = s.properties.get(key)
        if prop is not None and key not in skip:
            causes.extend(_list_types_value(value, prop, _child(path, key)))
    return causes


def _list_types_value(x: Any, s: _Node, path: str) -> list[Cause]:
    if isinstance(x, dict):
        return _list_types(x, s, path)
    if not isinstance(x, list):
        return []
    causes: list[Cause] = []
    if not s.lists_below and s.list_type not in ("set", "map"):
        return causes
    if s.list_type == "set":
        for i in _second_occurrences([_set_key(v) for v in x]):
            causes.append(_duplicate(_sub(path, i), x[i]))
    elif s.list_type == "map":
        causes.extend(_list_map_duplicates(x, s, path))
    if s.items is not None:
        for i, value in enumerate(x):
            causes.extend(_list_types_value(value, s.items, _sub(path, i)))
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


def _list_map_duplicates(x: list[Any], s: _Node, path: str) -> list[Cause]:
    for i, item in enumerate(x):
        if item is not None and not isinstance(item, dict):
            return [
                _invalid(_sub(path, i), item, "must be an object for an array of list-type map")
            ]
    if len(x) <= 1:
        return []
    keys = [
        {k: item[k] for k in s.list_map_keys if k in item} if isinstance(item, dict) else {}
        for item in x
    ]
    dupes = _second_occurrences([_set_key(k) for k in keys])
    return [_duplicate(_sub(path, i), keys[i]) for i in dupes]


def _map_list_key(item: Any, keys: list[str]) -> Any:
    if not isinstance(item, dict):
        return None
    return tuple(_set_key(item.get(k)) for k in keys)


# --------------------------------------------------------------------------------------
# CEL: evaluation of x-kubernetes-validations


def _to_cel(value: Any, s: _Node | None) -> Any:
    """JSON to CEL values: ``type: number`` fields are doubles even when written as 1."""
    if s is None or not s.has_number:
        return value
    if s.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        return {k: _to_cel(v, _field_schema(s, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cel(v, s.items) for v in value]
    return value


def _cel_walk(
    x: Any,
    old: Any,
    s: _Node,
    path: str | None,
    transition: bool,
    out: list[Cause],
    skip: Container[str] = (),
) -> None:
    if x is None or (transition and old is None):
        # Transition rules need an old value, and none exists below a missing one.
        return
    if s.rules:
        _run_rules(x, old, s, path, transition, out)
    if not s.rules_below:
        return
    if isinstance(x, dict):
        old_map = old if isinstance(old, dict) else None
        if s.additional is not None:
            for key, value in x.items():
                if key not in s.properties and key not in skip:
                    prev = old_map.get(key) if old_map is not None else None
                    _cel_walk(value, prev, s.additional, _sub(path, key), transition, out)
        for key, value in x.items():
            prop = s.properties.get(key)
            if prop is not None and key not in skip:
                prev = old_map.get(key) if old_map is not None else None
                _cel_walk(value, prev, prop, _child(path, key), transition, out)
    elif isinstance(x, list) and s.items is not None:
        # Only list-type=map items correlate with old items (cel/validation.go makeMapList).
        olds: dict[Any, Any] = {}
        if transition and s.list_type == "map" and s.list_map_keys and isinstance(old, list):
            for item in old:
                olds.setdefault(_map_list_key(item, s.list_map_keys), item)
        for i, value in enumerate(x):
            prev = olds.get(_map_list_key(value, s.list_map_keys)) if olds else None
            _cel_walk(value, prev, s.items, _sub(path, i), transition, out)


def _run_rules(
    x: Any, old: Any, s: _Node, path: str | None, transition: bool, out: list[Cause]
) -> None:
    self_value: Any = None
    old_value: Any = None
    converted = False
    for rule in s.rules:
        if rule.program is None or rule.uses_old_self != transition:
            continue
        if not converted:
            self_value = _to_cel(x, s)
            old_value = _to_cel(old, s) if old is not None else None
            converted = True
        env = {"self": self_value}
        if transition:
            env["oldSelf"] = old_value
        type_name = s.type
        try:
            result = rule.program.ev(env)
        except _CelError as exc:
            if str(exc).startswith("no such overload"):
                detail = (
                    f"'{exc}': call arguments did not match a supported operator, function or "
                    f"macro signature for rule: {rule.error_string}"
                )
            else:
                detail = f"{exc} evaluating rule: {rule.error_string}"
            out.append(_invalid(_shown(path), type_name, detail))
            continue
        if result is True:
            continue
        out.append(rule.failure(path, type_name, env))


class _Rule:
    """One ``x-kubernetes-validations`` entry, parsed once."""

    __slots__ = (
        "error",
        "field_path",
        "message",
        "message_program",
        "program",
        "reason",
        "text",
        "uses_old_self",
    )

    def __init__(self, raw: Mapping[str, Any], path: str | None) -> None:
        rule = raw.get("rule")
        self.text: str = rule if isinstance(rule, str) else ""
        message = raw.get("message")
        self.message: str = message.strip() if isinstance(message, str) else ""
        reason = raw.get("reason")
        self.reason: str | None = reason if isinstance(reason, str) else None
        field_path = raw.get("fieldPath")
        self.field_path: str = field_path.strip() if isinstance(field_path, str) else ""
        self.program: _Expr | None = None
        self.error: str | None = None
        self.uses_old_self = False
        try:
            self.program = _parse(self.text)
            self.uses_old_self = self.program.uses("oldSelf")
        except (_CelSyntaxError, _Unsupported) as exc:
            self.error = str(exc)
        self.message_program: _Expr | None = None
        expression = raw.get("messageExpression")
        if isinstance(expression, str) and expression.strip():
            try:
                self.message_program = _parse(expression)
            except (_CelSyntaxError, _Unsupported):
                self.message_program = None

    @property
    def error_string(self) -> str:
        """cel/validation.go ruleErrorString: the message, else the rule."""
        return self.message or self.text.strip()

    def failure(self, path: str | None, type_name: str, env: dict[str, Any]) -> Cause:
        """The cause for a rule that evaluated to false (fieldErrorForReason)."""
        detail = ""
        if self.message_program is not None:
            try:
                value = self.message_program.ev(env)
            except _CelError:
                value = None
            if isinstance(value, str) and value.strip() and "\n" not in value:
                detail = value
        if not detail:
            detail = self.message or f"failed rule: {self.text.strip()}"
        fld = path
        if self.field_path:
            fld = _child(path, self.field_path.lstrip("."))
        shown = _shown(fld)
        # kube <= 1.34 shows the schema type as the value ("object"); 1.35 omits it.
        if self.reason == "FieldValueForbidden":
            return _forbidden(shown, detail)
        if self.reason == "FieldValueRequired":
            return _required(shown, detail)
        if self.reason == "FieldValueDuplicate":
            return _duplicate(shown, type_name)
        return _invalid(shown, type_name, detail)


# --------------------------------------------------------------------------------------
# CEL: lexer


class _CelSyntaxError(Exception):
    """The rule is not valid CEL (as far as this parser knows)."""


class _Unsupported(Exception):
    """Valid CEL, but outside the subset this evaluator implements."""


class _CelError(Exception):
    """A runtime error of CEL evaluation (no such key, overflow, no such overload...)."""


_PUNCT = (
    "==",
    "!=",
    "<=",
    ">=",
    "&&",
    "||",
    "<",
    ">",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "?",
    ":",
    ".",
    ",",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
)
# Reserved by the CEL spec (langdef.md): not usable as identifiers.
_RESERVED = frozenset(
    (
        *("as", "break", "const", "continue", "else", "for", "function", "if", "import"),
        *("let", "loop", "package", "namespace", "return", "var", "void", "while"),
    )
)
_RX_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+[uU]?|[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?[uU]?|[0-9]+[uU]?"
)
_RX_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}


@dataclass(frozen=True)
class _Token:
    kind: str  # "int", "double", "string", "ident", "punct", "eof"
    value: Any
    pos: int


def _lex(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
            continue
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if ch.isdigit():
            match = _RX_NUMBER.match(text, i)
            assert match is not None
            tokens.append(_number_token(match.group(), i))
            i = match.end()
            continue
        if ch in "'\"" or (ch in "rRbB" and i + 1 < n and text[i + 1] in "'\""):
            value, i = _lex_string(text, i)
            tokens.append(_Token("string", value, i))
            continue
        if ch.isalpha() or ch == "_":
            match = _RX_IDENT.match(text, i)
            assert match is not None
            word = match.group()
            if word in _RESERVED:
                raise _CelSyntaxError(f"reserved identifier {word!r}")
            tokens.append(_Token("ident", word, i))
            i = match.end()
            continue
        for punct in _PUNCT:
            if text.startswith(punct, i):
                tokens.append(_Token("punct", punct, i))
                i += len(punct)
                break
        else:
            raise _CelSyntaxError(f"unexpected character {ch!r} at {i}")
    tokens.append(_Token("eof", None, n))
    return tokens


def _number_token(text: str, pos: int) -> _Token:
    unsigned = text[-1] in "uU"
    body = text[:-1] if unsigned else text
    if body[:2] in ("0x", "0X"):
        return _Token("int", int(body, 16), pos)
    if unsigned or not any(c in body for c in ".eE"):
        return _Token("int", int(body), pos)
    return _Token("double", float(body), pos)


def _lex_string(text: str, i: int) -> tuple[str, int]:
    raw = False
    if text[i] in "bB":
        raise _Unsupported("bytes literals are not supported")
    if text[i] in "rR":
        raw = True
        i += 1
    quote = text[i] * 3 if text.startswith(text[i] * 3, i) else text[i]
    i += len(quote)
    out: list[str] = []
    while True:
        if i >= len(text):
            raise _CelSyntaxError("unterminated string literal")
        if text.startswith(quote, i):
            return "".join(out), i + len(quote)
        ch = text[i]
        if ch == "\n" and len(quote) == 1:
            raise _CelSyntaxError("newline in string literal")
        if ch == "\\" and not raw:
            i += 1
            if i >= len(text):
                raise _CelSyntaxError("unterminated escape")
            esc = text[i]
            if esc in _SIMPLE_ESCAPES:
                out.append(_SIMPLE_ESCAPES[esc])
                i += 1
            elif esc in "xX" or esc in "uU":
                width = {"x": 2, "X": 2, "u": 4, "U": 8}[esc]
                digits = text[i + 1 : i + 1 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise _CelSyntaxError("bad escape sequence")
                out.append(chr(int(digits, 16)))
                i += 1 + width
            elif esc in "0123":
                digits = text[i : i + 3]
                if len(digits) != 3 or not all(c in "01234567" for c in digits):
                    raise _CelSyntaxError("bad octal escape")
                out.append(chr(int(digits, 8)))
                i += 3
            else:
                raise _CelSyntaxError(f"bad escape \\{esc}")
            continue
        out.append(ch)
        i += 1


# --------------------------------------------------------------------------------------
# CEL: syntax tree and evaluation


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(value: int) -> int:
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _CelError("integer overflow")
    return value


def _cel_equal(a: Any, b: Any) -> bool:
    """CEL ``==``: numbers compare across int/double, other types only with themselves."""
    if _is_num(a) and _is_num(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_cel_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_cel_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


class _Expr:
    """A node of a parsed CEL expression."""

    __slots__ = ()

    def ev(self, env: dict[str, Any]) -> Any:
        """Evaluate in ``env`` (variable name to value)."""
        raise NotImplementedError

    def children(self) -> Iterable[_Expr]:
        """The sub-expressions."""
        return ()

    def uses(self, name: str) -> bool:
        """Whether the expression references variable ``name``."""
        return any(c.uses(name) for c in self.children())


class _Lit(_Expr):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def ev(self, env: dict[str, Any]) -> Any:
        return self.value


class _Ident(_Expr):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, env: dict[str, Any]) -> Any:
        try:
            return env[self.name]
        except KeyError:
            raise _CelError(f"undeclared reference to '{self.name}'") from None

    def uses(self, name: str) -> bool:
        return self.name == name


class _Select(_Expr):
    __slots__ = ("field", "operand", "test_only")

    def __init__(self, operand: _Expr, field: str, test_only: bool = False) -> None:
        self.operand = operand
        self.field = field
        self.test_only = test_only

    def ev(self, env: dict[str, Any]) -> Any:
        target = self.operand.ev(env)
        if not isinstance(target, dict):
            raise _CelError("no such overload")
        if self.test_only:
            return self.field in target
        try:
            return target[self.field]
        except KeyError:
            raise _CelError(f"no such key: {self.field}") from None

    def children(self) -> Iterable[_Expr]:
        return (self.operand,)


class _Index(_Expr):
    __slots__ = ("index", "operand")

    def __init__(self, operand: _Expr, index: _Expr) -> None:
        self.operand = operand
        self.index = index

    def ev(self, env: dict[str, Any]) -> Any:
        target = self.operand.ev(env)
        key = self.index.ev(env)
        if isinstance(target, list):
            if isinstance(key, float) and key.is_integer():
                key = int(key)
            if not isinstance(key, int) or isinstance(key, bool):
                raise _CelError("no such overload")
            if not 0 <= key < len(target):
                raise _CelError(f"index out of bounds: {key}")
            return target[key]
        if isinstance(target, dict):
            if not isinstance(key, str) or key not in target:
                raise _CelError(f"no such key: {key}")
            return target[key]
        raise _CelError("no such overload")

    def children(self) -> Iterable[_Expr]:
        return (self.operand, self.index)


class _ListExpr(_Expr):
    __slots__ = ("items",)

    def __init__(self, items: list[_Expr]) -> None:
        self.items = items

    def ev(self, env: dict[str, Any]) -> Any:
        return [item.ev(env) for item in self.items]

    def children(self) -> Iterable[_Expr]:
        return self.items


class _MapExpr(_Expr):
    __slots__ = ("entries",)

    def __init__(self, entries: list[tuple[_Expr, _Expr]]) -> None:
        self.entries = entries

    def ev(self, env: dict[str, Any]) -> Any:
        out: dict[Any, Any] = {}
        for key_expr, value_expr in self.entries:
            key = key_expr.ev(env)
            if isinstance(key, list | dict | float) or key is None:
                raise _CelError("unsupported key type")
            if key in out:
                raise _CelError(f"Failed with repeated key: {key}")
            out[key] = value_expr.ev(env)
        return out

    def children(self) -> Iterable[_Expr]:
        for key, value in self.entries:
            yield key
            yield value


class _Not(_Expr):
    __slots__ = ("operand",)

    def __init__(self, operand: _Expr) -> None:
        self.operand = operand

    def ev(self, env: dict[str, Any]) -> Any:
        value = self.operand.ev(env)
        if not isinstance(value, bool):
            raise _CelError("no such overload")
        return not value

    def children(self) -> Iterable[_Expr]:
        return (self.operand,)


class _Neg(_Expr):
    __slots__ = ("operand",)

    def __init__(self, operand: _Expr) -> None:
        self.operand = operand

    def ev(self, env: dict[str, Any]) -> Any:
        value = self.operand.ev(env)
        if isinstance(value, bool) or not _is_num(value):
            raise _CelError("no such overload")
        return _check_int(-value) if isinstance(value, int) else -value

    def children(self) -> Iterable[_Expr]:
        return (self.operand,)


class _Logic(_Expr):
    """``&&`` and ``||``, commutative over errors as CEL specifies."""

    __slots__ = ("is_and", "left", "right")

    def __init__(self, is_and: bool, left: _Expr, right: _Expr) -> None:
        self.is_and = is_and
        self.left = left
        self.right = right

    def ev(self, env: dict[str, Any]) -> Any:
        absorbing = not self.is_and  # false absorbs &&, true absorbs ||
        error: _CelError | None = None
        values: list[Any] = []
        for side in (self.left, self.right):
            try:
                value = side.ev(env)
            except _CelError as exc:
                error = error or exc
                continue
            if value is absorbing:
                return absorbing
            values.append(value)
        if error is not None:
            raise error
        if all(isinstance(v, bool) for v in values):
            return not absorbing
        raise _CelError("no such overload")

    def children(self) -> Iterable[_Expr]:
        return (self.left, self.right)


class _Cond(_Expr):
    __slots__ = ("cond", "no", "yes")

    def __init__(self, cond: _Expr, yes: _Expr, no: _Expr) -> None:
        self.cond = cond
        self.yes = yes
        self.no = no

    def ev(self, env: dict[str, Any]) -> Any:
        cond = self.cond.ev(env)
        if not isinstance(cond, bool):
            raise _CelError("no such overload")
        return self.yes.ev(env) if cond else self.no.ev(env)

    def children(self) -> Iterable[_Expr]:
        return (self.cond, self.yes, self.no)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _cel_equal(a, b)
    if op == "!=":
        return not _cel_equal(a, b)
    if op == "in":
        if isinstance(b, list):
            return any(_cel_equal(a, item) for item in b)
        if isinstance(b, dict):
            return a in b if isinstance(a, str | int) else False
        raise _CelError("no such overload")
    comparable = (_is_num(a) and _is_num(b)) or (type(a) is type(b) and isinstance(a, str | bool))
    if not comparable:
        raise _CelError("no such overload")
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "+":
        if isinstance(a, str) and isinstance(b, str):
            return a + b
        if isinstance(a, list) and isinstance(b, list):
            return a + b
    # CEL has no mixed int/double arithmetic.
    if type(a) is not type(b) or not _is_num(a):
        raise _CelError("no such overload")
    if isinstance(a, float):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                return math.copysign(math.inf, a) if a else math.nan
            return a / b
        raise _CelError("no such overload")
    if op == "+":
        return _check_int(a + b)
    if op == "-":
        return _check_int(a - b)
    if op == "*":
        return _check_int(a * b)
    if b == 0:
        raise _CelError("division by zero" if op == "/" else "modulus by zero")
    quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)  # truncates, like Go
    if op == "/":
        return _check_int(quotient)
    return a - b * quotient


class _Binary(_Expr):
    __slots__ = ("left", "op", "right")

    def __init__(self, op: str, left: _Expr, right: _Expr) -> None:
        self.op = op
        self.left = left
        self.right = right

    def ev(self, env: dict[str, Any]) -> Any:
        a = self.left.ev(env)
        b = self.right.ev(env)
        if self.op in ("==", "!=", "<", "<=", ">", ">=", "in"):
            return _compare(self.op, a, b)
        return _arith(self.op, a, b)

    def children(self) -> Iterable[_Expr]:
        return (self.left, self.right)


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise _CelError("no such overload")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _CelError("no such overload")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not _INT64_MIN <= value <= _INT64_MAX:
            raise _CelError("integer overflow")
        return int(value)
    if isinstance(value, str):
        try:
            return _check_int(int(value, 10))
        except ValueError:
            raise _CelError(f"cannot convert {value!r} to int") from None
    raise _CelError("no such overload")


def _to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise _CelError("no such overload")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _CelError(f"cannot convert {value!r} to double") from None
    raise _CelError("no such overload")


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_g(value)
    raise _CelError("no such overload")


# strconv.ParseBool, which cel-go's bool(string) uses.
_BOOL_STRINGS = {
    **dict.fromkeys(("1", "t", "T", "true", "TRUE", "True"), True),
    **dict.fromkeys(("0", "f", "F", "false", "FALSE", "False"), False),
}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value in _BOOL_STRINGS:
            return _BOOL_STRINGS[value]
        raise _CelError(f"type conversion error from 'string' to 'bool' for {value!r}")
    raise _CelError("no such overload")


def _matches(text: Any, pattern: Any) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise _CelError("no such overload")
    try:
        return re.search(pattern, text) is not None
    except re.error as exc:
        raise _CelError(f"invalid regular expression: {exc}") from None


def _str_method(fn: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def method(target: Any, arg: Any) -> bool:
        if not isinstance(target, str) or not isinstance(arg, str):
            raise _CelError("no such overload")
        return fn(target, arg)

    return method


def _ascii_case(upper: bool) -> Callable[[Any], str]:
    def method(target: Any) -> str:
        if not isinstance(target, str):
            raise _CelError("no such overload")
        table = str.maketrans(
            "abcdefghijklmnopqrstuvwxyz" if upper else "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if upper else "abcdefghijklmnopqrstuvwxyz",
        )
        return target.translate(table)

    return method


# name -> (number of arguments, implementation); receiver-style calls pass the target first.
_GLOBAL_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "size": (1, _size),
    "int": (1, _to_int),
    "uint": (1, _to_int),
    "double": (1, _to_double),
    "string": (1, _to_string),
    "bool": (1, _to_bool),
    "dyn": (1, lambda v: v),
    "matches": (2, _matches),
}
_METHODS: dict[str, tuple[int, Callable[..., Any]]] = {
    "size": (0, _size),
    "startsWith": (1, _str_method(str.startswith)),
    "endsWith": (1, _str_method(str.endswith)),
    "contains": (1, _str_method(str.__contains__)),
    "matches": (1, _matches),
    "lowerAscii": (0, _ascii_case(False)),
    "upperAscii": (0, _ascii_case(True)),
}
_MACROS = frozenset(("all", "exists", "exists_one", "map", "filter"))


class _Call(_Expr):
    __slots__ = ("args", "fn", "name")

    def __init__(self, name: str, fn: Callable[..., Any], args: list[_Expr]) -> None:
        self.name = name
        self.fn = fn
        self.args = args

    def ev(self, env: dict[str, Any]) -> Any:
        return self.fn(*(arg.ev(env) for arg in self.args))

    def children(self) -> Iterable[_Expr]:
        return self.args


class _Comprehension(_Expr):
    """The ``all``/``exists``/``exists_one``/``map``/``filter`` macros."""

    __slots__ = ("kind", "pred", "range_", "transform", "var")

    def __init__(
        self, kind: str, range_: _Expr, var: str, pred: _Expr | None, transform: _Expr | None
    ) -> None:
        self.kind = kind
        self.range_ = range_
        self.var = var
        self.pred = pred
        self.transform = transform

    def ev(self, env: dict[str, Any]) -> Any:
        collection = self.range_.ev(env)
        if isinstance(collection, dict):
            elements: list[Any] = list(collection)
        elif isinstance(collection, list):
            elements = collection
        else:
            raise _CelError("no such overload")
        scope = dict(env)
        kind = self.kind
        if kind in ("map", "filter"):
            out: list[Any] = []
            for element in elements:
                scope[self.var] = element
                if self.pred is not None:
                    keep = self.pred.ev(scope)
                    if not isinstance(keep, bool):
                        raise _CelError("no such overload")
                    if not keep:
                        continue
                out.append(element if self.transform is None else self.transform.ev(scope))
            return out
        error: _CelError | None = None
        hits = 0
        assert self.pred is not None
        for element in elements:
            scope[self.var] = element
            try:
                value = self.pred.ev(scope)
            except _CelError as exc:
                if kind == "exists_one":
                    raise
                error = error or exc
                continue
            if not isinstance(value, bool):
                raise _CelError("no such overload")
            if kind == "all" and not value:
                return False
            if kind == "exists" and value:
                return True
            hits += value
        if error is not None:
            raise error
        if kind == "all":
            return True
        if kind == "exists":
            return False
        return hits == 1

    def children(self) -> Iterable[_Expr]:
        return [e for e in (self.range_, self.pred, self.transform) if e is not None]

    def uses(self, name: str) -> bool:
        if self.range_.uses(name):
            return True
        if name == self.var:
            return False
        return any(e.uses(name) for e in (self.pred, self.transform) if e is not None)


# --------------------------------------------------------------------------------------
# CEL: recursive-descent parser (grammar of the CEL spec, langdef.md)

_RELOPS = frozenset(("<", "<=", ">", ">=", "==", "!=", "in"))

# How deep a rule may nest, in the parser's own recursion (parentheses, literals, call
# arguments, unary operators) and in the tree it builds (a chain of ``a + b + ...``):
# cel-go stops at 250, but one level of parentheses costs this parser nine Python frames
# and the evaluator recurses once per level, so a rule past these limits is refused as
# cel-go refuses one past its own, rather than overflowing Python's stack on every
# object the CRD validates.
_MAX_CEL_NESTING = 48
_MAX_CEL_DEPTH = 160


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0
        self.nesting = 0

    def _enter(self) -> None:
        self.nesting += 1
        if self.nesting > _MAX_CEL_NESTING:
            raise _CelSyntaxError("max recursion depth exceeded")

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, value: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind == "punct" and token.value == value

    def expect(self, value: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.value != value:
            raise _CelSyntaxError(f"expected {value!r} at {token.pos}")

    def parse(self) -> _Expr:
        expr = self.expr()
        if self.peek().kind != "eof":
            raise _CelSyntaxError(f"unexpected token at {self.peek().pos}")
        stack = [(expr, 1)]
        while stack:  # the tree's depth, without recursing over it
            node, depth = stack.pop()
            if depth > _MAX_CEL_DEPTH:
                raise _CelSyntaxError("max recursion depth exceeded")
            stack.extend((child, depth + 1) for child in node.children())
        return expr

    def expr(self) -> _Expr:
        self._enter()
        cond = self.or_()
        if self.at("?"):
            self.take()
            yes = self.or_()
            self.expect(":")
            no = self.expr()
            cond = _Cond(cond, yes, no)
        self.nesting -= 1
        return cond

    def or_(self) -> _Expr:
        left = self.and_()
        while self.at("||"):
            self.take()
            left = _Logic(False, left, self.and_())
        return left

    def and_(self) -> _Expr:
        left = self.relation()
        while self.at("&&"):
            self.take()
            left = _Logic(True, left, self.relation())
        return left

    def relation(self) -> _Expr:
        left = self.addition()
        while True:
            token = self.peek()
            is_in = token.kind == "ident" and token.value == "in"
            if not (is_in or (token.kind == "punct" and token.value in _RELOPS)):
                return left
            self.take()
            left = _Binary(token.value, left, self.addition())

    def addition(self) -> _Expr:
        left = self.multiplication()
        while self.at("+") or self.at("-"):
            op = self.take().value
            left = _Binary(op, left, self.multiplication())
        return left

    def multiplication(self) -> _Expr:
        left = self.unary()
        while self.at("*") or self.at("/") or self.at("%"):
            op = self.take().value
            left = _Binary(op, left, self.unary())
        return left

    def operand(self) -> _Expr:
        """The operand of a unary operator, which nests as deep as a parenthesis does."""
        self._enter()
        operand = self.unary()
        self.nesting -= 1
        return operand

    def unary(self) -> _Expr:
        if self.at("!"):
            self.take()
            return _Not(self.operand())
        if self.at("-"):
            self.take()
            token = self.peek()
            if token.kind in ("int", "double") and not self._member_follows():
                self.take()
                value = -token.value
                if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
                    raise _CelSyntaxError("integer literal out of range")
                return self.member_suffix(_Lit(value))
            return _Neg(self.operand())
        return self.member()

    def _member_follows(self) -> bool:
        after = self.tokens[self.pos + 1]
        return after.kind == "punct" and after.value in (".", "[")

    def member(self) -> _Expr:
        return self.member_suffix(self.primary())

    def member_suffix(self, expr: _Expr) -> _Expr:
        while True:
            if self.at("."):
                self.take()
                if self.at("?"):
                    raise _Unsupported("optional field selection (.?) is not supported")
                token = self.take()
                if token.kind != "ident":
                    raise _CelSyntaxError(f"expected a field name at {token.pos}")
                if self.at("("):
                    self.take()
                    args = self.args(")")
                    expr = self.method(expr, token.value, args)
                else:
                    expr = _Select(expr, token.value)
            elif self.at("["):
                self.take()
                if self.at("?"):
                    raise _Unsupported("optional indexing ([?) is not supported")
                index = self.expr()
                self.expect("]")
                expr = _Index(expr, index)
            else:
                return expr

    def args(self, close: str) -> list[_Expr]:
        args: list[_Expr] = []
        if self.at(close):
            self.take()
            return args
        while True:
            args.append(self.expr())
            if self.at(","):
                self.take()
                if self.at(close):
                    self.take()
                    return args
                continue
            self.expect(close)
            return args

    def primary(self) -> _Expr:
        token = self.take()
        if token.kind in ("int", "double", "string"):
            if token.kind == "int" and token.value > _INT64_MAX:
                raise _CelSyntaxError("integer literal out of range")
            return _Lit(token.value)
        if token.kind == "ident":
            name = token.value
            if name == "true":
                return _Lit(True)
            if name == "false":
                return _Lit(False)
            if name == "null":
                return _Lit(None)
            if self.at("("):
                self.take()
                return self.function(name, self.args(")"))
            return _Ident(name)
        if token.kind == "punct":
            if token.value == "(":
                expr = self.expr()
                self.expect(")")
                return expr
            if token.value == "[":
                return _ListExpr(self.args("]"))
            if token.value == "{":
                return self.map_literal()
            if token.value == ".":
                raise _Unsupported("qualified identifiers are not supported")
        raise _CelSyntaxError(f"unexpected token at {token.pos}")

    def map_literal(self) -> _Expr:
        entries: list[tuple[_Expr, _Expr]] = []
        while not self.at("}"):
            key = self.expr()
            self.expect(":")
            entries.append((key, self.expr()))
            if not self.at(","):
                break
            self.take()
        self.expect("}")
        return _MapExpr(entries)

    def function(self, name: str, args: list[_Expr]) -> _Expr:
        if name == "has":
            if len(args) != 1 or not isinstance(args[0], _Select):
                raise _CelSyntaxError("invalid argument to has() macro")
            return _Select(args[0].operand, args[0].field, test_only=True)
        spec = _GLOBAL_FUNCTIONS.get(name)
        if spec is None:
            raise _Unsupported(f"function {name}() is not supported")
        if len(args) != spec[0]:
            raise _CelSyntaxError(f"wrong number of arguments to {name}()")
        return _Call(name, spec[1], args)

    def method(self, target: _Expr, name: str, args: list[_Expr]) -> _Expr:
        if name in _MACROS:
            if not args or not isinstance(args[0], _Ident):
                raise _CelSyntaxError(f"argument to {name}() must be a simple name")
            var = args[0].name
            if name in ("all", "exists", "exists_one", "filter") and len(args) == 2:
                return _Comprehension(name, target, var, args[1], None)
            if name == "map" and len(args) == 2:
                return _Comprehension(name, target, var, None, args[1])
            if name == "map" and len(args) == 3:
                return _Comprehension(name, target, var, args[1], args[2])
            raise _CelSyntaxError(f"wrong number of arguments to {name}()")
        spec = _METHODS.get(name)
        if spec is None:
            raise _Unsupported(f"function {name}() is not supported")
        if len(args) != spec[0]:
            raise _CelSyntaxError(f"wrong number of arguments to {name}()")
        return _Call(name, spec[1], [target, *args])


def _parse(text: str) -> _Expr:
    if not text.strip():
        raise _CelSyntaxError("empty rule")
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------
# The schema document checks made when a CRD is created


_OPENAPI_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
_RULE_REASONS = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
]
_ROOT, _ITEM, _FIELD = "root", "item", "field"


def compiled_schema(openapi_v3_schema: Mapping[str, Any]) -> StructuralSchema:
    """``StructuralSchema(openapi_v3_schema)``, shared by every equal document in the
    process: a suite installs the same CRD in every test, and compiling it (CEL rules
    included) costs milliseconds. A compiled schema is never changed once built, and it is
    built from a private copy, so no caller's document is kept."""
    key = _canonical(openapi_v3_schema)
    return StructuralSchema(openapi_v3_schema) if key is None else _compiled(key)


def _canonical(doc: Any) -> bytes | None:
    try:
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not plain JSON (an integer beyond 64 bits): not shared
        return None


@functools.lru_cache(maxsize=64)
def _compiled(canonical: bytes) -> StructuralSchema:
    return StructuralSchema(orjson.loads(canonical))


def validate_schema_document(
    openapi_v3_schema: Any, path: str = "spec.versions[0].schema.openAPIV3Schema"
) -> list[Cause]:
    """The checks kube makes on an ``openAPIV3Schema`` at CRD creation, as 422 causes
    (remembered for equal documents, as ``compiled_schema`` is).

    ``path`` is the document's field path in the CRD (kube reports
    ``spec.versions[i].schema.openAPIV3Schema...``; pass the right index). Covered:
    structurality (``type`` set except under int-or-string/preserve-unknown-fields, root
    of type object, ``items`` for arrays, nothing structural inside
    ``allOf``/``anyOf``/``oneOf``/``not``, root ``metadata`` limited to name and
    generateName), the unsupported keywords (``$ref``, ``uniqueItems``,
    ``additionalProperties`` with ``properties``...), the ``x-kubernetes-*`` extensions,
    the shape of ``x-kubernetes-validations`` entries, and that defaults validate and
    are pruned. CEL compile errors are not detected (see ``StructuralSchema.warning``).
    """
    key = _canonical(openapi_v3_schema)
    if key is None:
        return _validate_schema_document(openapi_v3_schema, path)
    return list(_validated(key, path))


@functools.lru_cache(maxsize=64)
def _validated(canonical: bytes, path: str) -> tuple[Cause, ...]:
    return tuple(_validate_schema_document(orjson.loads(canonical), path))


def _validate_schema_document(openapi_v3_schema: Any, path: str) -> list[Cause]:
    if not isinstance(openapi_v3_schema, Mapping):
        return [_required(path, "schemas are required")]
    causes: list[Cause] = []
    if openapi_v3_schema.get("nullable") is True:
        causes.append(_forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    structural: list[Cause] = []
    _structural(openapi_v3_schema, _ROOT, path, structural)
    _completeness(openapi_v3_schema, openapi_v3_schema, path, path, structural)
    # schema/validation.go sorts these by their error text.
    structural.sort(key=lambda c: f"{c.field}: {c.message}")
    causes.extend(structural)
    if not structural:
        _defaults(StructuralSchema(openapi_v3_schema)._root, openapi_v3_schema, path, causes)
    _document(openapi_v3_schema, path, True, False, False, causes)
    return causes


def _props_of(s: Mapping[str, Any]) -> Mapping[str, Any]:
    props = s.get("properties")
    return props if isinstance(props, Mapping) else {}


def _is_int_or_string_any_of(any_of: Any) -> bool:
    return (
        isinstance(any_of, list)
        and len(any_of) == 2
        and [dict(x) if isinstance(x, Mapping) else x for x in any_of]
        == [{"type": "integer"}, {"type": "string"}]
    )


def _structural(s: Mapping[str, Any], level: str, path: str, out: list[Cause]) -> None:
    """schema/validation.go validateStructuralInvariants."""
    type_ = s.get("type") if isinstance(s.get("type"), str) else ""
    items = s.get("items")
    if type_ == "array" and items is None:
        out.append(_required(f"{path}.items", "must be specified"))
    if isinstance(items, Mapping):
        _structural(items, _ITEM, f"{path}.items", out)
    for name, prop in _props_of(s).items():
        if isinstance(prop, Mapping):
            _structural(prop, _FIELD, f"{path}.properties[{name}]", out)
    additional = s.get("additionalProperties")
    if additional is not None:
        if level == _ROOT:
            out.append(_forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if isinstance(additional, Mapping):
            _structural(additional, _FIELD, f"{path}.additionalProperties", out)
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = s.get("x-kubernetes-embedded-resource") is True
    if int_or_string and preserve:
        out.append(
            _invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields",
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        out.append(
            _invalid(
                f"{path}.x-kubernetes-embedded-resource",
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    skip_any_of = _is_int_or_string_any_of(s.get("anyOf"))
    all_of = s.get("allOf")
    skip_first_all_of = (
        isinstance(all_of, list)
        and bool(all_of)
        and isinstance(all_of[0], Mapping)
        and _is_int_or_string_any_of(all_of[0].get("anyOf"))
    )
    _value_validation(s, skip_any_of, skip_first_all_of, path, out)
    if embedded and type_ != "object":
        detail = "must be object if x-kubernetes-embedded-resource is true"
        if not type_:
            out.append(_required(f"{path}.type", detail))
        else:
            out.append(_invalid(f"{path}.type", type_, detail))
    elif not type_ and not int_or_string and not preserve:
        detail = {
            _ROOT: "must not be empty at the root",
            _ITEM: "must not be empty for specified array items",
            _FIELD: "must not be empty for specified object fields",
        }[level]
        out.append(_required(f"{path}.type", detail))
    if embedded and additional is not None:
        out.append(
            _forbidden(
                f"{path}.additionalProperties",
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == _ROOT and type_ and type_ != "object":
        out.append(_invalid(f"{path}.type", type_, "must be object at the root"))
    check_meta = level == _ROOT or embedded
    props = _props_of(s)
    for meta_field in ("kind", "apiVersion"):
        sub = props.get(meta_field)
        if check_meta and isinstance(sub, Mapping) and sub.get("type") != "string":
            out.append(
                _invalid(
                    f"{path}.properties[{meta_field}].type", sub.get("type") or "", "must be string"
                )
            )
    metadata = props.get("metadata")
    if isinstance(metadata, Mapping):
        meta_path = f"{path}.properties[metadata]"
        if check_meta and metadata.get("type") != "object":
            out.append(_invalid(f"{meta_path}.type", metadata.get("type") or "", "must be object"))
        if level == _ROOT and not _metadata_is_restricted(metadata):
            out.append(
                _forbidden(
                    meta_path,
                    "must not specify anything other than name and generateName, but "
                    "metadata is implicitly specified",
                )
            )
    if embedded and not preserve and not props:
        out.append(
            _required(
                f"{path}.properties",
                "must not be empty if x-kubernetes-embedded-resource is true without "
                "x-kubernetes-preserve-unknown-fields",
            )
        )


_NAME_FIELDS = frozenset(("name", "generateName"))


def _metadata_is_restricted(metadata: Mapping[str, Any]) -> bool:
    """Root metadata may only restrict name and generateName (validateStructuralMetadata)."""
    for key, value in metadata.items():
        if key in ("type", "default"):
            continue
        if key == "properties" and isinstance(value, Mapping) and set(value) <= _NAME_FIELDS:
            continue
        return False
    return True


_NESTED_FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("type", "must be empty to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
    ("x-kubernetes-map-type", "must be undefined to be structural"),
    ("x-kubernetes-validations", "must be empty to be structural"),
)
_NESTED_FORBIDDEN_TRUE: tuple[tuple[str, str], ...] = (
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
)


def _value_validation(
    s: Mapping[str, Any], skip_any_of: bool, skip_first_all_of: bool, path: str, out: list[Cause]
) -> None:
    for junctor in ("anyOf", "allOf", "oneOf"):
        subs = s.get(junctor)
        if not isinstance(subs, list) or (junctor == "anyOf" and skip_any_of):
            continue
        for i, sub in enumerate(subs):
            if isinstance(sub, Mapping):
                skip = junctor == "allOf" and skip_first_all_of and i == 0
                _nested(sub, skip, f"{path}.{junctor}[{i}]", out)
    not_ = s.get("not")
    if isinstance(not_, Mapping):
        _nested(not_, False, f"{path}.not", out)


def _nested(s: Mapping[str, Any], skip_any_of: bool, path: str, out: list[Cause]) -> None:
    """validateNestedValueValidation: nothing structural under a logic junctor."""
    _value_validation(s, skip_any_of, False, path, out)
    items = s.get("items")
    if isinstance(items, Mapping):
        _nested(items, False, f"{path}.items", out)
    for name, prop in _props_of(s).items():
        if isinstance(prop, Mapping):
            _nested(prop, False, f"{path}.properties[{name}]", out)
    for key, detail in _NESTED_FORBIDDEN:
        value = s.get(key)
        if value is not None and value != "" and value != []:
            out.append(_forbidden(f"{path}.{key}", detail))
    if s.get("additionalProperties") is not None:
        out.append(_forbidden(f"{path}.additionalProperties", "must be undefined to be structural"))
    for key, detail in _NESTED_FORBIDDEN_TRUE:
        if s.get(key) is True:
            out.append(_forbidden(f"{path}.{key}", detail))
    if "metadata" in _props_of(s):
        out.append(
            _forbidden(f"{path}.properties[metadata]", "must not be specified in a nested context")
        )


def _completeness(
    v: Mapping[str, Any], s: Mapping[str, Any] | None, s_path: str, v_path: str, out: list[Cause]
) -> None:
    """complete.go: what a junctor names must exist in the structural part (root only)."""
    for junctor in ("not", "allOf", "anyOf", "oneOf"):
        subs = v.get(junctor)
        if junctor == "not":
            subs = [subs] if isinstance(subs, Mapping) else []
        if not isinstance(subs, list):
            continue
        for i, sub in enumerate(subs):
            if isinstance(sub, Mapping):
                sub_path = f"{v_path}.not" if junctor == "not" else f"{v_path}.{junctor}[{i}]"
                _nested_completeness(sub, s, s_path, sub_path, out)


def _nested_completeness(
    v: Mapping[str, Any], s: Mapping[str, Any] | None, s_path: str, v_path: str, out: list[Cause]
) -> None:
    if s is None:
        out.append(_required(s_path, f"because it is defined in {v_path}"))
        return
    _completeness(v, s, s_path, v_path, out)
    items = v.get("items")
    if isinstance(items, Mapping):
        s_items = s.get("items")
        _nested_completeness(
            items,
            s_items if isinstance(s_items, Mapping) else None,
            f"{s_path}.items",
            f"{v_path}.items",
            out,
        )
    s_props = _props_of(s)
    for name, prop in _props_of(v).items():
        if not isinstance(prop, Mapping):
            continue
        target = s_props.get(name)
        if not isinstance(target, Mapping):
            out.append(
                _required(
                    f"{s_path}.properties[{name}]",
                    f"because it is defined in {v_path}.properties[{name}]",
                )
            )
        else:
            _nested_completeness(
                prop, target, f"{s_path}.properties[{name}]", f"{v_path}.properties[{name}]", out
            )


def _defaults(n: _Node, raw: Mapping[str, Any], path: str, out: list[Cause]) -> None:
    """defaulting/validation.go: defaults validate and contain no unknown fields."""
    if n.has_default:
        default_path = f"{path}.default"
        pruned = _copy(n.default)
        if isinstance(pruned, dict | list):
            _prune(pruned, n, "", [], is_root=n.embedded)
        if not _json_equal(pruned, n.default):
            out.append(_invalid(default_path, n.default, "must not have unknown fields"))
        else:
            _check(n.default, n, "", default_path, out)
    # additionalProperties are not followed: defaults are forbidden there.
    items = raw.get("items")
    if n.items is not None and isinstance(items, Mapping):
        _defaults(n.items, items, f"{path}.items", out)
    props = _props_of(raw)
    for name, prop in n.properties.items():
        sub = props.get(name)
        if isinstance(sub, Mapping):
            _defaults(prop, sub, f"{path}.properties[{name}]", out)


_UNSUPPORTED_KEYWORDS: tuple[tuple[str, str, str], ...] = (
    ("id", "id", "id is not supported"),
    ("additionalItems", "additionalItems", "additionalItems is not supported"),
    ("patternProperties", "patternProperties", "patternProperties is not supported"),
    ("definitions", "definitions", "definitions is not supported"),
    ("dependencies", "dependencies", "dependencies is not supported"),
    ("$ref", "$ref", "$ref is not supported"),
)


def _document(
    s: Mapping[str, Any],
    path: str,
    is_root: bool,
    in_meta: bool,
    no_defaults: bool,
    out: list[Cause],
    defaults_reason: str = "",
) -> None:
    """ValidateCustomResourceDefinitionOpenAPISchema (keywords and x-kubernetes-*)."""
    type_ = s.get("type")
    if isinstance(type_, str) and type_ and type_ not in _OPENAPI_TYPES:
        if type_ == "null":
            out.append(
                _forbidden(
                    f"{path}.type", "type cannot be set to null, use nullable as an alternative"
                )
            )
        else:
            out.append(_not_supported(f"{path}.type", type_, _OPENAPI_TYPES))
    if "default" in s and no_defaults:
        detail = "must not be set" + (f" {defaults_reason}" if defaults_reason else "")
        out.append(_forbidden(f"{path}.default", detail))
    for key, name, detail in _UNSUPPORTED_KEYWORDS:
        value = s.get(key)
        if value not in (None, "", {}, []):
            out.append(_forbidden(f"{path}.{name}", detail))
    items = s.get("items")
    if isinstance(items, list):
        out.append(_forbidden(f"{path}.items", "items must be a schema object and not an array"))
    if in_meta and s.get("x-kubernetes-embedded-resource") is True:
        out.append(
            _forbidden(
                f"{path}.x-kubernetes-embedded-resource", "must not be used inside of resource meta"
            )
        )
    if s.get("uniqueItems") is True:
        out.append(
            _forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    props = _props_of(s)
    additional = s.get("additionalProperties")
    if additional is not None:
        if props and (additional is False or isinstance(additional, Mapping)):
            out.append(
                _forbidden(
                    f"{path}.additionalProperties",
                    "additionalProperties and properties are mutual exclusive",
                )
            )
        if isinstance(additional, Mapping):
            sub_no_defaults = no_defaults or in_meta
            reason = (
                "inside additionalProperties applying to object metadata"
                if in_meta
                else defaults_reason
            )
            _document(
                additional,
                f"{path}.additionalProperties",
                False,
                in_meta,
                sub_no_defaults,
                out,
                reason if sub_no_defaults else "",
            )
    embedded = s.get("x-kubernetes-embedded-resource") is True
    for name, prop in props.items():
        if not isinstance(prop, Mapping):
            continue
        sub_meta, sub_no_defaults, reason = in_meta, no_defaults, defaults_reason
        if (is_root or embedded) and name in _META_FIELDS:
            sub_meta = True
            if is_root:
                sub_no_defaults, reason = True, f"in top-level {name}"
        _document(prop, f"{path}.properties[{name}]", False, sub_meta, sub_no_defaults, out, reason)
    not_ = s.get("not")
    if isinstance(not_, Mapping):
        _document(not_, f"{path}.not", False, in_meta, no_defaults, out, defaults_reason)
    for junctor in ("allOf", "oneOf", "anyOf"):
        subs = s.get(junctor)
        if isinstance(subs, list):
            for i, sub in enumerate(subs):
                if isinstance(sub, Mapping):
                    _document(
                        sub,
                        f"{path}.{junctor}[{i}]",
                        False,
                        in_meta,
                        no_defaults,
                        out,
                        defaults_reason,
                    )
    if isinstance(items, Mapping):
        _document(items, f"{path}.items", False, in_meta, no_defaults, out, defaults_reason)
    _extensions(s, path, out)


def _extensions(s: Mapping[str, Any], path: str, out: list[Cause]) -> None:
    type_ = s.get("type") if isinstance(s.get("type"), str) else ""
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        out.append(
            _invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"
            )
        )
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None:
        if type_ != "object":
            detail = "must be object if x-kubernetes-map-type is specified"
            out.append(
                _required(f"{path}.type", detail)
                if not type_
                else _invalid(f"{path}.type", type_, detail)
            )
        if map_type not in ("atomic", "granular"):
            out.append(
                _not_supported(f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"])
            )
    list_type = s.get("x-kubernetes-list-type")
    items = s.get("items")
    item = items if isinstance(items, Mapping) else None
    if list_type is not None:
        if type_ != "array":
            detail = "must be array if x-kubernetes-list-type is specified"
            out.append(
                _required(f"{path}.type", detail)
                if not type_
                else _invalid(f"{path}.type", type_, detail)
            )
        elif list_type == "set" and item is not None:
            if item.get("type") == "array" and item.get("x-kubernetes-list-type") not in (
                None,
                "atomic",
            ):
                out.append(
                    _invalid(
                        f"{path}.items.x-kubernetes-list-type",
                        item.get("x-kubernetes-list-type"),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    )
                )
            if item.get("type") == "object" and item.get("x-kubernetes-map-type") != "atomic":
                out.append(
                    _invalid(
                        f"{path}.items.x-kubernetes-map-type",
                        list_type,
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    )
                )
        if list_type not in ("atomic", "set", "map"):
            out.append(
                _not_supported(
                    f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"]
                )
            )
    keys = s.get("x-kubernetes-list-map-keys")
    key_list = [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
    if key_list:
        if list_type is None:
            out.append(
                _required(
                    f"{path}.x-kubernetes-list-type",
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
        elif list_type != "map":
            out.append(
                _invalid(
                    f"{path}.x-kubernetes-list-type",
                    list_type,
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
    if list_type == "map":
        if not key_list:
            out.append(
                _required(
                    f"{path}.x-kubernetes-list-map-keys",
                    "must not be empty if x-kubernetes-list-type is map",
                )
            )
        if items is None:
            out.append(
                _required(f"{path}.items", "must have a schema if x-kubernetes-list-type is map")
            )
        elif item is not None and item.get("type") != "object":
            out.append(
                _invalid(
                    f"{path}.items.type",
                    item.get("type") or "",
                    "must be object if parent array's x-kubernetes-list-type is map",
                )
            )
        elif item is not None:
            item_props = _props_of(item)
            seen: set[str] = set()
            for key in key_list:
                prop = item_props.get(key)
                if not isinstance(prop, Mapping):
                    out.append(
                        _invalid(
                            f"{path}.x-kubernetes-list-map-keys",
                            key_list,
                            "entries must all be names of item properties",
                        )
                    )
                elif prop.get("type") in ("array", "object"):
                    out.append(
                        _invalid(
                            f"{path}.items.properties[{key}].type",
                            "object",
                            "must be a scalar type if parent array's x-kubernetes-list-type is map",
                        )
                    )
                if key in seen:
                    out.append(
                        _invalid(
                            f"{path}.x-kubernetes-list-map-keys",
                            key_list,
                            "must not contain duplicate entries",
                        )
                    )
                seen.add(key)
    if list_type in ("set", "map") and item is not None:
        if item.get("nullable") is True:
            out.append(
                _forbidden(
                    f"{path}.items.nullable",
                    f"cannot be nullable when x-kubernetes-list-type is {list_type}",
                )
            )
        if list_type == "map":
            required = item.get("required")
            required_set = set(required) if isinstance(required, list) else set()
            item_props = _props_of(item)
            for key in key_list:
                prop = item_props.get(key)
                if not isinstance(prop, Mapping):
                    continue
                if key not in required_set and "default" not in prop:
                    out.append(
                        _required(
                            f"{path}.items.properties[{key}].default",
                            "this property is in x-kubernetes-list-map-keys, so it must have a "
                            "default or be a required property",
                        )
                    )
                if prop.get("nullable") is True:
                    out.append(
                        _forbidden(
                            f"{path}.items.properties[{key}].nullable",
                            "this property is in x-kubernetes-list-map-keys, so it cannot be "
                            "nullable",
                        )
                    )
    rules = s.get("x-kubernetes-validations")
    if isinstance(rules, list):
        for i, rule in enumerate(rules):
            if isinstance(rule, Mapping):
                _rule_shape(rule, f"{path}.x-kubernetes-validations[{i}]", out)


def _rule_shape(rule: Mapping[str, Any], path: str, out: list[Cause]) -> None:
    text = rule.get("rule")
    trimmed_rule = text.strip() if isinstance(text, str) else ""
    message = rule.get("message")
    if not trimmed_rule:
        out.append(_required(f"{path}.rule", "rule is not specified"))
    if isinstance(message, str):
        if not message.strip():
            out.append(
                _invalid(f"{path}.message", message, "message must be non-empty if specified")
            )
        elif "\n" in message:
            out.append(_invalid(f"{path}.message", message, "message must not contain line breaks"))
    elif "\n" in trimmed_rule:
        out.append(
            _required(f"{path}.message", "message must be specified if rule contains line breaks")
        )
    expression = rule.get("messageExpression")
    if isinstance(expression, str) and not expression.strip():
        out.append(
            _required(
                f"{path}.messageExpression", "messageExpression must be non-empty if specified"
            )
        )
    reason = rule.get("reason")
    if reason is not None and reason not in _RULE_REASONS:
        out.append(_not_supported(f"{path}.reason", reason, _RULE_REASONS))
    field_path = rule.get("fieldPath")
    if isinstance(field_path, str):
        if not field_path.strip():
            out.append(
                _invalid(
                    f"{path}.fieldPath", field_path, "fieldPath must be non-empty if specified"
                )
            )
        elif "\n" in field_path:
            out.append(
                _invalid(f"{path}.fieldPath", field_path, "fieldPath must not contain line breaks")
            )
