"""Shared timing helpers for the project's benchmarks.

The machines these run on are shared, small (2 cores) and noisy, so no absolute number
means much on its own. Every benchmark therefore measures its subject *and* a baseline
in the same process, interleaved in short blocks whose order rotates from round to
round: a burst of noise (another tenant, a GC pause, a CPU frequency change) then hits
subject and baseline alike, and the ratio of the two survives it.

What is here:

* ``Stats``: n, min, p50 (the median), p95, max and mean of a sample, in seconds.
* ``sample``: warm up a callable, then time it repeatedly.
* ``interleave``: time several subjects in rotating blocks; returns ``Rounds`` that give
  both the pooled statistics and ``paired_ratio``, the median over rounds of the ratio of
  per-round medians (robust to drift between rounds).
* ``Report``: tables, targets and environment, written as JSON and as a markdown table.

Times are ``time.perf_counter`` seconds internally and milliseconds in reports.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "ROOT",
    "Report",
    "Rounds",
    "Section",
    "Stats",
    "Target",
    "command_line",
    "environment",
    "fmt_ms",
    "fmt_ratio",
    "interleave",
    "nr_schedules",
    "operators_dir",
    "percentile",
    "pytest_args",
    "sample",
]

clock = time.perf_counter

ROOT = Path(__file__).resolve().parent.parent


def command_line(script: str, argv: Sequence[str] | None) -> str:
    """How a benchmark was run, for its report: ``python benchmarks/<script> <args>``."""
    args = argv if argv is not None else sys.argv[1:]
    return f"python benchmarks/{script}" + "".join(f" {a}" for a in args)


def operators_dir(work: Path, addopts: str, files: Mapping[str, str]) -> Path:
    """A directory for an inner pytest run of test modules that import
    ``operators_fixtures`` (``tests/`` on its path): a ``pytest.ini`` with ``addopts``,
    and ``files`` (name -> text)."""
    work.mkdir(parents=True)
    (work / "pytest.ini").write_text(
        "[pytest]\n"
        f"pythonpath = {ROOT / 'tests'}\n"
        f"addopts = {addopts}\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    for name, text in files.items():
        (work / name).write_text(text)
    return work


def pytest_args(test: Path, *options: str) -> list[str]:
    """Arguments for a pytest run of a generated ``test`` file, quiet, with ``options``,
    and with the checkout's own configuration (rootdir and pyproject), wherever the file
    was written: the benchmarks' inner runs must all see the same settings."""
    return [
        str(test),
        "-q",
        "-p",
        "no:cacheprovider",
        *options,
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
    ]


