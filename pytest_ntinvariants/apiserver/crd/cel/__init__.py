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

Why this interpreter and not cel-python (issue 13; ``benchmarks/bench_cel.py``, its
corpus ``benchmarks/cel_corpus.py`` and ``benchmarks/README.md``): on 152 rules as CRDs
write them, each with kube-apiserver's answer, this one agrees on 142 and cel-python 0.5
on 106 (on core CEL alone, leaving kube's libraries out, 109 and 105 of 117). cel-python
lacks kube's strings extension and list library, heterogeneous equality and the
three-argument ``map``, and gets ``has()`` on an absent parent wrong; it does have
timestamps and durations and the real RE2. It compiles a rule about 6x slower and
evaluates one about 130x slower. What still differs here: no type checker (a rule kube
refuses at CRD creation fails or passes per object instead), uints are ints, and
optionals, timestamps, durations, quantities and URLs are unevaluated (and warned about).
"""

from __future__ import annotations

from .lexer import CelSyntaxError, Unsupported
from .parser import Expr, parse
from .stdlib import CelError

__all__ = ["CelError", "CelSyntaxError", "Expr", "Unsupported", "parse"]
