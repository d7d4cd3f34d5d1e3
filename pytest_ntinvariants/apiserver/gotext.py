"""Go's text renderings of decoded JSON values, and kube's field errors built from them.

kube-apiserver writes values into its messages with Go's ``fmt`` verbs (``%q``, ``%v``,
``%#v``), ``strconv`` and ``encoding/json``; clients and tests compare those messages
as text, so the fake renders values the same way. Everything here works on values as
Python decodes JSON (dict, list, str, int, float, bool, None), which stand for Go's
``interface{}`` values decoded from the same JSON.

The field errors follow ``k8s.io/apimachinery/pkg/util/validation/field`` (1.32):
``field.Invalid`` and friends, rendered by ``Error.ErrorBody``; field paths follow
``field.Path`` (``Child`` writes ``a.b``, ``Index`` and ``Key`` write ``a[0]`` and
``a[k]``, and the nil path prints ``<nil>``).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

import orjson

from .errors import Cause

__all__ = [
    "bad_value",
    "field_duplicate",
    "field_forbidden",
    "field_invalid",
    "field_not_supported",
    "field_required",
    "field_too_many",
    "go_float",
    "go_float_g",
    "go_json",
    "go_json_type",
    "go_quote",
    "go_sharp_v",
    "go_v",
    "path_child",
    "path_dotted",
    "path_key",
    "path_shown",
]


# --------------------------------------------------------------------------------------
# fmt and strconv

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(text: str) -> str:
    """Go's ``%q`` / ``strconv.Quote``."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64: shortest form, exponent only below 1e-4 or from 1e21."""
    if value != value or value in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(value)]
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = exp[0] if exp[0] in "+-" else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text


def go_float_g(value: float) -> str:
    """Go's ``strconv.FormatFloat(f, 'g', -1, 64)`` (what cel-go's ``string(double)`` uses).

    Shortest digits; the exponent form below 1e-4 and from 1e6 (``%v`` uses 1e21).
    """
    if not math.isfinite(value):
        return "NaN" if value != value else ("+Inf" if value > 0 else "-Inf")
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0"
    parts = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in parts.digits)
    point = len(digits) + int(parts.exponent)  # value == 0.<digits> * 10**point
    exponent = point - 1
    if exponent < -4 or exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def go_v(value: Any) -> str:
    """Go's ``%v`` of a decoded JSON value (``map[a:1 b:[x y]]``, ``<nil>``)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, dict):
        inner = " ".join(f"{k}:{go_v(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    return str(value)


def go_sharp_v(value: Any) -> str:
    """Go's ``%#v`` of a decoded JSON value: what 1.32's ErrorBody prints for maps/lists."""
    if value is None:
        return "interface {}(nil)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, dict):
        inner = ", ".join(f"{go_quote(k)}:{go_sharp_v(value[k])}" for k in sorted(value))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(value, list):
        return "[]interface {}{" + ", ".join(go_sharp_v(v) for v in value) + "}"
    return str(value)


# --------------------------------------------------------------------------------------
# encoding/json

_SORTED = orjson.OPT_SORT_KEYS
# orjson writes every float with a "." or an exponent sign; seeing neither after a digit,
# the text has no float and is Go's as it is (a match may also be inside a string).
_RX_FLOAT_TEXT = re.compile(rb"[0-9](?:\.|[eE][-+])")


def go_json(value: Any) -> str:
    """Go's ``json.Marshal`` of a decoded value: compact, sorted keys, HTML-safe escapes,
    floats as Go writes them (``1`` for 1.0, ``1e+21``, ``0.00001``, ``1e-7``).

    A non-finite float, which Go refuses to encode, is written ``null``.
    """
    try:
        raw: bytes | None = orjson.dumps(value, option=_SORTED)
    except TypeError:  # an integer beyond 64 bits, which orjson does not write
        raw = None
    # orjson is much faster than a walk in Python; its floats differ from Go's, though,
    # so a value with floats (or huge integers) is written again with each one replaced.
    if raw is None or _RX_FLOAT_TEXT.search(raw):
        raw = orjson.dumps(_go_numbers(value), option=_SORTED)
    text = raw.decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# What Go's json errors call a decoded value of each type ("cannot unmarshal number into ...").
_JSON_TYPE_NAMES = {bool: "bool", int: "number", float: "number", list: "array", dict: "object"}


def go_json_type(value: Any) -> str:
    """The name encoding/json gives ``value``'s JSON type in an unmarshalling error."""
    return _JSON_TYPE_NAMES.get(type(value), "value")


