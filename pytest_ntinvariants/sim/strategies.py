"""Strategies: which of the actions that may go now the engine releases next.

The engine asks its strategy at every step with the candidates in arrival order; the
strategy answers with an index. A run is then fully described by the indices it chose at
the steps that had more than one candidate (its *decisions*), whatever strategy chose
them, so ``Replay`` can walk the same path again without the strategy that found it.

- ``RandomWalk``: uniformly at random, from a seed.
- ``PCT``: probabilistic concurrency testing (Burckhardt, Kothari, Musuvathi and
  Nagarakatte, ASPLOS 2010). Every *lane* (a replica's requests, one of its watch streams,
  its thread jobs, its endpoint calls) gets a random priority; the highest-priority lane
  that may go goes; at ``depth - 1`` random steps the lane that just went drops below all
  others. A race that needs ``d`` ordering constraints between ``n`` lanes over ``k``
  steps is hit by one schedule with probability at least ``1 / (n * k**(d - 1))``.
- ``Replay``: the decisions of an earlier run, then the first candidate (arrival order).
- ``Plans``: one learned perturbation plan (``perturb.plans``), in arrival order: the
  perturbation is the plan's, the order is the learning run's.
- ``Exhaustive``: one run of a bounded exhaustive search. A run *deviates* at a decision
  when it takes another candidate than the first (arrival order). Numbering every set of
  at most ``bound`` deviations from the decisions of a learning run (the test run once in
  arrival order), fewest first (``deviation_sets``), run ``i`` of a test takes set ``i``:
  so ``n`` runs cover every run with no deviation, then every run with one, and so on
  (delay-bounded scheduling, Emmi, Qadeer and Rakamaric, POPL 2011). A deviation that
  only moves an action ahead of steps it commutes with (``independence``) is left out:
  its run differs from one already covered only in the order of independent steps.
"""

from __future__ import annotations

import abc
import itertools
import random
import re
from collections.abc import Hashable, Iterator, Sequence, Set
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import Action

__all__ = [
    "PCT",
    "STRATEGIES",
    "Exhaustive",
    "Plans",
    "RandomWalk",
    "Replay",
    "Serial",
    "Strategy",
    "deviation_sets",
    "make_strategy",
]


class Strategy(abc.ABC):
    """Chooses the next action among those that may go."""

    #: The name ``ntinv_explore(strategy=...)`` and ``--ntinv-strategy`` use.
    name: str = ""

    @abc.abstractmethod
    def choose(self, candidates: Sequence[Action], step: int) -> int:
        """The index of the candidate to release at ``step`` (0-based count of the steps
        released so far); ``candidates`` are in arrival order, never empty."""

    def describe(self) -> str:
        """How the strategy is set, for reports: ``pct (depth 3, 40 steps)``."""
        return self.name

    def bound(self, steps: int) -> float | None:
        """After a run of ``steps`` steps, the least probability that one schedule hits a
        given race the strategy is made for, when it can say (None: it cannot)."""
        return None


class RandomWalk(Strategy):
    """Uniformly among the candidates, from ``seed``."""

    name = "random"

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choose(self, candidates: Sequence[Action], step: int) -> int:
        """A seeded uniform choice."""
        return self.rng.randrange(len(candidates)) if len(candidates) > 1 else 0


class PCT(Strategy):
    """Priority-based scheduling with ``depth - 1`` priority change points drawn among the
    first ``steps`` steps (the expected length of a run; change points past the end of a
    shorter run do nothing)."""

    name = "pct"

    def __init__(self, seed: int, *, depth: int = 3, steps: int = 50) -> None:
        if depth < 1:
            raise ValueError(f"pct depth must be at least 1, got {depth}")
        if steps < 1:
            raise ValueError(f"pct steps must be at least 1, got {steps}")
        self.depth = depth
        self.steps = steps
        self.rng = random.Random(seed)
        # Step numbers (0-based) after which the lane that went drops, with the priority
        # it drops to: below every initial priority (those are >= depth).
        points = self.rng.sample(range(steps), min(depth - 1, steps))
        self._changes = {step: float(depth - 1 - i) for i, step in enumerate(sorted(points))}
        self._priority: dict[Hashable, float] = {}

    def describe(self) -> str:
        """``pct (depth 3, 50 steps)``."""
        return f"pct (depth {self.depth}, {self.steps} steps)"

    def bound(self, steps: int) -> float | None:
        """``1 / (n * k**(d - 1))`` for the ``n`` lanes seen and ``k`` steps: the chance
        that one schedule hits a given race of depth ``d``."""
        return 1.0 / (max(self.lanes, 1) * float(max(steps, 1)) ** (self.depth - 1))

    def choose(self, candidates: Sequence[Action], step: int) -> int:
        """The oldest action of the highest-priority lane; demote it at a change point."""
        best = 0
        best_priority = -1.0
        for i, action in enumerate(candidates):
            lane = lane_of(action)
            priority = self._priority.get(lane)
            if priority is None:
                # First sight: a random place among the initial priorities (order of first
                # sight is the same in every run of the seed, so this is too).
                priority = self._priority[lane] = self.depth + self.rng.random()
            if priority > best_priority:  # strictly: the oldest of a lane wins
                best, best_priority = i, priority
        change = self._changes.get(step)
        if change is not None:
            self._priority[lane_of(candidates[best])] = change
        return best

    @property
    def lanes(self) -> int:
        """How many lanes were seen."""
        return len(self._priority)