def nr_schedules(k: int, *tests: tuple[str, str]) -> str:
    """A test module for ``tests/validation`` (its conftest runs the reference controller):
    for each ``(name, replicas)``, a test that explores ``k`` schedules of one
    NotificationRequest delivered to Sent by ``ntinv_replicas(<replicas>)``, every NR
    invariant on. The schedule benchmarks' common subject."""
    head = (
        "import pytest\n"
        "from nrkit import NR_INVARIANTS, nr, wait_terminal\n\n"
        "pytestmark = [NR_INVARIANTS]\n"
    )
    body = "".join(
        f"\n@pytest.mark.ntinv_replicas({replicas})\n"
        f"@pytest.mark.ntinv_explore(schedules={k})\n"
        f"def {name}(ntinv):\n"
        '    ntinv.apply(nr("nr-1", ["console"]))\n'
        '    assert wait_terminal(ntinv, "nr-1")["status"]["phase"] == "Sent"\n'
        for name, replicas in tests
    )
    return head + body


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks.

    The same definition as numpy's default, so figures can be checked with it.
    """
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass(frozen=True)
class Stats:
    """Summary of one sample of durations, in seconds."""

    n: int
    min: float
    p50: float
    p95: float
    max: float
    mean: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        """Summarise a non-empty sample."""
        return cls(
            n=len(values),
            min=min(values),
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            max=max(values),
            mean=statistics.fmean(values),
        )

    @property
    def median(self) -> float:
        """Alias of ``p50``."""
        return self.p50

    def ms(self) -> dict[str, float | int]:
        """The same figures in milliseconds (``n`` unchanged), for JSON output."""
        return {
            "n": self.n,
            "min_ms": self.min * 1e3,
            "p50_ms": self.p50 * 1e3,
            "p95_ms": self.p95 * 1e3,
            "max_ms": self.max * 1e3,
            "mean_ms": self.mean * 1e3,
        }


def _timed(fn: Callable[[], object]) -> float:
    start = clock()
    fn()
    return clock() - start


def sample(fn: Callable[[], object], *, warmup: int, samples: int) -> list[float]:
    """Call ``fn`` ``warmup`` times untimed, then ``samples`` times timed; the durations.

    A collection is forced before timing starts so that garbage left by the warm-up is
    not charged to the first samples.
    """
    for _ in range(warmup):
        fn()
    gc.collect()
    return [_timed(fn) for _ in range(samples)]


@dataclass
class Rounds:
    """Durations of several subjects, grouped by round (see ``interleave``)."""

    by_subject: dict[str, list[list[float]]]

    def all(self, subject: str) -> list[float]:
        """Every duration of one subject, rounds concatenated."""
        return [d for block in self.by_subject[subject] for d in block]

    def stats(self, subject: str) -> Stats:
        """Pooled statistics of one subject."""
        return Stats.of(self.all(subject))

    def paired_ratio(self, subject: str, baseline: str) -> float:
        """Median over rounds of ``median(subject block) / median(baseline block)``.

        Blocks of the same round ran back to back, so they saw the same machine; the
        per-round ratio cancels slow drift that a ratio of pooled medians would not.
        """
        ratios = [
            statistics.median(s) / statistics.median(b)
            for s, b in zip(self.by_subject[subject], self.by_subject[baseline], strict=True)
            if s and b
        ]
        return statistics.median(ratios)


def interleave(
    subjects: Mapping[str, Callable[[], object]],
    *,
    warmup: int,
    rounds: int,
    per_round: int,
    before_block: Mapping[str, Callable[[], object]] | None = None,
    after_block: Mapping[str, Callable[[], object]] | None = None,
) -> Rounds:
    """Time every subject in ``rounds`` rounds of ``per_round`` consecutive calls each.

    The order of subjects rotates every round (A B C, B C A, C A B, ...) so that none is
    always first after a switch (connection pools, caches and the scheduler all notice
    who ran last). Each subject is warmed up ``warmup`` times first.

    ``before_block[name]``, if given, runs untimed before each of that subject's blocks
    (e.g. to reset a subject whose cost grows with use, so every block sees it fresh);
    ``after_block[name]`` runs untimed after each (e.g. to read a counter).
    """
    names = list(subjects)
    hooks = before_block or {}
    after = after_block or {}
    for name in names:
        for _ in range(warmup):
            subjects[name]()
    gc.collect()
    out: dict[str, list[list[float]]] = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = subjects[name]
            hook = hooks.get(name)
            if hook is not None:
                hook()
            out[name].append([_timed(fn) for _ in range(per_round)])
            done = after.get(name)
            if done is not None:
                done()
    return Rounds(out)


def fmt_ms(seconds: float | None) -> str:
    """A duration for a table: milliseconds with three decimals, or an em dash."""
    if seconds is None:
        return "—"
    return f"{seconds * 1e3:.3f}"


def fmt_ratio(ratio: float | None) -> str:
    """A ratio for a table (``1.07x``), or an em dash."""
    if ratio is None:
        return "—"
    return f"{ratio:.2f}x"


@dataclass
class Target:
    """One goal from the issue and whether this run met it.

    ``value`` and ``limit`` are in ``unit`` (``"ms"``, ``"x"`` for a ratio, or another unit
    such as ``"MB"``); ``measured_as`` says precisely what was compared, including the
    baseline it was judged against.
    """

    name: str
    value: float
    limit: float
    unit: str
    measured_as: str
    baseline: str = ""

    @property
    def met(self) -> bool:
        """Whether ``value <= limit``."""
        return self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        """JSON form (with ``met`` spelled out)."""
        return {**asdict(self), "met": self.met}


@dataclass
class Section:
    """One table of the report: a title, columns, rows (dicts keyed by column) and notes."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Unformatted figures for the JSON file (table cells are already formatted strings).
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, **row: Any) -> None:
        """Append a row; missing columns render as an em dash."""
        self.rows.append(row)

    def markdown(self) -> str:
        """The section as a markdown heading, table and bullet notes."""
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join(" --- " for _ in self.columns) + "|")
        for row in self.rows:
            cells = [str(row.get(c, "—")).replace("|", "\\|") for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(packages: Iterable[str] = ()) -> dict[str, Any]:
    """What the numbers depend on: interpreter, machine, load and package versions."""
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not every platform has it
        load = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "gil_switch_interval_s": sys.getswitchinterval(),
        "packages": {name: _version(name) for name in packages},
    }


