"""What a finished test leaves behind: nothing of its cluster.

pytest keeps every item (and its stash) until the session ends, so whatever the plugin
kept there -- the ledger, the harness, with them the API server and every version it
stored, the replicas, the endpoints -- would stay alive for the whole session. These
inner runs take weak references to all of it during each test and check, in a later
test of the same session, that every one of them is dead; and that the reports made
from them (the failure sections, the terminal summary, the JSON report) are all there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inner_pytest import INI

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

CONFTEST = """
import gc
import sys
import weakref

import pytest
from gadgets import GADGET_CRD, gadget, make_registry
from pytest_ntinvariants.invariants import FunctionInvariant, Violation

GADGET = gadget("g1")

@pytest.fixture
def ntinv_operator(ntinv_apiserver):
    ntinv_apiserver.apply(GADGET_CRD)
    return make_registry

def seen_by(*identities):  # (gadgets.make_registry marks status[identity])
    return lambda o: set(o.get("status") or {}) >= set(identities)

def no_blue(history, ctx):
    for v in history.versions:
        if (v.obj.get("data") or {}).get("colour") == "blue":
            yield Violation("no-blue-configmaps", None, f"blue at rv {v.rv}", (v.rv,))

@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_register(registry, config):
    registry.register(FunctionInvariant(
        "no-blue-configmaps", "ConfigMaps are never blue", no_blue, kinds=["ConfigMap"]))

# name -> weak reference, filled by the tests, checked by test_nothing_is_left
REFS = {}

def keep_watch(prefix, **objects):
    for name, obj in objects.items():
        REFS[f"{prefix} {name}"] = weakref.ref(obj)

def alive():
    # pytest keeps the last failure's exception for post-mortem debugging (sys.last_*),
    # and its traceback holds that test's frames, so its harness: pytest's reference,
    # which the next failure replaces; not the plugin's.
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):
            delattr(sys, name)
    # Twice: weak-reference callbacks run by the first collection can free more.
    gc.collect()
    gc.collect()
    return sorted(name for name, ref in REFS.items() if ref() is not None)
"""

TESTS = """
import pytest
from conftest import GADGET, REFS, alive, keep_watch, seen_by

@pytest.mark.ntinv_replicas(2)
@pytest.mark.parametrize("outcome", ["passes", "fails"])
def test_operator(ntinv, outcome):
    ntinv.apply(GADGET)
    ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", seen_by("replica-0", "replica-1"))
    keep_watch(outcome, harness=ntinv, ledger=ntinv.ledger, server=ntinv.server,
               store=ntinv.server.store, replicas=ntinv.replicas,
               replica=ntinv.replicas[0], sink=ntinv.sink("slack"), perturber=ntinv.perturb)
    assert outcome == "passes", "deliberately"

@pytest.mark.parametrize("colour", ["red", "blue"])
def test_invariants(ntinv_apiserver, ntinv_ledger, colour):
    ntinv_apiserver.apply({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "c"}, "data": {"colour": colour}})
    keep_watch(colour, server=ntinv_apiserver, ledger=ntinv_ledger)

def test_nothing_is_left():
    assert len(REFS) == 2 * 8 + 2 * 2  # every test above took its references
    assert alive() == []
"""


@pytest.fixture
def pt(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory with the operator, the weak-reference helpers and the tests."""
    pytester.makeini(INI)
    # The Gadget CRD and operator of the operator tests, beside the inner run's conftest.
    pytester.makepyfile(
        gadgets=(Path(__file__).parent / "operators_fixtures" / "gadgets.py").read_text()
    )
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_memory=TESTS)
    return pytester


def test_a_finished_test_keeps_nothing_of_its_cluster(pt: pytest.Pytester, tmp_path: Path) -> None:
    report = tmp_path / "ntinv.json"
    # In a subprocess, as users run pytest: an in-process run is recorded by pytester,
    # whose recorder keeps every hook call's arguments (the failures' tracebacks too).
    result = pt.runpytest_subprocess(f"--ntinv-json={report}")
    # A failing body and a violated invariant: both paths that build reports from the
    # ledger, so both must give it up afterwards.
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- ntinvariants timeline -*",
            "*replica-0*",
            "*no-blue-configmaps: blue at rv*",
            "*4 test(s) checked*1 violation(s) in 1 test(s)*",
            "  test_memory.py::test_invariants?blue?: no-blue-configmaps",
        ]
    )
    doc = json.loads(report.read_text())
    assert doc["summary"]["tests"] == 4 and doc["summary"]["violations"] == 1
    blue = [t for t in doc["tests"] if t["nodeid"].endswith("[blue]")]
    assert [v["invariant"] for v in blue[0]["violations"]] == ["no-blue-configmaps"]


def test_the_stash_is_empty_after_teardown(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest("""
        import pytest
        from pytest_ntinvariants import session

        KEYS = [session.LEDGER_KEY, session.HARNESS_KEY, session.RUN_KEY,
                session.RESULT_KEY, session.MARKERS_KEY, session.WORLD_KEY]

        @pytest.hookimpl(wrapper=True, tryfirst=True)
        def pytest_runtest_teardown(item):
            # Outside the plugin's own teardown wrapper: runs before and after it.
            before = sum(k in item.stash for k in KEYS)
            yield
            after = sum(k in item.stash for k in KEYS)
            print(f"STASH {item.name} {before} {after}")
    """)
    pytester.makepyfile("""
        import kopf
        import pytest

        def test_it(ntinv):
            ntinv.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})

        @pytest.mark.ntinv_replicas(1, operator=lambda identity: kopf.OperatorRegistry())
        def test_world(ntinv):
            assert ntinv.world is not None
    """)
    result = pytester.runpytest("-s")
    result.assert_outcomes(passed=2)
    # A deterministic test also stashes its world; every key is gone after teardown.
    result.stdout.fnmatch_lines(["*STASH test_it 5 0", "*STASH test_world 6 0"])
