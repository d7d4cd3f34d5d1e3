"""Replicas through the plugin: the ``ntinv_replicas`` marker, the ``ntinv_operator``
fixture, async tests, crashes on triggers, and external-process controllers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from inner_pytest import INI

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")

HERE = Path(__file__).parent

# A tiny operator: every replica stamps the objects it sees with its identity.
OPERATOR = """
import kopf

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.ntinv.test"},
    "spec": {"group": "ntinv.test", "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {
                               "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}

def make_registry(identity):
    registry = kopf.OperatorRegistry()

    @kopf.on.event("ntinv.test", "v1", "gadgets", registry=registry)
    async def stamp(body, patch, **_):
        seen = dict((body.get("status") or {}).get("seen") or {})
        if identity not in seen:
            seen[identity] = True
            patch.status["seen"] = seen

    return registry
"""

CONFTEST = """
import pytest
import gadget_operator

@pytest.fixture
def ntinv_operator(ntinv_apiserver):
    ntinv_apiserver.apply(gadget_operator.CRD)
    return gadget_operator.make_registry

GADGET = {"apiVersion": "ntinv.test/v1", "kind": "Gadget", "metadata": {"name": "g1"}}

def seen_by(*identities):
    return lambda o: set((o.get("status") or {}).get("seen") or {}) >= set(identities)
"""


@pytest.fixture
def pt(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(gadget_operator=OPERATOR)
    pytester.makeconftest(CONFTEST)
    return pytester


def test_replicas_marker_runs_the_operator_fixture(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest
        from conftest import GADGET, seen_by

        @pytest.mark.ntinv_replicas(3)
        def test_three(ntinv):
            assert ntinv.replicas.identities == ["replica-0", "replica-1", "replica-2"]
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1",
                           seen_by("replica-0", "replica-1", "replica-2"))
            writers = {r.identity for r in ntinv.ledger.requests(verb="patch")}
            assert writers == {"replica-0", "replica-1", "replica-2"}
            started = [e.identity for e in ntinv.ledger.replica_events(action="started")]
            assert sorted(started) == ["replica-0", "replica-1", "replica-2"]
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_operator_by_module_path_and_prefix(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest
        from conftest import GADGET, seen_by

        @pytest.mark.ntinv_replicas(1, operator="gadget_operator:make_registry", prefix="op")
        def test_one(ntinv):
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", seen_by("op-0"))
    """)
    pt.makeconftest("""
        import pytest, gadget_operator

        @pytest.fixture(autouse=True)
        def crd(ntinv_apiserver):
            ntinv_apiserver.apply(gadget_operator.CRD)

        GADGET = {"apiVersion": "ntinv.test/v1", "kind": "Gadget", "metadata": {"name": "g1"}}

        def seen_by(*identities):
            return lambda o: set((o.get("status") or {}).get("seen") or {}) >= set(identities)
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_missing_operator_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile("""
        import pytest

        @pytest.mark.ntinv_replicas(2)
        def test_it(ntinv):
            pass
    """)
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*ntinv_replicas needs a controller: pass operator=*"])


def test_unloadable_operator_names_it(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_replicas(1, operator="no_such_module:factory")
        def test_it(ntinv):
            pass
    """)
    result = pt.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*cannot load operator 'no_such_module:factory'*"])


