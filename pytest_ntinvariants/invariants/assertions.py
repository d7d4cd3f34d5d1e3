"""Assertions on attempt counts for tests: what was recorded, and what was delivered.

The seed's failures read ``Expected <int>: 1 to equal <int>: 2`` and nothing else
(README.md, "The hidden duplicate"); three fixes later the cause was still guessed at.
These helpers say which object, which channel, both counts (recorded attempts and
endpoint calls, since the seed's last fix made them differ), then show the attempts, the
calls and the race that produced them, and end with the seed and the replay command:
a failure explains itself.
"""

from __future__ import annotations

from typing import Final

from ..ledger import Ledger
from ._core import CheckContext
from ._index import ObjectHistory, index_of
from ..packs.notifications.invariants import KIND, Attempt, nr_state, recorded_attempts

__all__ = ["OUTCOMES", "assert_attempts", "assert_deliveries"]

#: Values of ``outcome=``: a status, or ``"permanent"`` (failed with the permanence marker).
OUTCOMES: Final = ("success", "failed", "permanent")


def assert_attempts(
    ledger: Ledger,
    name_or_uid: str,
    *,
    channel: str | None = None,
    outcome: str | None = None,
    count: int,
    namespace: str = "default",
    ctx: CheckContext | None = None,
) -> None:
    """Assert the latest version of a NotificationRequest records ``count`` attempts.

    Only attempts on ``channel`` and with ``outcome`` (``"success"``, ``"failed"`` or
    ``"permanent"``) count, when given. ``name_or_uid`` is a uid, a name in
    ``namespace``, or ``"namespace/name"``.
    """
    __tracebackhide__ = True
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
    h = _find(ledger, name_or_uid, namespace)
    st = nr_state(h.last, h.index)
    mine = [
        a
        for a in st.attempts
        if (channel is None or a.channel == channel) and _has_outcome(a, outcome)
    ]
    if len(mine) == count:
        return
    calls = h.side_effects(channel)
    what = _describe(count, channel, outcome, "attempt")
    summary = f"expected {what} for {h.ref.path}, recorded {len(mine)} (deliveries: {len(calls)})"
    highlight = {
        r.version.seq
        for r in recorded_attempts(h)
        if r.attempt.channel == channel or channel is None
    }
    highlight.update(c.seq for c in calls)
    raise AssertionError(_message(summary, h, ledger, ctx, highlight))


def assert_deliveries(
    ledger: Ledger,
    name_or_uid: str,
    *,
    channel: str | None = None,
    count: int,
    namespace: str = "default",
    ctx: CheckContext | None = None,
) -> None:
    """Assert fake endpoints received ``count`` calls about an object (on ``channel``)."""
    __tracebackhide__ = True
    h = _find(ledger, name_or_uid, namespace)
    calls = h.side_effects(channel)
    if len(calls) == count:
        return
    recorded = 0
    if h.ref.kind == KIND:
        st = nr_state(h.last, h.index)
        recorded = sum(1 for a in st.attempts if channel is None or a.channel == channel)
    what = _describe(count, channel, None, "delivery", plural="deliveries")
    summary = (
        f"expected {what} to {h.ref.path}, endpoints received {len(calls)} "
        f"(recorded attempts: {recorded})"
    )
    raise AssertionError(_message(summary, h, ledger, ctx, {c.seq for c in calls}))


def _has_outcome(a: Attempt, outcome: str | None) -> bool:
    if outcome is None:
        return True
    if outcome == "permanent":
        return a.status == "failed" and a.permanent
    return a.status == outcome


def _describe(
    count: int, channel: str | None, outcome: str | None, noun: str, plural: str | None = None
) -> str:
    words = [str(count)]
    if outcome == "permanent":
        words.append("permanently failed")
    elif outcome == "success":
        words.append("successful")
    elif outcome:
        words.append(outcome)
    if channel:
        words.append(channel)
    words.append(noun if count == 1 else (plural or f"{noun}s"))
    return " ".join(words)


def _find(ledger: Ledger, name_or_uid: str, namespace: str) -> ObjectHistory:
    __tracebackhide__ = True
    index = index_of(ledger)
    h = index.find(name_or_uid, namespace, kind=KIND) or index.find(name_or_uid, namespace)
    if h is None:
        known = (
            ", ".join(
                sorted(
                    {
                        f"{o.ref.path} (uid {o.ref.uid})"
                        for o in index.objects.values()
                        if o.ref.kind == KIND
                    }
                )
            )
            or "none"
        )
        raise AssertionError(
            f"no object {name_or_uid!r} (namespace {namespace!r}) in the ledger; "
            f"NotificationRequests known: {known}"
        )
    return h


def _message(
    summary: str,
    h: ObjectHistory,
    ledger: Ledger,
    ctx: CheckContext | None,
    highlight: set[int],
) -> str:
    # Imported here: report imports this package, and the report is only needed on failure.
    from ..report import object_details, object_header, replay_lines

    lines = [summary, "", object_header(h)]
    lines.extend(object_details(h, ledger, highlight))
    tail = replay_lines(ctx)
    if tail:
        lines.append("")
        lines.extend(tail)
    return "\n".join(lines)
