"""Seeded schedules per second: one NotificationRequest, two reference-controller replicas,
in the deterministic engine (the default) against the free-running mode.

    python benchmarks/bench_schedules.py [--schedules K] [--quick] [--out DIR]

Runs an exploration test (``@pytest.mark.ntinv_explore``) in-process with pytest and
times every item from setup to teardown: the fake API server starts, two kopf replicas
of the reference controller start, the schedule's perturbations apply, one
NotificationRequest (console channel) is delivered and reaches Sent, the system
settles, every invariant is checked, everything stops. The throughput is items divided
by the sum of their durations (collection and interpreter start-up are left out, since
they are paid once per run, not per schedule).

Baselines in the same run: the same exploration in the free-running mode
(``deterministic=False``: replicas on threads and real time), the same two replicas with
an empty test body (what starting, listing, settling, resyncing and stopping them costs:
the floor of any schedule of theirs), the same exploration with no controller at all (the
plugin's own per-item cost: server, ledger, schedule, checks) and a bare pytest test
(pytest's per-item cost). Targets for the deterministic subject: at least
50 schedules per second serially and 90 with ``-n 2``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from _harness import ROOT, nr_schedules, pytest_args

TARGET_PER_SECOND = 50.0
TARGET_PARALLEL = 90.0

#: The subject (deterministic) and its free-running baseline, as (name, replicas).
SUBJECTS = (("test_subject", "2"), ("test_free", "2, deterministic=False"))

BASELINES = """
@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_explore(schedules={k})
def test_replicas_only(ntinv):
    pass

@pytest.mark.ntinv_explore(schedules={k})
def test_plugin_only(ntinv):
    ntinv.apply({{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "c"}}}})

@pytest.mark.parametrize("i", range({k}))
def test_bare(i):
    pass
