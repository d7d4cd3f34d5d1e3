"""What CEL's operators and functions do to values, and the runtime errors they raise.

The subset of cel-go's standard library that the fake evaluates: equality, ordering and
arithmetic (no mixed int/double arithmetic, int64 overflow is an error), ``size``, the
conversions ``int uint double string bool dyn``, and the string methods ``startsWith
endsWith contains matches`` (RE2's syntax, translated to Python's ``re``) and those of the
strings extension (``lowerAscii upperAscii charAt indexOf lastIndexOf substring split join
replace trim``) and of kube's list library (``isSorted sum min max indexOf lastIndexOf``).
The parser resolves calls against ``GLOBAL_FUNCTIONS`` and ``METHODS``;
``MACROS`` are the comprehensions it builds itself.
"""

from __future__ import annotations

import functools
import itertools
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


def _to_uint(value: Any) -> int:
    """``uint()``: the fake keeps uints as ints, but a negative one does not convert."""
    result = _to_int(value)
    if result < 0:
        raise CelError("unsigned integer overflow")
    return result


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


_RX_MULTILINE = re.compile(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)]")


@functools.lru_cache(maxsize=256)
def _re2(pattern: str) -> re.Pattern[str]:
    """An RE2 pattern (what cel-go's ``matches`` takes) as a Python regular expression.

    Where the two differ on patterns CRD rules use: RE2's ``$`` (without the ``m`` flag)
    matches only at the end of the text, Python's also before a final newline; RE2's
    ``\\z`` is Python's ``\\Z``; ``\\d \\w \\s \\b`` are ASCII in RE2; and RE2 has no
    lookaround and no backreferences (cel-go rejects the pattern, so this does too). Still
    different: ``(?i)`` folds only ASCII letters here, all of Unicode in RE2.
    """
    multiline = _RX_MULTILINE.search(pattern) is not None
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if (e.isdigit() and e != "0") or e == "Z":
                raise CelError(f"invalid regular expression: unsupported escape \\{e}")
            out.append("\\Z" if e == "z" and not in_class else c + e)
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            out.append(c)
            i += 1
            # A ']' first in the class (after an optional '^') is a literal.
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("]")
                i += 1
            continue
        elif c == "(" and pattern.startswith(("(?=", "(?!", "(?<=", "(?<!", "(?P="), i):
            raise CelError("invalid regular expression: lookaround and backreferences")
        elif c == "$" and not multiline:
            out.append("\\Z")
            i += 1
            continue
        out.append(c)
        i += 1
    try:
        return re.compile("".join(out), re.ASCII)
    except re.error as exc:
        raise CelError(f"invalid regular expression: {exc}") from None


def _matches(text: Any, pattern: Any) -> bool:
    if not isinstance(text, str) or not isinstance(pattern, str):
        raise CelError("no such overload")
    return _re2(pattern).search(text) is not None


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


# Unicode's White_Space property, which the strings extension's trim() strips (Python's
# str.strip() also strips the separators U+001C..U+001F, which are not White_Space).
_WHITE_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise CelError("no such overload")
    return value


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise CelError("no such overload")
    return value


def _char_at(target: Any, index: Any) -> str:
    text, i = _str(target), _int(index)
    if not 0 <= i <= len(text):
        raise CelError(f"index out of range: {i}")
    return text[i : i + 1]


def _index_of(target: Any, sub: Any, offset: Any = 0) -> int:
    text, start = _str(target), _int(offset)
    if not 0 <= start <= len(text):
        raise CelError(f"index out of range: {start}")
    return text.find(_str(sub), start)


def _last_index_of(target: Any, sub: Any, offset: Any = None) -> int:
    text, needle = _str(target), _str(sub)
    last = len(text) if offset is None else _int(offset)
    if not 0 <= last <= len(text):
        raise CelError(f"index out of range: {last}")
    # ``offset`` is the last index a match may start at.
    return text.rfind(needle, 0, last + len(needle))


def _substring(target: Any, start: Any, end: Any = None) -> str:
    text = _str(target)
    lo = _int(start)
    hi = len(text) if end is None else _int(end)
    if not 0 <= lo <= hi <= len(text):
        raise CelError(f"substring range out of bounds: [{lo}:{hi}]")
    return text[lo:hi]


