"""OpenAPI validation of custom resources (kube-openapi's SchemaValidator), worded like kube.

The checks and messages are ``k8s.io/kube-openapi/pkg/validation/validate``'s (e.g.
``spec.x in body should be less than or equal to 10``), turned into causes as
``apiserver/validation/validation.go`` ``kubeOpenAPIResultToFieldErrors`` does (the
``Invalid value: 11: ...`` prefixes and reasons). Surprises kept on purpose:
``maxLength`` counts characters but says "bytes"; errors kube-openapi does not attach to
a field (``anyOf``/``oneOf``/``allOf``/``not`` failures) carry the field ``<nil>``.

Not done: patterns are Python ``re`` searches, so RE2 syntax Python lacks (``\\pL``)
disables the pattern instead of rejecting the CRD; ``anyOf``/``oneOf`` report the
sub-schema with the fewest errors, where kube-openapi ranks them by an internal match
count.
"""

from __future__ import annotations

import math
from collections.abc import Container
from typing import Any

from ..errors import Cause
from ..gotext import (
    field_invalid,
    field_not_supported,
    field_required,
    field_too_many,
    go_float,
    go_json,
    go_quote,
    path_child,
    path_dotted,
    path_shown,
)
from ..jsonvalues import INT64_MAX, INT64_MIN, json_equal
from .formats import INTEGER_FORMAT_RANGES, STRING_FORMATS
from .tree import SchemaNode

__all__ = ["validate_value"]


def _err_field(name: str, base: str | None) -> str:
    """kubeOpenAPIResultToFieldErrors: ``fldPath.Child(TrimPrefix(name, "."))``."""
    if not name or name == ".":
        return path_shown(base)
    trimmed = name[1:] if name.startswith(".") else name
    return path_child(base, trimmed)


def _composite(message: str, base: str | None) -> Cause:
    # A kube-openapi error that is not a *Validation: field.Invalid(fldPath, "", msg).
    return field_invalid(path_shown(base), "", message)


# _type_info of the exact types whose answer does not depend on the value.
_TYPE_INFO: dict[type, tuple[str, str]] = {
    bool: ("boolean", ""),
    str: ("string", ""),
    float: ("number", "float64"),
    list: ("array", ""),
    dict: ("object", ""),
}


def _is_quiet(value: Any, n: SchemaNode) -> bool:
    """Whether ``validate_value(value, n, ...)`` certainly reports nothing (``quiet_scalars``)."""
    kind = type(value)
    return kind in n.quiet_scalars and (kind is not int or INT64_MIN <= value <= INT64_MAX)


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
        if INT64_MIN <= data <= INT64_MAX:
            return "integer", "int64"
        return "number", "float64"  # Go decodes an out-of-range integer as a float64
    if isinstance(data, float):
        return "number", "float64"
    if isinstance(data, list):
        return "array", ""
    return "object", ""


def _type_error(path: str, expected: str, got: str, base: str | None) -> Cause:
    return field_invalid(
        _err_field(path, base),
        got,
        f"{path} in body must be of type {expected}: {go_quote(got)}",
        "FieldValueTypeInvalid",
    )


