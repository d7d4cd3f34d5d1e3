"""The plugin as users meet it: markers, options, seeds, invariant failures, hooks, reports.

Each test writes a small test module with pytester and runs pytest on it, the way a
user would (pytest's own ``testing/`` does the same).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from inner_pytest import INI

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")


NR_HELPERS = """
import pytest
import reference_controller

@pytest.fixture
def nr_crd(ntinv):
    ntinv.apply(reference_controller.crd_manifest())
    return ntinv

def nr(name, **status):
    return {"apiVersion": "kubernaut.ai/v1alpha1", "kind": "NotificationRequest",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "simple", "priority": "low", "subject": "s", "body": "b",
                     "channels": ["slack"]}}

def write_status(ntinv, name, status):
    rt = ntinv.server.resource("kubernaut.ai/v1alpha1", "NotificationRequest")
    ntinv.server.store.patch(rt, "default", name, "application/merge-patch+json",
                             {"status": status}, subresource="status")
"""


@pytest.fixture
def pt(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_markers_are_listed_with_their_signatures(pt: pytest.Pytester) -> None:
    result = pt.runpytest("--markers")
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.ntinv_replicas(count=2, *, operator=None, namespaces=None, "
            "prefix='replica', settings=None, deterministic=None, argv=None, ready=None, "
            "env=None)*",
            "@pytest.mark.ntinv_watch_latency(delay, *, replicas=None)*",
            "@pytest.mark.ntinv_stale_reads(versions=1, *, seconds=None, replicas=None)*",
            "@pytest.mark.ntinv_faults(code, *, verb='write'*",
            "@pytest.mark.ntinv_explore(schedules=10, *, space=None, strategy=None, depth=3, "
            "budget=None)*",
            "@pytest.mark.ntinv_replay(token)*",
            "@pytest.mark.ntinv_invariants(*, only=None, exclude=())*",
        ]
    )


def test_the_faults_help_lists_exactly_the_codes_the_parser_and_spaces_accept() -> None:
    from pytest_ntinvariants.markers import MARKERS, MarkerError, parse_fault
    from pytest_ntinvariants.perturb import Space

    listed = re.search(r"API error `code` \(([\d, ]+)\)", MARKERS["ntinv_faults"])
    assert listed is not None
    parsed, drawn = set(), set()
    for code in range(100, 600):
        try:
            parse_fault(pytest.mark.ntinv_faults(code).mark)
            parsed.add(code)
        except MarkerError:
            pass
        try:
            Space.from_marker({"faults": {code: 0.5}})
            drawn.add(code)
        except ValueError:
            pass
    assert {int(c) for c in listed.group(1).split(", ")} == parsed == drawn


@pytest.mark.parametrize(
    ("args", "kwargs", "expected"),
    [
        ((), {}, (1, None)),
        ((3,), {}, (3, None)),
        ((None,), {}, (1, None)),
        ((), {"seconds": 2}, (None, 2.0)),
        ((), {"versions": None, "seconds": 2}, (None, 2.0)),
        ((1,), {"seconds": 2}, "give versions or seconds, not both"),
    ],
)
def test_stale_reads_default_versions_give_way_to_seconds(
    args: tuple[object, ...], kwargs: dict[str, object], expected: object
) -> None:
    """The signature shows versions=1; it is the default only without seconds."""
    from pytest_ntinvariants.markers import MarkerError, parse_stale

    mark = pytest.mark.ntinv_stale_reads(*args, **kwargs).mark
    if isinstance(expected, str):
        with pytest.raises(MarkerError, match=expected):
            parse_stale(mark)
    else:
        spec = parse_stale(mark)
        assert (spec.versions, spec.seconds) == expected


def test_options_are_documented(pt: pytest.Pytester) -> None:
    result = pt.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "*--ntinv-seed=N*",
            "*--ntinv-replay=SEED|TOKEN*",
            "*--ntinv-strategy={random,pct,exhaustive,plans}*",
            "*--ntinv-budget=TIME|N*",
            "*--ntinv-shrink=RUNS*",
            "*--ntinv-schedules=K*",
            "*--ntinv-json=PATH*",
            "*--ntinv-report-dir=DIR*",
        ]
    )


def test_fixtures_are_documented(pt: pytest.Pytester) -> None:
    result = pt.runpytest("--fixtures")
    for name in (
        "ntinv ",
        "ntinv_apiserver",
        "ntinv_ledger",
        "ntinv_kubeconfig",
        "ntinv_kubeconfig_factory",
        "ntinv_operator",
        "ntinv_schedule_seed",
    ):
        assert any(line.startswith(name.strip()) for line in result.stdout.lines), name
    result.stdout.fnmatch_lines(["*One test's fake cluster*"])


def test_a_misspelt_invariant_fails_the_setup_before_the_body_runs(
    pt: pytest.Pytester,
) -> None:
    """It used to fail only after the body ran, as a failure of the test itself."""
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_invariants(only=["nr-no-duplicate-atempt"])
        def test_it(ntinv):
            raise AssertionError("the body ran")
    """)
    result = pt.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.ntinv_invariants: *nr-no-duplicate-atempt*"])
    assert "the body ran" not in result.stdout.str()