@dataclass
class Report:
    """Everything one benchmark run produced; written as ``NAME.json`` and ``NAME.md``."""

    name: str
    mode: str
    command: str
    env: dict[str, Any] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    _t0: float = field(default_factory=clock, repr=False)

    def section(self, title: str, columns: list[str]) -> Section:
        """Start a new table."""
        s = Section(title, columns)
        self.sections.append(s)
        return s

    def target(self, target: Target) -> Target:
        """Record a goal's outcome."""
        self.targets.append(target)
        return target

    def as_dict(self) -> dict[str, Any]:
        """The JSON document (schema: see benchmarks/README.md)."""
        return {
            "benchmark": self.name,
            "mode": self.mode,
            "command": self.command,
            "started": self.started,
            "duration_s": round(clock() - self._t0, 3),
            "environment": self.env,
            "targets": [t.as_dict() for t in self.targets],
            "sections": [
                {
                    "title": s.title,
                    "columns": s.columns,
                    "rows": s.rows,
                    "notes": s.notes,
                    "data": s.data,
                }
                for s in self.sections
            ],
        }

    def markdown(self) -> str:
        """Targets first (what a reader wants to know), then every table."""
        env = self.env
        lines = [
            f"## Benchmark `{self.name}` ({self.mode})",
            "",
            f"`{self.command}` — started {self.started}, {env.get('python', '?')} on "
            f"{env.get('cpus', '?')} CPUs, load {env.get('loadavg_at_start', '?')}",
            "",
            "### Targets",
            "",
            "| target | measured | limit | met | measured as |",
            "| --- | --- | --- | --- | --- |",
        ]
        for t in self.targets:
            if t.unit == "ms":
                value, limit = f"{t.value:.3f} ms", f"≤ {t.limit:g} ms"
            elif t.unit == "x":
                value, limit = f"{t.value:.2f}x", f"≤ {t.limit:g}x"
            else:  # another quantity (MB of memory): two decimals and its unit
                value, limit = f"{t.value:.2f} {t.unit}", f"≤ {t.limit:g} {t.unit}"
            lines.append(
                f"| {t.name} | {value} | {limit} | {'yes' if t.met else '**no**'} "
                f"| {t.measured_as} |"
            )
        for s in self.sections:
            lines.extend(["", s.markdown()])
        return "\n".join(lines) + "\n"

    def write(self, directory: Path) -> tuple[Path, Path]:
        """Write ``NAME.json`` and ``NAME.md`` into ``directory``; their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        json_path = directory / f"{self.name}.json"
        md_path = directory / f"{self.name}.md"
        # Write-then-rename so a reader never sees half a file.
        for path, text in (
            (json_path, json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n"),
            (md_path, self.markdown()),
        ):
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
        return json_path, md_path