"""


class Durations:
    """Sums setup + call + teardown per test function, and counts outcomes."""

    def __init__(self) -> None:
        self.items: dict[str, list[float]] = {}
        self.failed: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        func = report.nodeid.split("::")[-1].split("[")[0]
        self.items.setdefault(f"{func}#{report.nodeid}", []).append(report.duration)
        if report.failed:
            self.failed.append(report.nodeid)

    def per_function(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for key, durations in self.items.items():
            out.setdefault(key.split("#")[0], []).append(sum(durations))
        return out


def run(k: int) -> dict[str, Any]:
    # Inside tests/validation, so its conftest (the reference controller as the
    # ntinv_operator, the fake endpoints) applies exactly as in the suite.
    with tempfile.TemporaryDirectory(prefix="bench-", dir=ROOT / "tests" / "validation") as tmp:
        test = Path(tmp) / "test_bench_schedules.py"
        test.write_text(nr_schedules(k, *SUBJECTS) + textwrap.dedent(BASELINES.format(k=k)))
        collector = Durations()
        report = Path(tmp) / "ntinv.json"
        started = time.perf_counter()
        code = pytest.main(
            pytest_args(test, "-p", "no:randomly", f"--ntinv-json={report}"), plugins=[collector]
        )
        wall = time.perf_counter() - started
        entries = (
            [
                e
                for e in json.loads(report.read_text())["tests"]
                if e.get("steps") and "::test_subject" in e["nodeid"]
            ]
            if report.exists()
            else []
        )
    if code != 0 or collector.failed:
        raise SystemExit(f"benchmark run failed (exit {code}): {collector.failed}")
    rows = {}
    for func, durations in collector.per_function().items():
        total = sum(durations)
        rows[func] = {
            "items": len(durations),
            "total_s": total,
            "per_second": len(durations) / total,
            "median_ms": statistics.median(durations) * 1000,
            "max_ms": max(durations) * 1000,
        }
    steps = sum(e["steps"] for e in entries)
    decide = sum(e["decide_s"] for e in entries)
    engine = {"steps": steps, "per_schedule": steps / max(len(entries), 1)}
    engine["decide_us_per_step"] = decide / steps * 1e6 if steps else 0.0
    return {"k": k, "wall_s": wall, "rows": rows, "engine": engine}


def run_parallel(k_small: int, k_large: int, workers: int = 2) -> dict[str, Any]:
    """Marginal throughput with pytest-xdist: (k_large - k_small) schedules divided by the
    difference of the two runs' wall times, so start-up and collection cancel out."""
    walls = {}
    with tempfile.TemporaryDirectory(prefix="bench-", dir=ROOT / "tests" / "validation") as tmp:
        test = Path(tmp) / "test_bench_parallel.py"
        test.write_text(nr_schedules(1, SUBJECTS[0]))
        for k in (k_small, k_large):
            started = time.perf_counter()
            proc = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    *pytest_args(
                        test, "-n", str(workers), "-k", "test_subject", f"--ntinv-schedules={k}"
                    ),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                check=False,
            )
            walls[k] = time.perf_counter() - started
            if proc.returncode != 0:
                raise SystemExit(f"parallel run failed:\n{proc.stdout[-3000:]}")
    per_second = (k_large - k_small) / (walls[k_large] - walls[k_small])
    return {"workers": workers, "walls_s": walls, "per_second": per_second}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=40, help="schedules per test")
    parser.add_argument("--quick", action="store_true", help="5 schedules (CI smoke)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    k = 5 if args.quick else args.schedules
    result = run(k)
    subject = result["rows"]["test_subject"]
    lines = [
        "# Seeded schedules per second (one NotificationRequest, two replicas)",
        "",
        f"{k} schedules per test; per-item time is setup + call + teardown.",
        "",
        "| test | items | schedules/s | median ms | max ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    names = {
        "test_subject": "subject, deterministic: 2 kopf replicas, 1 NR to Sent, invariants",
        "test_free": "baseline: the same, free-running (threads, real time)",
        "test_replicas_only": "baseline: the 2 replicas, empty body (start, list, checks, stop)",
        "test_plugin_only": "baseline: plugin only (server, schedule, checks)",
        "test_bare": "baseline: bare pytest item",
    }
    for func in (
        "test_subject",
        "test_free",
        "test_replicas_only",
        "test_plugin_only",
        "test_bare",
    ):
        r = result["rows"][func]
        lines.append(
            f"| {names[func]} | {r['items']} | {r['per_second']:.1f} | "
            f"{r['median_ms']:.1f} | {r['max_ms']:.1f} |"
        )
    parallel = run_parallel(1, 5) if args.quick else run_parallel(2, 2 + 2 * k)
    result["parallel"] = parallel
    free = result["rows"]["test_free"]
    floor = result["rows"]["test_replicas_only"]
    engine = result["engine"]
    lines += [
        "",
        f"The engine released {engine['per_schedule']:.1f} actions per deterministic schedule; "
        f"deciding each step (quiescence check, choice, release) took "
        f"**{engine['decide_us_per_step']:.1f} µs** of wall time on average.",
        "",
        f"Two replicas with an empty body take "
        f"**{floor['median_ms'] / subject['median_ms'] * 100:.0f} %** of the subject's median "
        f"time ({floor['per_second']:.1f} schedules/s at most): kopf starting, listing, "
        f"being resynced and stopping, twice, is most of a schedule.",
        "",
        f"Deterministic over free-running, serially: "
        f"**{subject['per_second'] / free['per_second']:.2f}x**.",
        "",
        f"With pytest-xdist `-n {parallel['workers']}` (marginal: extra schedules over the extra "
        f"wall time of two runs, deterministic): **{parallel['per_second']:.1f} schedules/s**.",
        "",
        f"Target: >= {TARGET_PER_SECOND:.0f} schedules/s serially: "
        f"{'met' if subject['per_second'] >= TARGET_PER_SECOND else 'NOT met'} "
        f"({subject['per_second']:.1f}/s).",
        "",
        f"Target: >= {TARGET_PARALLEL:.0f} schedules/s with -n {parallel['workers']}: "
        f"{'met' if parallel['per_second'] >= TARGET_PARALLEL else 'NOT met'} "
        f"({parallel['per_second']:.1f}/s).",
    ]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "schedules.md").write_text(text)
    (args.out / "schedules.json").write_text(json.dumps(result, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
