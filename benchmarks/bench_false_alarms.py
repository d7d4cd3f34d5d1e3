"""False alarms: correct controllers explored over many seeded schedules must never fail.

    python benchmarks/bench_false_alarms.py [--schedules K] [--workers N] [--strategies S,...]
                                            [--quick] [--out DIR]

K exploration schedules (default 1000), split evenly across five correct subjects, each
with two deterministic kopf replicas and the default exploration space (watch latency,
stale reads, coalesced events, held events: perturbations on) unless said:

* ``reference``: the reference controller (the subject of ``bench_schedules.py``): one
  NotificationRequest to Sent, every invariant of the validation suite checked;
* ``own-writes``: ``tests/operators_fixtures/own_writes.py``, a kopf operator whose
  retried creation handler appends to its own status log and is correct only because kopf
  waits ``persistence.consistency_timeout`` (5 s) for its own write's resourceVersion; the
  test asserts every replica's log grew one entry per version and ended complete, and the
  built-in invariants are checked;
* ``webhook-claim``, ``stale-spec`` and ``children``: the fixed versions of the test
  operators in ``tests/operators_fixtures`` (``webhook_claim.py``: claim in status with a
  resourceVersion precondition before calling a webhook, exactly one call asserted;
  ``stale_spec.py``: a spec-derived status written with the resourceVersion it was computed
  from, under a lagging cache on one replica; ``children.py``: a child named after its
  parent, so that a second create fails), explored as their race modules say.

Every subject is judged by the built-in oracles too (``end-state``, ``side-effects-once``,
``converges``, ``no-hot-loop``), which need no code of the test's.

Reported per subject: failed items and invariant violations (target: 0 each), and
schedules per second (items over the sum of their setup + call + teardown times, from the
JUnit XML); overall, every item over the run's wall time (start-up included). A control in the
same run, the same operator with ``consistency_timeout = 0``, shows the assertions can
fail: it must fail in some schedules. ``--strategies``: the exploration strategies to run
it all with, one after the other (default ``random``; e.g. ``random,pct,exhaustive``; an
exhaustive search runs no perturbation, and skips its items past the end of its search).
``--quick``: 20 schedules, serial, for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from _harness import ROOT, Report, Target, command_line, environment, nr_schedules, pytest_args

sys.path.insert(0, str(ROOT / "tests"))
from operators_fixtures import children, stale_spec, webhook_claim

OWN_WRITES = """
import pytest
from operators_fixtures import gadgets, own_writes

@pytest.fixture
def ntinv_operator(ntinv_apiserver):
    ntinv_apiserver.apply(gadgets.GADGET_CRD)
    return own_writes.make_registry

def no_consistency(settings):
    own_writes.settings(settings)
    settings.persistence.consistency_timeout = 0.0

def run(ntinv):
    ntinv.wait_watching("gadgets")
    ntinv.apply(gadgets.gadget("g1"))
    who = [r.identity for r in ntinv.replicas]

    def complete(obj):
        # A replica that crashed (a learned plan) writes no more: the others complete.
        status = obj.get("status") or {{}}
        return all(
            len((status.get(w) or {{}}).get("log") or []) >= own_writes.STEPS
            for w in who if w not in ntinv.crashed
        )

    ntinv.wait_for(gadgets.API_VERSION, "Gadget", "g1", complete)
    assert ntinv.wait_quiet()
    versions = ntinv.ledger.versions(kind="Gadget", name="g1")
    statuses = [v.obj.get("status") or {{}} for v in versions]
    assert own_writes.log_errors(statuses, who, ntinv.crashed) == []

# Each replica owns its log: one that crashes (a learned plan) leaves its log short, and
# no other replica takes it over, so its end state differs from the unperturbed run's by
# design; run() checks a crashed replica's log is a correct beginning instead.
@pytest.mark.ntinv_replicas(2, settings=own_writes.settings)
@pytest.mark.ntinv_explore(schedules={k})
@pytest.mark.ntinv_invariants(exclude=["end-state"])
def test_own_writes(ntinv):
    run(ntinv)

