"""CEL rules as kube's CRDs use them, each with an input and what kube-apiserver answers.

The corpus of ``bench_cel.py`` (which runs it on the fake's interpreter and on
cel-python) and of ``tests/apiserver/test_cel_faithfulness.py`` (which runs it on the
fake's interpreter only, so the claims made here are checked in CI).

``expect`` is what kube-apiserver (cel-go, with the environment kube gives CRD rules:
the standard library, the strings extension, kube's list, regex, URL and quantity
libraries, heterogeneous equality and cross-type numeric comparisons) makes of the rule
on ``self`` (and ``oldSelf`` for a transition rule): ``True`` or ``False``; ``ERROR``,
an evaluation error (the object is rejected with ``... evaluating rule: ...``), or any
refusal at all for the few cases where cel-go may refuse while compiling the CRD instead
(a constant regular expression it cannot compile); or ``INVALID``, a rule that kube
refuses when the CRD is created (a syntax or type-check error). The expectations come
from the CEL language definition (cel-spec ``langdef.md``) and cel-go's documented
behaviour (the ``ext`` package's examples, the overflow and division errors), not from
running a kube-apiserver here.

``known`` says, for a case where the fake's interpreter does not give kube's answer,
why not; the test expects exactly those cases to differ (strict xfail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_ntinvariants.apiserver.crd.cel import CelError, CelSyntaxError, Unsupported, parse

__all__ = [
    "ABSENT",
    "CASES",
    "ERROR",
    "INVALID",
    "NON_BOOL",
    "UNSUPPORTED",
    "Case",
    "agrees",
    "ours",
]

ERROR = "error"
INVALID = "invalid"
UNSUPPORTED = "unsupported"  # valid CEL that an implementation does not evaluate
NON_BOOL = "non-bool"  # evaluated to something other than a bool
ABSENT: Any = object()  # no oldSelf: not a transition rule

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

NO_TYPES = "no type checker: kube refuses the rule when the CRD is created, the fake at run time"
UINT = "uints are kept as ints: uint arithmetic does not overflow below 0"
NO_OPTIONALS = "optional types (kube 1.29+) are not in the subset"
NO_TIME = "timestamps and durations are not in the subset"
NO_KUBE_LIBS = "kube's quantity and URL libraries are not in the subset"


@dataclass(frozen=True, eq=False)
class Case:
    """One rule, its input, kube's answer and, if any, why the fake's differs."""

    group: str
    rule: str
    self_: Any
    expect: bool | str
    old: Any = ABSENT
    note: str = ""
    known: str = ""

    @property
    def env(self) -> dict[str, Any]:
        """The variables: ``self``, and ``oldSelf`` for a transition rule."""
        if self.old is ABSENT:
            return {"self": self.self_}
        return {"self": self.self_, "oldSelf": self.old}

    @property
    def name(self) -> str:
        """A short id for tables and test ids."""
        return f"{self.group}: {self.rule} @ {self.self_!r}" + (
            "" if self.old is ABSENT else f" (old {self.old!r})"
        )


def _c(group: str, rule: str, self_: Any, expect: bool | str, **kw: Any) -> Case:
    return Case(group, rule, self_, expect, **kw)


T = "transition"
L = "list"
S = "string"
X = "string ext"
M = "map"
N = "number"
H = "has/null"
G = "syntax/types"

CASES: tuple[Case, ...] = (
    # Transition rules: immutability, monotonic fields, set-once, append-only.
    _c(T, "self == oldSelf", "a", True, old="a"),
    _c(T, "self == oldSelf", "b", False, old="a"),
    _c(T, "self == oldSelf", {"b": [1, 2], "a": 1}, True, old={"a": 1, "b": [1, 2]}),
    _c(T, "self == oldSelf", [2, 1], False, old=[1, 2]),
    _c(T, "self >= oldSelf", 3, True, old=2),
    _c(T, "self >= oldSelf", 1, False, old=2),
    _c(T, "self >= oldSelf", 1.5, True, old=1.5),
    _c(T, "self >= oldSelf", "b", True, old="a"),
    _c(T, "!has(oldSelf.x) || has(self.x)", {}, True, old={}),
    _c(T, "!has(oldSelf.x) || has(self.x)", {}, False, old={"x": 1}),
    _c(T, "!has(oldSelf.x) || self.x == oldSelf.x", {"x": "b"}, False, old={"x": "a"}),
    _c(T, "!has(oldSelf.x) || self.x == oldSelf.x", {"x": "a"}, True, old={"x": "a"}),
    _c(T, "self.x == oldSelf.x", {}, ERROR, old={"x": "a"}, note="no such key: x"),
    _c(T, "has(self.x) == has(oldSelf.x)", {"x": 1}, False, old={}),
    _c(T, "oldSelf.all(x, x in self)", [1, 2, 3], True, old=[1, 2]),
    _c(T, "oldSelf.all(x, x in self)", [2, 3], False, old=[1, 2]),
    _c(T, "size(self) >= size(oldSelf)", ["a"], False, old=["a", "b"]),
    _c(
        T,
        "self.replicas >= oldSelf.replicas || self.allowScaleDown",
        {"replicas": 1, "allowScaleDown": True},
        True,
        old={"replicas": 3, "allowScaleDown": False},
    ),
    _c(
        T,
        "oldSelf.phase != 'Done' || self.phase == 'Done'",
        {"phase": "Running"},
        False,
        old={"phase": "Done"},
    ),
    # Lists: the macros, size, in, indexing, concatenation.
    _c(L, "self.all(x, x > 0)", [1, 2, 3], True),
    _c(L, "self.all(x, x > 0)", [1, -1], False),
    _c(L, "self.all(x, x > 0)", [], True),
    _c(L, "self.exists(x, x == 'b')", ["a", "b"], True),
    _c(L, "self.exists(x, x == 'c')", ["a", "b"], False),
    _c(L, "self.exists_one(x, x == 'a')", ["a", "a"], False),
    _c(L, "self.exists_one(x, x == 'a')", ["a", "b"], True),
    _c(L, "self.map(x, x * 2) == [2, 4, 6]", [1, 2, 3], True),
    _c(L, "self.map(x, x > 1, x * 10) == [20, 30]", [1, 2, 3], True),
    _c(L, "self.filter(x, x % 2 == 0).size() == 1", [1, 2, 3], True),
    _c(L, "self.filter(x, x > 5) == []", [1, 2, 3], True),
    _c(L, "size(self) <= 3", [1, 2, 3, 4], False),
    _c(L, "'b' in self", ["a", "b"], True),
    _c(L, "!('c' in self)", ["a", "b"], True),
    _c(L, "self + ['c'] == ['a', 'b', 'c']", ["a", "b"], True),
    _c(L, "self.all(x, self.exists_one(y, y == x))", ["a", "b", "a"], False),
    _c(L, "self.all(x, self.exists_one(y, y == x))", ["a", "b"], True),
    _c(L, "self.exists(x, 10 / x == 10)", [0, 1], True, note="the error on 0 is absorbed"),
    _c(L, "self.all(x, 10 / x > 0)", [0, 1], ERROR, note="division by zero"),
    _c(L, "self.all(x, 10 / x > 0)", [0, -1], False, note="false absorbs the error"),
    _c(L, "self[1] == 'b'", ["a", "b"], True),
    _c(L, "self[5] == 'b'", ["a", "b"], ERROR, note="index out of bounds"),
    _c(L, "self.map(x, x.name).all(n, n.size() < 5)", [{"name": "ab"}, {"name": "abcdef"}], False),
    _c(L, "self.all(x, has(x.port) && x.port < 65536)", [{"port": 80}, {}], False),
    _c(L, "[1, 2.0] == [1, 2]", None, True, note="heterogeneous equality of list(dyn)"),
    _c(L, "self.isSorted()", [1, 2, 3], True),
    _c(L, "self.sum() == 6", [1, 2, 3], True),
    _c(L, "self.max() == 3", [1, 3, 2], True),
    _c(L, "self.indexOf(2) == 1", [1, 2, 3], True),
    _c(L, "self.lastIndexOf('a') == 2", ["a", "b", "a"], True),
    _c(L, "self.isSorted()", ["b", "a"], False),
    _c(L, "self.min() == 1.5", [2.5, 1.5], True),
    _c(L, "self.sum() == 0", [], True),
    _c(L, "self.sum() > 0", [INT64_MAX, 1], ERROR, note="integer overflow"),
    _c(L, "self.max() == 0", [], ERROR, note="max of an empty list"),
    # Strings: the standard library.
    _c(S, "self.startsWith('ab')", "abc", True),
    _c(S, "self.endsWith('bc')", "abc", True),
    _c(S, "self.contains('x')", "abc", False),
    _c(S, "self.matches('^[a-z]+$')", "abc", True),
    _c(S, "self.matches('^[a-z]+$')", "aBc", False),
    _c(S, "self.matches('b')", "abc", True, note="RE2 search, not anchored"),
    _c(S, "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')", "my-name", True),
    _c(S, "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')", "-bad", False),
    _c(S, "self.matches('^[a-z]+$')", "abc\n", False, note="RE2's $ is the end of the text"),
    _c(S, "self.matches('^\\\\d+$')", "\u0661\u0662", False, note="RE2's \\d is ASCII"),
    _c(S, "self.matches('(?=a)a')", "a", ERROR, note="RE2 has no lookahead"),
    _c(S, "self.matches('[')", "a", ERROR, note="invalid regular expression"),
    _c(S, "size(self) == 3", "héé", True, note="size counts code points"),
    _c(S, "self.size() <= 5", "abcdef", False),
    _c(S, "self < 'abd'", "abc", True),
    _c(S, "self + 'x' == 'abx'", "ab", True),
    _c(S, "string(self) == '3'", 3, True),
    _c(S, "string(self) == '1.5'", 1.5, True),
    _c(S, "string(self) == '1e+21'", 1e21, True),
    _c(S, "int(self) == 42", "42", True),
    _c(S, "int(self) == 42", "x", ERROR),
    _c(S, "double(self) == 2.0", "2", True),
    _c(S, "bool(self)", "true", True),
    # The strings extension (ext.Strings), which kube gives CRD rules.
    _c(X, "self.lowerAscii() == 'hello'", "HeLLo", True),
    _c(X, "self.upperAscii() == 'éA'", "éa", True, note="only ASCII letters change"),
    _c(X, "self.indexOf('l') == 2", "hello", True),
    _c(X, "self.indexOf('ello', 2) == 7", "hello mellow", True),
    _c(X, "self.indexOf('z') == -1", "hello", True),
    _c(X, "self.indexOf('l', 10) == 2", "hello", ERROR, note="index out of range"),
    _c(X, "self.lastIndexOf('ello') == 7", "hello mellow", True),
    _c(X, "self.lastIndexOf('ello', 6) == 1", "hello mellow", True),
    _c(X, "self.charAt(1) == 'e'", "hello", True),
    _c(X, "self.charAt(5) == ''", "hello", True),
    _c(X, "self.charAt(-1) == ''", "hello", ERROR),
    _c(X, "self.substring(1, 3) == 'el'", "hello", True),
    _c(X, "self.substring(3) == 'lo'", "hello", True),
    _c(X, "self.substring(3, 1) == ''", "hello", ERROR),
    _c(X, "self.split(',') == ['a', 'b', 'c']", "a,b,c", True),
    _c(X, "self.split(',', 2) == ['a', 'b,c']", "a,b,c", True),
    _c(X, "self.split(',').all(s, s.size() > 0)", "a,,b", False),
    _c(X, "self.join('-') == 'a-b'", ["a", "b"], True),
    _c(X, "self.join() == 'ab'", ["a", "b"], True),
    _c(X, "self.replace('-', '_') == 'a_b_c'", "a-b-c", True),
    _c(X, "self.replace('-', '_', 1) == 'a_b-c'", "a-b-c", True),
    _c(X, "self.trim() == 'x'", " \tx\n ", True),
    _c(X, "self.trim() == 'x'", "\u3000x\u00a0", True, note="Unicode white space"),
    # Maps: keys are what the macros range over.
    _c(M, "self.all(k, k.startsWith('app.'))", {"app.a": "1", "x": "2"}, False),
    _c(M, "'a' in self", {"a": 1}, True),
    _c(M, "self['a'] == 1", {"a": 1}, True),
    _c(M, "self.a == 1", {"a": 1}, True),
    _c(M, "self['z'] == 1", {"a": 1}, ERROR, note="no such key"),
    _c(M, "size(self) <= 2", {"a": 1, "b": 2, "c": 3}, False),
    _c(M, "self.exists(k, self[k] == 'v')", {"a": "u", "b": "v"}, True),
    _c(M, "self == {'a': 1}", {"a": 1}, True),
    _c(M, "self.map(k, self[k]).all(v, v > 0)", {"a": 1, "b": 2}, True),
    _c(M, "{'a': 1, 'a': 2}.size() == 1", None, ERROR, note="repeated key"),
    # Numbers: int64 overflow, division, truncation, int/uint/double mixing.
    _c(N, "self * 2 > 0", 2**62, ERROR, note="integer overflow"),
    _c(N, "self + 1 > self", INT64_MAX, ERROR, note="integer overflow"),
    _c(N, "-self < 0", INT64_MIN, ERROR, note="integer overflow"),
    _c(N, "self / -1 == 0", INT64_MIN, ERROR, note="integer overflow"),
    _c(N, "self == -9223372036854775808", INT64_MIN, True),
    _c(N, "self == 9223372036854775808", 1, INVALID, note="int literal out of range"),
    _c(N, "self / 0 == 0", 1, ERROR, note="division by zero"),
    _c(N, "self % 0 == 0", 1, ERROR, note="modulus by zero"),
    _c(N, "self / 2 == -1", -3, True, note="truncates toward zero"),
    _c(N, "self % 3 == -1", -7, True, note="the dividend's sign"),
    _c(N, "self / 0.0 > 1000.0", 1.0, True, note="IEEE: +Inf, no error"),
    _c(N, "int(self) == 2", 2.9, True),
    _c(N, "int(self) > 0", 1e19, ERROR, note="out of int64 range"),
    _c(N, "uint(self) == 1u", -1, ERROR, note="negative to uint"),
    _c(N, "uint(self) == 5u", 5, True),
    _c(N, "0u - 1u == 0u", None, ERROR, note="uint overflow", known=UINT),
    _c(N, "dyn(self) == 1.0", 1, True, note="heterogeneous equality"),
    _c(N, "self > 1", 1.5, True, note="cross-type comparison (a double field)"),
    _c(N, "dyn(self) + 1.0 > 0.0", 1, ERROR, note="no int + double overload"),
    _c(N, "double(self) + 1.5 == 2.5", 1, True),
    _c(N, "1 == 1.0", None, INVALID, note="_==_(int, double) fails type-checking", known=NO_TYPES),
    _c(N, "self + 0.5 > 1.0", 1, INVALID, note="_+_(int, double)", known=NO_TYPES),
    # has() on absent fields, null values.
    _c(H, "has(self.x)", {}, False),
    _c(H, "has(self.x)", {"x": 1}, True),
    _c(H, "has(self.x.y)", {}, ERROR, note="self.x is absent"),
    _c(H, "!has(self.x) || self.x > 0", {}, True),
    _c(H, "has(self.x) && self.x > 0", {}, False),
    _c(H, "self.x > 0 || !has(self.x)", {}, True, note="|| is commutative over errors"),
    _c(H, "self.x > 0 && has(self.x)", {}, False, note="&& is commutative over errors"),
    _c(H, "self.x == null", {"x": None}, True, note="a field with no schema (dyn)"),
    _c(H, "dyn(self) == null", 0, False),
    _c(H, "self.x.y == 1", {"x": None}, ERROR),
    _c(H, "self.?x.orValue(0) == 0", {}, True, known=NO_OPTIONALS),
    # Syntax and what only the type checker refuses.
    _c(G, "has(self[0])", [1], INVALID, note="has() takes a field selection"),
    _c(G, "self ==", 1, INVALID),
    _c(G, "self.x = 1", {"x": 1}, INVALID),
    _c(G, "self.x > 0 ? 'a' : 'b'", {"x": 1}, INVALID, note="not a bool", known=NO_TYPES),
    _c(G, "foo == 1", 1, INVALID, note="undeclared reference", known=NO_TYPES),
    _c(G, "duration(self) <= duration('1h')", "30m", True, known=NO_TIME),
    _c(
        G,
        "timestamp(self) < timestamp('2030-01-01T00:00:00Z')",
        "2026-12-05T13:00:00Z",
        True,
        known=NO_TIME,
    ),
    _c(G, "quantity(self).isLessThan(quantity('1Gi'))", "512Mi", True, known=NO_KUBE_LIBS),
    _c(G, "isURL(self)", "https://example.com/x", True, known=NO_KUBE_LIBS),
)


def agrees(expect: bool | str, got: bool | str) -> bool:
    """Whether an outcome is kube's: ``ERROR`` also takes a refusal when compiling."""
    if expect == ERROR:
        return got in (ERROR, INVALID)
    return got == expect


def ours(case: Case) -> bool | str:
    """The fake's interpreter on ``case``: a bool, ``ERROR``, ``INVALID`` or ``UNSUPPORTED``."""
    try:
        program = parse(case.rule)
    except CelSyntaxError:
        return INVALID
    except Unsupported:
        return UNSUPPORTED
    try:
        value = program.ev(case.env)
    except CelError:
        return ERROR
    return value if isinstance(value, bool) else NON_BOOL
