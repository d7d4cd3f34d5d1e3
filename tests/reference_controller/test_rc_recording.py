"""The claim/record policy: planner decisions, the reference strategy, and the six variants.

The strategies run against ``MemoryApi`` (optimistic concurrency like the API server) through
a minimal ``StatusIO``; stale views are crafted by handing a strategy an old version.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rc_kit import spec
from rc_memapi import MemoryApi
from variants import (
    VARIANTS,
    LostAttempts,
    NoAttemptNumberDedupe,
    NoDedupe,
    RecordTwice,
    StaleSuccessCount,
    TimestampWindowDedupe,
)

from reference_controller.backoff import Backoff
from reference_controller.models import (
    ChannelName,
    DeliveryAttempt,
    NotificationStatus,
    Phase,
    parse_status,
    status_to_wire,
)
from reference_controller.phases import InvalidTransition, Reason, check_transition
from reference_controller.recording import (
    ClaimPlan,
    ClaimRequest,
    RecordingStrategy,
    ReferenceStrategy,
    StatusIO,
    StatusPlanner,
    count_attempts,
    resolve_channels,
)

T0 = datetime(2025, 12, 26, 10, 0, 0, tzinfo=UTC)
SLACK, CONSOLE = ChannelName.SLACK, ChannelName.CONSOLE


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class MemIO:
    """StatusIO over MemoryApi (what the controller's pass I/O does, minus events)."""

    def __init__(self, api: MemoryApi, cached: Mapping[str, Any]) -> None:
        self.api = api
        self.cached = cached
        self.reads = 0

    async def read(self) -> Mapping[str, Any]:
        self.reads += 1
        meta = self.cached["metadata"]
        return await self.api.get_notification(meta["namespace"], meta["name"])

    def freshest(self, view: Mapping[str, Any]) -> Mapping[str, Any]:
        return view  # no memory of own writes: every stale view costs a 409 here

    async def write(self, base: Mapping[str, Any], status: NotificationStatus) -> Mapping[str, Any]:
        previous = parse_status(base).phase
        if status.phase != previous:
            assert status.phase is not None
            check_transition(previous, status.phase)
        return await self.api.replace_notification_status(
            {**base, "status": status_to_wire(status)}
        )


def planner(clock: Clock, holder: str = "replica-a", claim_timeout: float = 30.0) -> StatusPlanner:
    return StatusPlanner(
        holder=holder,
        claim_timeout=claim_timeout,
        clock=clock,
        backoff=Backoff(time_scale=1.0, rng=random.Random(1)),
    )


def attempt(
    channel: ChannelName,
    n: int,
    ok: bool,
    *,
    at: datetime = T0,
    error: str | None = None,
    permanent: bool = False,
    next_at: datetime | None = None,
    holder: str = "replica-a",
) -> DeliveryAttempt:
    return DeliveryAttempt(
        channel=channel,
        attempt=n,
        timestamp=at,
        status="success" if ok else "failed",
        error=error if error is not None else (None if ok else "slack endpoint returned HTTP 503"),
        permanent=permanent,
        next_attempt_at=next_at,
        holder=holder,
    )


def sending(
    api: MemoryApi, *channels: str, attempts: tuple[DeliveryAttempt, ...] = (), **extra: Any
) -> dict[str, Any]:
    status = NotificationStatus(phase=Phase.SENDING, delivery_attempts=attempts)
    counters = count_attempts(attempts)
    status = status.model_copy(
        update={
            "total_attempts": counters.total,
            "successful_deliveries": counters.successful,
            "failed_deliveries": counters.failed,
            **extra,
        }
    )
    return api.create(spec(*channels), status=status_to_wire(status))


# -- planner ----------------------------------------------------------------------------


def test_resolve_channels_deduplicates_in_order() -> None:
    from reference_controller.models import parse_spec

    parsed = parse_spec({"spec": spec("console", "slack", "console", "console")})
    assert resolve_channels(parsed) == (CONSOLE, SLACK)
    empty = parse_spec({"spec": spec()})
    assert resolve_channels(empty) == ()
    assert resolve_channels(empty, (ChannelName.LOG,)) == (ChannelName.LOG,)


def test_plan_fresh_object_requests_attempt_one_per_channel(memapi: MemoryApi) -> None:
    obj = sending(memapi, "console", "slack", "console")
    plan = planner(Clock()).plan(obj)
    assert plan.requests == (ClaimRequest(CONSOLE, 1), ClaimRequest(SLACK, 1))
    assert plan.wake_at is None


def test_plan_nothing_before_pending_or_after_terminal(memapi: MemoryApi) -> None:
    assert planner(Clock()).plan(memapi.create(spec("console"))).requests == ()
    done = memapi.create(spec("console"), status={"phase": "Sent"}, name="done")
    assert planner(Clock()).plan(done).requests == ()


def test_plan_respects_next_attempt_at_in_every_phase(memapi: MemoryApi) -> None:
    clock = Clock()
    due = T0 + timedelta(seconds=2)
    obj = sending(memapi, "slack", attempts=(attempt(SLACK, 1, False, next_at=due),))
    plan = planner(clock).plan(obj)  # phase Sending: the original had no gate here (NT-BUG-007)
    assert (plan.requests, plan.wake_at) == ((), due)
    clock.advance(2)
    assert planner(clock).plan(obj).requests == (ClaimRequest(SLACK, 2),)


def test_plan_without_next_attempt_at_uses_the_unjittered_backoff(memapi: MemoryApi) -> None:
    obj = sending(memapi, "slack", attempts=(attempt(SLACK, 1, False),))
    plan = planner(Clock()).plan(obj)
    assert plan.wake_at == T0 + timedelta(seconds=1)  # initialBackoffSeconds of spec()


def test_plan_skips_done_channels(memapi: MemoryApi) -> None:
    obj = sending(
        memapi,
        "console",
        "slack",
        "webhook",
        attempts=(
            attempt(CONSOLE, 1, True),
            attempt(SLACK, 1, False, permanent=True),
            *(attempt(ChannelName.WEBHOOK, n, False) for n in (1, 2, 3)),
        ),
    )
    assert planner(Clock()).plan(obj) == ClaimPlan((), None)


def test_plan_leaves_live_claims_alone_and_takes_over_expired_ones(memapi: MemoryApi) -> None:
    clock = Clock()
    claimed = planner(clock, holder="replica-b").claimed(
        sending(memapi, "slack"), [ClaimRequest(SLACK, 1)]
    )
    obj = memapi.create(spec("slack"), status=status_to_wire(claimed), name="claimed")
    clock.advance(29)
    plan = planner(clock).plan(obj)
    assert plan.requests == () and plan.wake_at == T0 + timedelta(seconds=30)
    clock.advance(1)
    assert planner(clock).plan(obj).requests == (ClaimRequest(SLACK, 1, takeover_from="replica-b"),)


def test_claimed_starts_sending_and_records_the_claims(memapi: MemoryApi) -> None:
    clock = Clock()
    obj = memapi.create(spec("console"), status={"phase": "Pending"})
    status = planner(clock).claimed(obj, [ClaimRequest(CONSOLE, 1)])
    assert (status.phase, status.reason) == (Phase.SENDING, Reason.PROCESSING)
    assert status.processing_started_at == T0
    assert [(c.channel, c.attempt, c.holder) for c in status.claims] == [(CONSOLE, 1, "replica-a")]
    assert status.observed_generation == 1
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert (ready.status, ready.reason) == ("Unknown", Reason.PROCESSING)


def test_recorded_recomputes_counters_releases_claims_and_completes_once(
    memapi: MemoryApi,
) -> None:
    clock = Clock()
    plan = planner(clock)
    obj = sending(memapi, "console")
    obj["status"] = status_to_wire(plan.claimed(obj, [ClaimRequest(CONSOLE, 1)]))
    obj["status"]["totalAttempts"] = 41  # nonsense counters are never carried forward
    status = plan.recorded(obj, [attempt(CONSOLE, 1, True)])
    assert (status.phase, status.reason) == (Phase.SENT, Reason.ALL_SUCCEEDED)
    assert (status.total_attempts, status.successful_deliveries, status.failed_deliveries) == (
        1,
        1,
        0,
    )
    assert status.claims == ()
    assert status.completion_time == T0
    ready = {c.type: c for c in status.conditions}["Ready"]
    assert (ready.status, ready.last_transition_time) == ("True", T0)
    obj["status"] = status_to_wire(status)
    clock.advance(5)
    again = plan.recorded(obj, [attempt(CONSOLE, 1, True)])
    assert again.completion_time == T0  # set once
    assert {c.type: c for c in again.conditions}["Ready"].last_transition_time == T0


def test_planner_never_produces_an_invalid_transition(memapi: MemoryApi) -> None:
    done = memapi.create(spec("slack"), status={"phase": "Sent"})
    with pytest.raises(InvalidTransition):
        planner(Clock()).failed(done, Reason.NO_CHANNELS, "x")
    with pytest.raises(InvalidTransition):
        planner(Clock()).initialized(done)


# -- the reference strategy --------------------------------------------------------------


@pytest.mark.asyncio
async def test_claim_from_a_stale_view_rereads_from_the_api_and_claims_nothing(
    memapi: MemoryApi,
) -> None:
    clock = Clock()
    stale = sending(memapi, "slack")
    uid = stale["metadata"]["uid"]
    first = await ReferenceStrategy().claim(MemIO(memapi, stale), planner(clock), stale)
    assert first.granted == (ClaimRequest(SLACK, 1),)
    # Replica B (or this replica's next reconcile) still holds the old body.
    io = MemIO(memapi, stale)
    second = await ReferenceStrategy().claim(io, planner(clock, "replica-b"), stale)
    assert second.granted == ()
    assert io.reads == 1 and memapi.conflicts == 1
    assert [c.holder for c in parse_status(memapi.current(uid)).claims] == ["replica-a"]


@pytest.mark.asyncio
async def test_record_on_conflict_rereads_and_keeps_both_writers_changes(
    memapi: MemoryApi,
) -> None:
    clock = Clock()
    obj = sending(memapi, "console", "slack")
    uid = obj["metadata"]["uid"]
    grant_a = await ReferenceStrategy().claim(MemIO(memapi, obj), planner(clock), obj)
    assert {r.channel for r in grant_a.granted} == {CONSOLE, SLACK}
    # Someone else writes in between (an unrelated status change: a condition).
    other = memapi.current(uid)
    other["status"]["conditions"].append(
        {
            "type": "Audited",
            "status": "True",
            "lastTransitionTime": "2025-12-26T10:00:00Z",
            "reason": "Seen",
            "message": "",
        }
    )
    await memapi.replace_notification_status(other)
    io = MemIO(memapi, obj)
    batch = [attempt(CONSOLE, 1, True), attempt(SLACK, 1, True)]
    written = await ReferenceStrategy().record(io, planner(clock), grant_a.obj, batch)
    status = parse_status(written)
    assert io.reads == 1
    assert status.phase is Phase.SENT and status.total_attempts == 2 and status.claims == ()
    assert {c.type for c in status.conditions} == {"Audited", "Ready"}


@pytest.mark.asyncio
async def test_record_is_idempotent_by_exact_identity(memapi: MemoryApi) -> None:
    clock = Clock()
    obj = sending(memapi, "slack")
    uid = obj["metadata"]["uid"]
    batch = [attempt(SLACK, 1, False, next_at=T0 + timedelta(seconds=1))]
    written = await ReferenceStrategy().record(MemIO(memapi, obj), planner(clock), obj, batch)
    writes = len(memapi.writes)
    # The same attempt again (a stale replay), even with another timestamp: not re-recorded.
    replay = [batch[0].model_copy(update={"timestamp": T0 + timedelta(seconds=9)})]
    again = await ReferenceStrategy().record(MemIO(memapi, obj), planner(clock), written, replay)
    assert len(memapi.writes) == writes  # nothing to write
    assert (
        parse_status(again).total_attempts
        == 1
        == len(parse_status(memapi.current(uid)).delivery_attempts)
    )


@pytest.mark.asyncio
async def test_record_keeps_distinct_attempts_even_within_a_second(memapi: MemoryApi) -> None:
    clock = Clock()
    obj = sending(memapi, "slack", attempts=(attempt(SLACK, 1, False),))
    fast_retry = [attempt(SLACK, 2, False, at=T0 + timedelta(milliseconds=3))]
    written = await ReferenceStrategy().record(MemIO(memapi, obj), planner(clock), obj, fast_retry)
    assert [a.attempt for a in parse_status(written).delivery_attempts] == [1, 2]


@pytest.mark.asyncio
async def test_record_after_a_takeover_keeps_the_first_record(memapi: MemoryApi) -> None:
    clock = Clock()
    obj = sending(memapi, "slack")
    a = await ReferenceStrategy().claim(MemIO(memapi, obj), planner(clock), obj)
    clock.advance(31)  # replica-a looks dead; replica-b takes the claim over
    b = await ReferenceStrategy().claim(MemIO(memapi, a.obj), planner(clock, "replica-b"), a.obj)
    assert b.granted == (ClaimRequest(SLACK, 1, takeover_from="replica-a"),)
    done = await ReferenceStrategy().record(
        MemIO(memapi, b.obj),
        planner(clock, "replica-b"),
        b.obj,
        [attempt(SLACK, 1, True, holder="replica-b")],
    )
    # replica-a was only slow: its record of the same slot is dropped, not added.
    late = await ReferenceStrategy().record(
        MemIO(memapi, a.obj), planner(clock), a.obj, [attempt(SLACK, 1, True)]
    )
    status = parse_status(late)
    assert [x.holder for x in status.delivery_attempts] == ["replica-b"]
    assert status.total_attempts == 1 and status.phase is Phase.SENT
    assert parse_status(done) == status


def test_reference_and_variants_implement_the_protocol() -> None:
    assert isinstance(ReferenceStrategy(), RecordingStrategy)
    for cls in VARIANTS.values():
        assert isinstance(cls(), RecordingStrategy)
    assert list(VARIANTS) == [
        "record-twice",
        "lost-attempts",
        "no-dedupe",
        "timestamp-window",
        "no-attempt-number",
        "stale-success-count",
    ]
    assert isinstance(MemIO(MemoryApi(), {}), StatusIO)


# -- the six historical variants -----------------------------------------------------------


async def one_pass(
    strategy: ReferenceStrategy,
    api: MemoryApi,
    view: Mapping[str, Any],
    outcomes: dict[ChannelName, bool],
    clock: Clock,
    holder: str = "replica-a",
) -> tuple[tuple[ClaimRequest, ...], Mapping[str, Any]]:
    """Claim from ``view``, "deliver" what was granted, record: one reconcile."""
    io = MemIO(api, view)
    plan = planner(clock, holder)
    grant = await strategy.claim(io, plan, view)
    batch = [
        attempt(r.channel, r.attempt, outcomes[r.channel], at=clock(), holder=holder)
        for r in grant.granted
    ]
    if not batch:
        return grant.granted, grant.obj
    return grant.granted, await strategy.record(io, plan, grant.obj, batch)


@pytest.mark.asyncio
async def test_variant_1_records_each_attempt_twice(memapi: MemoryApi) -> None:
    obj = sending(memapi, "slack")
    granted, written = await one_pass(RecordTwice(), memapi, obj, {SLACK: False}, Clock())
    status = parse_status(written)
    assert len(granted) == 1  # one real delivery...
    assert status.total_attempts == 2  # ...counted twice: "Expected 1 to equal 2"
    assert [a.slot for a in status.delivery_attempts] == [(SLACK, 1), (SLACK, 1)]


@pytest.mark.asyncio
async def test_variant_2_loses_attempts_unless_failed(memapi: MemoryApi) -> None:
    ok = sending(memapi, "console")
    _, written = await one_pass(LostAttempts(), memapi, ok, {CONSOLE: True}, Clock())
    status = parse_status(written)
    assert status.phase is Phase.SENT
    assert status.delivery_attempts == () and status.successful_deliveries == 0
    bad = memapi.create(spec("slack"), status={"phase": "Sending"}, name="nr-2")
    failed = parse_status((await one_pass(LostAttempts(), memapi, bad, {SLACK: False}, Clock()))[1])
    assert failed.phase is Phase.RETRYING and failed.delivery_attempts == ()  # lost again


@pytest.mark.asyncio
async def test_variant_3_delivers_and_records_twice_under_a_stale_read(memapi: MemoryApi) -> None:
    clock = Clock()
    stale = sending(memapi, "console", "slack")
    await one_pass(NoDedupe(), memapi, stale, {CONSOLE: True, SLACK: False}, clock)
    # The next reconcile gets the old body (the watch event predates the write).
    granted, second = await one_pass(
        NoDedupe(), memapi, stale, {CONSOLE: True, SLACK: False}, clock
    )
    assert {r.slot for r in granted} == {(CONSOLE, 1), (SLACK, 1)}  # delivered again
    status = parse_status(second)
    assert status.total_attempts == 4
    assert [a.slot for a in status.delivery_attempts].count((CONSOLE, 1)) == 2


@pytest.mark.asyncio
async def test_reference_does_not_deliver_twice_under_the_same_stale_read(
    memapi: MemoryApi,
) -> None:
    clock = Clock()
    stale = sending(memapi, "console", "slack")
    await one_pass(ReferenceStrategy(), memapi, stale, {CONSOLE: True, SLACK: False}, clock)
    granted, latest = await one_pass(
        ReferenceStrategy(), memapi, stale, {CONSOLE: True, SLACK: False}, clock
    )
    assert granted == ()  # the 409 sent it to the API server, where nothing was due
    status = parse_status(latest)
    assert status.total_attempts == 2 and status.phase is Phase.RETRYING


@pytest.mark.asyncio
async def test_variant_4_hides_the_duplicate_delivery_in_the_record(memapi: MemoryApi) -> None:
    clock = Clock()
    stale = sending(memapi, "slack")
    first, _ = await one_pass(TimestampWindowDedupe(), memapi, stale, {SLACK: True}, clock)
    clock.advance(0.2)
    second, written = await one_pass(TimestampWindowDedupe(), memapi, stale, {SLACK: True}, clock)
    assert len(first) + len(second) == 2  # the endpoint was called twice...
    status = parse_status(written)
    assert status.total_attempts == 1  # ...but the record says once
    # Outside the window the same duplicate is recorded (the dedupe depends on timing).
    other = sending(memapi, "slack")
    await one_pass(TimestampWindowDedupe(), memapi, other, {SLACK: True}, clock)
    clock.advance(1.5)
    _, late = await one_pass(TimestampWindowDedupe(), memapi, other, {SLACK: True}, clock)
    assert parse_status(late).total_attempts == 2


@pytest.mark.asyncio
async def test_variant_5_drops_real_fast_retries(memapi: MemoryApi) -> None:
    clock = Clock()
    obj = sending(memapi, "slack", attempts=(attempt(SLACK, 1, False, next_at=T0),))
    clock.advance(0.01)  # a millisecond-scale retry, same error
    granted, written = await one_pass(NoAttemptNumberDedupe(), memapi, obj, {SLACK: False}, clock)
    assert granted == (ClaimRequest(SLACK, 2),)  # a real second delivery...
    assert [a.attempt for a in parse_status(written).delivery_attempts] == [1]  # ...lost
    # The reference keeps it.
    ref = sending(memapi, "slack", attempts=(attempt(SLACK, 1, False, next_at=T0),))
    _, kept = await one_pass(ReferenceStrategy(), memapi, ref, {SLACK: False}, clock)
    assert [a.attempt for a in parse_status(kept).delivery_attempts] == [1, 2]


@pytest.mark.asyncio
async def test_variant_6_counts_success_from_the_stale_view(memapi: MemoryApi) -> None:
    clock = Clock()
    stale = sending(memapi, "console", "slack")
    uid = stale["metadata"]["uid"]
    await one_pass(StaleSuccessCount(), memapi, stale, {CONSOLE: True, SLACK: False}, clock)
    clock.advance(2)
    fresh = memapi.current(uid)
    io = MemIO(memapi, stale)  # the pass started from the old body
    plan = planner(clock)
    grant = await StaleSuccessCount().claim(io, plan, fresh)
    assert grant.granted == (ClaimRequest(SLACK, 2),)
    written = await StaleSuccessCount().record(
        io, plan, grant.obj, [attempt(SLACK, 2, True, at=clock())]
    )
    status = parse_status(written)
    assert status.phase is Phase.SENT
    listed = count_attempts(status.delivery_attempts)
    assert (listed.total, listed.successful) == (3, 2)
    assert (status.total_attempts, status.successful_deliveries) == (1, 1)  # disagree with the list