def validate_value(
    data: Any,
    n: SchemaNode,
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
    data: Any, n: SchemaNode, path: str, base: str | None, out: list[Cause], sch_type: str, fmt: str
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


def _check_string(data: str, n: SchemaNode, path: str, base: str | None, out: list[Cause]) -> None:
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
        out.append(field_invalid(_err_field(path, base), data, msg))
        return
    if n.pattern_re is not None and n.pattern_re.search(data) is None:
        msg = f"{path} in body should match '{n.pattern}'"
        out.append(field_invalid(_err_field(path, base), data, msg))


def _check_format(data: str, n: SchemaNode, path: str, base: str | None, out: list[Cause]) -> None:
    check = STRING_FORMATS.get(n.format.replace("-", ""))
    if check is not None and not check(data):
        msg = f"{path} in body must be of type {n.format}: {go_quote(data)}"
        out.append(field_invalid(_err_field(path, base), data, msg, "FieldValueTypeInvalid"))


def _check_number(
    data: int | float, n: SchemaNode, path: str, base: str | None, out: list[Cause], is_int: bool
) -> None:
    # kube 1.36 checks int32/int64/float ranges ("Checked value must be of type ...").
    if n.format in INTEGER_FORMAT_RANGES and n.types == ("integer",):
        lo, hi = INTEGER_FORMAT_RANGES[n.format]
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
                out.append(field_invalid(_err_field(path, base), data, msg))
        else:
            mult = (1 / factor * data) if factor < 1 else (data / factor)
            if not _is_json_integer(mult):
                msg = f"{path} in body should be a multiple of {_num_text(factor)}"
                out.append(field_invalid(_err_field(path, base), data, msg))
    # MinimumNativeType / MaximumNativeType: an int value compares with int64(bound).
    if n.minimum is not None:
        bound: float | int = int(n.minimum) if is_int else float(n.minimum)
        low = data < bound or (n.exclusive_minimum and data == bound)
        if low:
            word = "greater than" if n.exclusive_minimum else "greater than or equal to"
            msg = f"{path} in body should be {word} {_num_text(bound)}"
            out.append(field_invalid(_err_field(path, base), data, msg))
    if n.maximum is not None:
        bound = int(n.maximum) if is_int else float(n.maximum)
        high = data > bound or (n.exclusive_maximum and data == bound)
        if high:
            word = "less than" if n.exclusive_maximum else "less than or equal to"
            msg = f"{path} in body should be {word} {_num_text(bound)}"
            out.append(field_invalid(_err_field(path, base), data, msg))


def _num_text(value: float | int) -> str:
    return go_float(value) if isinstance(value, float) else str(value)


def _is_json_integer(value: float) -> bool:
    # swag.IsFloat64AJSONInteger, with its 1e-9 tolerance.
    if not math.isfinite(value):
        return False
    return abs(value - round(value)) < 1e-9 * max(1.0, abs(value))


def _check_array(
    data: list[Any], n: SchemaNode, path: str, base: str | None, out: list[Cause]
) -> None:
    if n.items is not None:
        for i, value in enumerate(data):
            if not _is_quiet(value, n.items):
                validate_value(value, n.items, f"{path}[{i}]", base, out)
    fld = _err_field(path, base)
    size = len(data)
    if n.min_items is not None and size < n.min_items:
        out.append(
            field_invalid(fld, size, f"{path} in body should have at least {n.min_items} items")
        )
    if n.max_items is not None and size > n.max_items:
        out.append(field_too_many(fld, size, n.max_items))
    if n.unique_items:
        for i, value in enumerate(data):
            if any(json_equal(value, other) for other in data[:i]):
                out.append(field_invalid(fld, "", f"{path} in body shouldn't contain duplicates"))
                break


def _check_enum(data: Any, n: SchemaNode, path: str, base: str | None, out: list[Cause]) -> None:
    assert n.enum is not None
    if type(data) is str and data in n.enum_strings:
        return  # what the loop below finds for a str, without it
    if data is not None and any(json_equal(data, e) for e in n.enum):
        return
    shown = [e if isinstance(e, str) else go_json(e) for e in n.enum]
    out.append(field_not_supported(_err_field(path, base), data, shown))


def _check_object(
    data: dict[str, Any],
    n: SchemaNode,
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
        out.append(field_invalid(_err_field(path, base), count, msg))
    if n.max_properties is not None and count > n.max_properties:
        out.append(field_too_many(_err_field(path, base), count, n.max_properties))
    if n.additional_allows is False:
        for key in data:
            if key not in n.properties:
                msg = f"{path}.{key} in body is a forbidden property"
                out.append(field_invalid(_err_field(path, base), key, msg))
    elif n.additional is not None:
        extra = n.additional
        for key, value in data.items():
            if key not in n.properties and not _is_quiet(value, extra) and key not in skip:
                validate_value(value, extra, f"{path}.{key}", base, out)
    for name, prop in n.properties.items():
        if name in data and name not in skip:
            value = data[name]
            if not _is_quiet(value, prop):
                validate_value(value, prop, path_dotted(path, name), base, out)
    for name in n.required:
        if name not in data:
            out.append(field_required(_err_field(f"{path}.{name}", base)))


def _check_junctors(
    data: Any, n: SchemaNode, path: str, base: str | None, out: list[Cause]
) -> None:
    quoted = go_quote(path)
    if n.any_of:
        best: list[Cause] | None = None
        for sub in n.any_of:
            errs: list[Cause] = []
            validate_value(data, sub, path, base, errs)
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
            validate_value(data, sub, path, base, errs)
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
            validate_value(data, sub, path, base, errs)
            valid += not errs
            out.extend(errs)
        if valid != len(n.all_of):
            tail = ". None validated" if valid == 0 else ""
            out.append(_composite(f"{quoted} must validate all the schemas (allOf){tail}", base))
    if n.not_ is not None:
        errs = []
        validate_value(data, n.not_, path, base, errs)
        if not errs:
            out.append(_composite(f"{quoted} must not validate the schema (not)", base))
