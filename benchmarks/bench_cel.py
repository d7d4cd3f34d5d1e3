"""CEL for CRD rules: the fake's own interpreter against cel-python, on kube's answers and speed.

    python benchmarks/bench_cel.py [--rounds R] [--per-round K] [--quick] [--out DIR]

Faithfulness: every case of ``cel_corpus.py`` (kube's transition rules, list and string
rules, the strings extension, maps, int64 overflow, division by zero, int/uint/double
mixing, null, ``has()`` on absent fields, syntax and type errors) runs on the fake's
interpreter (``pytest_ntinvariants.apiserver.crd.cel``) and on cel-python (``celpy``, the
``bench`` extra), each case judged against what kube-apiserver (cel-go) answers: agrees,
disagrees, or unsupported (the implementation does not evaluate that function or syntax:
the fake's ``Unsupported``, cel-python's "undeclared reference" to a function the rule
calls). cel-python runs as a library user would run it: a ``celpy.Environment()`` and no
functions added (kube's libraries are not part of it).

Speed: for every rule both compile and evaluate (to a value or a CEL error), the compile
time (text to a runnable program: ``parse`` against ``Environment.compile`` +
``program``) and the evaluation time (on the case's input, already converted to each
implementation's values, the conversion not timed) are measured interleaved, in ``R``
rounds of ``K`` calls each (the order rotating), and reported as the median over rounds
of cel-python's median over ours: ``3.00x`` means cel-python takes three times as long.
Without cel-python installed only the fake's column is filled and the report says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import ROOT, Report, command_line, environment, fmt_ratio, interleave
from cel_corpus import CASES, ERROR, INVALID, NON_BOOL, UNSUPPORTED, Case, agrees, ours

from pytest_ntinvariants.apiserver.crd.cel import CelError, parse

try:
    import celpy
    import celpy.celtypes
except ImportError:  # the bench extra is not installed
    celpy = None

AGREES, DISAGREES = "agrees", "disagrees"

# Functions of kube's own libraries (the strings extension, lists, quantity, URL), which
# cel-python does not have: the "core CEL" row leaves their cases out.
KUBE_LIBRARY_CALLS = (
    *(".lowerAscii(", ".upperAscii(", ".charAt(", ".indexOf(", ".lastIndexOf("),
    *(".substring(", ".split(", ".join(", ".replace(", ".trim(", ".isSorted(", ".sum("),
    *(".min(", ".max(", "quantity(", "isURL("),
)


def uses_kube_library(case: Case) -> bool:
    """Whether the rule calls a function of kube's libraries rather than core CEL's."""
    return any(call in case.rule for call in KUBE_LIBRARY_CALLS)


def verdict(case: Case, got: bool | str) -> str:
    """agrees / disagrees / unsupported, against kube's answer."""
    if got == UNSUPPORTED:
        return UNSUPPORTED
    return AGREES if agrees(case.expect, got) else DISAGREES


# --------------------------------------------------------------------------------------
# cel-python


def _celpy_activation(case: Case) -> dict[str, Any]:
    return {k: celpy.json_to_cel(v) for k, v in case.env.items()}


def _celpy_program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def celpy_outcome(case: Case) -> bool | str:
    """cel-python on ``case``: a bool, ``ERROR``, ``INVALID`` or ``UNSUPPORTED``."""
    try:
        program = _celpy_program(case.rule)
    except celpy.CELParseError:
        return INVALID
    except Exception:  # anything else at compile time is a refusal too
        return INVALID
    try:
        value = program.evaluate(_celpy_activation(case))
    except celpy.CELEvalError as exc:
        text = str(exc.args[0]) if exc.args else str(exc)
        if text.startswith("undeclared reference to '"):
            name = text.split("'")[1]
            if f"{name}(" in case.rule:
                return UNSUPPORTED
        return ERROR
    except Exception:  # a Python error escaping cel-python is an error too
        return ERROR
    if isinstance(value, celpy.CELEvalError):
        return ERROR
    if isinstance(value, celpy.celtypes.BoolType):
        return bool(value)
    return NON_BOOL


