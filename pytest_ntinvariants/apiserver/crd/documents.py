"""The checks kube makes on a CRD's ``openAPIV3Schema`` when the CRD is written.

``apis/apiextensions/validation/validation.go`` and ``schema/validation.go`` (structural
invariants), ``schema/defaulting/validation.go`` (defaults validate and are pruned).
Both the checks and the compiled schemas are remembered per document (an LRU cache of
the canonical JSON): a suite installs the same CRD in every test.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import Cause
from ..gotext import field_forbidden, field_invalid, field_not_supported, field_required
from ..jsonvalues import copy_json, json_equal
from .pruning import META_FIELDS, prune
from .structural import StructuralSchema
from .tree import SchemaNode
from .validation import validate_value

__all__ = ["compiled_schema", "validate_schema_document"]


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
        return [field_required(path, "schemas are required")]
    causes: list[Cause] = []
    if openapi_v3_schema.get("nullable") is True:
        causes.append(field_forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    structural: list[Cause] = []
    _structural(openapi_v3_schema, _ROOT, path, structural)
    _completeness(openapi_v3_schema, openapi_v3_schema, path, path, structural)
    # schema/validation.go sorts these by their error text.
    structural.sort(key=lambda c: f"{c.field}: {c.message}")
    causes.extend(structural)
    if not structural:
        _defaults(StructuralSchema(openapi_v3_schema).root, openapi_v3_schema, path, causes)
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
        out.append(field_required(f"{path}.items", "must be specified"))
    if isinstance(items, Mapping):
        _structural(items, _ITEM, f"{path}.items", out)
    for name, prop in _props_of(s).items():
        if isinstance(prop, Mapping):
            _structural(prop, _FIELD, f"{path}.properties[{name}]", out)
    additional = s.get("additionalProperties")
    if additional is not None:
        if level == _ROOT:
            out.append(
                field_forbidden(f"{path}.additionalProperties", "must not be used at the root")
            )
        if isinstance(additional, Mapping):
            _structural(additional, _FIELD, f"{path}.additionalProperties", out)
    int_or_string = s.get("x-kubernetes-int-or-string") is True
    preserve = s.get("x-kubernetes-preserve-unknown-fields") is True
    embedded = s.get("x-kubernetes-embedded-resource") is True
    if int_or_string and preserve:
        out.append(
            field_invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields",
                True,
                "must be false if x-kubernetes-int-or-string is true",
            )
        )
    if int_or_string and embedded:
        out.append(
            field_invalid(
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
            out.append(field_required(f"{path}.type", detail))
        else:
            out.append(field_invalid(f"{path}.type", type_, detail))
    elif not type_ and not int_or_string and not preserve:
        detail = {
            _ROOT: "must not be empty at the root",
            _ITEM: "must not be empty for specified array items",
            _FIELD: "must not be empty for specified object fields",
        }[level]
        out.append(field_required(f"{path}.type", detail))
    if embedded and additional is not None:
        out.append(
            field_forbidden(
                f"{path}.additionalProperties",
                "must not be used if x-kubernetes-embedded-resource is set",
            )
        )
    if level == _ROOT and type_ and type_ != "object":
        out.append(field_invalid(f"{path}.type", type_, "must be object at the root"))
    check_meta = level == _ROOT or embedded
    props = _props_of(s)
    for meta_field in ("kind", "apiVersion"):
        sub = props.get(meta_field)
        if check_meta and isinstance(sub, Mapping) and sub.get("type") != "string":
            out.append(
                field_invalid(
                    f"{path}.properties[{meta_field}].type", sub.get("type") or "", "must be string"
                )
            )
    metadata = props.get("metadata")
    if isinstance(metadata, Mapping):
        meta_path = f"{path}.properties[metadata]"
        if check_meta and metadata.get("type") != "object":
            out.append(
                field_invalid(f"{meta_path}.type", metadata.get("type") or "", "must be object")
            )
        if level == _ROOT and not _metadata_is_restricted(metadata):
            out.append(
                field_forbidden(
                    meta_path,
                    "must not specify anything other than name and generateName, but "
                    "metadata is implicitly specified",
                )
            )
    if embedded and not preserve and not props:
        out.append(
            field_required(
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
            out.append(field_forbidden(f"{path}.{key}", detail))
    if s.get("additionalProperties") is not None:
        out.append(
            field_forbidden(f"{path}.additionalProperties", "must be undefined to be structural")
        )
    for key, detail in _NESTED_FORBIDDEN_TRUE:
        if s.get(key) is True:
            out.append(field_forbidden(f"{path}.{key}", detail))
    if "metadata" in _props_of(s):
        out.append(
            field_forbidden(
                f"{path}.properties[metadata]", "must not be specified in a nested context"
            )
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
        out.append(field_required(s_path, f"because it is defined in {v_path}"))
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
                field_required(
                    f"{s_path}.properties[{name}]",
                    f"because it is defined in {v_path}.properties[{name}]",
                )
            )
        else:
            _nested_completeness(
                prop, target, f"{s_path}.properties[{name}]", f"{v_path}.properties[{name}]", out
            )


def _defaults(n: SchemaNode, raw: Mapping[str, Any], path: str, out: list[Cause]) -> None:
    """defaulting/validation.go: defaults validate and contain no unknown fields."""
    if n.has_default:
        default_path = f"{path}.default"
        pruned = copy_json(n.default)
        if isinstance(pruned, dict | list):
            prune(pruned, n, "", [], is_root=n.embedded)
        if not json_equal(pruned, n.default):
            out.append(field_invalid(default_path, n.default, "must not have unknown fields"))
        else:
            validate_value(n.default, n, "", default_path, out)
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
                field_forbidden(
                    f"{path}.type", "type cannot be set to null, use nullable as an alternative"
                )
            )
        else:
            out.append(field_not_supported(f"{path}.type", type_, _OPENAPI_TYPES))
    if "default" in s and no_defaults:
        detail = "must not be set" + (f" {defaults_reason}" if defaults_reason else "")
        out.append(field_forbidden(f"{path}.default", detail))
    for key, name, detail in _UNSUPPORTED_KEYWORDS:
        value = s.get(key)
        if value not in (None, "", {}, []):
            out.append(field_forbidden(f"{path}.{name}", detail))
    items = s.get("items")
    if isinstance(items, list):
        out.append(
            field_forbidden(f"{path}.items", "items must be a schema object and not an array")
        )
    if in_meta and s.get("x-kubernetes-embedded-resource") is True:
        out.append(
            field_forbidden(
                f"{path}.x-kubernetes-embedded-resource", "must not be used inside of resource meta"
            )
        )
    if s.get("uniqueItems") is True:
        out.append(
            field_forbidden(
                f"{path}.uniqueItems",
                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
            )
        )
    props = _props_of(s)
    additional = s.get("additionalProperties")
    if additional is not None:
        if props and (additional is False or isinstance(additional, Mapping)):
            out.append(
                field_forbidden(
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
        if (is_root or embedded) and name in META_FIELDS:
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
            field_invalid(
                f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"
            )
        )
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None:
        if type_ != "object":
            detail = "must be object if x-kubernetes-map-type is specified"
            out.append(
                field_required(f"{path}.type", detail)
                if not type_
                else field_invalid(f"{path}.type", type_, detail)
            )
        if map_type not in ("atomic", "granular"):
            out.append(
                field_not_supported(
                    f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"]
                )
            )
    list_type = s.get("x-kubernetes-list-type")
    items = s.get("items")
    item = items if isinstance(items, Mapping) else None
    if list_type is not None:
        if type_ != "array":
            detail = "must be array if x-kubernetes-list-type is specified"
            out.append(
                field_required(f"{path}.type", detail)
                if not type_
                else field_invalid(f"{path}.type", type_, detail)
            )
        elif list_type == "set" and item is not None:
            if item.get("type") == "array" and item.get("x-kubernetes-list-type") not in (
                None,
                "atomic",
            ):
                out.append(
                    field_invalid(
                        f"{path}.items.x-kubernetes-list-type",
                        item.get("x-kubernetes-list-type"),
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    )
                )
            if item.get("type") == "object" and item.get("x-kubernetes-map-type") != "atomic":
                out.append(
                    field_invalid(
                        f"{path}.items.x-kubernetes-map-type",
                        list_type,
                        "must be atomic as item of a list with x-kubernetes-list-type=set",
                    )
                )
        if list_type not in ("atomic", "set", "map"):
            out.append(
                field_not_supported(
                    f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"]
                )
            )
    keys = s.get("x-kubernetes-list-map-keys")
    key_list = [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []
    if key_list:
        if list_type is None:
            out.append(
                field_required(
                    f"{path}.x-kubernetes-list-type",
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
        elif list_type != "map":
            out.append(
                field_invalid(
                    f"{path}.x-kubernetes-list-type",
                    list_type,
                    "must be map if x-kubernetes-list-map-keys is non-empty",
                )
            )
    if list_type == "map":
        if not key_list:
            out.append(
                field_required(
                    f"{path}.x-kubernetes-list-map-keys",
                    "must not be empty if x-kubernetes-list-type is map",
                )
            )
        if items is None:
            out.append(
                field_required(
                    f"{path}.items", "must have a schema if x-kubernetes-list-type is map"
                )
            )
        elif item is not None and item.get("type") != "object":
            out.append(
                field_invalid(
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
                        field_invalid(
                            f"{path}.x-kubernetes-list-map-keys",
                            key_list,
                            "entries must all be names of item properties",
                        )
                    )
                elif prop.get("type") in ("array", "object"):
                    out.append(
                        field_invalid(
                            f"{path}.items.properties[{key}].type",
                            "object",
                            "must be a scalar type if parent array's x-kubernetes-list-type is map",
                        )
                    )
                if key in seen:
                    out.append(
                        field_invalid(
                            f"{path}.x-kubernetes-list-map-keys",
                            key_list,
                            "must not contain duplicate entries",
                        )
                    )
                seen.add(key)
    if list_type in ("set", "map") and item is not None:
        if item.get("nullable") is True:
            out.append(
                field_forbidden(
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
                        field_required(
                            f"{path}.items.properties[{key}].default",
                            "this property is in x-kubernetes-list-map-keys, so it must have a "
                            "default or be a required property",
                        )
                    )
                if prop.get("nullable") is True:
                    out.append(
                        field_forbidden(
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
        out.append(field_required(f"{path}.rule", "rule is not specified"))
    if isinstance(message, str):
        if not message.strip():
            out.append(
                field_invalid(f"{path}.message", message, "message must be non-empty if specified")
            )
        elif "\n" in message:
            out.append(
                field_invalid(f"{path}.message", message, "message must not contain line breaks")
            )
    elif "\n" in trimmed_rule:
        out.append(
            field_required(
                f"{path}.message", "message must be specified if rule contains line breaks"
            )
        )
    expression = rule.get("messageExpression")
    if isinstance(expression, str) and not expression.strip():
        out.append(
            field_required(
                f"{path}.messageExpression", "messageExpression must be non-empty if specified"
            )
        )
    reason = rule.get("reason")
    if reason is not None and reason not in _RULE_REASONS:
        out.append(field_not_supported(f"{path}.reason", reason, _RULE_REASONS))
    field_path = rule.get("fieldPath")
    if isinstance(field_path, str):
        if not field_path.strip():
            out.append(
                field_invalid(
                    f"{path}.fieldPath", field_path, "fieldPath must be non-empty if specified"
                )
            )
        elif "\n" in field_path:
            out.append(
                field_invalid(
                    f"{path}.fieldPath", field_path, "fieldPath must not contain line breaks"
                )
            )
