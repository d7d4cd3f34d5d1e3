"""Time to detection of the seed's historical variants, and how often they are caught.

Each variant of ``tests/reference_controller/variants.py`` runs K times on the schedule of
``tests/validation/test_variants_scenarios.py`` that catches it (``nrkit.VARIANT_CASES``),
and the reference controller runs K times on the same schedules. One run is one pytest
item in a separate ``pytest`` process, exactly as a user runs the validation suite; its
time to detection is the item's setup plus call time (replicas started, body run, the
system let settle, invariants checked and the report written), from pytest's own reports.
The detection rate counts runs in which every expected invariant was named.

    python benchmarks/bench_variants.py              # K=5, about 30 s
    python benchmarks/bench_variants.py --runs 20    # tighter medians
    python benchmarks/bench_variants.py --matrix     # every variant on every schedule

Results: ``benchmarks/results/variants.md`` and ``variants.json`` (the markdown is printed).
Nothing here asserts a time: the figures describe this machine on this run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "validation"))

from _harness import Report, command_line, environment  # noqa: E402
from nrkit import REFERENCE, VARIANT_CASES, VariantCase, strategy_of, variant_suite  # noqa: E402

#: The original suite's recorded-count specs on held stale events (the hidden duplicate).
HELD = ("test_http_400_is_permanent_and_not_retried", "test_successful_delivery_is_recorded_once")

#: A pytest plugin written into the run directory: setup+call time and outcome per item.
_TIMER = '''
"""Record each item's setup+call seconds and call outcome into $NTINV_BENCH_TIMES."""

import json
import os

_ITEMS = {}


def pytest_runtest_logreport(report):
    item = _ITEMS.setdefault(report.nodeid, {"seconds": 0.0, "outcome": "passed"})
    if report.when in ("setup", "call"):
        item["seconds"] += report.duration
    if report.failed and report.when in ("setup", "call"):
        item["outcome"] = "failed" if report.when == "call" else "error"


def pytest_sessionfinish(session):
    with open(os.environ["NTINV_BENCH_TIMES"], "w") as f:
        json.dump(_ITEMS, f)