# --------------------------------------------------------------------------------------
# Faithfulness


def faithfulness(report: Report, cases: tuple[Case, ...]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for case in cases:
        got_ours = ours(case)
        got_celpy = celpy_outcome(case) if celpy is not None else None
        rows.append(
            {
                "case": case.name,
                "group": case.group,
                "kube": case.expect,
                "ours": got_ours,
                "ours_verdict": verdict(case, got_ours),
                "celpy": got_celpy,
                "celpy_verdict": verdict(case, got_celpy) if got_celpy is not None else None,
                "known": case.known,
                "kube_library": uses_kube_library(case),
                "note": case.note,
            }
        )
    impls = [("ours", "fake")] + ([("celpy", "cel-python")] if celpy is not None else [])
    section = report.section(
        "Faithfulness to kube-apiserver (cases agreeing / disagreeing / unsupported)",
        ["group", "cases"] + [label for _, label in impls],
    )
    groups = list(dict.fromkeys(r["group"] for r in rows))
    totals: dict[str, Counter[str]] = {key: Counter() for key, _ in impls}
    for group in [*groups, None, "core"]:
        if group == "core":
            in_group = [r for r in rows if not r["kube_library"]]
        else:
            in_group = [r for r in rows if group is None or r["group"] == group]
        label_of = {None: "**all**", "core": "**core CEL only** (no kube library call)"}
        cells: dict[str, Any] = {"group": label_of.get(group, group), "cases": len(in_group)}
        for key, label in impls:
            count = Counter(r[f"{key}_verdict"] for r in in_group)
            if group is not None and group != "core":
                totals[key].update(count)
            cells[label] = f"{count[AGREES]} / {count[DISAGREES]} / {count[UNSUPPORTED]}"
        section.add(**cells)
    core = {
        key: dict(Counter(r[f"{key}_verdict"] for r in rows if not r["kube_library"]))
        for key, _ in impls
    }
    section.data = {
        "cases": rows,
        "totals": {k: dict(v) for k, v in totals.items()},
        "core_cel_totals": core,
    }
    if celpy is None:
        section.notes.append("cel-python is not installed (pip install -e '.[bench]')")
    differ = report.section(
        "Cases where either implementation is not kube",
        ["case", "kube", "fake", "cel-python"],
    )
    for r in rows:
        if r["ours_verdict"] != AGREES or r["celpy_verdict"] not in (AGREES, None):
            differ.add(
                case=f"`{r['case']}`",
                kube=r["kube"],
                fake=r["ours"],
                **{"cel-python": r["celpy"] if r["celpy"] is not None else "—"},
            )
    return {key: dict(v) for key, v in totals.items()}


# --------------------------------------------------------------------------------------
# Speed


def _ours_eval(case: Case) -> Callable[[], object]:
    program = parse(case.rule)
    env = case.env

    def run() -> object:
        try:
            return program.ev(env)
        except CelError as exc:
            return exc

    return run


def _celpy_eval(case: Case) -> Callable[[], object]:
    program = _celpy_program(case.rule)
    activation = _celpy_activation(case)

    def run() -> object:
        try:
            return program.evaluate(activation)
        except Exception as exc:  # a CELEvalError, or a Python error escaping cel-python
            return exc

    return run


def speed(report: Report, cases: tuple[Case, ...], rounds: int, per_round: int) -> dict[str, Any]:
    timed = [
        c
        for c in cases
        if ours(c) not in (INVALID, UNSUPPORTED)
        and (celpy is None or celpy_outcome(c) not in (INVALID, UNSUPPORTED))
    ]
    per_rule: list[dict[str, Any]] = []
    for case in timed:
        row: dict[str, Any] = {"case": case.name, "group": case.group}
        for phase, subjects in (
            (
                "compile",
                {"ours": lambda c=case: parse(c.rule)}
                | ({"celpy": lambda c=case: _celpy_program(c.rule)} if celpy else {}),
            ),
            (
                "eval",
                {"ours": _ours_eval(case)} | ({"celpy": _celpy_eval(case)} if celpy else {}),
            ),
        ):
            measured = interleave(subjects, warmup=3, rounds=rounds, per_round=per_round)
            row[f"{phase}_ours_s"] = measured.stats("ours").p50
            if celpy is not None:
                row[f"{phase}_celpy_s"] = measured.stats("celpy").p50
                row[f"{phase}_ratio"] = measured.paired_ratio("celpy", "ours")
        per_rule.append(row)
    section = report.section(
        "Speed per rule, medians (ratio: cel-python's time over the fake's, same run)",
        [
            "group",
            "rules",
            "compile fake",
            "compile cel-python",
            "compile ratio",
            "eval fake",
            "eval cel-python",
            "eval ratio",
        ],
    )
    summary: dict[str, Any] = {}
    groups = list(dict.fromkeys(r["group"] for r in per_rule))
    for group in [*groups, None]:
        rows = [r for r in per_rule if group is None or r["group"] == group]
        if not rows:
            continue

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float | None:
            values = [r[key] for r in rows if key in r]
            return statistics.median(values) if values else None

        cells = {
            "group": group or "**all**",
            "rules": len(rows),
            "compile fake": fmt_us(med("compile_ours_s")),
            "compile cel-python": fmt_us(med("compile_celpy_s")),
            "compile ratio": fmt_ratio(med("compile_ratio")),
            "eval fake": fmt_us(med("eval_ours_s")),
            "eval cel-python": fmt_us(med("eval_celpy_s")),
            "eval ratio": fmt_ratio(med("eval_ratio")),
        }
        section.add(**cells)
        if group is None:
            summary = {
                "rules": len(rows),
                "compile_ratio_median": med("compile_ratio"),
                "eval_ratio_median": med("eval_ratio"),
                "compile_ours_ms_median": _ms(med("compile_ours_s")),
                "compile_celpy_ms_median": _ms(med("compile_celpy_s")),
                "eval_ours_ms_median": _ms(med("eval_ours_s")),
                "eval_celpy_ms_median": _ms(med("eval_celpy_s")),
            }
    section.notes.append(
        f"{len(timed)} of {len(cases)} rules timed (both implementations compile and run "
        f"them); {rounds} rounds x {per_round} calls per implementation, phase and rule; "
        "times are per call, the median of the rule's medians over the group"
    )
    section.data = {"per_rule": per_rule, "summary": summary}
    return summary


def fmt_us(seconds: float | None) -> str:
    """A per-call time in microseconds (a rule evaluates in a few), or an em dash."""
    return "—" if seconds is None else f"{seconds * 1e6:.1f} µs"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 6)


def main(argv: list[str] | None = None) -> int:
    """Judge both implementations, time them, print the markdown, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds per rule and phase (7)")
    parser.add_argument("--per-round", type=int, default=30, help="calls per round (30)")
    parser.add_argument(
        "--quick", action="store_true", help="every case judged, 12 rules timed briefly (CI)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    report = Report(
        "cel",
        "quick" if args.quick else "full",
        command_line("bench_cel.py", argv),
        env=environment(["cel-python", "lark", "google-re2"]),
    )
    totals = faithfulness(report, CASES)
    if args.quick:
        # Every group's first case, then every tenth: a spread, briefly.
        sample = tuple(dict.fromkeys([*{c.group: c for c in CASES[::-1]}.values(), *CASES[::10]]))
        summary = speed(report, sample[:12], rounds=3, per_round=5)
    else:
        summary = speed(report, CASES, rounds=args.rounds, per_round=args.per_round)
    report.sections[0].data["speed_summary"] = summary
    json_path, md_path = report.write(args.out)
    print(report.markdown())
    print("faithfulness totals:", totals)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
