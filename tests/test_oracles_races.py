"""The built-in oracles catch three two-replica races with no invariant and no assertion
written by the test (a duplicate child from stale lists, a webhook called before the call
is claimed, a stale view overwriting a newer spec-derived value), and pass their fixed
versions."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from inner_pytest import INI
from operators_fixtures import children, stale_spec, webhook_claim

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

SCHEDULES = 12
SEED = "--ntinv-seed=2"

#: The oracle each bug breaks first.
CAUGHT_BY = {
    children: {"end-state"},
    webhook_claim: {"end-state", "side-effects-once"},
    stale_spec: {"end-state"},
}

RACES = pytest.mark.parametrize(
    "module", [children, webhook_claim, stale_spec], ids=["children", "webhook", "stale_spec"]
)


def explore(pytester: pytest.Pytester, module: ModuleType, *, fixed: bool) -> dict[str, Any]:
    """``module``'s race test with its assertions left out, in an inner session."""
    pytester.makeini(INI)
    pytester.makepyfile(test_race=module.race_test(SCHEDULES, fixed=fixed, checks=False))
    pytester.syspathinsert(Path(__file__).parent)  # operators_fixtures
    out = pytester.path / "ntinv.json"
    pytester.runpytest(f"--ntinv-json={out}", "--ntinv-shrink=0", SEED)
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


@RACES
def test_an_oracle_catches_the_bug_with_no_check_written(
    pytester: pytest.Pytester, module: ModuleType
) -> None:
    doc = explore(pytester, module, fixed=False)
    assert not any(e["body_failed"] for e in doc["tests"])  # the body asserts nothing
    broken = [e for e in doc["tests"] if e["violations"]]
    assert 0 < len(broken) < SCHEDULES
    names = {v["invariant"] for e in broken for v in e["violations"]}
    assert names & CAUGHT_BY[module], names
    assert names <= CAUGHT_BY[module] | {"converges"}, names


@RACES
def test_the_fixed_version_breaks_no_oracle(pytester: pytest.Pytester, module: ModuleType) -> None:
    doc = explore(pytester, module, fixed=True)
    assert len(doc["tests"]) == SCHEDULES
    assert [v for e in doc["tests"] for v in e["violations"]] == []