def test_a_misspelt_invariant_fails_the_setup_of_a_test_without_the_ntinv_fixture(
    pt: pytest.Pytester,
) -> None:
    """A test on the bare server fixture once ran its body with the marker ignored."""
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_invariants(exclude=["nr-retry-spacin"])
        def test_it(ntinv_apiserver):
            raise AssertionError("the body ran")
    """)
    result = pt.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_it*",
            "@pytest.mark.ntinv_invariants: no invariant named 'nr-retry-spacin' "
            "(registered: resource-version-monotonic, *nr-retry-spacing*)",
        ]
    )
    out = result.stdout.str()
    assert "the body ran" not in out and "During handling" not in out


def test_the_marker_chooses_the_invariants_of_a_test_without_the_ntinv_fixture(
    pt: pytest.Pytester,
) -> None:
    pt.makeconftest(NR_HELPERS)
    pt.makepyfile("""
        import pytest
        import reference_controller
        from conftest import nr

        @pytest.mark.ntinv_invariants(exclude=["nr-counters-*"])
        def test_counts_twice(ntinv_apiserver):
            ntinv_apiserver.apply(reference_controller.crd_manifest())
            ntinv_apiserver.apply(nr("nr-1"))
            rt = ntinv_apiserver.resource("kubernaut.ai/v1alpha1", "NotificationRequest")
            ntinv_apiserver.store.patch(
                rt, "default", "nr-1", "application/merge-patch+json",
                {"status": {"phase": "Pending", "totalAttempts": 3}}, subresource="status")
    """)
    pt.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("mark", "message"),
    [
        ("ntinv_watch_latency(-1)", "ntinv_watch_latency: delay must be a number of seconds >= 0"),
        (
            "ntinv_watch_latency(0.1, colour=1)",
            "ntinv_watch_latency: got an unexpected keyword argument 'colour'",
        ),
        ("ntinv_stale_reads(versions=0)", "ntinv_stale_reads: versions must be an int >= 1"),
        ("ntinv_stale_reads(versions=1, seconds=1)", "give versions or seconds, not both"),
        ("ntinv_faults(418)", "ntinv_faults: code must be one of"),
        ("ntinv_faults(409, probability=3)", "probability must be in [0, 1], got 3"),
        ("ntinv_replicas(count=0)", "ntinv_replicas: count must be an int in 1..16, got 0"),
        ("ntinv_replicas(operator=42)", "operator must be a callable or 'module:factory'"),
        ("ntinv_notifications(time_scale=-1)", "time_scale must be > 0"),
        ("ntinv_invariants(only=['no-such-invariant'])", "no-such-invariant"),
        ("ntinv_watch_latency(0.1, replicas=[5])", "replica index 5 out of range"),
    ],
)
def test_bad_marker_arguments_are_named(pt: pytest.Pytester, mark: str, message: str) -> None:
    pt.makepyfile(f"""
        import pytest

        @pytest.mark.{mark}
        def test_it(ntinv):
            pass
    """)
    result = pt.runpytest()
    assert result.ret != 0
    assert message in result.stdout.str(), result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_explore_makes_one_item_per_seeded_schedule(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_explore(schedules=3)
        def test_it(ntinv):
            assert ntinv.run.schedule is not None
            assert ntinv.seed == ntinv.run.schedule.seed
    """)
    first = pt.runpytest("--ntinv-seed=5", "-v")
    first.assert_outcomes(passed=3)
    ids = re.findall(r"test_it\[(seed-\d+)\]", first.stdout.str())
    assert len(set(ids)) == 3
    again = pt.runpytest("--ntinv-seed=5", "-v")
    assert re.findall(r"test_it\[(seed-\d+)\]", again.stdout.str()) == ids
    other = pt.runpytest("--ntinv-seed=6", "-v")
    assert set(re.findall(r"test_it\[(seed-\d+)\]", other.stdout.str())).isdisjoint(ids)
    replay = pt.runpytest(f"--ntinv-replay={ids[1][5:]}", "-v")
    replay.assert_outcomes(passed=1)
    replay.stdout.fnmatch_lines([f"*test_it?{ids[1]}? PASSED*"])
    override = pt.runpytest("--ntinv-schedules=2")
    override.assert_outcomes(passed=2)