class Replay(Strategy):
    """The ``decisions`` of an earlier run (the index chosen at each step that had more
    than one candidate), then the first candidate. A decision beyond the candidates (the
    code changed since) takes the last one and is counted in ``diverged``."""

    name = "replay"

    def __init__(self, decisions: Sequence[int]) -> None:
        self.decisions = list(decisions)
        self._next = 0
        self.diverged = 0

    def choose(self, candidates: Sequence[Action], step: int) -> int:
        """The next recorded decision."""
        if len(candidates) < 2:
            return 0
        if self._next >= len(self.decisions):
            return 0
        index = self.decisions[self._next]
        self._next += 1
        if index >= len(candidates):
            self.diverged += 1
            return len(candidates) - 1
        return index


class Serial(Strategy):
    """One actor at a time: the first actor (in natural order of names: ``replica-2``
    before ``replica-10``; the last first with ``reverse``) that has an action that may
    go goes, oldest action first. Each replica handles what it can before the next one
    moves, as if the replicas took turns: a run free of races between them, which the
    ``end-state`` oracle takes as what the controller means to reach."""

    name = "serial"

    def __init__(self, *, reverse: bool = False) -> None:
        self.reverse = reverse

    def describe(self) -> str:
        """``serial`` or ``serial (reversed)``."""
        return "serial (reversed)" if self.reverse else "serial"

    def choose(self, candidates: Sequence[Action], step: int) -> int:
        """The oldest action of the first actor."""
        ranked = sorted(range(len(candidates)), key=lambda i: _natural(candidates[i].actor))
        best = _natural(candidates[ranked[-1 if self.reverse else 0]].actor)
        return next(i for i, a in enumerate(candidates) if _natural(a.actor) == best)


def _natural(name: str) -> tuple[Any, ...]:
    """A sort key that orders the numbers in ``name`` by value."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


class Plans(Replay):
    """Plan ``index`` of ``total`` learned ones: arrival order (the perturbation is the
    schedule's, applied by the perturber)."""

    name = "plans"

    def __init__(self, index: int, total: int) -> None:
        super().__init__(())
        self.index = index
        self.total = total


class Exhaustive(Replay):
    """Run ``deviations`` (``(decision, candidate)`` pairs) of a bounded exhaustive
    search, every other decision in arrival order."""

    name = "exhaustive"

    def __init__(self, deviations: Sequence[tuple[int, int]], most: int) -> None:
        decisions = [0] * (max((p for p, _ in deviations), default=-1) + 1)
        for position, index in deviations:
            decisions[position] = index
        super().__init__(decisions)
        self.deviations = tuple(deviations)
        self.most = most

    def describe(self) -> str:
        """``exhaustive (at most 2 deviations)``."""
        return f"exhaustive (at most {self.most} deviation{'s' if self.most != 1 else ''})"


def deviation_sets(
    choices: Sequence[int], bound: int, equivalent: Set[tuple[int, int]] = frozenset()
) -> Iterator[tuple[tuple[int, int], ...]]:
    """Every set of at most ``bound`` deviations from a run whose decisions had
    ``choices`` candidates each, fewest deviations first, each as ``(decision, candidate)``
    pairs in decision order, leaving out the ``equivalent`` deviations (those that only
    reorder independent steps, see ``independence``). (Later decisions of a deviated run
    may differ from the learning run's; a candidate beyond them takes the last, see
    ``Replay``.)"""
    singles = [
        (p, j)
        for p, count in enumerate(choices)
        for j in range(1, count)
        if (p, j) not in equivalent
    ]
    for k in range(bound + 1):
        for combo in itertools.combinations(singles, k):
            if len({p for p, _ in combo}) == k:  # at most one deviation per decision
                yield combo


def deviation_counts(
    choices: Sequence[int], bound: int, equivalent: Set[tuple[int, int]] = frozenset()
) -> list[int]:
    """How many sets ``deviation_sets`` yields with 0, 1, ..., ``bound`` deviations."""
    others = [count - 1 for count in choices]
    for p, _ in equivalent:
        others[p] -= 1
    # Choosing k decisions and one of their other candidates at each: the elementary
    # symmetric polynomials of the numbers of other candidates, by the usual recurrence.
    counts = [1] + [0] * bound
    for n in others:
        for k in range(bound, 0, -1):
            counts[k] += counts[k - 1] * n
    return counts


def lane_of(action: Action) -> Hashable:
    """What PCT gives a priority to: a watch stream, or an actor's requests, calls or
    thread jobs (each of those goes in order of its own)."""
    # A watch stream's number, never id(): ids are reused, and differ from run to run.
    return (action.actor, action.kind, getattr(action.channel, "id", None))


#: The strategies ``ntinv_explore(strategy=...)`` and ``--ntinv-strategy`` name.
STRATEGIES = ("random", "pct", "exhaustive", "plans")

#: The strategies that need a learning run first (the test once, in arrival order).
LEARNING = frozenset(("pct", "exhaustive", "plans"))


def make_strategy(
    name: str,
    seed: int,
    *,
    depth: int = 3,
    steps: int = 50,
    choices: Sequence[int] = (),
    plans: int = 0,
    index: int = 0,
    equivalent: Set[tuple[int, int]] = frozenset(),
) -> Strategy | None:
    """The strategy called ``name`` for run ``index`` (seed ``seed``) of a test whose
    learning run took ``steps`` steps with ``choices`` candidates at its decisions (of
    which the ``equivalent`` deviations only reorder independent steps) and gave
    ``plans`` plans; ValueError for another name. None: there is no run ``index`` (an
    exhaustive search covered every run within its bound with fewer; every plan ran)."""
    if name == "random":
        return RandomWalk(seed)
    if name == "pct":
        return PCT(seed, depth=depth, steps=steps)
    if name == "exhaustive":
        sets = deviation_sets(choices, depth, equivalent)
        chosen = next(itertools.islice(sets, index, None), None)
        return Exhaustive(chosen, depth) if chosen is not None else None
    if name == "plans":
        return Plans(index, plans) if index < plans else None
    raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")
