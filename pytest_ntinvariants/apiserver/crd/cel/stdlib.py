"""What CEL's operators and functions do to values, and the runtime errors they raise.

The subset of cel-go's standard library that the fake evaluates: equality, ordering and
arithmetic (no mixed int/double arithmetic, int64 overflow is an error), ``size``, the
conversions ``int uint double string bool dyn``, and the string methods ``startsWith
endsWith contains matches lowerAscii upperAscii``. The parser resolves calls against
``GLOBAL_FUNCTIONS`` and ``METHODS``; ``MACROS`` are the comprehensions it builds itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ...gotext import go_float_g
from ...jsonvalues import INT64_MAX, INT64_MIN

__all__ = [
    "GLOBAL_FUNCTIONS",
    "MACROS",
    "METHODS",
    "CelError",
    "arith",
    "check_int",
    "compare",
    "is_num",
]


class CelError(Exception):
    """A runtime error of CEL evaluation (no such key, overflow, no such overload...)."""


def is_num(value: Any) -> bool:
    """Whether ``value`` is a CEL int or double (a bool is neither)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_int(value: int) -> int:
    """``value`` if it fits CEL's int64, else the overflow error."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise CelError("integer overflow")
    return value


def _cel_equal(a: Any, b: Any) -> bool:
    """CEL ``==``: numbers compare across int/double, other types only with themselves."""
    if is_num(a) and is_num(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_cel_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_cel_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def compare(op: str, a: Any, b: Any) -> bool:
    """A relation: ``== != < <= > >=`` or ``in``."""
    if op == "==":
        return _cel_equal(a, b)
    if op == "!=":
        return not _cel_equal(a, b)
    if op == "in":
        if isinstance(b, list):
            return any(_cel_equal(a, item) for item in b)
        if isinstance(b, dict):
            return a in b if isinstance(a, str | int) else False
        raise CelError("no such overload")
    comparable = (is_num(a) and is_num(b)) or (type(a) is type(b) and isinstance(a, str | bool))
    if not comparable:
        raise CelError("no such overload")
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def arith(op: str, a: Any, b: Any) -> Any:
    """An arithmetic operator: ``+ - * / %`` (``+`` also joins strings and lists)."""
    if op == "+":
        if isinstance(a, str) and isinstance(b, str):
            return a + b
        if isinstance(a, list) and isinstance(b, list):
            return a + b
    # CEL has no mixed int/double arithmetic.
    if type(a) is not type(b) or not is_num(a):
        raise CelError("no such overload")
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
        raise CelError("no such overload")
    if op == "+":
        return check_int(a + b)
    if op == "-":
        return check_int(a - b)
    if op == "*":
        return check_int(a * b)
    if b == 0:
        raise CelError("division by zero" if op == "/" else "modulus by zero")
    quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)  # truncates, like Go
    if op == "/":
        return check_int(quotient)
    return a - b * quotient


def _size(value: Any) -> int:
    if isinstance(value, str | list | dict):
        return len(value)
    raise CelError("no such overload")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise CelError("no such overload")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not INT64_MIN <= value <= INT64_MAX:
            raise CelError("integer overflow")
        return int(value)
    if isinstance(value, str):
        try:
            return check_int(int(value, 10))
        except ValueError:
            raise CelError(f"cannot convert {value!r} to int") from None
    raise CelError("no such overload")


def _to_double(value: Any) -> float:
    if isinstance(value, bool):
        raise CelError("no such overload")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise CelError(f"cannot convert {value!r} to double") from None
    raise CelError("no such overload")


def _to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float_g(value)
    raise CelError("no such overload")


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
        raise CelError(f"type conversion error from 'string' to 'bool' for {value!r}")
    raise CelError("no such overload")


def _matches(text: Any, pattern: Any) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise CelError("no such overload")
    try:
        return re.search(pattern, text) is not None
    except re.error as exc:
        raise CelError(f"invalid regular expression: {exc}") from None


def _str_method(fn: Callable[[str, str], bool]) -> Callable[[Any, Any], bool]:
    def method(target: Any, arg: Any) -> bool:
        if not isinstance(target, str) or not isinstance(arg, str):
            raise CelError("no such overload")
        return fn(target, arg)

    return method


def _ascii_case(upper: bool) -> Callable[[Any], str]:
    def method(target: Any) -> str:
        if not isinstance(target, str):
            raise CelError("no such overload")
        table = str.maketrans(
            "abcdefghijklmnopqrstuvwxyz" if upper else "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if upper else "abcdefghijklmnopqrstuvwxyz",
        )
        return target.translate(table)

    return method


# name -> (number of arguments, implementation); receiver-style calls pass the target first.
GLOBAL_FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "size": (1, _size),
    "int": (1, _to_int),
    "uint": (1, _to_int),
    "double": (1, _to_double),
    "string": (1, _to_string),
    "bool": (1, _to_bool),
    "dyn": (1, lambda v: v),
    "matches": (2, _matches),
}
METHODS: dict[str, tuple[int, Callable[..., Any]]] = {
    "size": (0, _size),
    "startsWith": (1, _str_method(str.startswith)),
    "endsWith": (1, _str_method(str.endswith)),
    "contains": (1, _str_method(str.__contains__)),
    "matches": (1, _matches),
    "lowerAscii": (0, _ascii_case(False)),
    "upperAscii": (0, _ascii_case(True)),
}
# The macros, which the parser turns into comprehensions of its own.
MACROS = frozenset(("all", "exists", "exists_one", "map", "filter"))
