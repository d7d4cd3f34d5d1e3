"""Shrinking: from a failing exploration run to the smallest run that fails the same way.

A run is a ``ReplayToken``: the seed, the schedule's perturbations and the engine's
decisions (the index chosen at each step that had a choice; 0 is arrival order). The
shrinker first drops perturbations one at a time, then sets decisions back to arrival
order, in halves, quarters and so on down to one at a time (delta debugging, Zeller and
Hildebrandt, TSE 2002), keeping every change after which the run still fails with the
same signature (the same invariants broken, or the same error at the same place). After
each kept run it continues from the decisions that run actually made, trailing arrival-
order ones cut, so each step starts from a real run. It stops when nothing more can be
taken away or its budget of runs is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .replay import ReplayToken

__all__ = ["ShrinkResult", "Shrinker"]

#: What running a candidate tells: its failure's signature (None: it passed), the token
#: of what actually ran, the run's steps (text) and its deviations from arrival order
#: (step numbers).
Outcome = tuple[tuple[Any, ...] | None, ReplayToken | None, str, list[int]]


@dataclass(frozen=True)
class ShrinkResult:
    """The smallest failing run found, and how it was found."""

    original: ReplayToken
    minimal: ReplayToken
    runs: int
    seconds: float
    complete: bool  # False: the budget ran out first (a smaller run may exist)
    steps: str  # the minimal run's steps, as a report prints them
    deviations: list[int]  # its steps that left arrival order

    def to_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return {
            "token": self.minimal.encode(),
            "perturbations": [s.describe() for s in self.minimal.steps],
            "perturbations_before": len(self.original.steps),
            "deviations": self.deviations,
            "deviations_before": sum(1 for d in self.original.decisions if d),
            "runs": self.runs,
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
        }

    def describe(self, nodeid: str) -> str:
        """The report section: what is left, the steps, and how to replay it."""
        token = self.minimal.encode()
        kept = len(self.minimal.steps)
        where = ", ".join(f"#{n}" for n in self.deviations)
        lines = [
            f"shrunk in {self.runs} run(s), {self.seconds:.1f}s"
            + ("" if self.complete else " (budget spent: a smaller run may exist)")
            + f": {kept} perturbation(s) (was {len(self.original.steps)}), "
            f"{len(self.deviations)} step(s) out of arrival order (was "
            f"{sum(1 for d in self.original.decisions if d)})" + (f", at {where}" if where else ""),
        ]
        lines += [f"  - {s.describe()}" for s in self.minimal.steps]
        if self.steps:
            lines += ["steps of the smallest run:", self.steps]
        lines += [
            f"replay: pytest {nodeid} -p no:randomly --ntinv-replay={token}",
            "a regression test of exactly this run: mark the test with",
            f'    @pytest.mark.ntinv_replay("{token}")',
        ]
        return "\n".join(lines)


class Shrinker:
    """Shrink ``failing`` (which failed with ``signature``) by calling ``run`` on smaller
    candidates, at most ``budget`` times."""

    def __init__(
        self,
        run: Callable[[ReplayToken], Outcome],
        failing: ReplayToken,
        signature: tuple[Any, ...],
        *,
        budget: int = 100,
    ) -> None:
        self.run = run
        self.signature = signature
        self.budget = budget
        self.runs = 0
        self.current = _trimmed(failing)
        self.original = failing
        self.steps = ""
        self.deviations: list[int] = []
        self._exhausted = False

    def shrink(self) -> ShrinkResult:
        """Shrink as far as the budget goes."""
        started = time.perf_counter()
        self._drop_perturbations()
        self._restore_arrival_order()
        if not self.steps and not self._exhausted:
            # Nothing could be taken away: run the failing run once more for its steps.
            self._fails(self.current)
        return ShrinkResult(
            self.original,
            self.current,
            self.runs,
            time.perf_counter() - started,
            not self._exhausted,
            self.steps,
            self.deviations,
        )

    def _drop_perturbations(self) -> None:
        i = 0
        while i < len(self.current.steps):
            steps = self.current.steps[:i] + self.current.steps[i + 1 :]
            if not self._fails(replace(self.current, steps=steps)):
                if self._exhausted:
                    return
                i += 1  # needed: keep it, try the next

    def _restore_arrival_order(self) -> None:
        parts = 2
        while True:
            chosen = [i for i, d in enumerate(self.current.decisions) if d]
            if not chosen:
                return
            size = -(-len(chosen) // min(parts, len(chosen)))
            for start in range(0, len(chosen), size):
                back = set(chosen[start : start + size])
                decisions = tuple(
                    0 if i in back else d for i, d in enumerate(self.current.decisions)
                )
                if self._fails(replace(self.current, decisions=decisions)):
                    parts = max(parts - 1, 2)
                    break
                if self._exhausted:
                    return
            else:
                if size == 1:
                    return  # every single one is needed
                parts *= 2

    def _fails(self, candidate: ReplayToken) -> bool:
        """Run ``candidate``; when it fails the same way, continue from what it ran."""
        if self.runs >= self.budget:
            self._exhausted = True
            return False
        self.runs += 1
        signature, ran, steps, deviations = self.run(candidate)
        if signature != self.signature or ran is None:
            return False
        self.current = _trimmed(ran)
        self.steps = steps
        self.deviations = deviations
        return True


def _trimmed(token: ReplayToken) -> ReplayToken:
    # Arrival order at the end is what a replay does anyway when its decisions run out.
    decisions = list(token.decisions)
    while decisions and decisions[-1] == 0:
        decisions.pop()
    return replace(token, decisions=tuple(decisions))
