"""``NtinvSession``: the plugin's stateful session behaviour, registered at configure time.

It owns the session seed (printed in the header, forwarded to xdist workers), turns
``ntinv_explore`` into one item per seeded schedule, checks invariants when a test's
body has finished, attaches the race timeline to failing reports, and writes the
terminal summary and the JSON report (merging what xdist workers found).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shlex
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from .markers import ExploreSpec, MarkerError, parse_explore, parse_item_markers, parse_replay
from .perturb.schedule import Schedule, derive_seed
from .replay import ReplayToken

if TYPE_CHECKING:
    from .harness import Harness, RunInfo
    from .invariants import InvariantRegistry, Violation
    from .invariants.oracles import EndState
    from .ledger import Ledger
    from .markers import ItemMarkers
    from .perturb.plans import Learned as LearnedPlans
    from .shrink import Outcome
    from .sim import Strategy, World

__all__ = [
    "HARNESS_KEY",
    "LEDGER_KEY",
    "RUN_KEY",
    "WORLD_KEY",
    "InvariantViolation",
    "NtinvSession",
    "context_options",
]

LEDGER_KEY: pytest.StashKey[Ledger] = pytest.StashKey()
HARNESS_KEY: pytest.StashKey[Harness] = pytest.StashKey()
RUN_KEY: pytest.StashKey[RunInfo] = pytest.StashKey()
WORLD_KEY: pytest.StashKey[World] = pytest.StashKey()
RESULT_KEY: pytest.StashKey[dict[str, Any]] = pytest.StashKey()


class InvariantViolation(AssertionError):
    """Raised when a test's history violates invariants; the message is the report."""

    def __init__(self, message: str, violations: list[Violation]) -> None:
        super().__init__(message)
        self.violations = violations