def test_async_tests_use_replicas(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import asyncio
        import pytest
        from conftest import GADGET, seen_by

        @pytest.mark.asyncio
        @pytest.mark.ntinv_replicas(2)
        async def test_async(ntinv):
            ntinv.apply(GADGET)
            ticks = 0

            async def tick():
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            ticker = asyncio.create_task(tick())
            obj = await ntinv.wait_for_async("ntinv.test/v1", "Gadget", "g1",
                                             seen_by("replica-0", "replica-1"))
            ticker.cancel()
            assert set(obj["status"]["seen"]) == {"replica-0", "replica-1"}
            assert ticks > 0  # the test's own loop kept running while it waited
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_crash_on_a_trigger_and_restart(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import threading
        import pytest
        from conftest import GADGET, seen_by
        from pytest_ntinvariants.ledger import ReplicaEvent

        @pytest.mark.ntinv_replicas(2)
        def test_crash(ntinv):
            crashed = ntinv.perturb.trigger(ReplicaEvent, identity="replica-1", action="crashed")
            ntinv.crash_on(ntinv.perturb.after_write("replica-1", subresource="status"), 1)
            ntinv.apply(GADGET)
            assert crashed.wait(10)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", seen_by("replica-0", "replica-1"))
            assert not ntinv.replicas[1].running
            ntinv.replicas.restart(1)
            ntinv.apply({**GADGET, "metadata": {"name": "g2"}})
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g2", seen_by("replica-0", "replica-1"))
            actions = [(e.identity, e.action) for e in ntinv.ledger.replica_events()
                       if e.identity == "replica-1"]
            assert actions == [("replica-1", "started"), ("replica-1", "crashed"),
                               ("replica-1", "restarted")]
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_external_process_replicas(pt: pytest.Pytester) -> None:
    patcher = HERE / "operators_fixtures" / "status_patcher.py"
    pt.makepyfile(f"""
        import sys
        from conftest import GADGET

        def test_process(ntinv):
            import gadget_operator
            ntinv.apply({{**gadget_operator.CRD, "metadata": {{"name": "gadgets.ntinv.test"}}}})
            replicas = ntinv.start_process_replicas(
                [sys.executable, {str(patcher)!r}], 2, ready="watching from")
            ntinv.apply(GADGET)
            obj = ntinv.wait_for("ntinv.test/v1", "Gadget", "g1",
                                 lambda o: (o.get("status") or {{}}).get("by"))
            assert obj["status"]["by"] in replicas.identities
            writers = {{r.identity for r in ntinv.ledger.requests(subresource="status")}}
            assert writers <= set(replicas.identities) and writers
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_explore_draws_for_process_replicas_when_they_start(pt: pytest.Pytester) -> None:
    """With replicas the test body starts (process replicas), exploration once drew for
    no identities: "no perturbations", silently. It draws for them when they start, and
    the summary counts the schedules that perturbed nothing (a test that starts none)."""
    patcher = HERE / "operators_fixtures" / "status_patcher.py"
    pt.makepyfile(f"""
        import sys
        import pytest
        from conftest import GADGET

        @pytest.mark.ntinv_explore(schedules=3)
        def test_process(ntinv):
            import gadget_operator
            ntinv.apply({{**gadget_operator.CRD, "metadata": {{"name": "gadgets.ntinv.test"}}}})
            assert not ntinv.run.schedule.steps  # no identities to draw for yet
            replicas = ntinv.start_process_replicas(
                [sys.executable, {str(patcher)!r}], 2, ready="watching from")
            schedule = ntinv.run.schedule
            assert schedule.steps, schedule.describe()
            assert {{s.identity for s in schedule.steps}} <= set(replicas.identities)
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1",
                           lambda o: (o.get("status") or {{}}).get("by"))

        @pytest.mark.ntinv_explore(schedules=1)
        def test_no_replicas(ntinv):
            ntinv.apply({{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "c"}}}})
    """)
    result = pt.runpytest("--ntinv-seed=3")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["4 test(s) checked, * 4 seeded schedule(s) (1 perturbed nothing); seed 3"]
    )


def test_kopf_settings_through_the_marker_and_start_replicas(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_replicas(2, settings={"persistence.consistency_timeout": 7.5,
                                                 "watching.server_timeout": 30})
        def test_marker(ntinv):
            for replica in ntinv.replicas:
                assert replica.settings.persistence.consistency_timeout == 7.5
                assert replica.settings.watching.server_timeout == 30
                assert replica.settings.peering.standalone  # the plugin's own still hold

        def test_start_replicas(ntinv, ntinv_operator):
            def tune(settings):
                settings.batching.idle_timeout = 0.25

            ntinv.start_replicas(ntinv_operator, 1, settings=tune)
            assert ntinv.replicas[0].settings.batching.idle_timeout == 0.25

        @pytest.mark.ntinv_replicas(1, settings={"persistence.consistancy_timeout": 1})
        def test_misspelt(ntinv):
            raise AssertionError("the body ran")
    """)
    result = pt.runpytest()
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.ntinv_replicas: settings: kopf.OperatorSettings has no"
            " 'persistence.consistancy_timeout'*"
        ]
    )
    assert "the body ran" not in result.stdout.str()


