"""The fake's CEL interpreter (apiserver/crd/cel/) against cel-python (``celpy``), on the
kinds of rules CRDs carry: fidelity to kube's CEL, case by case, and the speed of one
evaluation of a compiled rule.

    python benchmarks/bench_cel.py            # needs `pip install cel-python` for the comparison
    python benchmarks/bench_cel.py --quick    # fewer timing iterations

Each case is a rule, the value of ``self`` (and of ``oldSelf`` for a transition rule) and
what kube-apiserver (cel-go with kube's libraries) makes of it: ``True``/``False``, or
``ERROR`` for an evaluation error (the write is refused either way, with another message).
An engine's answer is:

* ``ok``: kube's;
* ``unsupported``: the fake refuses to compile the rule (``Unsupported``), so the CRD's
  write warns that the rule is not evaluated and writes are not checked by it (never a
  wrong answer, but no answer);
* ``wrong``: another value or error than kube's, or a compile error on a rule kube takes.

Writes ``benchmarks/results/cel.md``; the conclusion is in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _p in (str(HERE.parent), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from pytest_ntinvariants.apiserver.crd import cel  # noqa: E402

ERROR = "ERROR"
MISSING = object()

# (group, rule, self, oldSelf or MISSING, kube's answer)
CASES: list[tuple[str, str, Any, Any, Any]] = [
    ("transition", "self == oldSelf", 1, 1, True),
    ("transition", "self == oldSelf", 2, 1, False),
    ("transition", "self >= oldSelf", 3, 2, True),
    ("transition", "oldSelf.all(k, k in self)", {"a": 1, "b": 2}, {"a": 1}, True),
    ("transition", "!has(oldSelf.x) || has(self.x)", {}, {"x": 1}, False),
    ("transition", "self.size() >= oldSelf.size()", [1, 2], [1], True),
    (
        "transition",
        "oldSelf.state != 'Done' || self.state == 'Done'",
        {"state": "A"},
        {"state": "Done"},
        False,
    ),
    ("core", "self.all(x, x > 0)", [1, 2, 3], MISSING, True),
    ("core", "self.exists_one(x, x == 2)", [1, 2, 2], MISSING, False),
    ("core", "self.map(x, x * 2) == [2, 4]", [1, 2], MISSING, True),
    ("core", "self.filter(x, x % 2 == 0).size() == 1", [1, 2, 3], MISSING, True),
    ("core", "size(self) <= 3", "abc", MISSING, True),
    ("core", "self.matches('^[a-z]+$')", "abc", MISSING, True),
    ("core", "self.startsWith('a') && self.endsWith('c')", "abc", MISSING, True),
    ("core", "has(self.spec) && self.spec.replicas >= 0", {"spec": {"replicas": 1}}, MISSING, True),
    ("core", "self + 1 > 0", 2**63 - 1, MISSING, ERROR),
    ("core", "1 / self == 0", 0, MISSING, ERROR),
    ("core", "self.x == 1", {}, MISSING, ERROR),
    ("core", "double(self) == 1.5", "1.5", MISSING, True),
    ("core", "self in ['a', 'b']", "a", MISSING, True),
    ("core", "'x' in self", {"x": 1}, MISSING, True),
    ("core", "self == 1.0", 1, MISSING, True),
    ("core", "self.a || self.b", {"a": True}, MISSING, True),
    ("lists", "self.isSorted()", [1, 2, 3], MISSING, True),
    ("lists", "self.sum() == 6", [1, 2, 3], MISSING, True),
    ("lists", "self.min() == 1 && self.max() == 3", [1, 2, 3], MISSING, True),
    ("lists", "self.indexOf(2) == 1", [1, 2, 2], MISSING, True),
    ("lists", "self.lastIndexOf(2) == 2", [1, 2, 2], MISSING, True),
    ("strings", "self.lowerAscii() == 'abc'", "ABC", MISSING, True),
    ("strings", "self.upperAscii() == 'ABC'", "abc", MISSING, True),
    ("strings", "self.split(',').size() == 3", "a,b,c", MISSING, True),
    ("strings", "self.join('-') == 'a-b'", ["a", "b"], MISSING, True),
    ("strings", "self.replace('a', 'b') == 'bbc'", "abc", MISSING, True),
    ("strings", "self.trim() == 'a'", " a ", MISSING, True),
    ("strings", "self.substring(1, 3) == 'bc'", "abcd", MISSING, True),
    ("strings", "self.charAt(1) == 'b'", "abc", MISSING, True),
    ("strings", "self.indexOf('c') == 2", "abc", MISSING, True),
    ("regex", "self.find('[0-9]+') == '123'", "ab123", MISSING, True),
    (
        "time",
        "timestamp(self) > timestamp('2020-01-01T00:00:00Z')",
        "2021-01-01T00:00:00Z",
        MISSING,
        True,
    ),
    ("time", "duration(self) < duration('1h')", "30m", MISSING, True),
    ("quantity", "quantity(self).isGreaterThan(quantity('1Gi'))", "2Gi", MISSING, True),
    ("optional", "self.?x.orValue(1) == 1", {}, MISSING, True),
]

# One compiled rule evaluated again and again: what a write of a CR with it costs.
TIMED = [
    ("self.replicas >= 0 && self.replicas <= 10", {"replicas": 3}),
    ("self.all(x, size(x) <= 10) && size(self) <= 100", [f"item-{i}" for i in range(20)]),
    ("self == oldSelf || !has(oldSelf.x)", {"x": 1}),
]


class Engine:
    """One interpreter: compile a rule, evaluate it with ``self`` (and ``oldSelf``)."""

    name = ""

    def compile(self, text: str) -> Any:
        raise NotImplementedError

    def evaluate(self, program: Any, env: dict[str, Any]) -> Any:
        raise NotImplementedError


class Fake(Engine):
    """apiserver/crd/cel/."""

    name = "fake (crd/cel)"

    def compile(self, text: str) -> Any:
        return cel.parse(text)

    def evaluate(self, program: Any, env: dict[str, Any]) -> Any:
        return program.ev(env)


class CelPython(Engine):
    """cel-python's default runner, JSON values converted with its json_to_cel."""

    name = "cel-python"

    def __init__(self) -> None:
        import celpy

        self.celpy = celpy
        self.env = celpy.Environment()

    def compile(self, text: str) -> Any:
        return self.env.program(self.env.compile(text))

    def evaluate(self, program: Any, env: dict[str, Any]) -> Any:
        activation = {k: self.celpy.json_to_cel(v) for k, v in env.items()}
        result = program.evaluate(activation)
        if isinstance(result, self.celpy.CELEvalError):
            raise result
        return result


