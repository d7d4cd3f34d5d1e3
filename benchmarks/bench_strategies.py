"""Which strategy finds each race first, and how small its failure shrinks.

    python benchmarks/bench_strategies.py [--schedules K] [--replays R] [--seed N]
                                          [--quick] [--out DIR]

Subjects, each one exploration test in a directory of its own, run in fresh pytest
processes:

* the six historical variants of the reference controller (``nrkit.VARIANT_CASES``), each
  on its designated scenario of ``tests/validation/test_variants_scenarios.py`` made an
  exploration of K schedules (default 50) with the default ``Space``;
* three races in small test operators (``tests/operators_fixtures``): a duplicate child
  created by two replicas from their lists (``children``), a webhook called before the call
  is claimed in status (``webhook_claim``), a stale view overwriting a newer spec-derived
  value (``stale_spec``); each twice: with the test's own assertions, and with none
  ("oracles only": only the built-in oracles judge).

Per subject and strategy (``random``, ``pct``, ``exhaustive``, ``plans``): ``pytest -x`` with
``--ntinv-strategy``, no shrinking: the schedules run up to and including the first
failure, and the wall seconds from the end of collection to that failure (a learning run,
for the strategies that have one, is in the time and not in the count).

Then per subject, the default strategy's first failure is shrunk (``--ntinv-shrink`` at its
default), and the shrunk run's token is replayed R times (default 5), each in a fresh
process: the perturbations and the deviations from arrival order left, and how many
replays failed again.

Targets: every subject found within 50 schedules by the default strategy; at most 2
perturbations left after shrinking; every replay of a shrunk token fails again.
``--quick``: the duplicate child and one variant (``record-twice``), 10 schedules, 2
replays.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "validation"))
sys.path.insert(0, str(ROOT / "tests"))

from _harness import Report, Target, command_line, environment, operators_dir  # noqa: E402
from nrkit import INNER_ADDOPTS, INNER_MODULE, VARIANT_CASES, variant_suite  # noqa: E402
from operators_fixtures import children  # noqa: E402

STRATEGIES = ("random", "pct", "exhaustive", "plans")
DEFAULT = "random"
TARGET_SCHEDULES = 50
TARGET_PERTURBATIONS = 2

#: Loaded with ``-p``: when collection ended, and each item's outcome, in run order.
RECORDER = '''
"""Record when collection ended and every item's outcome into $NTINV_BENCH_RECORD."""

import json
import os
import time

_RECORD = {"collected_at": None, "items": []}


def pytest_collection_finish(session):
    _RECORD["collected_at"] = time.perf_counter()


def pytest_runtest_logreport(report):
    items = _RECORD["items"]
    if not items or items[-1]["nodeid"] != report.nodeid:
        items.append({"nodeid": report.nodeid, "outcome": "passed"})
    if report.failed:
        items[-1]["outcome"] = "failed"
        items[-1].setdefault("at", time.perf_counter() - _RECORD["collected_at"])
    elif report.skipped:
        items[-1]["outcome"] = "skipped"


def pytest_sessionfinish(session):
    with open(os.environ["NTINV_BENCH_RECORD"], "w") as f:
        json.dump(_RECORD, f)
