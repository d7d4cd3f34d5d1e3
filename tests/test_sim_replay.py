"""Exact replay through the plugin: a seed is a complete reproduction of a deterministic run,
down to the ledger's digest, and the printed replay command fails again identically."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from inner_pytest import INI
from operators_fixtures import children

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")


@pytest.fixture
def pt(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(test_children=children.race_test(16))
    pytester.syspathinsert(Path(__file__).parent)  # operators_fixtures
    return pytester


def run(pt: pytest.Pytester, *args: str) -> tuple[dict[str, Any], list[pytest.TestReport]]:
    out = pt.path / "ntinv.json"
    reprec = pt.inline_run(f"--ntinv-json={out}", *args)
    reports = [r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    items = {entry["nodeid"]: entry for entry in json.loads(out.read_text())["tests"]}
    return items, reports


def test_the_same_seed_gives_the_same_runs_and_the_replay_fails_again(
    pt: pytest.Pytester,
) -> None:
    first, reports = run(pt, "--ntinv-seed=7")
    second, _ = run(pt, "--ntinv-seed=7")
    assert len(first) == 16
    # Every run, passing or failing, is the same run again: the same ledger.
    assert {n: e["digest"] for n, e in first.items()} == {n: e["digest"] for n, e in second.items()}
    failed = [r for r in reports if r.failed]
    # The race is found by some schedules and not by all: the order is what decides.
    assert 0 < len(failed) < 16, [r.nodeid for r in reports]
    report = failed[0]
    section = dict(report.sections)["ntinvariants replay"]
    digest = re.search(r"^digest: (\w+)", section, re.M)
    assert digest is not None and digest.group(1) == first[report.nodeid]["digest"]
    assert "replica-" in dict(report.sections)["ntinvariants steps"]
    command = shlex.split(re.search(r"^replay: (.*)$", section, re.M).group(1))
    assert command[0] == "pytest"
    for _ in range(2):
        again, replayed = run(pt, *command[1:])
        assert [r.outcome for r in replayed] == ["failed"]
        assert again[report.nodeid]["digest"] == digest.group(1)
