"""Memory over a long session: does a finished operator test leave anything behind?

    python benchmarks/bench_memory.py [--tests N] [--before REV] [--quick] [--out DIR]

Runs N operator tests in ONE pytest session, in a subprocess, as a user runs a suite:
each test starts the fake API server, two kopf replicas of the reference controller
(through ``@pytest.mark.ntinv_replicas``, with the validation suite's conftest: fake Slack
and webhook endpoints), delivers one NotificationRequest to Slack and the console until
it is Sent, and the plugin checks every invariant. A conftest hook reads the session's
resident set size from ``/proc/self/statm`` after every test (no forced garbage
collection: what a user's session holds). The figure is the growth from test K
(default 10, once imports and caches have settled) to test N.

Baselines in the same run, each one more session of the same length:

* the floor: N bare tests (``def test(i): pass``) in the same directory, with the same
  conftests and plugins loaded: what pytest itself keeps per test (its reports);
* with ``--before REV``: the same operator tests against the plugin as it was at git
  revision REV (``git archive`` into a temporary directory that comes first on
  ``PYTHONPATH``; the session's header line says which package it imported).

Target: the operator session grows by less than 10 MB from test K to test N.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, Report, Target, environment, pytest_args

TARGET_MB = 10.0
MB = 1024 * 1024

# Reads the session's RSS after every test; ``pytest_runtest_logfinish`` runs once the
# test's teardown is over, so everything the test released is released by then.
PROBE = """
import os

import pytest_ntinvariants

_OUT = os.environ["NTINV_BENCH_RSS"]
_PAGE = os.sysconf("SC_PAGE_SIZE")


def pytest_sessionstart(session):
    with open(_OUT, "a") as out:
        out.write(f"package {os.path.dirname(pytest_ntinvariants.__file__)}\\n")


def pytest_runtest_logfinish(nodeid, location):
    with open("/proc/self/statm") as statm:
        resident = int(statm.read().split()[1]) * _PAGE
    with open(_OUT, "a") as out:
        out.write(f"rss {resident}\\n")
"""

SUBJECT = """
import pytest
from nrkit import NR_INVARIANTS, nr, wait_terminal

pytestmark = [NR_INVARIANTS]


@pytest.mark.ntinv_replicas(2)
@pytest.mark.parametrize("i", range({n}))
def test_operator(ntinv, i):
    ntinv.apply(nr("nr-1", ["console", "slack"]))
    assert wait_terminal(ntinv, "nr-1")["status"]["phase"] == "Sent"
"""

FLOOR = """
import pytest


@pytest.mark.parametrize("i", range({n}))
def test_bare(i):
    pass
"""


@dataclass
class Session:
    """One pytest session's RSS after each of its tests, and which plugin code it ran."""

    name: str
    code: str  # what the plugin was: "this checkout" or "git REV"
    package: str  # the directory pytest_ntinvariants was imported from
    rss: list[int]  # bytes, after test 1, 2, ...
    wall_s: float

    def at(self, test: int) -> float:
        """RSS in MB after test number ``test`` (1-based)."""
        return self.rss[test - 1] / MB

    def growth(self, first: int) -> float:
        """MB from after test ``first`` to after the last test."""
        return self.at(len(self.rss)) - self.at(first)

    def peak_growth(self, first: int) -> float:
        """The most RSS grew above its value after test ``first``, in MB."""
        return max(self.rss[first - 1 :]) / MB - self.at(first)


