"""Strategies (random walk, PCT, replay of decisions) and replay tokens: a failing
exploration run is written down as its schedule and its decisions, and runs again from
that alone."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from inner_pytest import INI
from operators_fixtures import children

from pytest_ntinvariants.perturb.schedule import Step
from pytest_ntinvariants.replay import ReplayToken
from pytest_ntinvariants.sim import PCT, Action, RandomWalk, Replay, independence, make_strategy
from pytest_ntinvariants.sim.strategies import Exhaustive, deviation_counts, deviation_sets

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestDeprecationWarning")


class Stream:
    """Stands for a watch stream: what a lane of events is keyed by."""

    def __init__(self, id: int) -> None:
        self.id = id


def action(seq: int, actor: str, kind: Any = "request", channel: object = None) -> Action:
    return Action(seq, actor, kind, f"#{seq}", release=lambda: None, drop=lambda: None,
                  channel=channel)  # fmt: skip


# ------------------------------------------------------------------ strategies


def test_pct_runs_the_highest_lane_and_demotes_it_at_a_change_point() -> None:
    a, b = action(1, "replica-0"), action(2, "replica-1")
    pct = PCT(5, depth=2, steps=10)
    [change] = pct._changes  # depth 2: one change point
    first = pct.choose([a, b], 0)
    # The same lane wins every step up to the change point, and then the other one.
    picks = [pct.choose([a, b], step) for step in range(change + 2)]
    assert picks[: change + 1] == [first] * (change + 1)
    assert picks[change + 1] == 1 - first
    # Within a lane the oldest action goes (arrival order), whatever its place.
    pct2 = PCT(5, depth=1, steps=10)
    older, newer = action(1, "replica-0"), action(3, "replica-0")
    assert pct2.choose([older, newer], 0) == 0


def test_pct_lanes_are_watch_streams_and_kinds_and_its_bound_counts_them() -> None:
    pct = PCT(1, depth=3, steps=20)
    events = [action(i, "replica-0", "event", Stream(i)) for i in (1, 2)]
    pct.choose([*events, action(3, "replica-0"), action(4, "replica-1")], 0)
    assert pct.lanes == 4  # two streams, replica-0's requests, replica-1's requests
    assert pct.bound(20) == pytest.approx(1 / (4 * 20**2))
    assert pct.describe() == "pct (depth 3, 20 steps)"


def test_the_same_seed_makes_the_same_choices() -> None:
    lanes = [action(i, f"replica-{i % 3}", "event", Stream(i)) for i in range(6)]
    for make in (lambda: RandomWalk(11), lambda: PCT(11, depth=3, steps=30)):
        one, two = make(), make()
        steps = range(30)
        assert [one.choose(lanes, s) for s in steps] == [two.choose(lanes, s) for s in steps]


def test_replay_follows_the_decisions_then_arrival_order() -> None:
    a, b, c = action(1, "r0"), action(2, "r1"), action(3, "r2")
    replay = Replay([2, 0, 5])
    assert replay.choose([a], 0) == 0  # one candidate: no decision used
    assert [replay.choose([a, b, c], s) for s in range(4)] == [2, 0, 2, 0]
    assert replay.diverged == 1  # 5 is beyond three candidates: the code changed


def test_strategies_are_made_by_name() -> None:
    assert isinstance(make_strategy("random", 1), RandomWalk)
    pct = make_strategy("pct", 1, depth=4)
    assert isinstance(pct, PCT) and pct.depth == 4
    known = "random, pct, exhaustive, plans"
    with pytest.raises(ValueError, match=f"unknown strategy 'dfs'; known: {known}"):
        make_strategy("dfs", 1)
    with pytest.raises(ValueError, match="depth must be at least 1"):
        PCT(1, depth=0)


def test_deviation_sets_come_fewest_first_and_are_counted() -> None:
    choices = [2, 3, 1, 2]  # candidates at each decision of a learning run
    sets = list(deviation_sets(choices, 2))
    assert sets[0] == ()
    assert sets[1:5] == [((0, 1),), ((1, 1),), ((1, 2),), ((3, 1),)]
    assert all(len({p for p, _ in s}) == len(s) for s in sets)  # one per decision
    assert [sum(1 for s in sets if len(s) == k) for k in range(3)] == [1, 4, 5]
    assert deviation_counts(choices, 2) == [1, 4, 5]
    search = make_strategy("exhaustive", 1, depth=2, choices=choices, index=7)
    assert isinstance(search, Exhaustive) and search.decisions == [1, 0, 0, 1]
    assert make_strategy("exhaustive", 1, depth=2, choices=choices, index=10) is None
    # Deviations that only reorder independent steps are left out, and not counted.
    equivalent = {(1, 2), (3, 1)}
    kept = list(deviation_sets(choices, 2, equivalent))
    assert kept == [s for s in sets if not equivalent & set(s)]
    assert deviation_counts(choices, 2, equivalent) == [1, 2, 1]
    search = make_strategy("exhaustive", 1, depth=2, choices=choices, index=3,
                           equivalent=equivalent)  # fmt: skip
    assert isinstance(search, Exhaustive) and search.deviations == ((0, 1), (1, 1))


# ---------------------------------------------------------------------- tokens


def test_a_token_round_trips_and_a_bad_one_says_so() -> None:
    token = ReplayToken(
        42,
        (Step("hold", "replica-1", (("until_status_write_of", "replica-0"),)),
         Step("watch-latency", "replica-0", (("delay", 0.012345678),))),
        (0, 1, 2, 1),
    )  # fmt: skip
    text = token.encode()
    assert text.startswith("ntv1-") and ReplayToken.decode(text) == token
    recorded = dataclasses.replace(token, digest="0123456789abcdef")
    assert ReplayToken.decode(recorded.encode()) == recorded
    with pytest.raises(ValueError, match="starts with 'ntv1-'"):
        ReplayToken.decode("42")
    with pytest.raises(ValueError, match="cut short or mistyped"):
        ReplayToken.decode(text[:-8])


# ------------------------------------------------------------- through pytest


@pytest.fixture
def pt(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    pytester.makepyfile(test_children=children.race_test(12))
    pytester.syspathinsert(Path(__file__).parent)  # operators_fixtures
    return pytester


def run(pt: pytest.Pytester, *args: str) -> tuple[dict[str, Any], Any]:
    out = pt.path / "ntinv.json"
    result = pt.runpytest(f"--ntinv-json={out}", *args)
    return json.loads(out.read_text()), result


def test_a_failure_prints_a_token_that_replays_it_without_the_draw(
    pt: pytest.Pytester,
) -> None:
    """The token carries the schedule and the decisions: the replay fails again with the
    same ledger even when the schedule would now be drawn differently, and with another
    strategy asked for."""
    doc, result = run(pt, "--ntinv-seed=7", "--ntinv-shrink=0")
    failed = [e for e in doc["tests"] if e["body_failed"]]
    assert failed, result.stdout.str()
    entry = failed[0]
    assert entry["strategy"] == "random"
    # The printed replay command passes the failing run's token.
    commands = re.findall(r"^replay: (pytest .*)$", result.stdout.str(), re.M)
    assert len(commands) == len(failed)
    printed = {tuple(shlex.split(c)[1:]) for c in commands}
    args = (entry["nodeid"], "-p", "no:randomly", f"--ntinv-replay={entry['token']}")
    assert args in printed
    # A draw that would now perturb everything: the token's schedule is used, not it.
    pt.makeconftest("""
        import pytest
        from pytest_ntinvariants import Schedule
        from pytest_ntinvariants.perturb.schedule import Step

        @pytest.hookimpl(optionalhook=True)
        def pytest_ntinvariants_draw_schedule(space, seed, identities, item):
            return Schedule(seed, tuple(Step("stale-reads", i, (("versions", 2),))
                                        for i in identities))
    """)
    again, result = run(pt, *args, "--ntinv-strategy=pct")
    [replayed] = again["tests"]
    assert replayed["body_failed"] and replayed["digest"] == entry["digest"]
    assert replayed["schedule"] == entry["schedule"]
    assert replayed["strategy"] == "replay" and replayed["token"] == entry["token"]
    assert replayed["diverged_from"] is None
    assert "replay not the recorded run" not in result.stdout.str()


def test_a_replay_that_is_not_the_recorded_run_says_so(pt: pytest.Pytester) -> None:
    """The token carries the digest of the ledger its run wrote: a replay that writes
    another one (the code changed, or the test depends on something its seed does not
    decide) is told apart in the summary, the JSON report and the failure's report."""
    doc, _ = run(pt, "--ntinv-seed=7", "--ntinv-shrink=0")
    entry = next(e for e in doc["tests"] if e["body_failed"])
    token = ReplayToken.decode(entry["token"])
    assert token.digest == entry["digest"]
    other = dataclasses.replace(token, digest="0" * 16).encode()
    again, result = run(pt, entry["nodeid"], "-p", "no:randomly", f"--ntinv-replay={other}")
    [replayed] = again["tests"]
    assert replayed["digest"] == entry["digest"] and replayed["diverged_from"] == "0" * 16
    out = result.stdout.str()
    assert "the replayed token recorded digest 0000000000000000: this is not the same run" in out
    assert (
        f"replay not the recorded run: {entry['nodeid']}: ledger digest {entry['digest']}, "
        "the token's 0000000000000000; unless the code changed since" in out
    ), out