def _split(target: Any, sep: Any, limit: Any = -1) -> list[str]:
    """Go's strings.SplitN: ``limit`` 0 gives no parts, a negative one all of them."""
    text, separator, n = _str(target), _str(sep), _int(limit)
    if n == 0:
        return []
    if separator == "":
        chars = list(text)
        if 0 < n < len(chars):
            return [*chars[: n - 1], "".join(chars[n - 1 :])]
        return chars
    return text.split(separator, n - 1 if n > 0 else -1)


def _join(target: Any, sep: Any = "") -> str:
    if not isinstance(target, list):
        raise CelError("no such overload")
    return _str(sep).join(_str(v) for v in target)


def _replace(target: Any, old: Any, new: Any, count: Any = -1) -> str:
    return _str(target).replace(_str(old), _str(new), _int(count))


def _trim(target: Any) -> str:
    return _str(target).strip(_WHITE_SPACE)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise CelError("no such overload")
    return value


def _is_sorted(target: Any) -> bool:
    items = _list(target)
    return all(compare("<=", a, b) for a, b in itertools.pairwise(items))


def _sum(target: Any) -> Any:
    items = _list(target)
    total: Any = 0
    for i, item in enumerate(items):
        total = item if i == 0 and is_num(item) else arith("+", total, item)
    return total


def _extreme(name: str, op: str) -> Callable[[Any], Any]:
    def method(target: Any) -> Any:
        items = _list(target)
        if not items:
            raise CelError(f"{name} called on empty list")
        best = items[0]
        for item in items[1:]:
            if compare(op, item, best):
                best = item
        return best

    return method


def _list_or_string(
    on_list: Callable[..., Any], on_string: Callable[..., Any]
) -> Callable[..., Any]:
    """A method both kube's list library and the strings extension define."""

    def method(target: Any, *args: Any) -> Any:
        if isinstance(target, list):
            if len(args) != 1:
                raise CelError("no such overload")
            return on_list(target, args[0])
        return on_string(target, *args)

    return method


def _list_index_of(items: list[Any], value: Any) -> int:
    return next((i for i, item in enumerate(items) if _cel_equal(item, value)), -1)


def _list_last_index_of(items: list[Any], value: Any) -> int:
    found = [i for i, item in enumerate(items) if _cel_equal(item, value)]
    return found[-1] if found else -1


# name -> (the numbers of arguments it takes, implementation); receiver-style calls pass
# the target first.
GLOBAL_FUNCTIONS: dict[str, tuple[tuple[int, ...], Callable[..., Any]]] = {
    "size": ((1,), _size),
    "int": ((1,), _to_int),
    "uint": ((1,), _to_uint),
    "double": ((1,), _to_double),
    "string": ((1,), _to_string),
    "bool": ((1,), _to_bool),
    "dyn": ((1,), lambda v: v),
    "matches": ((2,), _matches),
}
METHODS: dict[str, tuple[tuple[int, ...], Callable[..., Any]]] = {
    "size": ((0,), _size),
    "startsWith": ((1,), _str_method(str.startswith)),
    "endsWith": ((1,), _str_method(str.endswith)),
    "contains": ((1,), _str_method(str.__contains__)),
    "matches": ((1,), _matches),
    # The strings extension (cel-go ext.Strings), as kube's CRD rules have it.
    "lowerAscii": ((0,), _ascii_case(False)),
    "upperAscii": ((0,), _ascii_case(True)),
    "charAt": ((1,), _char_at),
    "indexOf": ((1, 2), _list_or_string(_list_index_of, _index_of)),
    "lastIndexOf": ((1, 2), _list_or_string(_list_last_index_of, _last_index_of)),
    "substring": ((1, 2), _substring),
    "split": ((1, 2), _split),
    "join": ((0, 1), _join),
    "replace": ((2, 3), _replace),
    "trim": ((0,), _trim),
    # kube's list library (k8s.io/apiserver/pkg/cel/library/lists.go).
    "isSorted": ((0,), _is_sorted),
    "sum": ((0,), _sum),
    "min": ((0,), _extreme("min", "<")),
    "max": ((0,), _extreme("max", ">")),
}
# The macros, which the parser turns into comprehensions of its own.
MACROS = frozenset(("all", "exists", "exists_one", "map", "filter"))
