"""A correct kopf operator that relies on kopf's consistency timeout, for false-alarm runs.

Every replica keeps its own log in the Gadget's status (``status.<identity>.log``) and, on
every event, appends one entry built from the log it sees in the event's body and a
counter of its own (``<identity>#<n>``), until the log has ``STEPS`` entries. The write is
not idempotent: handled on a stale body (one from before the replica's previous write),
the handler would write a log that is not an extension of the stored one, and burn a
counter value.

kopf prevents that: after a handler's PATCH it waits for the watch event carrying that
PATCH's resourceVersion, up to ``persistence.consistency_timeout`` seconds, before it
handles the object again, so a correct replica's logs grow by one entry per version and
end as ``[<identity>#1, ..., <identity>#STEPS]``. ``log_errors`` says what in a Gadget's
history breaks that (``tests/`` and ``benchmarks/bench_false_alarms.py`` assert it is
empty). Replicas write different status keys, so they never race each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

import kopf

from .gadgets import GROUP, PLURAL, VERSION

#: Entries every replica writes into its log.
STEPS = 3


def make_registry(identity: str) -> kopf.OperatorRegistry:
    """A fresh registry for ``identity``: the log-appending creation handler, retried until
    the log is complete."""
    registry = kopf.OperatorRegistry()
    counter = itertools.count(1)

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, id="append")
    async def append(status: Mapping[str, Any], patch: kopf.Patch, **_: Any) -> None:
        log = list((status.get(identity) or {}).get("log") or [])
        patch.status[identity] = {"log": [*log, f"{identity}#{next(counter)}"]}
        if len(log) + 1 < STEPS:
            raise kopf.TemporaryError("more to append", delay=0.01)

    return registry


def settings(settings: kopf.OperatorSettings) -> None:
    """The replicas' kopf settings: kopf's consistency timeout (5 s, its default, spelt
    out), and progress and diff-base records under ``status.kopf-<identity>``, so that the
    replicas' records of the same handler stay apart (the identity is the replica's
    ``posting.reporting_instance``)."""
    identity = settings.posting.reporting_instance
    settings.persistence.consistency_timeout = 5.0
    settings.persistence.progress_storage = kopf.StatusProgressStorage(
        field=f"status.kopf-{identity}.progress"
    )
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(
        field=f"status.kopf-{identity}.last-handled-configuration"
    )


def log_errors(
    statuses: Iterable[Mapping[str, Any]],
    identities: Sequence[str],
    crashed: Collection[str] = (),
) -> list[str]:
    """What is wrong in a Gadget's successive statuses (ledger order) for ``identities``:
    a log that is not the previous one plus one entry, or a final log that is not exactly
    ``<identity>#1 .. #STEPS`` (for a replica that ``crashed``, a beginning of it). Empty
    when every replica behaved."""
    errors: list[str] = []
    last: dict[str, list[str]] = {who: [] for who in identities}
    for status in statuses:
        for who in identities:
            log = list((status.get(who) or {}).get("log") or [])
            if log != last[who] and log[:-1] != last[who]:
                errors.append(f"{who}: log {last[who]} became {log}")
            last[who] = log
    for who in identities:
        expected = [f"{who}#{n}" for n in range(1, STEPS + 1)]
        if who in crashed:
            expected = expected[: len(last[who])]  # it stopped writing where it crashed
        if last[who] != expected:
            errors.append(f"{who}: final log {last[who]}, expected {expected}")
    return errors