def test_explore_needs_the_ntinv_fixture(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_explore(schedules=2)
        def test_it():
            pass
    """)
    result = pt.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*the test must use the ntinv fixture*"])


def test_explore_rejects_a_bad_space(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_explore(schedules=2, space={"watch_latnecy": (0, 1)})
        def test_it(ntinv):
            pass
    """)
    result = pt.runpytest()
    assert result.ret != 0
    assert "space has unknown key(s) ['watch_latnecy']" in result.stdout.str()


def test_seed_is_printed_in_the_header(pt: pytest.Pytester) -> None:
    pt.makepyfile("def test_nothing(): pass")
    result = pt.runpytest("--ntinv-seed=77")
    result.stdout.fnmatch_lines(["ntinvariants: seed=77 *"])


def test_bad_seed_option_is_a_usage_error(pt: pytest.Pytester) -> None:
    result = pt.runpytest("--ntinv-seed=abc")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ntinv-seed/--ntinv-replay takes an integer, got 'abc'*"])


def test_fault_marker_without_replicas_perturbs_every_client(pt: pytest.Pytester) -> None:
    pt.makepyfile("""
        import pytest
        from kubernetes import client, config

        @pytest.mark.ntinv_faults(409, verb="patch", times=1)
        def test_it(ntinv):
            api = client.CoreV1Api(config.new_client_from_config(
                str(ntinv.server.kubeconfig("me"))))
            api.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
            with pytest.raises(client.ApiException) as info:
                api.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
            assert info.value.status == 409
            api.patch_namespaced_config_map("c", "default", {"data": {"a": "b"}})
            assert [p.action for p in ntinv.ledger.perturbations()] == ["fault"]
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_an_invariant_violation_fails_the_test_with_a_report(
    pt: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on CI, where pytest prints each failure's message whole in the short summary.
    monkeypatch.setenv("CI", "true")
    pt.makeconftest(NR_HELPERS)
    pt.makepyfile("""
        from conftest import nr, write_status

        def test_counts_twice(nr_crd):
            nr_crd.apply(nr("nr-1"))
            write_status(nr_crd, "nr-1", {
                "phase": "Pending"})
            write_status(nr_crd, "nr-1", {
                "phase": "Sending",
                "deliveryAttempts": [{"channel": "slack", "attempt": 1, "status": "failed",
                                      "timestamp": "2026-01-01T00:00:00Z", "error": "502"}],
                "totalAttempts": 2, "failedDeliveries": 2, "successfulDeliveries": 0})
    """)
    report = tmp_path / "report.json"
    result = pt.runpytest(
        f"--ntinv-json={report}", f"--ntinv-report-dir={tmp_path / 'svg'}", "--ntinv-seed=11"
    )
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    # The failure is the violation report itself, from its first line: no traceback of
    # the plugin's own frames before it.
    result.stdout.fnmatch_lines(
        [
            "*_ test_counts_twice _*",
            "1 invariant violation (1 invariant, 1 object), seed 11",
            "  nr-counters-match-attempts    1  default/nr-1",
        ]
    )
    assert "session.py" not in out and "def _check" not in out and "self._check" not in out
    # One seed, the one the replay passes, said once; the timeline once (in the report).
    assert out.count("seed: 11 (session seed)") == 1
    assert not re.search(r"seed:? \d+", out.replace("seed: 11", "").replace("seed 11", ""))
    assert out.count("timeline of default/nr-1") == 1
    assert "- ntinvariants timeline -" not in out
    # The short summary names the violation in one line, not the report again.
    result.stdout.fnmatch_lines(
        ["FAILED *::test_counts_twice - *InvariantViolation: 1 invariant violation *, seed 11"]
    )
    assert out.count("nr-counters-match-attempts    1  default/nr-1") == 1
    result.stdout.fnmatch_lines(
        [
            "*- ntinvariants replay -*",
            "seed: 11 (session seed)",
            "replay: pytest *test_counts_twice*--ntinv-seed=11",
            "svg: *",
            "*= ntinvariants =*",
            "1 test(s) checked, * violation(s) in 1 test(s), 0 seeded schedule(s); seed 11",
            "*JSON report: *report.json",
        ]
    )
    doc = json.loads(report.read_text())
    (entry,) = doc["tests"]
    assert entry["nodeid"].endswith("test_counts_twice")
    assert {v["invariant"] for v in entry["violations"]} >= {"nr-counters-match-attempts"}
    svg = Path(entry["files"]["svg"])
    assert svg.exists() and svg.read_text().lstrip().startswith("<")


def test_a_body_that_fails_first_still_shows_its_violations(pt: pytest.Pytester) -> None:
    """The violations of a test whose own assertion failed first were only in the summary
    and the JSON report, not in that test's failure report."""
    pt.makeconftest(NR_HELPERS)
    pt.makepyfile("""
        from conftest import nr, write_status

        def test_counts_twice(nr_crd):
            nr_crd.apply(nr("nr-1"))
            write_status(nr_crd, "nr-1", {"phase": "Pending", "totalAttempts": 3})
            assert False, "the body's own check"
    """)
    result = pt.runpytest("--ntinv-seed=11")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*AssertionError: the body's own check",
            "*- ntinvariants violations -*",
            "1 invariant violation (1 invariant, 1 object), seed 11",
            "  nr-counters-match-attempts    1  default/nr-1",
            "NotificationRequest default/nr-1 *",
            "  nr-counters-match-attempts: totalAttempts is 3 but deliveryAttempts has 0 *",
            "*- ntinvariants timeline -*",
            # The violation's entry, marked in the one timeline the report has.
            "  > * system  wrote NotificationRequest default/nr-1 rv * (patch/status): "
            "phase <none> -> Pending; total 3 ok 0 failed 0",
            "*- ntinvariants replay -*",
            "seed: 11 (session seed)",
        ]
    )
    out = result.stdout.str()
    assert out.count("lanes:") == 1 and out.count("seed: 11") == 1


