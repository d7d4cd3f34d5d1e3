"""Perturbation plans learned from one unperturbed run (after Sieve, Sun et al., OSDI 2022).

A learning run (the test once, in arrival order, with no perturbation) shows the *points*
where a perturbation can matter: each watch event delivered to each replica, each write a
replica made. Each point gives plans, each a schedule of one step:

* an event point (the k-th event of a resource to replica R): R's reads are served a
  version behind from that event on (``stale-from-event``); when a later event of the same
  object reached R, that event waits ``COALESCE_WINDOW`` seconds and a newer event of its
  object that comes meanwhile replaces it, so R misses that intermediate state, as when
  a watch coalesces (``coalesce-event``; a watch never loses the current state, so the
  event is delivered late when nothing replaces it); that event, and R's view, wait until
  another replica's next write (``delay-event``, one plan per other replica);
* a write point (R's n-th successful write): R crashes right after it (``crash``);
* a side-effect point (R's n-th call to a fake endpoint, when the endpoint knows who
  called, as in a deterministic world): R crashes right after the endpoint received it,
  before R sees the answer (``crash``): the call is made and R can record nothing of it.

Points that cannot matter are pruned: BOOKMARKs, and events the replica did not react to
(it sent no request between that event and its next one, or the end of the run). Plans are
listed in the order of their points in the run, so plan ``i`` of a test is the same on
every worker and in every replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..ledger import Entry, ReplicaEvent, RequestServed, SideEffect, WatchDelivered
from .schedule import Step

__all__ = ["Learned", "learn", "target_resource"]

_WRITES = frozenset({"create", "update", "patch", "delete", "deletecollection"})

#: Seconds (virtual, in a world) a coalesced event waits for a newer one to replace it.
COALESCE_WINDOW = 1.0


@dataclass(frozen=True)
class Learned:
    """The plans of a learning run, and how many points it had and pruned."""

    plans: tuple[Step, ...]
    points: int
    pruned: int


def learn(entries: Iterable[Entry]) -> Learned:
    """The plans of a learning run's ledger."""
    entries = list(entries)
    replicas = sorted({e.identity for e in entries if isinstance(e, ReplicaEvent)})
    plans: list[Step] = []
    points = pruned = 0
    events: dict[tuple[str, str], int] = {}  # (identity, resource) -> events so far
    writes: dict[str, int] = {}
    calls: dict[str, int] = {}
    for i, e in enumerate(entries):
        if isinstance(e, WatchDelivered) and e.identity in replicas:
            key = (e.identity, e.resource)
            events[key] = nth = events.get(key, 0) + 1
            points += 1
            if e.type == "BOOKMARK" or not _reacted(entries, i, e.identity):
                pruned += 1
                continue
            others = [r for r in replicas if r != e.identity]
            plans += _event_plans(e, nth, others, _superseded(entries, i))
        elif (
            isinstance(e, RequestServed)
            and e.identity in replicas
            and e.verb in _WRITES
            and e.status < 300
        ):
            writes[e.identity] = n = writes.get(e.identity, 0) + 1
            points += 1
            plans.append(Step("crash", e.identity, (("after_writes", n),)))
        elif isinstance(e, SideEffect) and e.caller in replicas:
            calls[e.caller] = n = calls.get(e.caller, 0) + 1
            points += 1
            plans.append(Step("crash", e.caller, (("after_calls", n),)))
    return Learned(tuple(plans), points, pruned)


def _reacted(entries: Sequence[Entry], i: int, identity: str) -> bool:
    # A request of the replica's after its event, before its next event.
    for later in entries[i + 1 :]:
        if isinstance(later, WatchDelivered) and later.identity == identity:
            return False
        if isinstance(later, RequestServed) and later.identity == identity:
            return True
    return False


def _superseded(entries: Sequence[Entry], i: int) -> bool:
    # A later event of the same object to the same replica: the state it carries is not
    # the object's last.
    e = entries[i]
    assert isinstance(e, WatchDelivered)
    return any(
        isinstance(later, WatchDelivered)
        and (later.identity, later.resource, later.namespace, later.name)
        == (e.identity, e.resource, e.namespace, e.name)
        for later in entries[i + 1 :]
    )


def _event_plans(e: WatchDelivered, nth: int, others: list[str], superseded: bool) -> list[Step]:
    where = (("resource", e.resource), ("nth", nth))
    what = (("event", f"{e.type} {e.name} rv {e.rv}"),)
    plans = [Step("stale-from-event", e.identity, (*where, *what))]
    if superseded:
        window = (("window", COALESCE_WINDOW),)
        plans.append(Step("coalesce-event", e.identity, (*where, *window, *what)))
    plans += [
        Step("delay-event", e.identity, (*where, ("until_write_of", other), *what))
        for other in others
    ]
    return plans


def target_resource(resource: str) -> str:
    """``group/plural`` (the ledger's) as a ``Target`` names it: ``plural.group``."""
    group, _, plural = resource.partition("/")
    return f"{plural}.{group}" if group else plural
