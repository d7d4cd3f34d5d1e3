"""Process replicas in a world on real time: ``ntinv_replicas(argv=...)``.

Their requests and watch events are held and released one step at a time, in the seed's
order, like an in-process replica's; only quiescence is inferred from a quiet spell.
"""

from __future__ import annotations

import sys
from pathlib import Path

import kopf
import pytest
from inner_pytest import INI

from pytest_ntinvariants.apiserver import FakeApiServer
from pytest_ntinvariants.operators import KopfReplica, ProcessReplica
from pytest_ntinvariants.sim import World

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

PATCHER = Path(__file__).parent / "operators_fixtures" / "status_patcher.py"

CONFTEST = f"""
import sys
import pytest

CRD = {{
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {{"name": "gadgets.ntinv.test"}},
    "spec": {{"group": "ntinv.test", "scope": "Namespaced",
             "names": {{"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}},
             "versions": [{{"name": "v1", "served": True, "storage": True,
                           "subresources": {{"status": {{}}}},
                           "schema": {{"openAPIV3Schema": {{
                               "type": "object",
                               "x-kubernetes-preserve-unknown-fields": True}}}}}}]}},
}}
PATCHER = [sys.executable, {str(PATCHER)!r}]
GADGET = {{"apiVersion": "ntinv.test/v1", "kind": "Gadget", "metadata": {{"name": "g1"}}}}

@pytest.fixture(autouse=True)
def crd(ntinv_apiserver):
    ntinv_apiserver.apply(CRD)

def stamped(o):
    return (o.get("status") or {{}}).get("by")
"""


@pytest.fixture
def pt(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    return pytester


def test_process_replicas_step_through_the_world(pt: pytest.Pytester) -> None:
    """Every request and watch event of the processes is a released step of the world."""
    pt.makepyfile("""
        import pytest
        from conftest import GADGET, PATCHER, stamped

        @pytest.mark.ntinv_replicas(2, argv=PATCHER, ready="watching from")
        def test_it(ntinv):
            world = ntinv.world
            assert world is not None and world.real_time
            ntinv.apply(GADGET)
            obj = ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", stamped)
            assert obj["status"]["by"] in ("replica-0", "replica-1")
            assert ntinv.wait_quiet()
            steps = world.engine.steps
            lists = {s.actor for s in steps if s.what == "list gadgets/default"}
            assert lists == {"replica-0", "replica-1"}
            events = {s.actor for s in steps
                      if s.kind == "event" and s.what.startswith("ADDED gadgets/g1")}
            assert events == {"replica-0", "replica-1"}
            patches = [s.actor for s in steps if s.what == "patch gadgets/default/g1/status"]
            writers = [r.identity for r in ntinv.ledger.requests(subresource="status")]
            assert patches == writers and patches
            assert ntinv.digest() is None  # real time: no run-to-run digest
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_a_drawn_hold_keeps_a_process_from_its_first_list(pt: pytest.Pytester) -> None:
    """Exploration draws for the marker's processes before they start, so a hold covers
    the held replica's first LIST: it sees nothing until the other replica's status
    write, and the other replica stamps the object first, in every schedule. (Then the
    held replica gets the ADDED event it missed and stamps it again: this controller
    trusts a stale event, the bug a hold exists to show.)"""
    pt.makepyfile("""
        import pytest
        from conftest import GADGET, PATCHER, stamped

        SPACE = {"watch_latency": None, "stale_reads": 0, "coalesce": 0, "hold": 1.0}

        @pytest.mark.ntinv_replicas(2, argv=PATCHER, ready="watching from")
        @pytest.mark.ntinv_explore(schedules=3, space=SPACE)
        def test_it(ntinv):
            [hold] = ntinv.run.schedule.steps
            writer = dict(hold.params)["until_status_write_of"]
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", stamped)
            assert ntinv.wait_quiet()
            writers = [r.identity for r in ntinv.ledger.requests(subresource="status")]
            assert writers[0] == writer
            steps = ntinv.world.engine.steps
            [write] = [s.n for s in steps if s.actor == writer and s.what.startswith("patch")]
            held = [s.n for s in steps if s.actor == hold.identity and s.kind == "event"]
            assert held and min(held) > write
    """)
    pt.runpytest("--ntinv-seed=5").assert_outcomes(passed=3)


def test_a_crashed_process_gets_nothing_it_was_held(pt: pytest.Pytester) -> None:
    """Crashed on a trigger: the process is killed between two steps and what the
    world held for it is dropped; the survivor goes on."""
    pt.makepyfile("""
        import pytest
        from conftest import GADGET, PATCHER, stamped
        from pytest_ntinvariants.ledger import ReplicaEvent

        @pytest.mark.ntinv_replicas(2, argv=PATCHER, ready="watching from")
        def test_it(ntinv):
            crashed = ntinv.perturb.trigger(ReplicaEvent, identity="replica-0",
                                            action="crashed")
            ntinv.crash_on(ntinv.perturb.after_write("replica-0", subresource="status"), 0)
            ntinv.crash_on(ntinv.perturb.after_write("replica-1", subresource="status"), 0)
            ntinv.apply(GADGET)
            assert crashed.wait(10)
            assert not ntinv.replicas[0].running
            assert "replica-0" not in {a.actor for a in ntinv.world.engine.held.values()}
            ntinv.apply({**GADGET, "metadata": {"name": "g2"}})
            obj = ntinv.wait_for("ntinv.test/v1", "Gadget", "g2", stamped)
            assert obj["status"]["by"] == "replica-1"
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_processes_and_worlds_are_matched_or_refused(tmp_path: Path) -> None:
    """A process cannot run in a world on virtual time (it would never keep up with its
    jumps), nor a kopf replica in a world on real time."""
    argv = [sys.executable, str(PATCHER)]
    with FakeApiServer() as server:
        with pytest.raises(ValueError, match="need a world on real time"):
            ProcessReplica(server, "replica-0", argv, world=World(1))
        with pytest.raises(ValueError, match="a world on real time is for process replicas"):
            KopfReplica(server, "replica-0", kopf.OperatorRegistry, world=World(1, quiet=0.05))


def test_the_markers_process_arguments_are_checked_at_setup(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest
        from conftest import PATCHER

        @pytest.mark.ntinv_replicas(1, argv=PATCHER, operator="gadget_operator:make_registry")
        def test_both(ntinv):
            raise AssertionError("the body ran")

        @pytest.mark.ntinv_replicas(1, argv="python ctl.py")
        def test_string(ntinv):
            raise AssertionError("the body ran")

        @pytest.mark.ntinv_replicas(1, ready="up")
        def test_ready_alone(ntinv):
            raise AssertionError("the body ran")

        @pytest.mark.ntinv_replicas(1, argv=PATCHER, ready="(")
        def test_bad_pattern(ntinv):
            raise AssertionError("the body ran")

        @pytest.mark.ntinv_replicas(1, argv=PATCHER, env={"A": 1})
        def test_bad_env(ntinv):
            raise AssertionError("the body ran")
    """)
    result = pt.runpytest()
    result.assert_outcomes(errors=5)
    result.stdout.fnmatch_lines_random(
        [
            "*ntinv_replicas: argv runs a process; operator and settings are for kopf*",
            "*ntinv_replicas: argv must be a non-empty list of arguments, got 'python ctl.py'*",
            "*ntinv_replicas: ready and env need argv (a process)*",
            "*ntinv_replicas: ready: missing ), unterminated subpattern*",
            "*ntinv_replicas: env must map names to strings, got {'A': 1}*",
        ]
    )
    assert "the body ran" not in result.stdout.str()