def test_the_summary_says_what_each_exploration_covered(pt: pytest.Pytester) -> None:
    doc, result = run(pt, "--ntinv-seed=3", "-p", "no:randomly")
    [explored] = doc["summary"]["exploration"]
    assert explored["test"] == "test_children.py::test_one_child"
    assert explored["strategy"] == "random" and explored["schedules"] == 12
    assert 1 <= explored["interleavings"] <= 12
    assert explored["failed"] == sum(1 for e in doc["tests"] if e["body_failed"])
    # The time: every item's, its unperturbed runs and its shrinking included.
    assert explored["seconds"] == pytest.approx(sum(e["seconds"] for e in doc["tests"]), abs=0.01)
    assert explored["seconds"] > 0
    result.stdout.fnmatch_lines(
        [
            "exploration (strategy: schedules, distinct interleavings, failing):",
            f"  test_children.py::test_one_child: random: 12 schedules in "
            f"{explored['seconds']:.1f}s, {explored['interleavings']} interleavings "
            f"({explored['orders']} up to the order of independent steps), "
            f"{explored['failed']} failing",
        ]
    )
    pct, result = run(pt, "--ntinv-seed=3", "--ntinv-strategy=pct", "--ntinv-schedules=4")
    [explored] = pct["summary"]["exploration"]
    # (its length, k, is the learning run's: see test_pct_takes_the_length_of_its_...)
    assert re.fullmatch(r"pct \(depth 3, \d+ steps\)", explored["strategy"])
    assert 0 < explored["bound_one"] <= explored["bound_all"] < 1
    result.stdout.fnmatch_lines(
        [
            "*pct (depth 3, * steps): 4 schedules in *s, *; "
            "a race of its depth is hit with p >= * per schedule, * in all"
        ]
    )


