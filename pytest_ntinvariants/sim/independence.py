"""Which steps of a run commute: the reduction of an exhaustive search.

Two released actions are *independent* when doing them in either order leaves the world
the same: they are for different actors, and they do not touch the same thing with at
least one of them writing it. An event delivered to a replica, the result of its thread
job and the answer of its request change only that replica until it acts again (and its
next action is a step of its own), so what matters is what a *request* touches on the
server and what a *call* touches at an endpoint (``Footprint``).

Two writes of one resource type conflict even on different objects: every watcher of the
type sees their events in the order they were made. A read of one object conflicts with
writes of that object; a list or watch conflicts with every write of its type in its
namespace. A request the server does not map to a resource (discovery) reads everything.

Runs that differ only in the order of independent steps are equivalent (they are one
Mazurkiewicz trace). ``trace_class`` names a run's class; ``equivalent_deviations`` finds
the deviations of an exhaustive search that only move an action ahead of steps it
commutes with in the learning run, which the search then skips. That is judged on the
learning run: after a deviation, what the moved action causes arrives earlier too, so
the pruned run is equivalent to one already covered as far as the learning run shows,
which is the reduction delay-bounded search can afford without a model of the replicas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Footprint", "Traced", "commute", "equivalent_deviations", "trace_class"]


@dataclass(frozen=True)
class Footprint:
    """What a request or call touches outside its actor.

    ``resource`` is a resource type (``configmaps``, ``widgets.example.com``), an
    endpoint (``sink:<name>``), or None for a request that reads everything. ``name`` is
    empty for a whole collection (list, watch, create, deletecollection), ``namespace``
    for every namespace."""

    resource: str | None
    namespace: str = ""
    name: str = ""
    write: bool = False


@dataclass(frozen=True)
class Traced:
    """One released action as the reduction sees it."""

    seq: int  # its place in the arrival order
    actor: str
    label: str  # what it was, with no number that depends on the order (rv, watch id)
    touches: Footprint | None  # None: nothing outside its actor


def commute(a: Traced, b: Traced) -> bool:
    """Whether ``a`` and ``b`` leave the world the same in either order."""
    if a.actor == b.actor:
        return False
    x, y = a.touches, b.touches
    if x is None or y is None or not (x.write or y.write):
        return True
    if x.resource is None or y.resource is None:  # reads everything, and one writes
        return False
    if x.resource != y.resource:
        return True
    if x.write and y.write:
        return False  # watchers of the type see the two in the order they were made
    read = y if x.write else x
    written = x if x.write else y
    if read.namespace and written.namespace and read.namespace != written.namespace:
        return True
    if not read.name or not written.name:  # a list or watch, or a create
        return False
    return read.name != written.name


def equivalent_deviations(
    trace: Sequence[Traced],
    candidates: Sequence[Sequence[int]],
    decision_steps: Sequence[int],
) -> frozenset[tuple[int, int]]:
    """The deviations ``(decision, candidate)`` of a run that only move the candidate
    ahead of steps it commutes with: ``trace`` is the run's released actions in order,
    ``candidates`` the arrival-order seqs of each decision's candidates, and
    ``decision_steps`` the (1-based) step each decision released. A candidate the run
    never released is never equivalent (taking it does something the run did not)."""
    where = {t.seq: i for i, t in enumerate(trace)}
    out = set()
    for p, (seqs, step) in enumerate(zip(candidates, decision_steps, strict=True)):
        start = step - 1
        for j in range(1, len(seqs)):
            released = where.get(seqs[j])
            if released is None or released < start:
                continue
            moved = trace[released]
            if all(commute(moved, trace[k]) for k in range(start, released)):
                out.add((p, j))
    return frozenset(out)


def trace_class(trace: Sequence[Traced]) -> str:
    """A short hash naming the run's class of equivalent orders: its Foata normal form
    (steps in layers, each step one layer after the last step it depends on, each layer
    sorted), so runs that only swap independent steps get the same name."""
    layers: list[int] = []
    for i, step in enumerate(trace):
        layer = 0
        for k in range(i):
            if layers[k] >= layer and not commute(step, trace[k]):
                layer = layers[k] + 1
        layers.append(layer)
    form: dict[int, list[str]] = {}
    for layer, step in zip(layers, trace, strict=True):
        form.setdefault(layer, []).append(f"{step.actor}\x1f{step.label}")
    text = "\x1e".join("\x1d".join(sorted(form[k])) for k in sorted(form))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