def test_invariants_can_be_excluded(pt: pytest.Pytester) -> None:
    pt.makeconftest(NR_HELPERS)
    pt.makepyfile("""
        import pytest
        from conftest import nr, write_status

        @pytest.mark.ntinv_invariants(exclude=["nr-counters-*"])
        def test_counts_twice(nr_crd):
            nr_crd.apply(nr("nr-1"))
            write_status(nr_crd, "nr-1", {"phase": "Pending", "totalAttempts": 3})
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_third_party_invariants_and_hooks(pt: pytest.Pytester) -> None:
    pt.makeconftest("""
        import pytest
        from pytest_ntinvariants.invariants import FunctionInvariant, Violation, ObjectRef

        CHECKED = []

        def no_blue(history, ctx):
            for v in history.versions:
                if (v.obj.get("data") or {}).get("colour") == "blue":
                    yield Violation("no-blue-configmaps", None, f"blue at rv {v.rv}", (v.rv,))

        @pytest.hookimpl(optionalhook=True)
        def pytest_ntinvariants_register(registry, config):
            registry.register(FunctionInvariant(
                "no-blue-configmaps", "ConfigMaps are never blue", no_blue,
                kinds=["ConfigMap"]))

        @pytest.hookimpl(optionalhook=True)
        def pytest_ntinvariants_checked(item, checked, violations):
            CHECKED.append((item.name, "no-blue-configmaps" in checked, len(violations)))

        def pytest_sessionfinish(session):
            print("CHECKED", CHECKED)
    """)
    pt.makepyfile("""
        def test_red(ntinv_apiserver):
            ntinv_apiserver.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "c"}, "data": {"colour": "red"}})

        def test_blue(ntinv_apiserver):
            ntinv_apiserver.apply({"apiVersion": "v1", "kind": "ConfigMap",
                                   "metadata": {"name": "c"}, "data": {"colour": "blue"}})
    """)
    result = pt.runpytest("-s")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no-blue-configmaps: blue at rv*", "replay: pytest *test_blue*"])
    assert "CHECKED [('test_red', True, 0), ('test_blue', True, 1)]" in result.stdout.str()


def test_draw_schedule_hook_replaces_the_default(pt: pytest.Pytester) -> None:
    pt.makeconftest("""
        import pytest
        from pytest_ntinvariants.perturb.schedule import Schedule, Step

        @pytest.hookimpl(optionalhook=True)
        def pytest_ntinvariants_draw_schedule(space, seed, identities, item):
            return Schedule(seed, (Step("fault", "me", (("code", 503), ("probability", 1.0))),))
    """)
    pt.makepyfile("""
        import pytest
        from kubernetes import client, config

        @pytest.mark.ntinv_explore(schedules=1)
        def test_it(ntinv):
            api = client.CoreV1Api(config.new_client_from_config(
                str(ntinv.server.kubeconfig("me"))))
            with pytest.raises(client.ApiException) as info:
                api.create_namespaced_config_map("default", {"metadata": {"name": "c"}})
            assert info.value.status == 503
    """)
    pt.runpytest().assert_outcomes(passed=1)


def test_xdist_workers_share_the_seed_and_merge_reports(
    pt: pytest.Pytester, tmp_path: Path
) -> None:
    pt.makepyfile("""
        import pytest

        @pytest.mark.ntinv_explore(schedules=6)
        def test_it(ntinv):
            ntinv.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    """)
    report = tmp_path / "report.json"
    result = pt.runpytest_subprocess(
        "-n", "2", "--ntinv-seed=3", f"--ntinv-json={report}", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        # (no replicas: nobody to perturb, and the summary says so)
        [
            "6 test(s) checked, * 0 violation(s) in 0 test(s), 6 seeded schedule(s) "
            "(6 perturbed nothing); seed 3"
        ]
    )
    doc = json.loads(report.read_text())
    assert doc["summary"] == {
        "tests": 6,
        "violations": 0,
        "schedules": 6,
        "schedules_perturbing_nothing": 6,
        "exploration": [],  # (no deterministic world: no steps, no strategy)
        "budget_skipped": 0,
    }
    serial = pt.runpytest("--ntinv-seed=3", "--collect-only", "-q")
    ids = sorted(t["nodeid"] for t in doc["tests"])
    assert ids == sorted(line for line in serial.stdout.lines if "::" in line)