def judge(engine: Engine, text: str, self_value: Any, old: Any, expected: Any) -> str:
    try:
        program = engine.compile(text)
    except cel.Unsupported:
        return "unsupported"
    except Exception:
        return "wrong"  # a rule kube compiles
    env = {"self": self_value} if old is MISSING else {"self": self_value, "oldSelf": old}
    try:
        got: Any = engine.evaluate(program, env)
        got = bool(got) if isinstance(got, int) and not isinstance(got, bool) else got
    except Exception:
        got = ERROR
    return "ok" if got == expected and type(got) is type(expected) else "wrong"


def per_eval_us(engine: Engine, text: str, value: Any, n: int) -> float:
    program = engine.compile(text)
    env = {"self": value, "oldSelf": value}
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            engine.evaluate(program, env)
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    engines: list[Engine] = [Fake()]
    try:
        engines.append(CelPython())
    except ImportError:
        print("cel-python is not installed: the fake alone (`pip install cel-python`)")
    lines = ["# CEL: the fake's interpreter and cel-python", ""]
    lines.append("| group | rule | kube | " + " | ".join(e.name for e in engines) + " |")
    lines.append("| --- | --- | --- |" + " --- |" * len(engines))
    tally: dict[str, dict[str, int]] = {e.name: {} for e in engines}
    for group, text, value, old, expected in CASES:
        cells = []
        for e in engines:
            verdict = judge(e, text, value, old, expected)
            tally[e.name][verdict] = tally[e.name].get(verdict, 0) + 1
            cells.append(verdict)
        lines.append(f"| {group} | `{text}` | {expected} | " + " | ".join(cells) + " |")
    lines += ["", "| engine | ok | unsupported | wrong |", "| --- | --- | --- | --- |"]
    for e in engines:
        t = tally[e.name]
        lines.append(
            f"| {e.name} | {t.get('ok', 0)} | {t.get('unsupported', 0)} | {t.get('wrong', 0)} |"
        )
    n = 200 if args.quick else 2000
    lines += ["", "| rule (compiled once) | " + " | ".join(f"{e.name} µs/eval" for e in engines)]
    lines[-1] += " |"
    lines.append("| --- |" + " --- |" * len(engines))
    timers: list[Callable[[Engine], float]] = [
        (lambda e, t=t, v=v: per_eval_us(e, t, v, n)) for t, v in TIMED
    ]
    for (text, _), timer in zip(TIMED, timers, strict=True):
        lines.append(f"| `{text}` | " + " | ".join(f"{timer(e):.1f}" for e in engines) + " |")
    report = "\n".join(lines) + "\n"
    out = HERE / "results" / "cel.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    print(report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
