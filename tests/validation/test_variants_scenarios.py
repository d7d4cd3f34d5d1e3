"""The schedules the historical variants are judged on, run here with the reference controller.

Every test in this module runs twice over:

- here, collected as part of the validation suite, with the reference recording strategy
  (the ``nr_strategy`` fixture's default): the reference must pass each of them, with every
  invariant checked after the body;
- in ``test_variants.py``, copied into a pytester directory with ``nr_strategy`` replaced by
  a historical variant (``nrkit.variant_suite``): there the same schedule must make a named
  invariant fail, with the report a user would see.

The bodies assert only what the original integration suite asserted (the phase, and for
the seed's 400 spec the recorded counters), so a variant that fails here fails on an
invariant, not on the test's own assertions. The schedules follow the seed's history
(README.md, "The hidden duplicate"; tests/validation/VARIANTS.md): one replica fed the
events of its own writes (the seed's "concurrent reconciles" were sequential reconciles on
stale reads), retries within the 1 s dedupe window, stale reads, a second replica held
until the first one's status write, watch latency, coalesced events and API faults.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import kopf
import pytest
from nrkit import API_VERSION, KIND, NR_INVARIANTS, TERMINAL, nr, policy, wait_terminal

from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.ledger import ObjectVersion
from pytest_ntinvariants.sinks import Sink, reply

pytestmark = [NR_INVARIANTS]

NAME = "nr-1"


class Handled:
    """Which versions of which objects each replica's controller has finished handling.

    The invariants are checked once the system has been quiet for a moment
    (``ntinv_quiet_period``), but a replica may still hold watch events it has not handled
    -- under load for longer than that moment -- and here those are the very events that
    make a variant deliver twice. kopf hands one object's events to its handlers in order,
    one at a time, so once a replica has handled the latest version, it has handled every
    stale one before it: the scenarios wait for that, on events, before they end.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str, str]] = set()  # (identity, uid, resourceVersion)

    def record(self, identity: str, obj: Mapping[str, Any]) -> None:
        """A replica has handled the event carrying ``obj``."""
        meta = obj.get("metadata") or {}
        with self._lock:
            self._seen.add((identity, str(meta.get("uid")), str(meta.get("resourceVersion"))))

    def wait(self, ntinv: Harness, name: str = "nr-1", *, timeout: float = 10.0) -> None:
        """Block until every replica has handled the object's latest version (re-checked on
        every change of the store and every handled event, never by polling)."""
        identities = list(ntinv.replicas.identities)

        def all_handled() -> bool:
            meta = ntinv.get(API_VERSION, KIND, name)["metadata"]
            latest = (str(meta["uid"]), str(meta["resourceVersion"]))
            with self._lock:
                return all((i, *latest) in self._seen for i in identities)

        ntinv.wait_until(all_handled, timeout=timeout, what=f"every replica handled {name}")


@pytest.fixture
def handled() -> Handled:
    """What each replica has handled (filled by the ``ntinv_operator`` below)."""
    return Handled()


@pytest.fixture
def ntinv_operator(
    ntinv_operator: Callable[[str], kopf.OperatorRegistry], handled: Handled
) -> Callable[[str], kopf.OperatorRegistry]:
    """The suite's controller (conftest.py), with one more event handler per replica that
    records each event once the controller's handler is done with it (kopf runs a
    resource's event handlers one after another, in the order they were registered)."""

    def factory(identity: str) -> kopf.OperatorRegistry:
        registry = ntinv_operator(identity)

        @kopf.on.event(
            "kubernaut.ai", "v1alpha1", "notificationrequests", registry=registry,
            id="validation-handled",
        )  # fmt: skip
        async def record(event: Mapping[str, Any], **_: Any) -> None:
            obj = event.get("object")
            if isinstance(obj, Mapping):
                handled.record(identity, obj)

        return registry

    return factory


def _terminal(entry: ObjectVersion) -> bool:
    """A version of a NotificationRequest in a terminal phase (a trigger predicate)."""
    status = entry.obj.get("status") or {}
    return entry.kind_ == KIND and status.get("phase") in TERMINAL


def _watching(ntinv: Harness, *, timeout: float = 10.0) -> None:
    """Block until every replica watches NotificationRequests, so that each sees the
    object through its watch (where perturbations act) and not in its first LIST."""
    ntinv.wait_watching("notificationrequests", timeout=timeout)


def _finish(ntinv: Harness, handled: Handled, phase: str) -> None:
    """Wait for the terminal ``phase`` (what the original suite asserted), then until every
    replica has handled every event of the object."""
    obj = wait_terminal(ntinv, NAME)
    assert (obj.get("status") or {}).get("phase") == phase
    handled.wait(ntinv, NAME)


@pytest.mark.ntinv_replicas(1)
def test_one_delivery(ntinv: Harness, handled: Handled, slack: Sink) -> None:
    """One replica, one successful delivery, no perturbation.

    kopf hands the replica the events of its own writes (Pending, Sending, Sent) after the
    pass that made them: a reconcile from the Sending body sees the attempt as not yet made.
    That is what the seed's triage called a "concurrent reconcile" and named the root cause.
    """
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack"]))
    _finish(ntinv, handled, "Sent")


def _hold_stale_events(ntinv: Harness) -> None:
    """Hold replica-0's watch events from its first status write until the object is
    terminal: the reconciles after the one that finished it then work from the Pending and
    Sending bodies -- the seed's stale reads -- every time, not by luck."""
    first_write = ntinv.perturb.after_write("replica-0", subresource="status")
    terminal = ntinv.perturb.trigger(ObjectVersion, where=_terminal)
    ntinv.perturb.hold(
        identity="replica-0", resource="notificationrequests", after=first_write, until=terminal
    )


