"""The controller's passes on the in-memory API: lifecycle, retries, stale bodies, replicas.

Watch events are simulated by calling ``on_watch_event`` with a body -- the current one or
an old version (a watch that lags behind this replica's own writes). Retries run on the
controller's own timers at time scale 0.001; tests wait on store changes, never on sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from rc_kit import (
    PLANTED,
    PLANTED_METADATA,
    ControllerFactory,
    ScriptedChannel,
    leaks,
    permanent,
    planted_spec,
    retryable,
    spec,
    strings_in,
)
from rc_memapi import MemoryApi, server_error
from variants import NoDedupe

from reference_controller import MemoryAuditSink, ObjectRef
from reference_controller.channels import DeliveryRequest, slack_blocks
from reference_controller.classify import PERMANENT_MARKER
from reference_controller.models import ChannelName, parse_status
from reference_controller.phases import Reason

SLACK, CONSOLE = ChannelName.SLACK, ChannelName.CONSOLE


def uid_of(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["uid"])


async def wait_phase(api: MemoryApi, uid: str, *phases: str) -> dict[str, Any]:
    await api.wait_for(lambda: api.status(uid).get("phase") in phases)
    return api.status(uid)


@pytest.mark.asyncio
async def test_console_request_goes_pending_sending_sent_in_one_pass(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    console = ScriptedChannel()
    audit = MemoryAuditSink()
    controller = make_controller(channels={CONSOLE: console}, audit=audit)
    obj = memapi.create(spec("console", metadata={"team": "sre"}))
    uid = uid_of(obj)

    await controller.on_watch_event("ADDED", obj)

    status = memapi.status(uid)
    assert memapi.phases(uid) == [None, "Pending", "Sending", "Sent"]
    assert (status["reason"], status["message"]) == (
        Reason.ALL_SUCCEEDED,
        "Successfully delivered to 1 channel(s)",
    )
    assert (
        status["totalAttempts"],
        status["successfulDeliveries"],
        status["failedDeliveries"],
    ) == (
        1,
        1,
        0,
    )
    (attempt,) = status["deliveryAttempts"]
    assert (attempt["channel"], attempt["attempt"], attempt["status"]) == ("console", 1, "success")
    assert attempt["holder"] == "replica-a"
    assert status["claims"] == []
    assert status["completionTime"] >= status["processingStartedAt"] >= status["queuedAt"]
    assert status["observedGeneration"] == 1
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True"}
    assert len(console.calls) == 1 and len(memapi.writes) == 3
    assert [e["reason"] for e in memapi.events] == [
        "PhaseTransition",
        "PhaseTransition",
        "NotificationSent",
    ]
    assert memapi.events[-1]["involvedObject"]["uid"] == uid
    (record,) = audit.records
    assert (record.event_type, record.correlation_id, record.outcome) == (
        "notification.message.sent",
        uid,  # no remediationRequestName: the uid
        "success",
    )
    assert controller.pending_timers == {}


@pytest.mark.asyncio
async def test_stale_watch_bodies_after_sent_never_deliver_again(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    console = ScriptedChannel()
    controller = make_controller(channels={CONSOLE: console})
    obj = memapi.create(spec("console"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    writes = len(memapi.writes)
    # The watch now delivers the events of the controller's own writes, each older than
    # the latest state: the self-triggered reconciles of the seed.
    for version in memapi.versions[uid]:
        await controller.on_watch_event("MODIFIED", version)
    assert len(console.calls) == 1
    assert len(memapi.writes) == writes
    # Recognised as older than the replica's own last write: not even a 409 round trip.
    assert memapi.conflicts == 0
    # A replica without that memory (another one, or this one restarted) gets the same
    # bodies: the resourceVersion preconditions catch them.
    other_console = ScriptedChannel()
    other = make_controller("replica-b", channels={CONSOLE: other_console})
    for version in memapi.versions[uid]:
        await other.on_watch_event("MODIFIED", version)
    assert other_console.calls == [] and len(memapi.writes) == writes
    assert memapi.conflicts >= 1
    assert memapi.status(uid)["totalAttempts"] == 1


@pytest.mark.asyncio
async def test_retryable_then_success_with_backoff(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack = ScriptedChannel([retryable("slack endpoint returned HTTP 502: bad gateway")])
    # 1 s initial backoff x 0.05: long enough that the pass cannot outrun it.
    controller = make_controller(channels={SLACK: slack}, time_scale=0.05)
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    assert memapi.status(uid)["phase"] == "Retrying"
    assert controller.pending_timers  # requeued, not retried back to back

    status = await wait_phase(memapi, uid, "Sent")

    first, second = status["deliveryAttempts"]
    assert (first["status"], second["status"]) == ("failed", "success")
    assert "502" in first["error"] and not first.get("permanent")
    assert (status["successfulDeliveries"], status["failedDeliveries"]) == (1, 1)
    assert second["timestamp"] >= first["nextAttemptAt"]
    gap = datetime.fromisoformat(first["nextAttemptAt"]) - datetime.fromisoformat(
        first["timestamp"]
    )
    assert timedelta(milliseconds=45) <= gap <= timedelta(milliseconds=55)  # 1 s x 0.05 +-10%
    assert slack.attempts() == [1, 2]
    assert memapi.phases(uid) == [None, "Pending", "Sending", "Retrying", "Sent"]


@pytest.mark.asyncio
@pytest.mark.parametrize("code", [400, 403, 404, 410])
async def test_permanent_error_fails_in_one_pass_with_one_attempt(
    memapi: MemoryApi, make_controller: ControllerFactory, code: int
) -> None:
    slack = ScriptedChannel(default=permanent(f"slack endpoint returned HTTP {code}"))
    controller = make_controller(channels={SLACK: slack})
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    status = memapi.status(uid)
    assert (status["phase"], status["reason"]) == ("Failed", Reason.ALL_FAILED)
    assert status["totalAttempts"] == 1 and len(slack.calls) == 1
    (attempt,) = status["deliveryAttempts"]
    assert attempt["permanent"] is True
    assert attempt["error"].startswith(PERMANENT_MARKER) and str(code) in attempt["error"]
    assert "nextAttemptAt" not in attempt
    assert memapi.events[-1]["reason"] == "NotificationFailed"
    assert memapi.events[-1]["type"] == "Warning"
    assert controller.pending_timers == {}


@pytest.mark.asyncio
async def test_retries_exhausted_with_backoff_between_every_attempt(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack = ScriptedChannel(default=retryable())
    audit = MemoryAuditSink()
    controller = make_controller(channels={SLACK: slack}, audit=audit)
    obj = memapi.create(spec("slack", metadata={"remediationRequestName": "rr-9"}))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)

    status = await wait_phase(memapi, uid, "Failed")

    assert status["reason"] == Reason.MAX_RETRIES
    attempts = status["deliveryAttempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert status["failedDeliveries"] == 3 == status["totalAttempts"]
    for earlier, later in itertools.pairwise(attempts):
        assert later["timestamp"] >= earlier["nextAttemptAt"] > earlier["timestamp"]
    assert "nextAttemptAt" not in attempts[-1]  # no retry after the last allowed attempt
    assert [r.correlation_id for r in audit.records] == ["rr-9"] * 3
    assert {r.error_type for r in audit.records} == {"transient"}


@pytest.mark.asyncio
async def test_retry_after_is_the_minimum_delay(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack = ScriptedChannel([retryable("slack endpoint returned HTTP 429", retry_after=20.0)])
    controller = make_controller(channels={SLACK: slack})
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    (attempt,) = memapi.status(uid)["deliveryAttempts"]
    gap = datetime.fromisoformat(attempt["nextAttemptAt"]) - datetime.fromisoformat(
        attempt["timestamp"]
    )
    assert gap == timedelta(milliseconds=20)  # 20 s x 0.001, above the 1 s backoff
    await wait_phase(memapi, uid, "Sent")


@pytest.mark.asyncio
async def test_duplicate_channels_deliver_once(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    console = ScriptedChannel()
    controller = make_controller(channels={CONSOLE: console})
    obj = memapi.create(spec("console", "console", "console"))
    await controller.on_watch_event("ADDED", obj)
    status = memapi.status(uid_of(obj))
    assert status["phase"] == "Sent"
    assert status["successfulDeliveries"] == 1 == status["totalAttempts"] == len(console.calls)


@pytest.mark.asyncio
async def test_partial_failure_is_partially_sent(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    controller = make_controller(
        channels={CONSOLE: ScriptedChannel(), SLACK: ScriptedChannel(default=permanent())}
    )
    obj = memapi.create(spec("console", "slack"))
    await controller.on_watch_event("ADDED", obj)
    status = memapi.status(uid_of(obj))
    assert (status["phase"], status["reason"]) == ("PartiallySent", Reason.PARTIAL_SUCCESS)
    assert (status["successfulDeliveries"], status["failedDeliveries"]) == (1, 1)
    assert status["completionTime"]
    assert {c["type"]: c["status"] for c in status["conditions"]} == {"Ready": "True"}


@pytest.mark.asyncio
async def test_partial_success_with_retries_left_retries_only_the_failed_channel(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    console = ScriptedChannel()
    slack = ScriptedChannel([retryable(), retryable()])
    controller = make_controller(channels={CONSOLE: console, SLACK: slack}, time_scale=0.05)
    obj = memapi.create(spec("console", "slack"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    assert memapi.status(uid)["reason"] == Reason.PARTIAL_RETRYING
    status = await wait_phase(memapi, uid, "Sent")
    assert len(console.calls) == 1 and slack.attempts() == [1, 2, 3]
    assert [(a["channel"], a["attempt"]) for a in status["deliveryAttempts"]] == [
        ("console", 1),
        ("slack", 1),
        ("slack", 2),
        ("slack", 3),
    ]


@pytest.mark.asyncio
async def test_no_channels_fail_with_no_channels_resolved(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    controller = make_controller()
    obj = memapi.create(spec())
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    status = memapi.status(uid)
    assert (status["phase"], status["reason"]) == ("Failed", Reason.NO_CHANNELS)
    assert status["totalAttempts"] == 0
    assert memapi.phases(uid) == [None, "Pending", "Failed"]


@pytest.mark.asyncio
async def test_default_channels_stand_in_for_an_empty_list(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    console = ScriptedChannel()
    controller = make_controller(channels={CONSOLE: console}, default_channels=("console",))
    obj = memapi.create(spec())
    await controller.on_watch_event("ADDED", obj)
    assert memapi.status(uid_of(obj))["phase"] == "Sent" and len(console.calls) == 1


@pytest.mark.asyncio
async def test_invalid_spec_fails_without_delivering(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    console = ScriptedChannel()
    controller = make_controller(channels={CONSOLE: console})
    obj = memapi.create(spec("console", subject="x" * 501))  # the API server would refuse it
    await controller.on_watch_event("ADDED", obj)
    status = memapi.status(uid_of(obj))
    assert (status["phase"], status["reason"]) == ("Failed", Reason.INVALID_SPEC)
    assert "spec.subject" in status["message"] and console.calls == []


@pytest.mark.asyncio
async def test_subject_and_body_are_redacted_but_the_spec_is_not(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    console = ScriptedChannel()
    controller = make_controller(channels={CONSOLE: console})
    obj = memapi.create(
        spec("console", subject="login failed: password=hunter2", body="prod-app: token: abc123")
    )
    await controller.on_watch_event("ADDED", obj)
    (request,) = console.calls
    assert "hunter2" not in request.subject and "abc123" not in request.body
    assert "prod-app" in request.body
    assert memapi.current(uid_of(obj))["spec"]["subject"] == "login failed: password=hunter2"


def everything_a_channel_sees(request: DeliveryRequest) -> str:
    """Every string in a request, one per line: what any channel could send on."""
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    fields["spec"] = request.spec.model_dump(mode="json")
    # A JSON round trip turns enums, tuples and mappings into plain values to walk.
    plain = json.loads(json.dumps([fields, request.document(), slack_blocks(request)], default=str))
    return "\n".join(strings_in(plain))


@pytest.mark.asyncio
async def test_every_channel_is_given_only_redacted_requests(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    # One scripted channel per channel name, built-in or not (email, teams, sms have no
    # implementation): all are fed by the one redaction point in the controller.
    channels = {name: ScriptedChannel() for name in ChannelName}
    controller = make_controller(channels=channels)
    obj = memapi.create(planted_spec(*ChannelName), metadata=PLANTED_METADATA)
    await controller.on_watch_event("ADDED", obj)
    assert memapi.status(uid_of(obj))["phase"] == "Sent"
    for name, channel in channels.items():
        (request,) = channel.calls
        seen = everything_a_channel_sees(request)
        assert leaks(seen) == [], name
        for planted in PLANTED:
            for kept in planted.kept:
                assert kept in seen, (name, planted.kind, kept)
    stored = memapi.current(uid_of(obj))
    assert stored["spec"] == planted_spec(*ChannelName)  # the stored spec keeps its secrets
    assert stored["metadata"]["labels"] == PLANTED_METADATA["labels"]


@pytest.mark.asyncio
async def test_two_replicas_never_deliver_the_same_attempt(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack_a, slack_b = ScriptedChannel(), ScriptedChannel()
    slack_a.gate = asyncio.Event()
    a = make_controller("replica-a", channels={SLACK: slack_a})
    b = make_controller("replica-b", channels={SLACK: slack_b})
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)

    pass_a = asyncio.create_task(a.on_watch_event("ADDED", obj))
    await slack_a.entered.wait()  # replica-a has claimed slack#1 and is delivering
    await b.on_watch_event("ADDED", obj)  # replica-b works from the same (now stale) body
    await b.on_watch_event("MODIFIED", memapi.current(uid))  # and from the fresh one
    assert slack_b.calls == []
    assert [c["holder"] for c in memapi.status(uid)["claims"]] == ["replica-a"]
    slack_a.gate.set()
    await pass_a

    status = memapi.status(uid)
    assert status["phase"] == "Sent" and status["totalAttempts"] == 1
    assert len(slack_a.calls) + len(slack_b.calls) == 1


@pytest.mark.asyncio
async def test_a_crash_between_claim_and_record_costs_at_most_one_extra_delivery(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack_a, slack_b = ScriptedChannel(), ScriptedChannel()
    slack_a.gate = asyncio.Event()  # never opened: replica-a dies mid-delivery
    a = make_controller(
        "replica-a", channels={SLACK: slack_a}, http_timeout=0.05, claim_timeout=0.1
    )
    b = make_controller(
        "replica-b", channels={SLACK: slack_b}, http_timeout=0.05, claim_timeout=0.1
    )
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    crashing = asyncio.create_task(a.on_watch_event("ADDED", obj))
    await slack_a.entered.wait()
    crashing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashing

    await b.on_watch_event("MODIFIED", memapi.current(uid))  # claim alive: b waits for expiry
    assert slack_b.calls == []
    status = await wait_phase(memapi, uid, "Sent")

    assert len(slack_a.calls) + len(slack_b.calls) == 2  # the allowed extra delivery
    (attempt,) = status["deliveryAttempts"]  # recorded once
    assert (attempt["attempt"], attempt["holder"]) == (1, "replica-b")
    assert slack_b.calls[0].idempotency_key == slack_a.calls[0].idempotency_key


@pytest.mark.asyncio
async def test_a_restarted_replica_waits_for_its_own_orphaned_claim_without_polling(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    before, after = ScriptedChannel(), ScriptedChannel()
    before.gate = asyncio.Event()  # never opened: the process dies mid-delivery
    settings = {"http_timeout": 0.05, "claim_timeout": 0.2}
    first = make_controller("replica-a", channels={SLACK: before}, **settings)
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    crashing = asyncio.create_task(first.on_watch_event("ADDED", obj))
    await before.entered.wait()
    crashing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await crashing

    # Same identity, new process: the claim is "ours" but nothing in memory holds it.
    restarted = make_controller("replica-a", channels={SLACK: after}, **settings)
    gets = memapi.gets
    await restarted.on_watch_event("MODIFIED", memapi.current(uid))
    status = await wait_phase(memapi, uid, "Sent")
    assert len(before.calls) == len(after.calls) == 1  # one extra delivery for one crash
    assert status["totalAttempts"] == 1
    # One quick re-check, then the claim expiry -- not a read every millisecond.
    assert memapi.gets - gets <= 4


@pytest.mark.asyncio
async def test_a_failed_record_write_is_retried_without_delivering_again(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    class FailRecordOnce(ScriptedChannel):
        async def deliver(self, request):  # type: ignore[no-untyped-def]
            memapi.fail_puts.append(server_error())  # the record write will get a 500
            return await super().deliver(request)

    console = FailRecordOnce()
    audit = MemoryAuditSink()
    controller = make_controller(channels={CONSOLE: console}, audit=audit)
    obj = memapi.create(spec("console"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    assert memapi.status(uid)["phase"] == "Sending"  # delivered, not recorded yet
    assert audit.records == []  # audited once recorded

    status = await wait_phase(memapi, uid, "Sent")  # the error backoff timer records it
    assert len(console.calls) == 1 and status["totalAttempts"] == 1
    assert [(r.channel, r.attempt, r.outcome) for r in audit.records] == [("console", 1, "success")]


@pytest.mark.asyncio
async def test_a_stale_read_from_the_api_does_not_cause_a_duplicate(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack = ScriptedChannel([retryable()])
    controller = make_controller(channels={SLACK: slack})
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    memapi.stale_gets[uid] = 3  # the next GETs lag one version behind
    await controller.on_watch_event("ADDED", obj)
    status = await wait_phase(memapi, uid, "Sent")
    assert slack.attempts() == [1, 2]
    assert [a["attempt"] for a in status["deliveryAttempts"]] == [1, 2]


@pytest.mark.asyncio
async def test_a_replica_that_saw_the_object_finished_leaves_it_alone(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    # Terminal phases never change, so a later view that is not terminal is a lagging
    # read. Before, a timer pass queued ahead of the terminal event started from that
    # lagging view and claimed again, 409 after 409, until the lag ended.
    controller = make_controller(channels={CONSOLE: ScriptedChannel()})
    obj = memapi.create(spec("console"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    other = make_controller("replica-b", channels={CONSOLE: ScriptedChannel()})
    await other.on_watch_event("MODIFIED", memapi.current(uid))  # it sees Sent
    # From now on its GETs lag behind: they answer the Pending version, whose due
    # delivery it would claim (and conflict on) if it trusted the read.
    pending = next(v for v in memapi.versions[uid] if v.get("status", {}).get("phase"))
    memapi.versions[uid].insert(-1, pending)
    memapi.stale_gets[uid] = 100
    writes, conflicts = len(memapi.writes), memapi.conflicts
    await other.reconcile(ObjectRef.of(obj))  # the timer pass: one GET, nothing else
    assert (len(memapi.writes), memapi.conflicts) == (writes, conflicts)
    assert other.pending_timers == {}
    # Once the object is deleted, the name may be reused: nothing is remembered.
    memapi.delete(uid)
    await other.on_watch_event("DELETED", memapi.current(uid))
    again = memapi.create(spec("console"))
    await other.on_watch_event("ADDED", again)
    assert memapi.phases(uid_of(again))[-1] == "Sent"


@pytest.mark.asyncio
async def test_deleted_or_deleting_objects_get_no_deliveries(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack = ScriptedChannel([retryable()])
    controller = make_controller(channels={SLACK: slack}, time_scale=1.0)
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    assert controller.pending_timers
    memapi.delete(uid)
    await controller.on_watch_event("DELETED", obj)
    assert controller.pending_timers == {}
    # A body with a deletionTimestamp (finalizers elsewhere) is not delivered either.
    other = memapi.create(spec("slack"), name="nr-2")
    other["metadata"]["deletionTimestamp"] = "2025-12-26T10:00:00Z"
    await controller.on_watch_event("MODIFIED", other)
    assert len(slack.calls) == 1


@pytest.mark.asyncio
async def test_an_object_deleted_during_a_pass_is_forgotten(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    class DeleteWhileDelivering(ScriptedChannel):
        async def deliver(self, request):  # type: ignore[no-untyped-def]
            memapi.delete(request.uid)
            return await super().deliver(request)

    controller = make_controller(channels={SLACK: DeleteWhileDelivering()})
    obj = memapi.create(spec("slack"))
    await controller.on_watch_event("ADDED", obj)  # the record write gets a 404: no error
    assert controller.pending_timers == {}


@pytest.mark.asyncio
async def test_a_variant_plugs_into_the_controller_and_shows_its_bug(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack = ScriptedChannel()
    controller = make_controller(channels={SLACK: slack}, strategy=NoDedupe())
    obj = memapi.create(spec("slack"))
    uid = uid_of(obj)
    await controller.on_watch_event("ADDED", obj)
    # The watch delivers the body of the claim-less Sending write, older than the record.
    sending = next(v for v in memapi.versions[uid] if v.get("status", {}).get("phase") == "Sending")
    await controller.on_watch_event("MODIFIED", sending)
    assert len(slack.calls) == 2  # delivered twice...
    assert memapi.status(uid)["totalAttempts"] == 2  # ...and recorded twice


@pytest.mark.asyncio
async def test_invalid_transitions_are_never_written(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    from reference_controller.controller import ObjectRef, _PassIO
    from reference_controller.models import Phase
    from reference_controller.phases import InvalidTransition

    controller = make_controller(channels={CONSOLE: ScriptedChannel()})
    obj = memapi.create(spec("console"))
    await controller.on_watch_event("ADDED", obj)
    sent = memapi.current(uid_of(obj))
    io = _PassIO(memapi, ObjectRef.of(sent), sent)
    writes = len(memapi.writes)
    with pytest.raises(InvalidTransition):
        await io.write(sent, parse_status(sent).model_copy(update={"phase": Phase.RETRYING}))
    assert len(memapi.writes) == writes


@pytest.mark.asyncio
async def test_close_cancels_timers_and_stops_reconciling(
    memapi: MemoryApi, make_controller: ControllerFactory
) -> None:
    slack = ScriptedChannel(default=retryable())
    controller = make_controller(channels={SLACK: slack}, time_scale=1.0)
    obj = memapi.create(spec("slack"))
    await controller.on_watch_event("ADDED", obj)
    assert controller.pending_timers
    await controller.close()
    assert controller.pending_timers == {} and memapi.closed
    await controller.on_watch_event("MODIFIED", memapi.current(uid_of(obj)))
    assert len(slack.calls) == 1
