"""Smoke test of the benchmarks: the quick mode runs and writes well-formed results.

Speed targets are never asserted here: the benchmark judges them against baselines it
measures itself, on whatever machine runs it. This only proves that the command in
benchmarks/README.md works and that its JSON and markdown are what the README says.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_apiserver.py"

EXPECTED_TARGETS = {
    "lifecycle: start -> ready -> stop, median",
    "round trip GET ConfigMap: fake / floor",
    "round trip PATCH ConfigMap (merge): fake / floor",
    "round trip GET custom resource: fake / floor",
    "round trip PATCH custom resource status (merge): fake / floor",
    "write -> watch p50, send->read",
    "write -> watch p50, commit->read",
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run ``bench_apiserver.py --quick`` once; its output directory and stdout."""
    pytest.importorskip("kubernetes")  # the round trips use the real client
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,  # about 5 s on its own; generous for a loaded CI machine
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-4000:]}"
    return out, proc.stdout


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def test_quick_run_writes_json_with_every_target(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    data = json.loads((out / "apiserver.json").read_text(encoding="utf-8"))
    assert data["benchmark"] == "apiserver"
    assert data["mode"] == "quick"
    assert data["command"] == "python benchmarks/bench_apiserver.py --quick"
    assert _finite(data["duration_s"])
    assert data["environment"]["python"] == sys.version.split()[0]
    assert {t["name"] for t in data["targets"]} == EXPECTED_TARGETS
    for t in data["targets"]:
        assert _finite(t["value"]) and t["value"] > 0, t
        assert _finite(t["limit"]) and t["limit"] > 0, t
        assert t["unit"] in ("ms", "x"), t
        assert t["met"] is (t["value"] <= t["limit"]), t
        assert t["measured_as"] and t["baseline"], t


def test_quick_run_sections_have_a_baseline_from_the_same_run(
    quick_run: tuple[Path, str],
) -> None:
    out, _ = quick_run
    sections = json.loads((out / "apiserver.json").read_text(encoding="utf-8"))["sections"]
    titles = [s["title"] for s in sections]
    for wanted in (
        "Lifecycle",
        "Round trips, kubernetes client typed",
        "Round trips, kubernetes client raw",
        "Write -> watch",
    ):
        assert any(wanted in title for title in titles), (wanted, titles)
    for s in sections:
        assert s["rows"], s["title"]
        for row in s["rows"]:
            assert set(row) <= set(s["columns"]), (s["title"], row)
        servers = {row.get("server") for row in s["rows"]}
        if "server" in s["columns"]:
            # Every table compares the fake with the floor measured alongside it.
            assert {"fake"} <= servers, (s["title"], servers)
            assert servers & {"floor", "floor (bare aiohttp)"}, (s["title"], servers)


def test_quick_run_writes_the_markdown_it_prints(quick_run: tuple[Path, str]) -> None:
    out, stdout = quick_run
    md = (out / "apiserver.md").read_text(encoding="utf-8")
    assert md.startswith("## Benchmark `apiserver` (quick)")
    assert "### Targets" in md
    for name in EXPECTED_TARGETS:
        assert f"| {name} |" in md
    assert md in stdout