class NtinvSession:
    """Session-wide state of the plugin (one instance per pytest process)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        workerinput = getattr(config, "workerinput", None)
        option_seed = config.getoption("ntinv_seed")
        if workerinput is not None and "ntinv_seed" in workerinput:
            self.seed = int(workerinput["ntinv_seed"])
        elif option_seed is not None:
            self.seed = option_seed
        else:
            self.seed = random.SystemRandom().randrange(1 << 31)
        #: ``--ntinv-replay``: a schedule seed, or a token (schedule and decisions).
        self.replay: int | ReplayToken | None = config.getoption("ntinv_replay")
        self.strategy_name: str | None = config.getoption("ntinv_strategy")
        #: Most runs one failure's shrinking may take (0: no shrinking).
        self.shrink_runs: int = config.getoption("ntinv_shrink")
        self._candidate: dict[str, Any] | None = None  # the entry of a run of our own
        self._learned: dict[str, Learned | None] = {}  # per test: its learning run
        most = float_ini(config, "ntinv_max_writes")
        if most < 1 or most != int(most):
            raise pytest.UsageError(
                f"ini option ntinv_max_writes must be a whole number >= 1, got {most:g}"
            )
        #: What no-hot-loop allows: writes of one object by the replicas.
        self.max_writes = int(most)
        # What the plugin's own unperturbed run that is on is for ("learning",
        # "reference", "noise"), and the strategy it runs with (None: arrival order).
        self._own_purpose: str | None = None
        self._own_strategy: Strategy | None = None
        self.budget = Budget.parse(config.getoption("ntinv_budget"))
        self._index: dict[tuple[str, int], int] = {}  # (test, schedule seed) -> its place
        self.schedules_override: int | None = config.getoption("ntinv_schedules")
        self.results: list[dict[str, Any]] = []
        self._registry: InvariantRegistry | None = None

    @property
    def registry(self) -> InvariantRegistry:
        """The session's invariants: the built-ins plus what ``pytest_ntinvariants_register``
        implementations add (built on first use, so runs that never start a server never
        import the invariants)."""
        if self._registry is None:
            from .invariants import default_registry
            from .invariants.oracles import NoHotLoop

            registry = default_registry()
            registry.register(NoHotLoop(self.max_writes), replace=True)
            self.config.hook.pytest_ntinvariants_register(registry=registry, config=self.config)
            self._registry = registry
        return self._registry

    # ---------------------------------------------------------------- seeds

    def pytest_report_header(self) -> str:
        """Print the seed so a run can be reproduced."""
        return (
            f"ntinvariants: seed={self.seed} (reproduce with --ntinv-seed={self.seed}; "
            f"one schedule with --ntinv-replay=SEED)"
        )

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist: every worker derives the same seeds, so collections agree."""
        node.workerinput["ntinv_seed"] = self.seed

    def item_seed(self, nodeid: str) -> int:
        """The seed of a test that is not an exploration item."""
        return derive_seed(self.seed, nodeid)

    def replay_command(self, item: pytest.Item, seed: int | str | None) -> str:
        """The shell command that reruns exactly this item (``seed``: an exploration
        item's schedule seed, or its replay token)."""
        args = ["pytest", item.nodeid, "-p", "no:randomly"]
        if seed is not None and item.get_closest_marker("ntinv_explore") is not None:
            args.append(f"--ntinv-replay={seed}")
        else:
            args.append(f"--ntinv-seed={self.seed}")
        return shlex.join(args)

    # --------------------------------------------------------- exploration

    def strategy(
        self, item: pytest.Item, explore: ExploreSpec | None, seed: int
    ) -> Strategy | None:
        """How a deterministic world chooses its steps for a run of ``seed``: an
        exploration item's strategy (a replayed token's decisions, else the marker's, else
        ``--ntinv-strategy``'s, else a random walk); None (a random walk) for other tests.
        Skips an exhaustive item past the end of its search."""
        from .sim.strategies import Replay, make_strategy

        if self._own_strategy is not None and OWN_RUN_KEY in item.stash:
            return self._own_strategy
        if explore is None:
            return None
        token = self._token(item)
        if token is not None:
            return Replay(token.decisions)
        name = self._strategy_name(explore)
        learned = self._learned.get(_test_of(item))
        strategy = make_strategy(
            name,
            seed,
            depth=explore.depth,
            steps=learned.steps if learned else 50,
            choices=learned.choices if learned else (),
            plans=len(learned.plans.plans) if learned else 0,
            index=self._index.get((_test_of(item), seed), 0),
            equivalent=learned.equivalent if learned else frozenset(),
        )
        if strategy is None and name == "plans":
            pytest.skip(f"plans of {_test_of(item)}: every plan ran in an earlier item")
        if strategy is None:
            pytest.skip(
                f"exhaustive search of {_test_of(item)}: every run with at most "
                f"{explore.depth} deviation(s) from arrival order ran in an earlier item"
            )
        return strategy

    def schedule(self, item: pytest.Item, seed: int) -> Schedule | None:
        """The schedule a replayed token carries, when its seed is ``seed``; none for an
        exhaustive search (it explores orderings); None: draw. The plugin's own runs
        (learning, reference, shrinking) have exactly their token's perturbations."""
        own = item.stash.get(OWN_RUN_KEY, None)
        if own is not None:
            return own.schedule
        token = self._token(item)
        if token is not None and token.seed == seed:
            return token.schedule
        explore = parse_item_markers(item).explore
        if token is not None or explore is None:
            return None
        name = self._strategy_name(explore)
        if name == "exhaustive":
            return Schedule(seed, ())
        learned = self._learned.get(_test_of(item))
        if name == "plans" and learned is not None:
            index = self._index.get((_test_of(item), seed), 0)
            plans = learned.plans.plans
            return Schedule(seed, (plans[index],) if index < len(plans) else ())
        return None

    def _strategy_name(self, explore: ExploreSpec) -> str:
        return explore.strategy or self.strategy_name or "random"

    def _token(self, item: pytest.Item) -> ReplayToken | None:
        # The plugin's own run (learning, shrinking), else the test's ntinv_replay, else
        # --ntinv-replay's.
        own = item.stash.get(OWN_RUN_KEY, None)
        if own is not None:
            return own
        mark = item.get_closest_marker("ntinv_replay")
        if mark is not None:
            return parse_replay(mark)
        return self.replay if isinstance(self.replay, ReplayToken) else None

    # ----------------------------------------------------- learning, shrinking

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Any:
        """Run an exploration item. Before the first of a test whose strategy learns
        (``pct``, ``exhaustive``, ``plans``), run the test once in arrival order with no
        perturbation, unrecorded, to learn its length and its decisions. When the item
        fails in a deterministic world, run it again with ever smaller schedules and fewer
        deviations from arrival order while it fails the same way, and add the smallest
        run to its report. The time it all takes counts against the exploration budget."""
        if not _is_exploration(item):
            return None
        from _pytest.runner import runtestprotocol

        started = time.perf_counter()
        if self._over_budget(item) is None and self._needs_learning(item):
            self._learn(item, nextitem)
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        first = len(self.results)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        entry = self.results[first] if len(self.results) > first else None
        failed = next((r for r in reports if r.when == "call" and r.failed), None)
        if self.shrink_runs > 0 and failed is not None and entry and entry.get("token"):
            from .shrink import Shrinker

            shrinker = Shrinker(
                lambda token: self._run_candidate(item, nextitem, token),
                ReplayToken.decode(entry["token"]),
                _signature(entry, failed),
                budget=self.shrink_runs,
            )
            result = shrinker.shrink()
            entry["shrunk"] = result.to_dict()
            failed.sections.append(("ntinvariants shrunk", result.describe(item.nodeid)))
        for report in reports:
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        if not any(r.skipped for r in reports):
            elapsed = time.perf_counter() - started
            self.budget.spend(_test_of(item), elapsed)
            if entry is not None:  # its unperturbed runs and its shrinking included
                entry["seconds"] = round(elapsed, 4)
        return True

    # ------------------------------------------------------------- budgets

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Skip an exploration item once the exploration budget is spent, saying so."""
        if _is_exploration(item):
            reason = self._over_budget(item)
            if reason is not None:
                self.budget.skipped += 1
                # A skip mark, not pytest.skip here: reported at the test, not at this hook.
                item.add_marker(pytest.mark.skip(reason=reason))

    def _over_budget(self, item: pytest.Item) -> str | None:
        try:
            explore = parse_item_markers(item).explore
        except MarkerError:
            return None  # the ntinv fixture reports it
        return self.budget.exhausted(_test_of(item), explore.budget if explore else None)

    def _needs_learning(self, item: pytest.Item) -> bool:
        """Whether the test still needs its unperturbed run: its strategy learns from it,
        or the ``end-state`` oracle compares with it (replayed runs too)."""
        from .sim.strategies import LEARNING

        if _test_of(item) in self._learned:
            return False
        try:
            markers = parse_item_markers(item)
        except MarkerError:
            return False  # the ntinv fixture reports it
        explore = markers.explore
        if explore is None and self._token(item) is None:
            return False
        if self._judges(markers, "end-state"):
            return True
        return (
            explore is not None
            and self._token(item) is None
            and self._strategy_name(explore) in LEARNING
        )

    def reference_run(self, item: pytest.Item) -> bool:
        """Whether ``item`` now runs as the reference of the ``end-state`` oracle (or its
        noise run): unperturbed, its view perturbations off."""
        return OWN_RUN_KEY in item.stash and self._own_purpose in ("reference", "noise")

    def _judges(self, markers: ItemMarkers, name: str) -> bool:
        """Whether the item's invariants include ``name``."""
        spec = markers.invariants
        try:
            chosen = self.registry.select(
                include=spec.only if spec else None, exclude=spec.exclude if spec else ()
            )
        except KeyError:
            return False  # the check reports the misspelt name
        return any(i.name == name for i in chosen)

    def _learn(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """The test's unperturbed runs, once per test and process, the same in every
        process: the learning run (arrival order), when its strategy learns; for the
        ``end-state`` oracle, the reference run (the replicas taking turns: ``Serial``)
        and, to tell which fields differ anyway (noise), the same in reverse turns from
        another seed."""
        from .perturb.plans import Learned as LearnedPlans
        from .sim.strategies import LEARNING, Serial

        test = _test_of(item)
        markers = parse_item_markers(item)
        explore = markers.explore
        learned = Learned(50, (), LearnedPlans((), 0, 0))
        if (
            explore is not None
            and self._token(item) is None
            and self._strategy_name(explore) in LEARNING
        ):
            entry = self._unperturbed(item, nextitem, "learning")
            choices = entry.get("choices") if entry else None
            plans = entry.get("learned_plans") if entry else None
            if not entry or choices is None or plans is None:
                self._learned[test] = None
                return
            equivalent = frozenset(tuple(d) for d in entry["equivalent"])
            learned = Learned(entry["steps"], tuple(choices), plans, equivalent)
        if self._judges(markers, "end-state"):
            from .invariants.oracles import noise_between

            entry = self._unperturbed(item, nextitem, "reference", Serial())
            reference = entry.get("end_state") if entry else None
            if reference is not None:
                again = self._unperturbed(item, nextitem, "noise", Serial(reverse=True))
                other = again.get("end_state") if again else None
                noise = noise_between(reference, other) if other is not None else frozenset()
                learned = dataclasses.replace(learned, end_state=reference, noise=noise)
        self._learned[test] = learned

    def _unperturbed(
        self,
        item: pytest.Item,
        nextitem: pytest.Item | None,
        purpose: str,
        strategy: Strategy | None = None,
    ) -> dict[str, Any] | None:
        """Run the test once with no perturbation, unrecorded, in arrival order (or as
        ``strategy`` chooses), from a seed derived from the session's, the test and
        ``purpose``; its entry."""
        token = ReplayToken(derive_seed(self.seed, _test_of(item), purpose))
        # Torn down as for the next item (never as for this one: pytest would keep the
        # item set up, and not fill its arguments again).
        self._own_purpose, self._own_strategy = purpose, strategy
        try:
            entry, _ = self._run_own(item, nextitem, token)
        finally:
            self._own_purpose, self._own_strategy = None, None
        return entry

    def _run_own(
        self, item: pytest.Item, nextitem: pytest.Item | None, token: ReplayToken
    ) -> tuple[dict[str, Any] | None, pytest.TestReport | None]:
        """Run ``item`` as ``token`` says, unrecorded: its entry and failed call report."""
        from _pytest.runner import runtestprotocol

        item.stash[OWN_RUN_KEY] = token
        self._candidate = None
        try:
            reports = runtestprotocol(item, nextitem=nextitem, log=False)
        finally:
            del item.stash[OWN_RUN_KEY]
        entry, self._candidate = self._candidate, None
        failed = next((r for r in reports if r.when == "call" and r.failed), None)
        return entry, failed

    def _run_candidate(
        self, item: pytest.Item, nextitem: pytest.Item | None, token: ReplayToken
    ) -> Outcome:
        """A shrinking run: the failure's signature (None: it passed), the token of what
        actually ran, its steps and deviations."""
        entry, failed = self._run_own(item, nextitem, token)
        if entry is None or not entry.get("token"):
            return None, None, "", []
        ran = ReplayToken.decode(entry["token"])
        if failed is None:
            return None, ran, "", []
        steps = dict(failed.sections).get("ntinvariants steps", "")
        return _signature(entry, failed), ran, steps, entry["deviations"]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """``ntinv_explore``: one item per seeded schedule, the seed in the id;
        ``ntinv_replay``: one item, the run its token says."""
        mark = metafunc.definition.get_closest_marker("ntinv_explore")
        pinned = metafunc.definition.get_closest_marker("ntinv_replay")
        if mark is None and pinned is None:
            return
        try:
            spec = parse_explore(mark) if mark is not None else None
            token = parse_replay(pinned) if pinned is not None else None
        except MarkerError as e:
            error = str(e)
        else:
            error = ""
        if error:  # failed outside the except block, so no "during handling" chain is shown
            pytest.fail(error, pytrace=False)
        if "ntinv" not in metafunc.fixturenames:
            name = "ntinv_explore" if mark is not None else "ntinv_replay"
            pytest.fail(
                f"@pytest.mark.{name} on {metafunc.definition.nodeid}: the "
                f"test must use the ntinv fixture, which applies the schedules",
                pytrace=False,
            )
        if token is None and isinstance(self.replay, ReplayToken):
            token = self.replay
        if token is not None:
            seeds = [token.seed]
        elif self.replay is not None:
            assert isinstance(self.replay, int)
            seeds = [self.replay]
        else:
            assert spec is not None
            count = self.schedules_override or spec.schedules
            base = metafunc.definition.nodeid
            seeds = [derive_seed(self.seed, base, i) for i in range(count)]
            self._index.update(((base, s), i) for i, s in enumerate(seeds))
        metafunc.parametrize(
            "ntinv_schedule_seed", seeds, ids=[f"seed-{s}" for s in seeds], indirect=True
        )

    # ---------------------------------------------------------- checking

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, Any, Any]:
        """After the test body: let the system settle, then check the invariants."""
        try:
            result = yield
        except BaseException:
            self._check(item, body_failed=True)
            raise
        self._check(item, body_failed=False)
        return result

    def _check(self, item: pytest.Item, *, body_failed: bool) -> None:
        ledger = item.stash.get(LEDGER_KEY, None)
        if ledger is None:
            return
        harness = item.stash.get(HARNESS_KEY, None)
        run = item.stash.get(RUN_KEY, None)
        period = float_ini(self.config, "ntinv_quiet_period")
        timeout = float_ini(self.config, "ntinv_quiet_timeout")
        quiet = harness.settle(period, timeout) if harness is not None else False
        from .invariants import CheckContext

        # (Without the ntinv fixture, which parses them, the marker still chooses.)
        markers = item.stash.get(MARKERS_KEY, None) or _markers_of(item)
        spec = markers.invariants if markers is not None else None
        try:
            invariants = self.registry.select(
                include=spec.only if spec else None, exclude=spec.exclude if spec else ()
            )
        except KeyError as e:  # a misspelt name in ntinv_invariants: say which
            pytest.fail(f"@pytest.mark.ntinv_invariants: {e.args[0]}", pytrace=False)
        names = [i.name for i in invariants]
        if quiet and not body_failed and harness is not None and "converges" in names:
            # Before the token and the digest: the resync's steps are part of the run.
            quiet = harness.resync()
        # Before the context: a settled exploration run's replay command passes its token.
        world = harness.world if harness is not None else None
        explored = self._explored(item, run, harness)
        ctx = (
            harness.check_context(quiet=quiet)
            if harness is not None
            else CheckContext.from_ledger(
                ledger,
                quiet=quiet,
                seed=run.seed if run else None,
                replay=run.replay if run else None,
                options=run.options if run else context_options(item),
                hook=item.config.hook,
            )
        )
        own = OWN_RUN_KEY in item.stash
        diverged = None if own else self._diverged(item, run, ctx.digest)
        learned = self._learned.get(_test_of(item)) if _is_exploration(item) else None
        if learned is not None:  # (set after the unperturbed runs: they compare with nothing)
            ctx = dataclasses.replace(ctx, reference=learned.end_state, noise=learned.noise)
        violations: list[Violation] = []
        for invariant in invariants:
            violations.extend(invariant.check(ledger, ctx))
        if not own:  # a learning or shrinking run is the plugin's own business
            self.config.hook.pytest_ntinvariants_checked(
                item=item, checked=names, violations=violations
            )
        entry: dict[str, Any] = {
            "nodeid": item.nodeid,
            "seed": run.seed if run else None,
            "replay": run.replay if run else None,
            "schedule": run.schedule.describe() if run and run.schedule else None,
            # A schedule with no step perturbed nothing: said in the summary, never silent.
            "perturbed": bool(run.schedule.steps) if run and run.schedule else None,
            "digest": ctx.digest,
            # The digest of the run a replayed token recorded, when this one differs.
            "diverged_from": diverged,
            "steps": len(harness.world.engine.steps) if harness and harness.world else None,
            # Wall seconds the engine spent deciding (quiescence checks, choices, releases).
            "decide_s": harness.world.engine.decide_time if harness and harness.world else None,
            **explored,
            "body_failed": body_failed,
            "invariants": names,
            "violations": [v.to_dict() for v in violations],
            "files": {},
        }
        item.stash[RESULT_KEY] = entry
        if own:
            entry["choices"] = list(world.engine.choices) if world is not None else None
            if self._own_purpose in ("reference", "noise"):
                from .invariants.oracles import end_state

                # What explored runs are compared with: only a settled state is an end.
                entry["end_state"] = end_state(ledger) if quiet and not body_failed else None
            if self._own_purpose == "learning":
                from .perturb.plans import learn
                from .sim.independence import equivalent_deviations

                entry["learned_plans"] = learn(ledger)
                engine = world.engine if world is not None else None
                entry["equivalent"] = (
                    sorted(
                        equivalent_deviations(
                            engine.trace, engine.candidates, engine.decision_steps
                        )
                    )
                    if engine is not None
                    else []
                )
            self._candidate = entry
        else:
            if violations or body_failed:
                entry["files"] = self._artifacts(item, ledger)
            self.config.hook.pytest_ntinvariants_report(item=item, report=entry)
            self.results.append(entry)
        if violations:
            from .report import format_violations

            # (Seed and replay: in the replay section of the failure's report.)
            if not body_failed:
                text = format_violations(violations, ledger, ctx, replay=False)
                raise InvariantViolation(text, violations)
            # The body's own failure is the test's report; the violations go beside it
            # (their entries marked in the timeline section, which shows them once).
            item.stash[VIOLATIONS_KEY] = (
                format_violations(violations, ledger, ctx, timelines=False, replay=False),
                frozenset(s for v in violations for s in v.seqs),
            )

    def _diverged(self, item: pytest.Item, run: RunInfo | None, digest: str | None) -> str | None:
        """The digest the replayed token recorded, when this run's ledger has another
        (the summary then says so: unless the code changed, the test depends on something
        its seed does not decide); None otherwise."""
        if item.get_closest_marker("ntinv_replay") is not None:
            return None  # a pinned regression test outlives the code its run failed on
        token = self._token(item)
        if token is None or not token.digest or not digest or run is None:
            return None
        if token.seed != run.seed or token.digest == digest:
            return None
        return token.digest

    def _explored(
        self, item: pytest.Item, run: RunInfo | None, harness: Harness | None
    ) -> dict[str, Any]:
        """An exploration item's strategy, the path its world took (a hash of the
        decisions, which tells interleavings apart) and the token that replays it; the
        replay command then passes the token."""
        from .sim.independence import trace_class
        from .sim.strategies import Exhaustive, Plans, deviation_counts

        world = harness.world if harness is not None else None
        if run is None or run.schedule is None or harness is None or world is None:
            return {}
        engine = world.engine
        strategy = engine.strategy
        out: dict[str, Any] = {
            "test": _test_of(item),
            # Steps where the run left arrival order: what a shrunk run keeps fewest of.
            "deviations": [
                n for n, i in zip(engine.decision_steps, engine.decisions, strict=True) if i
            ],
            "strategy": strategy.describe(),
            "bound": strategy.bound(len(engine.steps)),
            "interleaving": hashlib.sha256(repr(engine.decisions).encode()).hexdigest()[:12],
            # The same for runs that differ only in the order of independent steps.
            "order": trace_class(engine.trace),
        }
        learned = self._learned.get(_test_of(item))
        if learned is not None and learned.noise:
            out["noise"] = sorted(learned.noise)
        if isinstance(strategy, Plans) and learned is not None:
            out["plan"] = {
                "index": strategy.index,
                "plans": strategy.total,
                "points": learned.plans.points,
                "pruned": learned.plans.pruned,
            }
        if isinstance(strategy, Exhaustive) and learned is not None:
            # Where the run is in its search: how many deviations it took, how many runs
            # the search has with each number of deviations, and how many it left out as
            # equivalent to one it has.
            runs = deviation_counts(learned.choices, strategy.most, learned.equivalent)
            every = deviation_counts(learned.choices, strategy.most)
            out["exhaustive"] = {
                "deviations": len(strategy.deviations),
                "runs_by_deviations": runs,
                "equivalent_by_deviations": [a - b for a, b in zip(every, runs, strict=True)],
            }
        if not world.real_time:  # a run on real time does not replay exactly
            digest = harness.digest() or ""
            token = ReplayToken.of(run.schedule, engine.decisions, digest).encode()
            out["token"] = token
            run.replay = self.replay_command(item, token)
        return out

    def _artifacts(self, item: pytest.Item, ledger: Ledger) -> dict[str, str]:
        from .report import render_svg

        directory = self._report_dir()
        if directory is None:
            return {}
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in item.nodeid)[-150:]
        path = directory / f"{safe}.svg"
        render_svg(ledger, path, title=item.nodeid, hook=self.config.hook)
        return {"svg": str(path)}

    def _report_dir(self) -> Path | None:
        raw = self.config.getoption("ntinv_report_dir") or self.config.getini("ntinv_report_dir")
        if raw:
            path = Path(raw)
        else:
            factory = getattr(self.config, "_tmp_path_factory", None)
            if factory is None:
                return None
            path = factory.getbasetemp() / "ntinvariants"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Attach the race timeline, the end of process replicas' logs and the drawing to a
        failing test's report (all as text: nothing of the test is kept alive by it).

        A failure that is the plugin's violation report shows that report, with no
        traceback of the plugin's frames (``--full-trace`` shows them) and no second
        timeline (it has each object's); a test whose body failed first gets its
        violations as a section of their own."""
        report = yield
        if report.when != "call" or not report.failed:
            return report
        ledger = item.stash.get(LEDGER_KEY, None)
        if ledger is None:
            return report
        from .report import timeline

        excinfo = call.excinfo
        reported = excinfo is not None and isinstance(excinfo.value, InvariantViolation)
        if reported and excinfo is not None and not self.config.getoption("fulltrace"):
            # The violation report is the failure: no traceback of the plugin's frames.
            report.longrepr = excinfo.getrepr(style="value")
        crash = getattr(report.longrepr, "reprcrash", None)
        if reported and crash is not None:
            # The short summary shows this message whole on CI (pytest trims it only on a
            # terminal): its headline, not the report a second time.
            crash.message = crash.message.split("\n", 1)[0]
        run = item.stash.get(RUN_KEY, None)
        if run is not None and run.schedule is not None:
            report.sections.append(("ntinvariants schedule", run.schedule.describe()))
        violations, marked = item.stash.get(VIOLATIONS_KEY, ("", frozenset()))
        if violations:  # the body failed first: its violations are reported all the same
            report.sections.append(("ntinvariants violations", violations))
        if not reported:  # (a violation report has each object's timeline already)
            report.sections.append(
                (
                    "ntinvariants timeline",
                    timeline(ledger, limit=200, highlight=marked, hook=item.config.hook),
                )
            )
        harness = item.stash.get(HARNESS_KEY, None)
        if harness is not None and harness.world is not None:
            from .report import steps_text

            report.sections.append(("ntinvariants steps", steps_text(harness.world.engine.steps)))
        logs = harness.replica_logs() if harness is not None else ""
        if logs:  # text now: the files may be gone when the report is read
            report.sections.append(("ntinvariants replica logs", logs))
        entry = item.stash.get(RESULT_KEY, None)
        files = entry.get("files") if entry else None
        lines = []
        if run is not None:
            from .report import seed_line

            lines.append(seed_line(run.seed, run.replay))
            if entry and entry.get("digest"):
                from .report import digest_line

                lines.append(digest_line(entry["digest"]))
            if entry and entry.get("diverged_from"):
                lines.append(
                    f"the replayed token recorded digest {entry['diverged_from']}: "
                    "this is not the same run"
                )
            lines.append(f"replay: {run.replay}")
        if files:
            lines.extend(f"{kind}: {path}" for kind, path in files.items())
        if lines:
            report.sections.append(("ntinvariants replay", "\n".join(lines)))
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, Any, Any]:
        """After the test's fixtures are torn down, drop what the test kept in its stash.

        pytest keeps every item until the session ends, and its stash with it: the
        ledger, the harness (so the server with every stored version, the replicas and
        the endpoints) of every test would stay alive to the end. Everything the reports
        need was made into strings (``pytest_runtest_makereport``, before teardown) or
        into ``self.results``; nothing reads these later.
        """
        try:
            return (yield)
        finally:
            release(item)

    # ---------------------------------------------------------- reporting

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """One line of totals, and where the JSON report went."""
        if not self.results:
            return
        checked = sum(len(r["invariants"]) for r in self.results)
        violated = [r for r in self.results if r["violations"]]
        schedules = sum(1 for r in self.results if r["schedule"] is not None)
        idle = sum(1 for r in self.results if r.get("perturbed") is False)
        # (an exploration test that starts no replicas has no one to perturb)
        idle_note = f" ({idle} perturbed nothing)" if idle else ""
        tr = terminalreporter
        tr.section("ntinvariants")
        tr.write_line(
            f"{len(self.results)} test(s) checked, {checked} invariant check(s), "
            f"{sum(len(r['violations']) for r in violated)} violation(s) in "
            f"{len(violated)} test(s), {schedules} seeded schedule(s){idle_note}; "
            f"seed {self.seed}"
        )
        for r in violated:
            names = sorted({v["invariant"] for v in r["violations"]})
            tr.write_line(f"  {r['nodeid']}: {', '.join(names)}")
            if r.get("files", {}).get("svg"):
                tr.write_line(f"    drawing: {r['files']['svg']}")
        explored = exploration(self.results)
        if explored:
            tr.write_line("exploration (strategy: schedules, distinct interleavings, failing):")
        for e in explored:
            tr.write_line(f"  {e['test']}: {e['strategy']}: {describe_exploration(e)}")
        for r in self.results:
            if r.get("diverged_from"):
                tr.write_line(
                    f"replay not the recorded run: {r['nodeid']}: ledger digest {r['digest']}, "
                    f"the token's {r['diverged_from']}; unless the code changed since, the "
                    "test depends on something its seed does not decide (threads of the "
                    "test body's own, uuid4 or os.urandom written into objects)"
                )
        budget = self.budget
        if budget.skipped:
            tr.write_line(
                f"exploration budget: {budget.skipped} item(s) skipped after {budget.ran} "
                f"schedule(s) in {budget.spent:.1f}s"
            )
        path = self._json_path()
        if path is not None:
            tr.write_line(f"JSON report: {path}")

    def _json_path(self) -> Path | None:
        raw = self.config.getoption("ntinv_json") or self.config.getini("ntinv_json")
        return Path(raw) if raw else None

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: merge what a worker checked."""
        output = getattr(node, "workeroutput", {}) or {}
        self.results.extend(orjson.loads(output.get("ntinv_results", b"[]")))
        worker = orjson.loads(output.get("ntinv_budget", b"{}"))
        self.budget.skipped += worker.get("skipped", 0)
        self.budget.ran += worker.get("ran", 0)
        self.budget.spent = max(self.budget.spent, worker.get("spent", 0.0))  # in parallel

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Hand results to the xdist controller, or write the JSON report."""
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["ntinv_results"] = orjson.dumps(self.results).decode()
            budget = self.budget
            workeroutput["ntinv_budget"] = orjson.dumps(
                {"skipped": budget.skipped, "ran": budget.ran, "spent": budget.spent}
            ).decode()
            return
        path = self._json_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "seed": self.seed,
            "tests": sorted(self.results, key=lambda r: r["nodeid"]),
            "summary": {
                "tests": len(self.results),
                "violations": sum(len(r["violations"]) for r in self.results),
                "schedules": sum(1 for r in self.results if r["schedule"] is not None),
                "schedules_perturbing_nothing": sum(
                    1 for r in self.results if r.get("perturbed") is False
                ),
                "exploration": exploration(self.results),
                "budget_skipped": self.budget.skipped,
            },
            "pid": os.getpid(),
        }
        path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


MARKERS_KEY: pytest.StashKey[Any] = pytest.StashKey()
#: A run whose body failed: its violations' report and the ledger entries they point to.
VIOLATIONS_KEY: pytest.StashKey[tuple[str, frozenset[int]]] = pytest.StashKey()
#: The token a run of the plugin's own (learning, shrinking) replays, while it runs.
OWN_RUN_KEY: pytest.StashKey[ReplayToken] = pytest.StashKey()


@dataclass
class Budget:
    """How much exploration this process may run: wall ``seconds`` or ``schedules``
    (either may be None: no limit), and per test as its marker says."""

    seconds: float | None = None
    schedules: int | None = None
    spent: float = 0.0
    ran: int = 0
    skipped: int = 0
    by_test: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: str | None) -> Budget:
        """``60s``, ``2m`` (wall time) or ``500`` (schedules); None: no budget."""
        if value is None:
            return cls()
        text = value.strip().lower()
        unit = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(text[-1:])
        try:
            if unit is not None:
                seconds = float(text[:-1]) * unit
                if seconds > 0:
                    return cls(seconds=seconds)
            elif int(text) > 0:
                return cls(schedules=int(text))
        except ValueError:
            pass
        raise pytest.UsageError(
            f"--ntinv-budget takes a wall time (60s, 2m, 1h) or a number of schedules "
            f"(500), greater than 0; got {value!r}"
        )

    def spend(self, test: str, seconds: float) -> None:
        """Count one exploration item of ``test`` that took ``seconds``."""
        self.spent += seconds
        self.ran += 1
        self.by_test[test] = self.by_test.get(test, 0.0) + seconds

    def exhausted(self, test: str, per_test: float | None) -> str | None:
        """Why ``test``'s next exploration item may not run (None: it may)."""
        if self.seconds is not None and self.spent >= self.seconds:
            return (
                f"ntinv budget: {self.seconds:g}s of exploration spent in this process "
                f"({self.ran} schedules ran)"
            )
        if self.schedules is not None and self.ran >= self.schedules:
            return f"ntinv budget: {self.schedules} schedules ran in this process"
        if per_test is not None and self.by_test.get(test, 0.0) >= per_test:
            return f"ntinv budget of {test}: {per_test:g}s of exploration spent"
        return None


@dataclass(frozen=True)
class Learned:
    """What a test's learning run (once, in arrival order, unperturbed) showed."""

    steps: int  # how many steps it took
    choices: tuple[int, ...]  # how many candidates each of its decisions had
    plans: LearnedPlans  # the perturbation plans of its points
    # Its deviations (decision, candidate) that only reorder independent steps.
    equivalent: frozenset[tuple[int, int]] = frozenset()
    # Its settled end state (None: it did not settle), and the fields that differ
    # between it and another unperturbed run.
    end_state: EndState | None = None
    noise: frozenset[str] = frozenset()


def _test_of(item: pytest.Item) -> str:
    """The test an exploration item runs (its node id without the parameters)."""
    return item.nodeid.partition("[")[0]


_ITEM_KEYS: tuple[pytest.StashKey[Any], ...] = (
    LEDGER_KEY,
    HARNESS_KEY,
    RUN_KEY,
    RESULT_KEY,
    MARKERS_KEY,
    WORLD_KEY,
    VIOLATIONS_KEY,
)


def release(item: pytest.Item) -> None:
    """Forget everything the plugin stashed on ``item`` (idempotent)."""
    for key in _ITEM_KEYS:
        if key in item.stash:
            del item.stash[key]


def _markers_of(item: pytest.Item) -> Any:
    """The item's markers, None when they are wrong (its setup reported them)."""
    try:
        return parse_item_markers(item)
    except MarkerError:
        return None


def _is_exploration(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "ntinv_schedule_seed" in callspec.params


def _signature(entry: dict[str, Any], report: pytest.TestReport) -> tuple[Any, ...]:
    """How a run failed, to tell "the same failure" in a smaller run: the invariants it
    broke, or the kind and place of the test's own error (its message names generated
    objects, which differ from run to run)."""
    if entry["violations"] and not entry.get("body_failed"):
        return ("invariants", tuple(sorted({v["invariant"] for v in entry["violations"]})))
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is None:
        return ("error", str(report.longrepr).splitlines()[-1:])
    kind = crash.message.partition(":")[0].strip()
    return ("error", kind, crash.path, crash.lineno)


def exploration(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per exploration test run in deterministic worlds: its strategy, how many schedules
    ran, how many distinct interleavings they took, how many failed, and (PCT) the least
    chance that one schedule, and all of them, hit a given race of the strategy's depth."""
    tests: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        if r.get("strategy"):
            tests.setdefault((r["test"], r["strategy"]), []).append(r)
    out = []
    for (test, strategy), runs in sorted(tests.items()):
        bounds = [r["bound"] for r in runs if r.get("bound") is not None]
        one = min(bounds) if bounds else None
        summary = {
            "test": test,
            "strategy": strategy,
            "schedules": len(runs),
            "interleavings": len({r["interleaving"] for r in runs}),
            "orders": len({r["order"] for r in runs}),
            "seconds": round(sum(r.get("seconds", 0.0) for r in runs), 3),
            "failed": sum(1 for r in runs if r["violations"] or r.get("body_failed")),
            "bound_one": one,
            "bound_all": 1.0 - (1.0 - one) ** len(runs) if one is not None else None,
        }
        noise = sorted({field for r in runs for field in r.get("noise", ())})
        if noise:
            summary["noise"] = noise
        planned = [r["plan"] for r in runs if r.get("plan")]
        if planned:
            first = planned[0]
            summary["plans"] = {
                "plans": first["plans"],
                "points": first["points"],
                "pruned": first["pruned"],
                "ran": len({p["index"] for p in planned}),
            }
        searched = [r["exhaustive"] for r in runs if r.get("exhaustive")]
        if searched:
            totals = searched[0]["runs_by_deviations"]
            ran = [0] * len(totals)
            for r in searched:
                ran[r["deviations"]] += 1
            summary["exhaustive"] = {
                "runs_by_deviations": totals,
                "ran_by_deviations": ran,
                "equivalent": sum(searched[0]["equivalent_by_deviations"]),
            }
        out.append(summary)
    return out


def describe_exploration(e: dict[str, Any]) -> str:
    """``40 schedules in 2.3s, 37 interleavings (...), 2 failing; ...`` for the terminal
    summary."""
    text = (
        f"{e['schedules']} schedules in {e['seconds']:.1f}s, {e['interleavings']} "
        f"interleavings ({e['orders']} up to the order of independent steps), "
        f"{e['failed']} failing"
    )
    planned = e.get("plans")
    if planned:
        text += (
            f"; {planned['ran']} of {planned['plans']} plans ran (from "
            f"{planned['points']} points of the learning run, {planned['pruned']} pruned)"
        )
    searched = e.get("exhaustive")
    if searched:
        pairs = list(
            zip(searched["ran_by_deviations"], searched["runs_by_deviations"], strict=True)
        )
        covered = ", ".join(f"{ran} of {total} with {k}" for k, (ran, total) in enumerate(pairs))
        text += f"; runs with k deviations from arrival order: {covered}"
        if all(ran == total for ran, total in pairs):
            text += " (the whole search)"
        if searched["equivalent"]:
            text += f"; {searched['equivalent']} runs left out as equivalent orders"
    if e.get("noise"):
        text += (
            f"; ignored by end-state (they differ between two unperturbed runs): "
            f"{', '.join(e['noise'])}"
        )
    if e.get("bound_one") is not None:
        text += (
            f"; a race of its depth is hit with p >= {e['bound_one']:.2g} per schedule, "
            f"{e['bound_all']:.2g} in all"
        )
    return text


def context_options(item: pytest.Item) -> dict[str, Any]:
    """The ``CheckContext.options`` packs give one test item
    (``pytest_ntinvariants_context_options``), merged in hook order."""
    out: dict[str, Any] = {}
    for part in item.config.hook.pytest_ntinvariants_context_options(item=item):
        out.update(part or {})
    return out


def float_ini(config: pytest.Config, name: str) -> float:
    """A numeric ini setting, or a usage error that names it."""
    raw = config.getini(name)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"ini option {name} must be a number, got {raw!r}") from None