@pytest.mark.ntinv_replicas(2, settings=no_consistency)
@pytest.mark.ntinv_explore(schedules={control})
def test_control_no_consistency(ntinv):
    run(ntinv)
"""

SUBJECTS = {
    "test_reference": "reference controller: 2 replicas, 1 NR to Sent, NR invariants",
    "test_own_writes": "own-writes operator: 2 replicas, consistency_timeout 5 s",
    "test_one_call": "webhook-claim operator (fixed): 2 replicas, exactly one call",
    "test_doubled_follows_the_spec": "stale-spec operator (fixed): 2 replicas, lagging cache",
    "test_one_child": "children operator (fixed): 2 replicas, one named child",
    "test_control_no_consistency": "control: own-writes with consistency_timeout 0",
}

#: The subjects that must never fail (all but the control).
CORRECT = (
    "test_reference",
    "test_own_writes",
    "test_one_call",
    "test_doubled_follows_the_spec",
    "test_one_child",
)


def run(per_subject: int, control: int, workers: int, work: Path, strategy: str) -> dict[str, Any]:
    """One pytest process over both subjects and the control, exploring with ``strategy``;
    per-function outcomes."""
    (work / "test_fa_reference.py").write_text(nr_schedules(per_subject, ("test_reference", "2")))
    (work / "test_fa_own_writes.py").write_text(
        textwrap.dedent(OWN_WRITES.format(k=per_subject, control=control))
    )
    (work / "test_fa_webhook.py").write_text(webhook_claim.race_test(per_subject, fixed=True))
    (work / "test_fa_stale_spec.py").write_text(stale_spec.race_test(per_subject, fixed=True))
    (work / "test_fa_children.py").write_text(children.race_test(per_subject, fixed=True))
    report, junit = work / "ntinv.json", work / "junit.xml"
    options = ["-p", "no:randomly", f"--ntinv-json={report}", f"--junitxml={junit}",
               f"--ntinv-strategy={strategy}"]  # fmt: skip
    if workers > 1:
        options += ["-n", str(workers)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT)])}
    if os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args(work, *options)],
        capture_output=True, text=True, cwd=ROOT, env=env, check=False, timeout=3600,
    )  # fmt: skip
    wall = time.perf_counter() - started
    if proc.returncode not in (0, 1) or not report.exists() or not junit.exists():
        raise SystemExit(f"inner run exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    rows: dict[str, dict[str, Any]] = {
        f: {"items": 0, "failed": 0, "violations": 0, "violating_items": 0, "seconds": 0.0}
        for f in SUBJECTS
    }
    for case in ET.parse(junit).getroot().iter("testcase"):
        func = case.get("name", "").partition("[")[0]
        row = rows[func]
        if case.find("skipped") is not None:  # past the end of an exhaustive search
            continue
        row["items"] += 1
        row["seconds"] += float(case.get("time", 0.0))
        if case.find("failure") is not None or case.find("error") is not None:
            row["failed"] += 1
    for entry in json.loads(report.read_text())["tests"]:
        row = rows[entry["nodeid"].split("::")[-1].partition("[")[0]]
        row["violations"] += len(entry["violations"])
        row["violating_items"] += bool(entry["violations"])
    return {"wall_s": wall, "workers": workers, "rows": rows, "tail": proc.stdout[-2000:]}


class FalseAlarmsReport(Report):
    """Markdown in the style of ``bench_schedules.py``: a title, a table, Target lines."""

    lines: list[str]

    def markdown(self) -> str:
        """The text written to ``<stem>.md`` and printed."""
        return "\n".join(self.lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=1000, help="total over the subjects")
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (full run)")
    parser.add_argument("--strategies", default="random", help="comma-separated strategies")
    parser.add_argument("--quick", action="store_true", help="20 schedules, serial (CI smoke)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        parser.error("--strategies names none")
    total = 20 if args.quick else args.schedules
    if total < len(CORRECT):
        parser.error(f"--schedules must be >= {len(CORRECT)}")
    per_subject = total // len(CORRECT)
    control = max(5, total // 20)
    workers = 1 if args.quick else args.workers
    command = command_line("bench_false_alarms.py", argv)
    report = FalseAlarmsReport(
        "false_alarms", "quick" if args.quick else "full", command,
        env=environment(["kopf", "pytest", "pytest-xdist"]),
    )  # fmt: skip
    lines = ["# False alarms: correct controllers over seeded schedules", ""]
    for strategy in strategies:
        with tempfile.TemporaryDirectory(prefix="bench-", dir=ROOT / "tests" / "validation") as tmp:
            result = run(per_subject, control, workers, Path(tmp), strategy)
        lines += outcome(report, result, strategy, total, per_subject, workers)
    report.lines = lines
    json_path, md_path = report.write(args.out)
    print(report.markdown())
    print(f"wrote {json_path} and {md_path}")
    return 0


def outcome(
    report: FalseAlarmsReport,
    result: dict[str, Any],
    strategy: str,
    total: int,
    per_subject: int,
    workers: int,
) -> list[str]:
    """One strategy's table and targets, added to ``report``; its markdown lines."""
    rows = result["rows"]
    first_target = len(report.targets)
    section = report.section(
        f"Strategy {strategy}: correct controllers over seeded schedules (default space)",
        ["subject", "schedules", "failed", "violations", "items with violations",
         "schedules/s (item time)", "mean item s"],
    )  # fmt: skip
    checked = sum(rows[f]["items"] for f in CORRECT)
    for func, label in SUBJECTS.items():
        r = rows[func]
        section.add(**{
            "subject": label,
            "schedules": r["items"],
            "failed": r["failed"],
            "violations": r["violations"],
            "items with violations": r["violating_items"],
            "schedules/s (item time)": f"{r['items'] / r['seconds']:.1f}" if r["seconds"] else "—",
            "mean item s": f"{r['seconds'] / max(r['items'], 1):.3f}",
        })  # fmt: skip
    section.data = result
    per_second = (checked + rows["test_control_no_consistency"]["items"]) / result["wall_s"]
    for func in CORRECT:
        r = rows[func]
        of = f"over {r['items']} schedules"
        report.target(
            Target(f"{strategy}, {func}: failed items", r["failed"], 0, "items", f"failed {of}")
        )
        report.target(
            Target(
                f"{strategy}, {func}: invariant violations",
                r["violations"],
                0,
                "violations",
                f"in the JSON report {of}",
            )
        )
    ctl = rows["test_control_no_consistency"]
    # The control must fail somewhere: 1 miss when every control item passed.
    control_target = report.target(
        Target(
            f"{strategy}, control (consistency_timeout 0) fails in some schedule",
            0 if ctl["failed"] else 1,
            0,
            "misses",
            f"{ctl['failed']}/{ctl['items']} control items failed",
        )
    )
    lines = [
        f"{total} schedules ({per_subject} per subject) plus {ctl['items']} control "
        f"schedules, two replicas each, default exploration space; one pytest process"
        f"{f' with -n {workers}' if workers > 1 else ''}, {result['wall_s']:.1f} s wall "
        f"(start-up included): **{per_second:.1f} schedules/s** over all items.",
        "",
        "##" + section.markdown().removeprefix("###"),
        "",
    ]
    for t in report.targets[first_target:]:
        if t is control_target:
            lines.append(
                f"Target: the control fails in at least one schedule: "
                f"{'met' if t.met else 'NOT met'} ({t.measured_as})."
            )
        else:
            lines.append(
                f"Target: {t.name} = 0: {'met' if t.met else 'NOT met'} "
                f"({t.value:g} {t.unit} {t.measured_as})."
            )
        lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
