"""Lifecycle specs of the original integration suite: deletion, rapid create/delete, API
faults on status writes, channels left out, and sequential load.

Ports of the original controller's integration specs 16, 19, 25, 29,
30, 32-36, 40, 41 and 77, with two replicas and the built-in invariants on. Where the
original was loose ("deliveries <= 10", "Sent or PartiallySent count <= 5") the port is
exact per object: at most one delivery per object uid, and exactly one for an object that
lived to be Sent. Deletions go through the ``kubernetes`` client, as the original's did.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from nrkit import (
    API_VERSION,
    KIND,
    NR_INVARIANTS,
    SCENARIO_TIMEOUTS,
    kube_delete,
    nr,
    nr_versions,
    status_of,
    uid_of,
    unexpected_errors,
    wait_terminal,
    wait_watching,
)

import reference_controller as rc
from pytest_ntinvariants.apiserver.errors import NotFound
from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.ledger import PerturbationFired, RequestServed, SideEffect
from pytest_ntinvariants.packs.notifications import assert_attempts, assert_deliveries
from pytest_ntinvariants.sinks import Gate, Sink, reply

pytestmark = [NR_INVARIANTS, pytest.mark.ntinv_replicas(2)]


@pytest.fixture
def nr_config(nr_config: rc.ControllerConfig) -> rc.ControllerConfig:
    """The suite's configuration with patient deliveries (``nrkit.SCENARIO_TIMEOUTS``)."""
    return nr_config.replace(**SCENARIO_TIMEOUTS)


@pytest.fixture(autouse=True)
def _warnings_reach_caplog(caplog: pytest.LogCaptureFixture) -> None:
    # Replicas log unexpected exceptions at WARNING with a traceback; caplog must see them.
    caplog.set_level(logging.WARNING)


def _has_phase(obj: dict[str, Any]) -> bool:
    return bool(status_of(obj).get("phase"))


def _assert_gone(ntinv: Harness, name: str) -> None:
    with pytest.raises(NotFound):
        ntinv.get(API_VERSION, KIND, name)


def _assert_replicas_healthy(ntinv: Harness, caplog: pytest.LogCaptureFixture) -> None:
    """Both replicas still run, logged no unexpected exception, and still deliver."""
    assert all(replica.running for replica in ntinv.replicas), ntinv.replicas
    assert unexpected_errors(caplog.records) == []
    ntinv.apply(nr("nr-after", ["console"]))
    assert status_of(wait_terminal(ntinv, "nr-after"))["phase"] == "Sent"


# -- deletion (crd_lifecycle_test.go, status_update_conflicts_test.go) ------------------