def _after_handled(ntinv: Harness, handled: Handled) -> dict[str, Any]:
    """The object once the replica has handled every (held, stale) event of it."""
    handled.wait(ntinv, NAME)
    return ntinv.get(API_VERSION, KIND, NAME)


@pytest.mark.ntinv_replicas(1)
def test_http_400_is_permanent_and_not_retried(
    ntinv: Harness, handled: Handled, slack: Sink
) -> None:
    """The seed's spec "should classify HTTP 400 as permanent error and not retry", on
    held stale events (``_hold_stale_events``).

    The body asserts what the original suite did (its 400 spec passed with
    TotalAttempts == 1 once de-duplicated), when the object is terminal and again once the
    replica has handled every event of it.
    """
    slack.script(reply(400))
    _hold_stale_events(ntinv)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack"], retryPolicy=policy(3)))
    for obj in (wait_terminal(ntinv, NAME), _after_handled(ntinv, handled)):
        status = obj["status"]
        assert status["phase"] == "Failed"
        assert status["totalAttempts"] == 1
        assert status["failedDeliveries"] == 1
        assert status["successfulDeliveries"] == 0
        assert [a["attempt"] for a in status["deliveryAttempts"]] == [1]


@pytest.mark.ntinv_replicas(1)
def test_successful_delivery_is_recorded_once(
    ntinv: Harness, handled: Handled, slack: Sink
) -> None:
    """The original suite's success specs (Sent, SuccessfulDeliveries == 1, TotalAttempts
    == 1) on held stale events (``_hold_stale_events``), checked as for the 400 spec."""
    _hold_stale_events(ntinv)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack"], retryPolicy=policy(3)))
    for obj in (wait_terminal(ntinv, NAME), _after_handled(ntinv, handled)):
        status = obj["status"]
        assert status["phase"] == "Sent"
        assert status["totalAttempts"] == 1
        assert status["successfulDeliveries"] == 1
        assert status["failedDeliveries"] == 0
        assert [a["attempt"] for a in status["deliveryAttempts"]] == [1]


@pytest.mark.ntinv_replicas(1)
def test_fast_retries_with_the_same_error(ntinv: Harness, handled: Handled, slack: Sink) -> None:
    """Two 502s, then 200: retries milliseconds apart fail with the same error text.

    The January 2026 dedupe key (channel, status, error, |dt| < 1 s; no attempt number)
    merges the second real failure into the first (the seed's 1 s "timestamp tolerance"
    taken at its word).
    """
    slack.script(reply(502), times=2)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack"], retryPolicy=policy(5)))
    _finish(ntinv, handled, "Sent")


@pytest.mark.ntinv_replicas(1)
@pytest.mark.ntinv_stale_reads(1)
def test_stale_reads(ntinv: Harness, handled: Handled, slack: Sink) -> None:
    """One 502, then 200, with every GET served one version behind.

    The retry pass starts from a fresh GET that is not fresh: a lagging cache, which the
    seed's controller-runtime client reads from.
    """
    slack.script(reply(502), times=1)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack"], retryPolicy=policy(3)))
    _finish(ntinv, handled, "Sent")


@pytest.mark.ntinv_replicas(2)
def test_two_replicas(ntinv: Harness, handled: Handled, slack: Sink, webhook: Sink) -> None:
    """Two replicas, two channels, one 502 on Slack: no perturbation but the second replica."""
    slack.script(reply(502), times=1)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack", "webhook"], retryPolicy=policy(3)))
    _finish(ntinv, handled, "Sent")


@pytest.mark.ntinv_replicas(2)
def test_hold_until_the_other_replicas_status_write(
    ntinv: Harness, handled: Handled, slack: Sink, webhook: Sink
) -> None:
    """replica-1 sees nothing until replica-0 has written status once, then everything."""
    first_write = ntinv.perturb.after_write("replica-0", subresource="status")
    ntinv.perturb.hold(identity="replica-1", resource="notificationrequests", until=first_write)
    slack.script(reply(502), times=1)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack", "webhook"], retryPolicy=policy(3)))
    _finish(ntinv, handled, "Sent")


@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_watch_latency((0, 0.03))
def test_watch_latency(ntinv: Harness, handled: Handled, slack: Sink, webhook: Sink) -> None:
    """Watch events reach both replicas 0-30 ms late (seeded); reads and writes stay fast."""
    slack.script(reply(502), times=1)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack", "webhook"], retryPolicy=policy(3)))
    _finish(ntinv, handled, "Sent")


@pytest.mark.ntinv_replicas(2)
def test_coalesced_events(ntinv: Harness, handled: Handled, slack: Sink, webhook: Sink) -> None:
    """replica-1 sees only the latest version of events 20 ms apart (unobserved states)."""
    ntinv.perturb.coalesce(0.02, identity="replica-1", resource="notificationrequests")
    slack.script(reply(502), times=1)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack", "webhook"], retryPolicy=policy(3)))
    _finish(ntinv, handled, "Sent")


@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_faults(409, subresource="status", probability=0.3)
@pytest.mark.ntinv_faults(500, subresource="status", nth=3)
def test_api_faults(ntinv: Harness, handled: Handled, slack: Sink, webhook: Sink) -> None:
    """Status writes get injected 409s (30 %, seeded) and one 500 (each replica's third)."""
    slack.script(reply(502), times=1)
    _watching(ntinv)
    ntinv.apply(nr(NAME, ["slack", "webhook"], retryPolicy=policy(3)))
    _finish(ntinv, handled, "Sent")
