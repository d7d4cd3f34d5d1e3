"""Exact replay: a failing deterministic run's printed replay command fails again, with the
same ledger digest, in fresh pytest processes.

    python benchmarks/bench_replay.py [--replays R] [--seed N] [--quick] [--out DIR]

Cases, each a failing item found in a first pytest process (session seed ``--seed``,
random by default):

* the hidden duplicate: the seed's final fix (``timestamp-window``) on the two schedules
  of held stale events (``test_http_400_is_permanent_and_not_retried``,
  ``test_successful_delivery_is_recorded_once``), as ``test_the_hidden_duplicate_shown``
  in ``tests/validation/test_variants.py`` runs them;
* each of the six historical variants on its designated schedule (``nrkit.VARIANT_CASES``),
  in the self-contained directory ``nrkit.variant_suite`` writes, as
  ``test_variants.py`` runs them;
* the two-replica duplicate-child race (``tests/operators_fixtures/children.py``),
  explored with no perturbation at all (only the engine's order of releases differs), as
  in ``tests/test_sim_replay.py``: the first failing schedule.

For each, the failure's "ntinvariants replay" report section gives a digest and a replay
command (``pytest <nodeid> -p no:randomly --ntinv-seed=N`` or ``--ntinv-replay=SEED``).
The command then runs R times (default 5), each in a fresh pytest process in the same
directory. Per case: the replays that failed again, and those whose digest (from the
JSON report) equals the original failure's. Target: R/R and R/R for every case.
``--quick``: the race and one variant (``record-twice``), 2 replays each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "tests" / "validation"))
sys.path.insert(0, str(ROOT / "tests"))

from _harness import Report, Target, command_line, environment, operators_dir  # noqa: E402
from nrkit import INNER_ADDOPTS, INNER_MODULE, VARIANT_CASES, variant_suite  # noqa: E402
from operators_fixtures.children import race_test  # noqa: E402

#: The hidden duplicate's schedules (test_variants.py, ``HELD_SCENARIOS``).
HELD = ("test_http_400_is_permanent_and_not_retried", "test_successful_delivery_is_recorded_once")
HIDDEN = "timestamp-window"

#: Written into each run directory and loaded with ``-p``: every item's call outcome and
#: its "ntinvariants replay" section, into ``$NTINV_BENCH_RECORD``.
RECORDER = '''
"""Record each item's outcome and replay section into $NTINV_BENCH_RECORD."""

import json
import os

_ITEMS = {}


def pytest_runtest_logreport(report):
    item = _ITEMS.setdefault(report.nodeid, {"outcome": "passed", "replay": ""})
    if report.failed:
        item["outcome"] = "failed"
    for name, text in report.sections:
        if name.endswith("ntinvariants replay"):
            item["replay"] = text


def pytest_sessionfinish(session):
    with open(os.environ["NTINV_BENCH_RECORD"], "w") as f:
        json.dump(_ITEMS, f)