def test_strategy_arguments_are_checked(pt: pytest.Pytester) -> None:
    # (Each in a module of its own: a marker error fails its module's collection.)
    pt.makepyfile(
        test_bad_strategy="""
            import pytest

            @pytest.mark.ntinv_replicas(1)
            @pytest.mark.ntinv_explore(schedules=1, strategy="dfs")
            def test_strategy(ntinv):
                pass
        """,
        test_bad_depth="""
            import pytest

            @pytest.mark.ntinv_replicas(1)
            @pytest.mark.ntinv_explore(schedules=1, strategy="pct", depth=0)
            def test_depth(ntinv):
                pass
        """,
    )
    result = pt.runpytest("test_bad_strategy.py", "test_bad_depth.py")
    result.stdout.fnmatch_lines_random(
        [
            "*ntinv_explore: strategy must be one of random, pct, exhaustive, plans, got 'dfs'*",
            "*ntinv_explore: depth must be an int >= 1, got 0*",
        ]
    )
    assert result.ret != 0
    result = pt.runpytest("--ntinv-replay=ntv1-garbage")
    result.stderr.fnmatch_lines(["*--ntinv-replay: not a replay token (cut short or mistyped?)*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result = pt.runpytest("--ntinv-strategy=dfs")
    result.stderr.fnmatch_lines(["*--ntinv-strategy: invalid choice: 'dfs'*"])


# ------------------------------------------------------------------- shrinking


def test_a_failure_is_shrunk_to_a_run_that_fails_the_same_way(pt: pytest.Pytester) -> None:
    """Irrelevant perturbations and deviations from arrival order are taken away while
    the run fails with the same error at the same place; what is left replays, fails
    again, and is what the report prints. Shrinking runs are not counted as tests."""
    pt.makepyfile(test_children=children.race_test(8).replace(
        '{"watch_latency": None, "stale_reads": 0, "coalesce": 0, "hold": 0}',
        '{"watch_latency": None, "stale_reads": 1, "coalesce": 0.5, "hold": 0}',
    ))  # fmt: skip
    doc, result = run(pt, "--ntinv-seed=7")
    failed = [e for e in doc["tests"] if e["body_failed"]]
    assert failed and len(doc["tests"]) == 8, result.stdout.str()
    perturbed = [e for e in failed if e["perturbed"]]
    assert perturbed, "no failing schedule had a perturbation to take away"
    for entry in failed:
        shrunk = entry["shrunk"]
        assert shrunk["complete"]
        assert len(shrunk["perturbations"]) <= shrunk["perturbations_before"]
        assert len(shrunk["deviations"]) <= shrunk["deviations_before"]
    entry = perturbed[0]
    shrunk = entry["shrunk"]
    # (this race needs no perturbation at all: both replicas list, then both create)
    assert shrunk["perturbations"] == [] and shrunk["perturbations_before"] > 0
    section = result.stdout.str()
    assert f"--ntinv-replay={shrunk['token']}" in section
    assert f'@pytest.mark.ntinv_replay("{shrunk["token"]}")' in section
    assert "steps of the smallest run:" in section
    again, replayed = run(pt, entry["nodeid"], f"--ntinv-replay={shrunk['token']}",
                          "--ntinv-shrink=0")  # fmt: skip
    [rerun] = again["tests"]
    assert rerun["body_failed"] and rerun["schedule"].endswith("no perturbations")
    replayed.stdout.fnmatch_lines(["*AssertionError: [[]'g1-*', 'g1-*'[]]*"])


def test_a_test_pinned_to_a_token_runs_that_run(pt: pytest.Pytester) -> None:
    doc, _ = run(pt, "--ntinv-seed=7", "--ntinv-shrink=0")
    failing = next(e for e in doc["tests"] if e["body_failed"])
    passing = next(e for e in doc["tests"] if not e["body_failed"])
    # A pinned test outlives the code its run failed on: its ledger is not compared with
    # the token's (here a digest no run writes).
    failing["token"] = dataclasses.replace(
        ReplayToken.decode(failing["token"]), digest="0" * 16
    ).encode()
    body = children.race_test(1).split("@pytest.mark.ntinv_replicas(2)")
    module = body[0] + "".join(
        f"""
@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_replay("{entry["token"]}")
def test_{name}(ntinv):
    ntinv.wait_watching("gadgets")
    ntinv.apply(gadgets.gadget("g1"))
    assert ntinv.wait_quiet()
    kids = ntinv.list("v1", "ConfigMap", "default", label_selector="gadget=g1")
    assert len(kids) == 1, [k["metadata"]["name"] for k in kids]
"""
        for name, entry in (("fails", failing), ("passes", passing))
    )
    pt.makepyfile(test_pinned=module)
    pinned, result = run(pt, "test_pinned.py", "--ntinv-shrink=0")
    result.assert_outcomes(passed=1, failed=1)
    by_name = {e["nodeid"].split("::")[1].split("[")[0]: e for e in pinned["tests"]}
    assert by_name["test_fails"]["digest"] == failing["digest"]
    assert by_name["test_passes"]["digest"] == passing["digest"]
    assert by_name["test_fails"]["diverged_from"] is None
    assert "replay not the recorded run" not in result.stdout.str()
    pt.makepyfile(
        test_pinned="""
        import pytest

        @pytest.mark.ntinv_replay("ntv1-AAAA")
        def test_bad(ntinv):
            pass
    """
    )
    result = pt.runpytest("test_pinned.py")
    result.stdout.fnmatch_lines(["*@pytest.mark.ntinv_replay: not a replay token*"])
    assert result.ret != 0


# --------------------------------------------------------------- learning


def test_an_exhaustive_search_runs_every_run_within_its_bound_once(pt: pytest.Pytester) -> None:
    """A learning run (unrecorded) says how many candidates each decision had; the items
    then take every run with no deviation, then with one, each once, and the items past
    the end of the search are skipped, saying why."""
    pt.makepyfile(test_children=children.race_test(40).replace(
        "schedules=40,", 'schedules=40, strategy="exhaustive", depth=1,'))  # fmt: skip
    doc, result = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0", "-rs")
    [explored] = doc["summary"]["exploration"]
    search = explored["exhaustive"]
    total = sum(search["runs_by_deviations"])
    assert search["runs_by_deviations"][0] == 1 and 1 < total < 40
    assert search["ran_by_deviations"] == search["runs_by_deviations"]
    assert explored["schedules"] == total == len(doc["tests"])  # the learning run: unrecorded
    assert explored["interleavings"] == total  # every run a different one
    assert all(e["schedule"].endswith("no perturbations") for e in doc["tests"])
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] == 40 - total
    left_out = search["equivalent"]
    assert left_out > 0  # the two replicas' events and reads commute
    result.stdout.fnmatch_lines(
        [
            f"*exhaustive (at most 1 deviation): {total} schedules in *s, {total} interleavings "
            f"({explored['orders']} up to the order of independent steps), * failing; runs "
            f"with k deviations from arrival order: 1 of 1 with 0, {total - 1} of "
            f"{total - 1} with 1 (the whole search); {left_out} runs left out as equivalent "
            "orders",
            "*exhaustive search of test_children.py::test_one_child: every run with at most "
            "1 deviation(s) from arrival order ran in an earlier item*",
        ]
    )


def test_the_reduction_loses_no_order_of_the_whole_search(
    pt: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runs an exhaustive search leaves out as equivalent reach no order (class of
    runs up to swapping independent steps) that the runs it keeps miss: the reduced
    search and the whole one cover the same orders, in fewer runs."""
    pt.makepyfile(test_children=children.race_test(40).replace(
        "schedules=40,", 'schedules=40, strategy="exhaustive", depth=1,'))  # fmt: skip
    reduced, _ = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0")
    monkeypatch.setattr(independence, "equivalent_deviations", lambda *_: frozenset())
    whole, _ = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0")
    assert len(reduced["tests"]) < len(whole["tests"])
    assert {e["order"] for e in reduced["tests"]} == {e["order"] for e in whole["tests"]}


def test_pct_takes_the_length_of_its_learning_run(pt: pytest.Pytester) -> None:
    """PCT draws its change points among the steps of the learning run (the test in
    arrival order, unperturbed), which is as long as an exhaustive search's first run."""
    arrival, _ = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0", "--ntinv-strategy=exhaustive",
                     "--ntinv-schedules=1")  # fmt: skip
    [first] = arrival["tests"]
    doc, _ = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0", "--ntinv-strategy=pct",
                 "--ntinv-schedules=3")  # fmt: skip
    assert {e["strategy"] for e in doc["tests"]} == {f"pct (depth 3, {first['steps']} steps)"}