def test_deletion_during_delivery(
    ntinv: Harness, slack: Sink, kube: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Specs 19 and 30: the object is deleted while its Slack delivery is in flight (the
    reply held by a gate): it is gone at once, the delivering replica finds it gone when
    it records (a 404, not an error), nothing is delivered again, and no replica crashes."""
    gate = Gate()
    slack.script(reply(200, hold=gate), name="nr-1")
    ntinv.apply(nr("nr-1", ["slack"]))
    slack.wait_for_calls(1, name="nr-1")
    recorded_gone = ntinv.perturb.trigger(
        RequestServed,
        where=lambda e: e.name == "nr-1" and e.subresource == "status" and e.status == 404,
    )
    kube_delete(kube, "nr-1")
    _assert_gone(ntinv, "nr-1")
    gate.open()
    assert recorded_gone.wait(5.0), "the delivering replica never tried to record"
    assert slack.count(name="nr-1") == 1
    _assert_gone(ntinv, "nr-1")
    _assert_replicas_healthy(ntinv, caplog)


def test_deletion_before_first_reconcile(
    ntinv: Harness, slack: Sink, kube: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Spec 32: deleted before any replica reconciled it (both replicas' watch events are
    held until after the delete): no status is ever written, nothing is delivered."""
    wait_watching(ntinv)
    hold = ntinv.perturb.hold(resource="notificationrequests")
    # Per watcher, events arrive in order: the DELETED held means the ADDED was too.
    both_held = ntinv.perturb.trigger(
        PerturbationFired, nth=2, where=lambda e: e.detail.startswith("held DELETED")
    )
    ntinv.apply(nr("nr-1", ["slack"]))
    kube_delete(kube, "nr-1")
    assert both_held.wait(5.0), "the replicas' watch events were not held"
    hold.release()
    _assert_replicas_healthy(ntinv, caplog)
    assert ntinv.wait_quiet(), "the system did not go quiet"
    assert [v.type for v in nr_versions(ntinv, "nr-1")] == ["ADDED", "DELETED"]
    assert slack.count(name="nr-1") == 0


# -- rapid lifecycle (crd_rapid_lifecycle_test.go) --------------------------------------


def test_create_delete_cycles_deliver_at_most_once(ntinv: Harness, slack: Sink, kube: Any) -> None:
    """Spec 33 ([L] deliveries <= 10, exact here per object): 10 cycles of create, wait
    for a phase, delete: each object's uid got at most one Slack call."""
    uids = []
    for i in range(10):
        name = f"nr-{i}"
        ntinv.apply(nr(name, ["slack"]))
        ntinv.wait_for(API_VERSION, KIND, name, _has_phase)
        uids.append(uid_of(ntinv, name))
        kube_delete(kube, name)
    assert ntinv.wait_quiet(), "the system did not go quiet"
    assert all(slack.count(uid=uid) <= 1 for uid in uids), [slack.count(uid=u) for u in uids]
    assert (
        kube.list_namespaced_custom_object(
            "kubernaut.ai", "v1alpha1", "default", "notificationrequests"
        )["items"]
        == []
    )


def test_create_delete_create_with_the_same_name(ntinv: Harness, slack: Sink, kube: Any) -> None:
    """Spec 34 ([L] Sent count <= 5, exact here): 5 cycles of create, wait for a phase,
    delete, all with one name, then a last create that is Sent: at most one Slack call per
    incarnation (calls carry the uid, so incarnations never share a count) and exactly one
    for the last, whose status knows nothing of its predecessors."""
    uids = []
    for _ in range(5):
        ntinv.apply(nr("nr-1", ["slack"]))
        ntinv.wait_for(API_VERSION, KIND, "nr-1", _has_phase)
        uids.append(uid_of(ntinv, "nr-1"))
        kube_delete(kube, "nr-1")
    ntinv.apply(nr("nr-1", ["slack"]))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    last = uid_of(ntinv, "nr-1")
    assert last not in uids
    assert status["phase"] == "Sent"
    assert [a["attempt"] for a in status["deliveryAttempts"]] == [1]
    assert slack.count(uid=last) == 1
    assert ntinv.wait_quiet(), "the system did not go quiet"
    assert all(slack.count(uid=uid) <= 1 for uid in uids), [slack.count(uid=u) for u in uids]


def test_concurrent_create_delete_of_different_objects(
    ntinv: Harness, slack: Sink, kube: Any
) -> None:
    """Specs 35 and 36 (success rate >= 80%, exact here): 10 objects, each created and at
    once deleted from its own thread: every create and delete succeeds, none remains, and
    no object got more than one Slack call."""
    names = [f"nr-{i}" for i in range(10)]

    def cycle(name: str) -> None:
        ntinv.apply(nr(name, ["slack"]))
        kube_delete(kube, name)

    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        list(pool.map(cycle, names))
    assert ntinv.wait_quiet(), "the system did not go quiet"
    for name in names:
        _assert_gone(ntinv, name)
        assert slack.count(uid=uid_of(ntinv, name)) <= 1, name


# -- API faults on status writes (status_update_conflicts_test.go, crd_lifecycle_test.go) --


@pytest.mark.ntinv_faults(409, verb="update", subresource="status", times=2)
def test_status_write_conflicts_are_retried(ntinv: Harness, slack: Sink) -> None:
    """Spec 16: each replica's first two status writes are answered 409 Conflict: the
    controller re-reads and carries on; Sent with exactly one attempt and one call."""
    ntinv.apply(nr("nr-1", ["slack"]))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert status["phase"] == "Sent"
    assert ntinv.ledger.perturbations(action="fault"), "no conflict was injected"
    assert_attempts(ntinv, "nr-1", channel="slack", outcome="success", count=1)
    assert_deliveries(ntinv, "nr-1", channel="slack", count=1)


@pytest.mark.parametrize("code", [500, 503])
def test_transient_api_failure_after_delivery_is_not_a_second_delivery(
    ntinv: Harness, slack: Sink, code: int
) -> None:
    """Spec 29 (the controller still completes despite transient API failures; exact
    here): the status writes right after the Slack call (the record) fail twice with
    ``code``: the attempt waits in the replica's outbox and is recorded by a retried
    write, never delivered again."""
    delivered = ntinv.perturb.trigger(SideEffect, endpoint="slack")
    ntinv.perturb.fault(code, verb="update", subresource="status", times=2, after=delivered)
    ntinv.apply(nr("nr-1", ["slack"]))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert status["phase"] == "Sent"
    assert len(ntinv.ledger.perturbations(action="fault")) == 2
    assert_attempts(ntinv, "nr-1", channel="slack", outcome="success", count=1)
    assert_deliveries(ntinv, "nr-1", channel="slack", count=1)


# -- channels left out (crd_lifecycle_test.go, data_validation_test.go) ------------------


def test_no_channels_fail_with_no_channels_resolved(ntinv: Harness) -> None:
    """Specs 25, 40, 41 (BR-NOT-065): channels omitted, or an empty list: accepted, the
    status is set (phase != ""), and with no default channels configured the request
    Fails with NoChannelsResolved and no attempt (the original went to Sent with zero
    deliveries: its Dec-2025 shadowing bug, fixed there in March 2026)."""
    ntinv.apply(nr("nr-omitted"))
    ntinv.apply(nr("nr-empty", []))
    for name in ("nr-omitted", "nr-empty"):
        obj = wait_terminal(ntinv, name)
        status = status_of(obj)
        assert (status["phase"], status["reason"]) == ("Failed", "NoChannelsResolved"), name
        assert status.get("deliveryAttempts", []) == [], name
        assert status["totalAttempts"] == 0, name
    assert "channels" not in ntinv.get(API_VERSION, KIND, "nr-omitted")["spec"]
    assert ntinv.get(API_VERSION, KIND, "nr-empty")["spec"]["channels"] == []


# -- sequential load (performance_concurrent_test.go) -------------------------------------


@pytest.mark.ntinv_stale_reads(versions=1)
def test_rapid_sequential_creations_deliver_exactly_once(ntinv: Harness, slack: Sink) -> None:
    """Spec 77 [S]: 20 Slack notifications created one after the other: all Sent and
    exactly 20 Slack calls. Run with stale reads: on Dec 26 this spec failed with
    Pending -> Sent invalid transitions from stale reads (NT-BUG-008/013/014)."""
    names = [f"nr-{i}" for i in range(20)]
    for name in names:
        ntinv.apply(nr(name, ["slack"]))
    for name in names:
        assert status_of(wait_terminal(ntinv, name))["phase"] == "Sent", name
        assert_deliveries(ntinv, name, channel="slack", count=1)
    assert slack.count() == len(names)


# -- a record slower than the claim timeout (at-least-once, by contract) ----------------


# The built-in oracle promises at most once; the NotificationRequest pack tells it
# (pytest_ntinvariants_repeated_side_effects) that a takeover may add one delivery, so
# every invariant, side-effects-once included, judges this run.
def test_a_record_slower_than_the_claim_timeout_is_a_takeover_not_a_hidden_delivery(
    ntinv: Harness, slack: Sink, nr_config: rc.ControllerConfig
) -> None:
    """The replica that delivered takes longer to record than the claim timeout (its
    status write held 1.5x that long): the other replica takes the claim over and delivers
    again. The controller documents this: at most one extra delivery per takeover. The
    NotificationRequest invariants accept it and the ledger names the takeover (before,
    the second call was reported as "a delivery is hidden")."""
    from pytest_ntinvariants.invariants import index_of
    from pytest_ntinvariants.packs.notifications.invariants import call_channel, takeovers

    first_call = ntinv.perturb.trigger(SideEffect)
    # Only the delivering replica writes status after the first call (the other one waits
    # for the claim to expire): its record write lands late.
    ntinv.perturb.latency(
        1.5 * nr_config.effective_claim_timeout,
        resource="notificationrequests",
        subresource="status",
        after=first_call,
        times=1,
    )
    ntinv.apply(nr("nr-1", ["slack"]))
    final = wait_terminal(ntinv, "nr-1")
    assert status_of(final)["phase"] == "Sent"
    assert ntinv.wait_quiet(), "the system did not go quiet"
    history = index_of(ntinv.ledger).find("nr-1", kind=KIND)
    assert history is not None
    calls = [c for c in history.side_effects() if call_channel(c) == "slack"]
    assert len(calls) == 2 and {c.caller for c in calls} == {"replica-0", "replica-1"}, calls
    assert [a["attempt"] for a in status_of(final)["deliveryAttempts"]] == [1]
    [taken] = takeovers(history)
    assert taken.slot == ("slack", 1) and taken.before.holder != taken.after.holder