def run_session(
    name: str, code: str, test_file: Path, pythonpath: Path, expect_package: Path, n: int
) -> Session:
    """Run one pytest session over ``test_file`` in a subprocess; its RSS samples."""
    samples = test_file.with_suffix(".rss")
    samples.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(pythonpath), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["NTINV_BENCH_RSS"] = str(samples)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args(test_file, "-p", "no:randomly")],
        # Not the checkout: ``python -m`` puts the working directory first on sys.path,
        # which would import this checkout's plugin ahead of PYTHONPATH's.
        cwd=test_file.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(
            f"the {name} session failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        )
    lines = samples.read_text().splitlines()
    package = next(line.split(" ", 1)[1] for line in lines if line.startswith("package "))
    if Path(package).resolve() != expect_package.resolve():
        raise SystemExit(f"the {name} session imported {package}, not {expect_package}")
    rss = [int(line.split()[1]) for line in lines if line.startswith("rss ")]
    if len(rss) != n:
        raise SystemExit(f"the {name} session sampled {len(rss)} tests, not {n}")
    return Session(name, code, package, rss, wall)


def checkout(rev: str, into: Path) -> Path:
    """The plugin and the reference controller as they were at ``rev``, in ``into``."""
    resolved = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        [
            "git",
            "-C",
            str(ROOT),
            "archive",
            resolved,
            "pytest_ntinvariants",
            "reference_controller",
        ],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(n: int, before: str | None) -> list[Session]:
    """The operator session with this checkout, the floor, and the one at ``before``."""
    # Inside tests/validation, so its conftest (the reference controller as the
    # ntinv_operator, the fake endpoints) applies exactly as in the suite.
    with tempfile.TemporaryDirectory(prefix="bench-", dir=ROOT / "tests" / "validation") as tmp:
        here = Path(tmp)
        (here / "conftest.py").write_text(textwrap.dedent(PROBE))
        subject = here / "test_memory_operator.py"
        subject.write_text(textwrap.dedent(SUBJECT.format(n=n)))
        floor = here / "test_memory_floor.py"
        floor.write_text(textwrap.dedent(FLOOR.format(n=n)))
        this = ROOT / "pytest_ntinvariants"
        sessions = [
            run_session("operator tests", "this checkout", subject, ROOT, this, n),
            run_session("floor: bare tests", "this checkout", floor, ROOT, this, n),
        ]
        if before is not None:
            with tempfile.TemporaryDirectory(prefix="bench-before-") as old:
                code = checkout(before, Path(old))
                sessions.append(
                    run_session(
                        "operator tests",
                        f"git {before}",
                        subject,
                        code,
                        code / "pytest_ntinvariants",
                        n,
                    )
                )
    return sessions


def report(sessions: list[Session], n: int, first: int, mode: str, command: str) -> Report:
    """Targets and tables of one run."""
    out = Report("memory", mode, command, env=environment(["pytest", "kopf", "aiohttp"]))
    subject, floor, *older = sessions
    base = f"floor (bare tests): {floor.growth(first):+.2f} MB"
    if older:
        base += f"; {older[0].code}: {older[0].growth(first):+.2f} MB"
    out.target(
        Target(
            f"RSS growth from test {first} to test {n}, {n} operator tests in one session",
            round(subject.growth(first), 3),
            TARGET_MB,
            "MB",
            "RSS (/proc/self/statm) after test N minus after test K, in one pytest "
            "subprocess; no forced garbage collection",
            base,
        )
    )
    table = out.section(
        f"RSS over one session of {n} tests (MB)",
        [
            "session",
            "code",
            f"after test {first}",
            f"after test {n}",
            "growth",
            "per test (KB)",
            "peak growth",
            "growth over the floor",
            "wall s",
        ],
    )
    per = max(1, n - first)
    for s in sessions:
        table.add(
            **{
                "session": s.name,
                "code": s.code,
                f"after test {first}": f"{s.at(first):.1f}",
                f"after test {n}": f"{s.at(n):.1f}",
                "growth": f"{s.growth(first):+.2f}",
                "per test (KB)": f"{s.growth(first) * 1024 / per:+.1f}",
                "peak growth": f"{s.peak_growth(first):+.2f}",
                "growth over the floor": "—"
                if s is floor
                else f"{s.growth(first) - floor.growth(first):+.2f}",
                "wall s": f"{s.wall_s:.1f}",
            }
        )
    table.notes += [
        "One pytest session per row, each in its own subprocess, one after the other; "
        "RSS is read by a conftest hook after each test's teardown.",
        "Growth is RSS after the last test minus RSS after test "
        f"{first}; peak growth is the most it rose above that meanwhile.",
        "Garbage is not collected by force: a finished test's objects that sit in "
        "reference cycles wait for Python's cyclic collector, as in any session.",
    ]
    if older:
        ratio = (
            older[0].growth(first) / subject.growth(first) if subject.growth(first) > 0 else None
        )
        table.notes.append(
            f"{older[0].code}: the plugin's package and the reference controller at that "
            "revision (git archive, first on PYTHONPATH); the tests, conftests and pytest "
            "are this checkout's."
            + (f" It grew {ratio:.1f}x as much." if ratio is not None else "")
        )
    table.data = {
        s.name + " | " + s.code: {"package": s.package, "rss_bytes": s.rss, "wall_s": s.wall_s}
        for s in sessions
    }
    step = max(1, n // 10)
    marks = sorted({1, first, *range(step, n + 1, step), n})
    curve = out.section(
        "RSS after test #, MB", ["test", *(f"{s.name} ({s.code})" for s in sessions)]
    )
    for i in marks:
        curve.add(test=i, **{f"{s.name} ({s.code})": f"{s.at(i):.1f}" for s in sessions})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the sessions, print the markdown, write the results; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=250, help="tests per session (250)")
    parser.add_argument(
        "--first", type=int, default=10, help="the test growth is measured from (10)"
    )
    parser.add_argument(
        "--before",
        metavar="REV",
        help="also run the operator session with the plugin at this git revision",
    )
    parser.add_argument("--quick", action="store_true", help="5 tests, from test 1 (CI smoke)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--strict", action="store_true", help="exit 1 if the target is missed")
    args = parser.parse_args(argv)
    if not Path("/proc/self/statm").exists():
        raise SystemExit("bench_memory reads /proc/self/statm: Linux only")
    n, first = (5, 1) if args.quick else (args.tests, args.first)
    if not 1 <= first < n:
        raise SystemExit(f"--first must be at least 1 and below --tests, got {first} and {n}")
    command = "python benchmarks/bench_memory.py" + (" --quick" if args.quick else "")
    if not args.quick and n != 250:
        command += f" --tests {n}"
    if not args.quick and first != 10:
        command += f" --first {first}"
    if args.before:
        command += f" --before {args.before}"
    sessions = measure(n, args.before)
    result = report(sessions, n, first, "quick" if args.quick else "full", command)
    json_path, md_path = result.write(args.out)
    print(result.markdown())
    print(f"wrote {json_path} and {md_path}")
    return 1 if args.strict and not all(t.met for t in result.targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())
