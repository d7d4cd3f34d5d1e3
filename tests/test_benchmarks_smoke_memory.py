"""Smoke test of the memory benchmark: quick mode (5 operator tests per session) runs its
sessions and writes well-formed results. No memory figure is asserted: the benchmark
judges its target itself, against baselines it measures in the same run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.platform != "linux", reason="the benchmark reads /proc/self/statm")
def test_quick_mode_measures_every_session(tmp_path: Path) -> None:
    # The "before" session too, against this checkout's own HEAD: it exercises the
    # git-archive path without depending on any particular history.
    inside_git = shutil.which("git") is not None and (
        subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, check=False
        ).returncode
        == 0
    )
    before = ["--before", "HEAD"] if inside_git else []
    script = ROOT / "benchmarks" / "bench_memory.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(tmp_path), *before],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    doc = json.loads((tmp_path / "memory.json").read_text())
    assert doc["benchmark"] == "memory" and doc["mode"] == "quick"
    assert doc["command"] == "python benchmarks/bench_memory.py --quick" + (
        " --before HEAD" if before else ""
    )
    (target,) = doc["targets"]
    assert target["name"] == "RSS growth from test 1 to test 5, 5 operator tests in one session"
    assert target["unit"] == "MB" and target["limit"] == 10.0
    assert target["met"] is (target["value"] <= target["limit"])
    assert "floor (bare tests)" in target["baseline"]
    table = doc["sections"][0]
    sessions = [(row["session"], row["code"]) for row in table["rows"]]
    expected = [("operator tests", "this checkout"), ("floor: bare tests", "this checkout")]
    if before:
        expected.append(("operator tests", "git HEAD"))
    assert sessions == expected
    data = table["data"]
    assert len(data) == len(expected)
    for key, session in data.items():
        assert len(session["rss_bytes"]) == 5 and all(b > 0 for b in session["rss_bytes"])
        imported = Path(session["package"]).resolve()
        if key.endswith("git HEAD"):  # the archived copy, not this checkout
            assert imported != (ROOT / "pytest_ntinvariants").resolve()
            assert imported.name == "pytest_ntinvariants"
        else:
            assert imported == (ROOT / "pytest_ntinvariants").resolve()
    md = (tmp_path / "memory.md").read_text()
    assert md.startswith("## Benchmark `memory` (quick)") and md in proc.stdout
    assert "| RSS growth from test 1 to test 5" in md