def test_wait_watching_returns_once_every_replica_watches(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_replicas(2)
        def test_it(ntinv):
            ntinv.wait_watching("gadgets")
            watched = {r.identity for r in ntinv.ledger.requests(verb="watch")
                       if r.resource == "ntinv.test/gadgets"}
            assert watched == {"replica-0", "replica-1"}
            ntinv.wait_watching("ntinv.test/gadgets", identities=["replica-1"])
            with pytest.raises(TimeoutError, match="not watching configmaps after 0.2s: "
                                                   "replica-0, replica-1"):
                ntinv.wait_watching("configmaps", timeout=0.2)
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_explore_with_replicas_reports_the_schedule_on_failure(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest
        from conftest import GADGET, seen_by

        @pytest.mark.ntinv_replicas(2)
        @pytest.mark.ntinv_explore(schedules=2, space={"watch_latency": (0.001, 0.002),
                                                       "stale_reads": 0, "coalesce": 0,
                                                       "hold": 0})
        def test_it(ntinv):
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", seen_by("replica-0", "replica-1"))
            assert False, "deliberately"
    """)
    result = pt.runpytest("--ntinv-seed=9")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*- ntinvariants schedule -*",
            "seed *:",
            "  - watch-latency replica-0 delay=0.00*",
            "*- ntinvariants timeline -*",
            "*replica-0*",
            "replay: pytest *test_it?seed-*--ntinv-replay=*",
        ]
    )


@pytest.mark.skipif(sys.platform != "linux", reason="process groups and signals as on Linux")
def test_replicas_are_stopped_after_the_test(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import threading
        import pytest
        from conftest import GADGET, seen_by

        THREADS = []
        WORLD = []

        @pytest.mark.ntinv_replicas(2, deterministic=False)
        def test_free(ntinv):
            THREADS.extend(r.thread for r in ntinv.replicas)
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", seen_by("replica-0", "replica-1"))

        @pytest.mark.ntinv_replicas(2)
        def test_deterministic(ntinv):
            assert all(r.thread is None for r in ntinv.replicas)  # tasks on the world's loop
            WORLD.append(ntinv.world.thread)
            THREADS.extend(r._task for r in ntinv.replicas)
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", seen_by("replica-0", "replica-1"))

        def test_after():
            assert len(THREADS) == 4 and WORLD
            assert not any(t.is_alive() for t in THREADS[:2])
            assert all(t.done() for t in THREADS[2:])
            assert not WORLD[0].running
    """)
    pt.runpytest().assert_outcomes(passed=3)


def test_a_crash_in_a_world_closes_the_crashed_replicas_sessions(pt: pytest.Pytester) -> None:
    """The crashed replica's aiohttp sessions are closed (no ResourceWarning later), the
    survivor's, on the same loop, are not: it goes on working."""
    pt.makepyfile("""
        import gc
        import aiohttp
        import pytest
        from conftest import GADGET, seen_by
        from pytest_ntinvariants.ledger import ReplicaEvent

        def open_sessions(loop):
            return [o for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession)
                    and getattr(o, "_loop", None) is loop and not o.closed]

        @pytest.mark.ntinv_replicas(2)
        def test_crash(ntinv):
            ntinv.apply(GADGET)
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g1", seen_by("replica-0", "replica-1"))
            before = len(open_sessions(ntinv.world.loop))
            crashed = ntinv.perturb.trigger(ReplicaEvent, identity="replica-1", action="crashed")
            ntinv.replicas.request_crash(1)
            assert crashed.wait(10)
            ntinv.wait_quiet()  # (the crash is recorded before its sessions are closed)
            after = len(open_sessions(ntinv.world.loop))
            assert 0 < after < before, (before, after)
            ntinv.apply({**GADGET, "metadata": {"name": "g2"}})
            ntinv.wait_for("ntinv.test/v1", "Gadget", "g2", seen_by("replica-0"))
    """)
    pt.runpytest("-W", "error::ResourceWarning").assert_outcomes(passed=1)