'''

RACE_SCHEDULES = 24


@dataclass
class Outcome:
    """One item of one inner run."""

    outcome: str
    replay: str  # the report section (empty when the item passed)
    digest: str | None  # from the JSON report


@dataclass
class Case:
    """A failing item and its replays."""

    name: str
    work: Path
    nodeid: str = ""
    digest: str = ""  # the original failure's, from its report section
    json_digest: str | None = None
    command: list[str] = field(default_factory=list)
    replays: list[Outcome] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    note: str = ""


def inner(work: Path, args: list[str]) -> dict[str, Outcome]:
    """Run pytest in ``work`` (a fresh process) with ``args``; every item's outcome."""
    record, report = work / "record.json", work / "ntinv.json"
    for path in (record, report):
        path.unlink(missing_ok=True)
    env = {**os.environ, "NTINV_BENCH_RECORD": str(record)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "_replay_recorder",
               f"--ntinv-json={report}", *args]  # fmt: skip
    proc = subprocess.run(
        command, cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if proc.returncode not in (0, 1) or not record.exists() or not report.exists():
        raise RuntimeError(
            f"{shlex.join(command)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
            f"{proc.stderr[-3000:]}"
        )
    digests = {t["nodeid"]: t.get("digest") for t in json.loads(report.read_text())["tests"]}
    return {
        nodeid: Outcome(item["outcome"], item["replay"], digests.get(nodeid))
        for nodeid, item in json.loads(record.read_text()).items()
    }


def variants_dir(work: Path, strategies: list[str]) -> Path:
    """The validation suite's self-contained directory running ``strategies``."""
    work.mkdir(parents=True)
    for name, text in variant_suite(strategies).items():
        (work / name).write_text(text)
    (work / "_replay_recorder.py").write_text(textwrap.dedent(RECORDER))
    return work


def race_dir(work: Path) -> Path:
    """A directory with the duplicate-child race (``operators_fixtures`` importable)."""
    files = {
        "test_race.py": race_test(RACE_SCHEDULES),
        "_replay_recorder.py": textwrap.dedent(RECORDER),
    }
    return operators_dir(work, INNER_ADDOPTS, files)


def take_failure(case: Case, items: dict[str, Outcome], nodeids: list[str]) -> None:
    """Fill ``case`` from the first of ``nodeids`` that failed (in run order)."""
    for nodeid in nodeids:
        got = items.get(nodeid)
        if got is None or got.outcome != "failed":
            continue
        digest = re.search(r"^digest: (\w+)", got.replay, re.M)
        replay = re.search(r"^replay: (.*)$", got.replay, re.M)
        if digest is None or replay is None:
            case.note = f"{nodeid} failed without a digest and replay line"
            return
        words = shlex.split(replay.group(1))
        if words[:1] != ["pytest"]:
            case.note = f"unexpected replay command {replay.group(1)!r}"
            return
        case.nodeid, case.digest, case.json_digest = nodeid, digest.group(1), got.digest
        case.command = words[1:]
        return
    case.note = f"no failing item among {len(nodeids)}"


def replay(case: Case, times: int) -> None:
    """Run the case's replay command ``times`` times, each a fresh process."""
    for _ in range(times if case.command else 0):
        started = time.perf_counter()
        items = inner(case.work, case.command)
        case.seconds.append(time.perf_counter() - started)
        got = items.get(case.nodeid)
        case.replays.append(got if got is not None else Outcome("not run", "", None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replays", type=int, default=5, help="replays per case (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="session seed (default random)")
    parser.add_argument("--quick", action="store_true", help="the race and one variant, 2 replays")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    args = parser.parse_args(argv)
    times = 2 if args.quick else args.replays
    if times < 1:
        parser.error("--replays must be >= 1")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    command = command_line("bench_replay.py", argv)
    report = ReplayReport(
        "replay", "quick" if args.quick else "full", command,
        env={**environment(["kopf", "pytest"]), "seed": seed, "replays": times},
    )  # fmt: skip
    variant_cases = [c for c in VARIANT_CASES if not args.quick or c.variant == "record-twice"]
    cases: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        # One first run for the variants and the hidden duplicate: exactly their items.
        strategies = list(dict.fromkeys([c.variant for c in variant_cases]))
        if not args.quick:
            strategies = list(dict.fromkeys([*strategies, HIDDEN]))
        work = variants_dir(Path(tmp) / "variants", strategies)
        wanted = {
            f"hidden duplicate: {HIDDEN} on {s}": [f"{INNER_MODULE}::{s}[{HIDDEN}]"]
            for s in (() if args.quick else HELD)
        }
        for c in variant_cases:
            wanted[f"variant {c.variant} on {c.scenario}"] = [
                f"{INNER_MODULE}::{c.scenario}[{c.variant}]"
            ]
        first = inner(work, [*(n for ns in wanted.values() for n in ns), f"--ntinv-seed={seed}"])
        for name, nodeids in wanted.items():
            case = Case(name, work)
            take_failure(case, first, nodeids)
            cases.append(case)
        race = race_dir(Path(tmp) / "race")
        found = inner(race, [f"--ntinv-seed={seed}"])
        case = Case("duplicate-child race (2 replicas, no perturbation)", race)
        take_failure(case, found, list(found))
        case.note = case.note or f"{sum(o.outcome == 'failed' for o in found.values())}/" \
            f"{len(found)} schedules failed in the first run"  # fmt: skip
        cases.append(case)
        for case in cases:
            replay(case, times)
    return write(report, args.out, cases, times, seed)


class ReplayReport(Report):
    """Markdown in the style of ``bench_schedules.py``: a title, a table, Target lines."""

    text = ""

    def markdown(self) -> str:
        """The text written to ``replay.md`` and printed."""
        return self.text


def write(report: ReplayReport, out: Path, cases: list[Case], times: int, seed: int) -> int:
    """Fill the report: a table, one Target line per case; write it, print the markdown."""
    section = report.section(
        "Replays of the first failing item, each a fresh pytest process",
        ["case", "failing item", "digest", "failed again", "identical digest",
         "median s per replay", "replay command"],
    )  # fmt: skip
    lines = [
        "# Exact replay of failing deterministic runs",
        "",
        f"Session seed {seed} for the first runs; {times} replays per case.",
        "",
    ]
    targets = []
    for case in cases:
        again = sum(r.outcome == "failed" for r in case.replays)
        same = sum(r.digest == case.digest for r in case.replays)
        seconds = sorted(case.seconds)
        section.add(**{
            "case": case.name,
            "failing item": case.nodeid or "—",
            "digest": case.digest or "—",
            "failed again": f"{again}/{times}",
            "identical digest": f"{same}/{times}",
            "median s per replay": f"{seconds[len(seconds) // 2]:.1f}" if seconds else "—",
            "replay command": f"`pytest {shlex.join(case.command)}`" if case.command else "—",
        })  # fmt: skip
        if case.note:
            section.notes.append(f"{case.name}: {case.note}.")
        if case.json_digest is not None and case.json_digest != case.digest:
            section.notes.append(
                f"{case.name}: the report section's digest {case.digest} differs from the "
                f"JSON report's {case.json_digest}."
            )
        section.data[case.name] = {
            "nodeid": case.nodeid,
            "digest": case.digest,
            "json_digest": case.json_digest,
            "command": case.command,
            "replays": [{"outcome": r.outcome, "digest": r.digest} for r in case.replays],
            "seconds": case.seconds,
        }
        misses = (times - again) + (times - same) if case.command else 2 * times
        targets.append(
            report.target(
                Target(
                    f"{case.name}: replays failing again with the identical digest",
                    misses, 0, "misses",
                    f"failed again {again}/{times}, identical digest {same}/{times}",
                )
            )
        )  # fmt: skip
    lines += ["#" + section.markdown().removeprefix("###"), ""]
    for target in targets:
        lines += [
            f"Target: {target.name.replace(': replays', ' replays')}, {times}/{times} and "
            f"{times}/{times}: {'met' if target.met else 'NOT met'} ({target.measured_as}).",
            "",
        ]
    report.text = "\n".join(lines)
    json_path, md_path = report.write(out)
    print(report.text)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
