"""Assertions on a NotificationRequest's attempts: what was recorded, and what was delivered.

The seed's failures read ``Expected <int>: 1 to equal <int>: 2`` and nothing else
(README.md, "The hidden duplicate"); three fixes later the cause was still guessed at.
These helpers say which object, which channel, both counts (recorded attempts and
endpoint calls, since the seed's last fix made them differ), then show the attempts, the
calls and the race that produced them, and end with the seed and the replay command.

Each takes the test's ``ntinv`` harness (or a bare ``Ledger``, with ``ctx=``)::

    assert_attempts(ntinv, "nr-1", channel="slack", count=1)
    assert_deliveries(ntinv, "nr-1", channel="slack", count=1)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Final

import pytest

from pytest_ntinvariants.invariants import (
    CheckContext,
    ObjectHistory,
    failure_message,
    find_object,
    index_of,
)
from pytest_ntinvariants.ledger import Ledger, SideEffect

from .invariants import KIND, Attempt, call_channel, nr_state, recorded_attempts

__all__ = ["OUTCOMES", "assert_attempts", "assert_deliveries"]

#: Values of ``outcome=``: a status, or ``"permanent"`` (failed with the permanence marker).
OUTCOMES: Final = ("success", "failed", "permanent")


def assert_attempts(
    ntinv: Any,
    name_or_uid: str,
    *,
    channel: str | None = None,
    outcome: str | None = None,
    count: int,
    namespace: str = "default",
    ctx: CheckContext | None = None,
) -> None:
    """Assert the latest version of a NotificationRequest records ``count`` attempts.

    ``ntinv`` is the test's harness (its ledger and context are used) or a ``Ledger``.
    Only attempts on ``channel`` and with ``outcome`` (``"success"``, ``"failed"`` or
    ``"permanent"``) count, when given. ``name_or_uid`` is a uid, a name in
    ``namespace``, or ``"namespace/name"``. On an object of another kind it fails saying
    it does not apply.
    """
    __tracebackhide__ = True
    if outcome is not None and outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}; got {outcome!r}")
    ledger, ctx = _ledger_and_context(ntinv, ctx)
    h = _find(ledger, name_or_uid, namespace, "assert_attempts")
    st = nr_state(h.last, h.index)
    mine = [
        a
        for a in st.attempts
        if (channel is None or a.channel == channel) and _has_outcome(a, outcome)
    ]
    if len(mine) == count:
        return
    calls = _calls(h, channel)
    what = _describe(count, channel, outcome, "attempt")
    summary = f"expected {what} for {h.ref.path}, recorded {len(mine)} (deliveries: {len(calls)})"
    highlight = {
        r.version.seq
        for r in recorded_attempts(h)
        if r.attempt.channel == channel or channel is None
    }
    highlight.update(c.seq for c in calls)
    raise AssertionError(failure_message(summary, h, ledger, ctx, highlight))


def assert_deliveries(
    ntinv: Any,
    name_or_uid: str,
    *,
    channel: str | None = None,
    count: int,
    namespace: str = "default",
    ctx: CheckContext | None = None,
) -> None:
    """Assert fake endpoints received ``count`` deliveries of a NotificationRequest (on
    ``channel``); ``ntinv`` as for ``assert_attempts``."""
    __tracebackhide__ = True
    ledger, ctx = _ledger_and_context(ntinv, ctx)
    h = _find(ledger, name_or_uid, namespace, "assert_deliveries")
    calls = _calls(h, channel)
    if len(calls) == count:
        return
    st = nr_state(h.last, h.index)
    recorded = sum(1 for a in st.attempts if channel is None or a.channel == channel)
    what = _describe(count, channel, None, "delivery", plural="deliveries")
    summary = (
        f"expected {what} to {h.ref.path}, endpoints received {len(calls)} "
        f"(recorded attempts: {recorded})"
    )
    raise AssertionError(failure_message(summary, h, ledger, ctx, {c.seq for c in calls}))


def _ledger_and_context(ntinv: Any, ctx: CheckContext | None) -> tuple[Ledger, CheckContext]:
    if isinstance(ntinv, Ledger):
        ledger = ntinv
    else:
        # The harness: its context carries the seed, the replay command and pytest's hook
        # relay, which adds every enabled pack's report sections.
        ledger, ctx = ntinv.ledger, ctx if ctx is not None else ntinv.check_context()
    if ctx is None:
        ctx = CheckContext.from_ledger(ledger)
    if ctx.hook is None:
        # Outside pytest: this pack's own sections at least (its attempts table).
        ctx = dataclasses.replace(ctx, hook=_own_hook())
    return ledger, ctx


@functools.cache
def _own_hook() -> Any:
    from pytest_ntinvariants.hookspecs import hook_relay

    from . import report

    return hook_relay(_Sections(report))


class _Sections:
    """This pack's report hooks, for ``hook_relay`` (the pack module also holds pytest's
    own hooks, which a bare relay has no specification for)."""

    def __init__(self, report: Any) -> None:
        self._report = report

    @pytest.hookimpl
    def pytest_ntinvariants_object_state(self, history: ObjectHistory) -> str | None:
        return self._report.state(history)  # type: ignore[no-any-return]

    @pytest.hookimpl
    def pytest_ntinvariants_object_sections(
        self, history: ObjectHistory, ledger: Ledger
    ) -> list[str] | None:
        return self._report.sections(history)  # type: ignore[no-any-return]

    @pytest.hookimpl
    def pytest_ntinvariants_describe_write(self, version: Any, prev: Any) -> str | None:
        return self._report.describe_write(version, prev)  # type: ignore[no-any-return]

    @pytest.hookimpl
    def pytest_ntinvariants_describe_call(self, call: Any) -> str | None:
        return self._report.describe_call(call)  # type: ignore[no-any-return]


def _calls(h: ObjectHistory, channel: str | None) -> list[SideEffect]:
    calls = h.side_effects()
    return calls if channel is None else [c for c in calls if call_channel(c) == channel]


def _find(ledger: Ledger, name_or_uid: str, namespace: str, what: str) -> ObjectHistory:
    __tracebackhide__ = True
    index = index_of(ledger)
    if index.find(name_or_uid, namespace, kind=KIND) is None:
        other = index.find(name_or_uid, namespace)
        if other is not None:
            # Not "recorded 0": the object exists, and attempts are no part of its kind.
            raise AssertionError(
                f"{what} applies to {KIND}s only; {other.ref} is a {other.ref.kind} "
                "(use ntinv.assert_side_effects for the calls about any object)"
            )
    return find_object(ledger, name_or_uid, namespace, kind=KIND)


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