# ----------------------------------------------------------------- budgets


def test_an_exploration_budget_skips_what_does_not_fit_saying_so(pt: pytest.Pytester) -> None:
    doc, result = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0", "--ntinv-budget=3", "-rs")
    assert len(doc["tests"]) == 3 and doc["summary"]["budget_skipped"] == 9
    result.assert_outcomes(**{k: v for k, v in result.parseoutcomes().items() if k != "skipped"},
                           skipped=9)  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "exploration budget: 9 item(s) skipped after 3 schedule(s) in *s",
            "SKIPPED [[]9[]] test_children.py:*: ntinv budget: 3 schedules ran in this process",
        ]
    )
    # A wall-time budget: spent by the first item already.
    doc, result = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0", "--ntinv-budget=0.001s", "-rs")
    assert len(doc["tests"]) == 1
    result.stdout.fnmatch_lines(["*ntinv budget: 0.001s of exploration spent in this process*"])
    # Per test, from the marker.
    pt.makepyfile(test_children=children.race_test(12).replace(
        "schedules=12,", "schedules=12, budget=0.001,"))  # fmt: skip
    doc, result = run(pt, "--ntinv-seed=5", "--ntinv-shrink=0", "-rs")
    assert len(doc["tests"]) == 1
    result.stdout.fnmatch_lines(
        ["*ntinv budget of test_children.py::test_one_child: 0.001s of exploration spent*"]
    )
    result = pt.runpytest("--ntinv-budget=soon")
    result.stderr.fnmatch_lines(["*--ntinv-budget takes a wall time (60s, 2m, 1h) or a number*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


# ------------------------------------------------------------------- spaces


def test_slow_writes_land_late_in_virtual_time(pt: pytest.Pytester) -> None:
    """``Space(slow_writes=...)``: a drawn replica's writes are served that many virtual
    seconds after they were sent (what makes a write land after a claim expired)."""
    pt.makepyfile(test_children=children.race_test(6).replace(
        '"hold": 0}', '"hold": 0, "slow_writes": (30, 30)}'))  # fmt: skip
    pt.makeconftest("""
        import pytest
        from pytest_ntinvariants.ledger import RequestServed

        @pytest.fixture(autouse=True)
        def check_slow_writes(ntinv):
            yield
            slow = {s.identity for s in ntinv.run.schedule.steps if s.kind == "slow-writes"}
            writes = [e for e in ntinv.ledger if isinstance(e, RequestServed)
                      and e.verb == "create" and e.resource == "/configmaps"]
            assert writes
            for e in writes:
                assert (e.duration >= 30) == (e.identity in slow), (e, slow)
    """)
    doc, result = run(pt, "--ntinv-seed=3", "--ntinv-shrink=0")
    steps = [e["schedule"] for e in doc["tests"]]
    assert any("slow-writes replica-" in s and "delay=30.000" in s for s in steps), steps
    assert result.parseoutcomes().get("error", 0) == 0, result.stdout.str()


# ------------------------------------------------------------------- plans


def test_plans_run_one_learned_perturbation_each(pt: pytest.Pytester) -> None:
    """The learning run's points (events each replica reacted to, its writes) give one
    plan each per kind; item i runs plan i in arrival order, with that one step."""
    doc, result = run(pt, "--ntinv-seed=7", "--ntinv-shrink=0", "--ntinv-strategy=plans", "-rs")
    [explored] = doc["summary"]["exploration"]
    plans = explored["plans"]
    assert plans["ran"] == plans["plans"] == len(doc["tests"]) > 0
    kinds = {e["schedule"].splitlines()[1].split()[1] for e in doc["tests"]}
    # No coalesce-event: each replica saw one event of the gadget, its last, which nothing
    # replaces (an intermediate one is coalesced: see test_sim_races.py).
    assert kinds == {"stale-from-event", "delay-event", "crash"}, kinds
    assert all(len(e["schedule"].splitlines()) == 2 for e in doc["tests"])  # one step each
    result.stdout.fnmatch_lines(
        [
            f"*plans: {plans['plans']} schedules in *s, *; "
            f"{plans['plans']} of {plans['plans']} plans ran (from {plans['points']} points "
            f"of the learning run, {plans['pruned']} pruned)",
            "*plans of test_children.py::test_one_child: every plan ran in an earlier item*",
        ]
    )