'''


@dataclass
class Run:
    """One item: which strategy ran which scenario, how long, and what was violated."""

    scenario: str
    strategy: str
    seconds: float
    outcome: str
    violated: tuple[str, ...]


@dataclass
class Batch:
    """The runs of one ``pytest`` process."""

    runs: list[Run] = field(default_factory=list)
    wall: float = 0.0


def run_batch(
    strategies: Sequence[str], scenarios: Sequence[str], repeats: int, seed: int, work: Path
) -> Batch:
    """Run ``scenarios`` x ``strategies`` x ``repeats`` in one pytest process in ``work``."""
    work.mkdir(parents=True)
    for name, text in variant_suite(strategies, repeats=repeats).items():
        (work / name).write_text(text)
    (work / "_variants_timer.py").write_text(textwrap.dedent(_TIMER))
    times, report = work / "times.json", work / "ntinv.json"
    command = [
        sys.executable, "-m", "pytest", str(work), "-q", "-p", "_variants_timer",
        f"--ntinv-seed={seed}", f"--ntinv-json={report}", "-k", " or ".join(scenarios),
    ]  # fmt: skip
    env = {**os.environ, "NTINV_BENCH_TIMES": str(times)}
    started = _now()
    proc = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    wall = _now() - started
    if proc.returncode not in (0, 1) or not times.exists():
        raise RuntimeError(
            f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    violated = {
        t["nodeid"]: tuple(sorted({v["invariant"] for v in t["violations"]}))
        for t in json.loads(report.read_text())["tests"]
    }
    batch = Batch(wall=wall)
    for nodeid, item in json.loads(times.read_text()).items():
        strategy = strategy_of(nodeid, strategies)
        scenario = nodeid.split("::")[-1].partition("[")[0]
        if strategy is None:
            raise RuntimeError(f"cannot tell the strategy of {nodeid}")
        batch.runs.append(
            Run(scenario, strategy, item["seconds"], item["outcome"], violated.get(nodeid, ()))
        )
    return batch


def _now() -> float:
    import time

    return time.perf_counter()


class VariantsReport(Report):
    """A ``Report`` without the targets table: detection times are figures, not goals."""

    def markdown(self) -> str:
        """The header, then every table."""
        env = self.env
        lines = [
            f"## Benchmark `{self.name}` ({self.mode})",
            "",
            f"`{self.command}` — started {self.started}, {env.get('python', '?')} on "
            f"{env.get('cpus', '?')} CPUs, load {env.get('loadavg_at_start', '?')}, session "
            f"seed {env.get('seed')}, {env.get('runs')} runs per strategy and schedule",
        ]
        for section in self.sections:
            lines.extend(["", section.markdown()])
        return "\n".join(lines) + "\n"


def caught(run: Run, case: VariantCase) -> bool:
    """Whether the run failed naming every invariant the case expects."""
    return run.outcome == "failed" and set(case.invariants) <= set(run.violated)


def _ms(values: Iterable[float]) -> str:
    values = list(values)
    return f"{statistics.median(values) * 1000:.0f}" if values else "—"


def main(argv: list[str] | None = None) -> int:
    """Run the variants and the reference, write and print the tables; 0 unless it broke."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="session seed (default random)")
    parser.add_argument(
        "--matrix", action="store_true", help="also run every variant on every schedule"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    command = command_line("bench_variants.py", argv)
    report = VariantsReport(
        "variants",
        "matrix" if args.matrix else "designated",
        command,
        env={**environment(["kopf", "aiohttp", "pytest"]), "seed": seed, "runs": args.runs},
    )
    by_scenario: dict[str, list[str]] = {}
    for case in VARIANT_CASES:
        by_scenario.setdefault(case.scenario, []).append(case.variant)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        for i, (scenario, names) in enumerate(by_scenario.items()):
            batch = run_batch([*names, REFERENCE], [scenario], args.runs, seed, Path(tmp) / str(i))
            runs.extend(batch.runs)
        held = run_batch(
            ["timestamp-window", REFERENCE], HELD, args.runs, seed, Path(tmp) / "held"
        ).runs
        matrix: list[Run] = []
        if args.matrix:
            scenarios = _scenario_names()
            strategies = [case.variant for case in VARIANT_CASES] + [REFERENCE]
            matrix = run_batch(strategies, scenarios, args.runs, seed, Path(tmp) / "matrix").runs

    table = report.section(
        "Time to detection, per variant (its designated schedule)",
        ["variant", "caught by", "schedule", "perturbation needed", "detected", "median ms",
         "min ms", "max ms", "also named"],
    )  # fmt: skip
    table.notes.append(
        "ms: the failing item's setup + call time (replicas started, body, settle, "
        "invariants checked, report written), median over the runs that detected it."
    )
    for case in VARIANT_CASES:
        mine = [r for r in runs if r.strategy == case.variant and r.scenario == case.scenario]
        hits = [r for r in mine if caught(r, case)]
        also = sorted({v for r in hits for v in r.violated} - set(case.invariants))
        table.add(**{
            "variant": case.variant,
            "caught by": ", ".join(case.invariants),
            "schedule": case.scenario,
            "perturbation needed": case.perturbation,
            "detected": f"{len(hits)}/{len(mine)}",
            "median ms": _ms(r.seconds for r in hits),
            "min ms": f"{min(r.seconds for r in hits) * 1000:.0f}" if hits else "—",
            "max ms": f"{max(r.seconds for r in hits) * 1000:.0f}" if hits else "—",
            "also named": ", ".join(also) or "—",
        })  # fmt: skip
        table.data[case.variant] = {
            "scenario": case.scenario,
            "seconds": [r.seconds for r in mine],
            "detected": [caught(r, case) for r in mine],
        }
    ref = report.section(
        "The reference controller on the same schedules",
        ["schedule", "passed", "median ms", "violations seen"],
    )
    for scenario in by_scenario:
        mine = [r for r in runs if r.strategy == REFERENCE and r.scenario == scenario]
        seen = sorted({v for r in mine for v in r.violated})
        ref.add(**{
            "schedule": scenario,
            "passed": f"{sum(r.outcome == 'passed' for r in mine)}/{len(mine)}",
            "median ms": _ms(r.seconds for r in mine),
            "violations seen": ", ".join(seen) or "none",
        })  # fmt: skip
    hidden = report.section(
        "The hidden duplicate: the seed's final fix on held stale events",
        ["schedule", "strategy", "failed", "invariants named", "median ms"],
    )
    hidden.notes.append(
        "The bodies assert the original suite's recorded counts (TotalAttempts == 1, ...); "
        "the replica's events are held from its first status write until the object is "
        "terminal, so the stale reconcile happens in every run."
    )
    for scenario in HELD:
        for strategy in ("timestamp-window", REFERENCE):
            mine = [r for r in held if r.strategy == strategy and r.scenario == scenario]
            hidden.add(**{
                "schedule": scenario,
                "strategy": strategy,
                "failed": f"{sum(r.outcome != 'passed' for r in mine)}/{len(mine)}",
                "invariants named": ", ".join(sorted({v for r in mine for v in r.violated}))
                or "none",
                "median ms": _ms(r.seconds for r in mine),
            })  # fmt: skip
    if matrix:
        _matrix_section(report, matrix)
    json_path, md_path = report.write(args.out)
    print(report.markdown())
    print(f"wrote {json_path} and {md_path}")
    return 0


def _scenario_names() -> list[str]:
    """The test functions of the scenario module, in file order."""
    import ast

    from nrkit import VARIANT_SCENARIOS

    tree = ast.parse(VARIANT_SCENARIOS.read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name[:5] == "test_"]


def _matrix_section(report: Report, matrix: list[Run]) -> None:
    scenarios = list(dict.fromkeys(r.scenario for r in matrix))
    section = report.section(
        "Every strategy on every schedule: runs failed / runs (invariants named)",
        ["strategy", *scenarios],
    )
    section.notes.append(
        "A cell lists the invariants named in any failing run; '—' means every run passed."
    )
    for strategy in dict.fromkeys(r.strategy for r in matrix):
        row: dict[str, Any] = {"strategy": strategy}
        for scenario in scenarios:
            mine = [r for r in matrix if r.strategy == strategy and r.scenario == scenario]
            failed = [r for r in mine if r.outcome != "passed"]
            names = sorted({v for r in failed for v in r.violated})
            row[scenario] = (
                f"{len(failed)}/{len(mine)} ({', '.join(names) or 'no invariant'})"
                if failed
                else f"0/{len(mine)} —"
            )
        section.add(**row)


if __name__ == "__main__":
    raise SystemExit(main())
