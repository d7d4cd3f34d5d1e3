"""Smoke test of the controller, schedule, replay and false-alarm benchmarks: quick mode
runs and writes its results. No timing is asserted (targets are judged by the benchmarks
themselves)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "stem"),
    [
        ("bench_controller.py", "controller"),
        ("bench_schedules.py", "schedules"),
        ("bench_replay.py", "replay"),
        ("bench_false_alarms.py", "false_alarms"),
    ],
)
def test_quick_mode_writes_results(script: str, stem: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    text = (tmp_path / f"{stem}.md").read_text()
    assert text.startswith("# ") and "Target:" in text and "| --- |" in text
    doc = json.loads((tmp_path / f"{stem}.json").read_text())
    assert doc


def test_strategies_quick_mode_writes_results(tmp_path: Path) -> None:
    """``bench_strategies.py --quick``: two subjects, each run with every strategy, the
    default strategy's first failure shrunk and its token replayed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_strategies.py"), "--quick",
         "--seed", "7", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=ROOT, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    doc = json.loads((tmp_path / "strategies.json").read_text())
    found, shrunk = doc["sections"]
    assert set(found["data"]) == {"duplicate child", "variant record-twice"}
    for subject in found["data"].values():
        assert all(subject[s]["ran"] for s in ("random", "pct", "exhaustive"))
        assert subject["random"]["schedules"]  # the default strategy found it
    for subject in shrunk["data"].values():
        assert subject["replays"] == ["failed", "failed"] and subject["complete"]
    assert "### Targets" in (tmp_path / "strategies.md").read_text()