'''


@dataclass
class Subject:
    """One race to find: its directory and the pytest arguments that select its test."""

    name: str
    work: Path
    select: list[str]
    found: dict[str, dict[str, Any]] = field(default_factory=dict)  # strategy -> figures
    shrunk: dict[str, Any] = field(default_factory=dict)
    replays: list[str] = field(default_factory=list)
    note: str = ""


def inner(work: Path, args: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run pytest in ``work`` (a fresh process): the recorder's record and the JSON report."""
    record, report = work / "record.json", work / "ntinv.json"
    for path in (record, report):
        path.unlink(missing_ok=True)
    env = {**os.environ, "NTINV_BENCH_RECORD": str(record)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
               "-p", "_strategy_recorder", f"--ntinv-json={report}", *args]  # fmt: skip
    proc = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode not in (0, 1) or not record.exists():
        raise RuntimeError(
            f"{shlex.join(command)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    doc = json.loads(report.read_text()) if report.exists() else {"tests": []}
    return json.loads(record.read_text()), doc


def first_failure(subject: Subject, strategy: str, seed: int) -> None:
    """Schedules and seconds to ``subject``'s first failure with ``strategy``."""
    record, _ = inner(
        subject.work,
        [*subject.select, "-x", f"--ntinv-seed={seed}", f"--ntinv-strategy={strategy}",
         "--ntinv-shrink=0"],
    )  # fmt: skip
    items = [i for i in record["items"] if i["outcome"] != "skipped"]
    failed = next((n for n, i in enumerate(items, 1) if i["outcome"] == "failed"), None)
    subject.found[strategy] = {
        "schedules": failed,
        "ran": len(items),
        "seconds": items[failed - 1]["at"] if failed else None,
    }


def shrink_and_replay(subject: Subject, seed: int, times: int) -> None:
    """Shrink the default strategy's first failure; replay the shrunk token ``times``."""
    _, doc = inner(
        subject.work,
        [*subject.select, "-x", f"--ntinv-seed={seed}", f"--ntinv-strategy={DEFAULT}"],
    )
    failing = [t for t in doc["tests"] if t.get("shrunk")]
    if not failing:
        subject.note = subject.note or "no shrunk failure"
        return
    entry = failing[0]
    subject.shrunk = {"nodeid": entry["nodeid"], **entry["shrunk"]}
    for _ in range(times):
        record, _ = inner(
            subject.work,
            [entry["nodeid"], f"--ntinv-replay={entry['shrunk']['token']}", "--ntinv-shrink=0"],
        )
        outcomes = [i["outcome"] for i in record["items"] if i["nodeid"] == entry["nodeid"]]
        subject.replays.append(outcomes[0] if outcomes else "not run")


def variant_subject(root: Path, case: Any, schedules: int) -> Subject:
    """A historical variant's designated scenario, explored."""
    work = root / f"variant-{case.variant}"
    work.mkdir(parents=True)
    for name, text in variant_suite([case.variant]).items():
        if name == INNER_MODULE:  # its scenario, as an exploration
            text += (
                f"\n\n{case.scenario} = pytest.mark.ntinv_explore(schedules={schedules})"
                f"({case.scenario})\n"
            )
        (work / name).write_text(text)
    (work / "_strategy_recorder.py").write_text(textwrap.dedent(RECORDER))
    return Subject(f"variant {case.variant}", work, [INNER_MODULE, "-k", case.scenario])


def operator_subject(root: Path, name: str, module_text: str) -> Subject:
    """A test operator's race module (``operators_fixtures`` importable)."""
    files = {"test_race.py": module_text, "_strategy_recorder.py": textwrap.dedent(RECORDER)}
    work = operators_dir(root / name.replace(" ", "-"), INNER_ADDOPTS, files)
    return Subject(name, work, ["test_race.py"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=TARGET_SCHEDULES)
    parser.add_argument("--replays", type=int, default=5, help="replays of each shrunk token")
    parser.add_argument("--seed", type=int, default=None, help="session seed (default random)")
    parser.add_argument("--quick", action="store_true", help="2 subjects, 10 schedules")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    args = parser.parse_args(argv)
    schedules = 10 if args.quick else args.schedules
    times = 2 if args.quick else args.replays
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    command = command_line("bench_strategies.py", argv)
    report = Report(
        "strategies", "quick" if args.quick else "full", command,
        env={**environment(["kopf", "pytest"]), "seed": seed, "schedules": schedules},
    )  # fmt: skip
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-strategies-") as tmp:
        root = Path(tmp)
        subjects = [
            operator_subject(root, "duplicate child", children.race_test(schedules)),
        ]
        cases = [c for c in VARIANT_CASES if not args.quick or c.variant == "record-twice"]
        if not args.quick:
            from operators_fixtures import stale_spec, webhook_claim

            subjects += [
                operator_subject(root, "webhook before claim", webhook_claim.race_test(schedules)),
                operator_subject(root, "stale spec overwrite", stale_spec.race_test(schedules)),
            ]
            subjects += [
                operator_subject(
                    root, f"{name}, oracles only", module.race_test(schedules, checks=False)
                )
                for name, module in (
                    ("duplicate child", children),
                    ("webhook before claim", webhook_claim),
                    ("stale spec overwrite", stale_spec),
                )
            ]
        subjects += [variant_subject(root, c, schedules) for c in cases]
        for subject in subjects:
            for strategy in STRATEGIES:
                first_failure(subject, strategy, seed)
            shrink_and_replay(subject, seed, times)
    write(report, args.out, subjects, schedules, times, time.perf_counter() - started)
    return 0 if all(t.met for t in report.targets) else 1


def write(
    report: Report, out: Path, subjects: list[Subject], schedules: int, times: int, wall: float
) -> None:
    """The tables and targets; written as strategies.json/.md and printed."""
    found = report.section(
        f"Schedules (and wall seconds) to the first failure, of {schedules}",
        ["subject", *STRATEGIES],
    )
    for s in subjects:
        row: dict[str, Any] = {"subject": s.name}
        for strategy in STRATEGIES:
            f = s.found.get(strategy, {})
            row[strategy] = (
                f"{f['schedules']} ({f['seconds']:.2f}s)"
                if f.get("schedules")
                else f"not found in {f.get('ran', 0)}"
            )
        found.add(**row)
        found.data[s.name] = s.found
    shrunk = report.section(
        f"The default strategy's ({DEFAULT}) first failure, shrunk, and its token replayed",
        ["subject", "perturbations left (before)", "deviations left (before)", "shrink runs",
         "shrink s", f"replays failed again (of {times})"],
    )  # fmt: skip
    for s in subjects:
        k = s.shrunk
        shrunk.add(**{
            "subject": s.name,
            "perturbations left (before)":
                f"{len(k['perturbations'])} ({k['perturbations_before']})" if k else "—",
            "deviations left (before)":
                f"{len(k['deviations'])} ({k['deviations_before']})" if k else "—",
            "shrink runs": k.get("runs", "—"),
            "shrink s": f"{k['seconds']:.1f}" if k else "—",
            f"replays failed again (of {times})": sum(r == "failed" for r in s.replays),
        })  # fmt: skip
        shrunk.data[s.name] = {**k, "replays": s.replays}
        if k.get("perturbations"):
            shrunk.notes.append(f"{s.name}: {'; '.join(k['perturbations'])}")
        if s.note:
            shrunk.notes.append(f"{s.name}: {s.note}")
    worst = max((s.found.get(DEFAULT, {}).get("schedules") or 10**6) for s in subjects)
    report.target(
        Target("every subject found by the default strategy within 50 schedules",
               float(worst), float(TARGET_SCHEDULES), "schedules",
               "the most schedules any subject needed (10^6: one was not found)")
    )  # fmt: skip
    left = max((len(s.shrunk.get("perturbations", [])) if s.shrunk else 99) for s in subjects)
    report.target(
        Target("at most 2 perturbations left after shrinking", float(left),
               float(TARGET_PERTURBATIONS), "perturbations",
               "the most any shrunk failure kept (99: one was not shrunk)")
    )  # fmt: skip
    misses = sum(times - sum(r == "failed" for r in s.replays) for s in subjects)
    report.target(
        Target("every replay of a shrunk token fails again", float(misses), 0.0, "replays",
               "replays, over all subjects, that did not fail")
    )  # fmt: skip
    found.notes.append(f"wall time of the whole benchmark: {wall:.0f}s")
    report.write(out)
    print(report.markdown())


if __name__ == "__main__":
    raise SystemExit(main())
