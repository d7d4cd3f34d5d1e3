"""The subset of CEL (Common Expression Language) that the fake evaluates for CRD rules.

``parse(text)`` compiles a rule into an ``Expr``, or raises ``CelSyntaxError`` (not
CEL) or ``Unsupported`` (CEL outside the subset); ``Expr.ev(env)`` evaluates it with
``env`` naming the variables, or raises ``CelError``.

Supported: literals (int, uint as int, double, string, bool, null, lists, maps),
variables with field selection and indexing, ``has()``, ``size()``, ``in``,
``! - * / % + < <= > >= == != && || ?:``, ``all exists exists_one map filter``,
``startsWith endsWith contains matches`` (RE2 patterns), the strings extension's
``lowerAscii upperAscii charAt indexOf lastIndexOf substring split join replace trim``,
``int uint double string bool dyn``. No type checker, no cost budget, no timestamps,
durations, quantities, optionals or URLs; kube's list library (``isSorted sum min max
indexOf lastIndexOf``) is in.
"""

from __future__ import annotations

from .lexer import CelSyntaxError, Unsupported
from .parser import Expr, parse
from .stdlib import CelError

__all__ = ["CelError", "CelSyntaxError", "Expr", "Unsupported", "parse"]