def _go_numbers(value: Any) -> Any:
    """``value`` with each float and huge integer replaced by Go's JSON text of it."""
    t = type(value)
    if t is float:
        return orjson.Fragment(_json_float(value)) if math.isfinite(value) else None
    if t is int and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value))
    if t is dict:
        return {k: _go_numbers(v) for k, v in value.items()}
    if t is list:
        return [_go_numbers(v) for v in value]
    return value


def _json_float(value: float) -> str:
    """encoding/json's float64 text: 'f' form from 1e-6 to 1e21, else 'e' as ``1e-7``."""
    size = abs(value)
    if size != 0 and (size < 1e-6 or size >= 1e21):
        # repr() uses the exponent form at these sizes; Go writes "e+21" but "e-7".
        mantissa, exp = repr(value).split("e")
        digits = exp[1:].lstrip("0")
        return f"{mantissa}e{exp[0]}{digits.rjust(2, '0') if exp[0] == '+' else digits}"
    if value.is_integer():
        return "-0" if math.copysign(1.0, value) < 0 and value == 0 else str(int(value))
    return format(Decimal(repr(value)), "f")


# --------------------------------------------------------------------------------------
# field.Error and field.Path


def bad_value(value: Any) -> str:
    """How ``field.Error.ErrorBody`` (1.32) prints a bad value."""
    if value is None:
        return '"null"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return go_sharp_v(value)


def field_invalid(fld: str, value: Any, detail: str, reason: str = "FieldValueInvalid") -> Cause:
    """``field.Invalid``: ``Invalid value: <value>: <detail>``."""
    body = f"Invalid value: {bad_value(value)}"
    return Cause(fld, f"{body}: {detail}" if detail else body, reason)


def field_required(fld: str, detail: str = "") -> Cause:
    """``field.Required``: ``Required value[: <detail>]``."""
    return Cause(
        fld, f"Required value: {detail}" if detail else "Required value", "FieldValueRequired"
    )


def field_forbidden(fld: str, detail: str) -> Cause:
    """``field.Forbidden``: ``Forbidden: <detail>``."""
    return Cause(fld, f"Forbidden: {detail}", "FieldValueForbidden")


def field_not_supported(fld: str, value: Any, valid: list[str]) -> Cause:
    """``field.NotSupported``: the value, then the supported ones quoted."""
    body = f"Unsupported value: {bad_value(value)}"
    if valid:
        body += ": supported values: " + ", ".join(go_quote(v) for v in valid)
    return Cause(fld, body, "FieldValueNotSupported")


def field_too_many(fld: str, actual: int, limit: int) -> Cause:
    """``field.TooMany`` of a list of ``actual`` items."""
    return Cause(fld, f"Too many: {actual}: must have at most {limit} items", "FieldValueTooMany")


def field_duplicate(fld: str, value: Any) -> Cause:
    """``field.Duplicate``: ``Duplicate value: <value>``."""
    return Cause(fld, f"Duplicate value: {bad_value(value)}", "FieldValueDuplicate")


def path_child(path: str | None, name: str) -> str:
    """``path.Child(name)``; ``None`` is the nil root path."""
    return name if path is None else f"{path}.{name}"


def path_dotted(path: str, key: str) -> str:
    """kube-openapi's and the pruner's paths: ``path.key``, where the root path is ""."""
    return f"{path}.{key}" if path else key


def path_key(path: str | None, key: str | int) -> str:
    """``path.Index(i)`` or ``path.Key(k)``: ``path[key]``."""
    return f"{'' if path is None else path}[{key}]"


def path_shown(path: str | None) -> str:
    """``path.String()``: the nil root path prints ``<nil>``."""
    return "<nil>" if path is None else path
