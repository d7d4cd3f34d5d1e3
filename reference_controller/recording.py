"""Claim-before-deliver and record-once: the fix for the seed's bug class, as a swappable part.

The seed (README.md, "The hidden duplicate") describes attempts counted twice after
status writes were made atomic (DD-PERF-001), two fixes that made it worse, and a final fix
that de-duplicated by ``(channel, attempt, |dt| < 1 s)``. The real cause was sequential
reconciles working from stale reads; the timestamp window made the *recorded* count right
while the external endpoint was still called twice.

This module holds:

``StatusPlanner``
    Pure decisions about a ``NotificationRequest`` object: which ``(channel, attempt)``
    deliveries are due now, the status after claiming them, the status after recording a
    batch (counters recomputed from the list, phase decided by ``phases.decide_phase``).

``StatusIO``
    The I/O a strategy may use, provided by the controller for one pass: ``read()`` GETs from
    the API server, ``write(base, status)`` PUTs ``/status`` with ``base``'s resourceVersion
    as precondition (``ConflictError`` on 409), ``cached`` is the body the pass started from
    (a watch event's body: possibly older than this replica's own last write).

``RecordingStrategy``
    The protocol: ``claim(io, planner, base)`` before delivering, ``record(io, planner, base,
    batch)`` after. ``ReferenceStrategy`` is the correct one; the historical buggy variants in
    ``tests/reference_controller/variants.py`` implement the same protocol.

The reference policy:

1. A delivery is claimed in ``status.claims`` before it is made, by a write carrying the
   resourceVersion the decision was based on. On 409 the object is re-read from the API
   server (never from the watch body) and the decision is made again. So two replicas, or a
   reconcile working from a stale read, cannot both deliver the same ``(channel, attempt)``.
   A claim older than the claim timeout (its holder crashed between claim and record) may
   be taken over: at most one extra delivery per crash.
2. All attempts of one pass are recorded in one status write, under the same rule; on 409
   re-read and re-apply. An attempt whose ``(channel, attempt)`` is already recorded is never
   recorded again -- an exact identity, not a time window.
3. ``totalAttempts``/``successfulDeliveries``/``failedDeliveries`` are recomputed from
   ``deliveryAttempts`` on every write, so they always agree with the list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

from .backoff import Backoff
from .kubeapi import ConflictError
from .models import (
    AttemptStatus,
    ChannelName,
    Claim,
    Condition,
    DeliveryAttempt,
    NotificationSpec,
    NotificationStatus,
    Phase,
    parse_spec,
    parse_status,
)
from .phases import (
    PhaseDecision,
    Reason,
    channel_progress,
    check_transition,
    decide_phase,
    is_terminal,
)

__all__ = [
    "ClaimGrant",
    "ClaimPlan",
    "ClaimRequest",
    "Counters",
    "RecordingStrategy",
    "ReferenceStrategy",
    "StatusIO",
    "StatusPlanner",
    "TooManyConflicts",
    "count_attempts",
    "resolve_channels",
]


class TooManyConflicts(RuntimeError):
    """A status write kept conflicting; the pass gives up and is retried later."""


@dataclass(frozen=True)
class ClaimRequest:
    """A ``(channel, attempt)`` to deliver; ``takeover_from`` names an expired claim's holder."""

    channel: ChannelName
    attempt: int
    takeover_from: str | None = None

    @property
    def slot(self) -> tuple[ChannelName, int]:
        """The exact identity of the attempt."""
        return (self.channel, self.attempt)


@dataclass(frozen=True)
class ClaimPlan:
    """What is due now, and when something next becomes due (a backoff or a claim expiry)."""

    requests: tuple[ClaimRequest, ...]
    wake_at: datetime | None


@dataclass(frozen=True)
class ClaimGrant:
    """The result of the claim step: the object to base the record on, and what to deliver."""

    obj: Mapping[str, Any]
    granted: tuple[ClaimRequest, ...]


@dataclass(frozen=True)
class Counters:
    """The status counters (per attempt: the Dec-2025 semantics)."""

    total: int
    successful: int
    failed: int


def count_attempts(attempts: Iterable[DeliveryAttempt]) -> Counters:
    """Counters computed from the attempt list (the only way the reference computes them)."""
    items = list(attempts)
    return Counters(
        total=len(items),
        successful=sum(1 for a in items if a.status is AttemptStatus.SUCCESS),
        failed=sum(1 for a in items if a.status is AttemptStatus.FAILED),
    )


def resolve_channels(
    spec: NotificationSpec, default_channels: Sequence[ChannelName] = ()
) -> tuple[ChannelName, ...]:
    """``spec.channels`` without duplicates (first occurrence wins), else the defaults.

    Duplicates are delivered once: ``[console, console, console]`` is one console delivery
    and ``successfulDeliveries == 1`` (the original's duplicate-channels test expects 1 and
    got it only because its timestamp window happened to merge same-pass duplicates).
    """
    source = spec.channels or tuple(default_channels)
    return tuple(dict.fromkeys(source))


@runtime_checkable
class StatusIO(Protocol):
    """Status I/O for one pass over one object (implemented by the controller)."""

    @property
    def cached(self) -> Mapping[str, Any]:
        """The body the pass started from (a watch body may predate this replica's writes)."""

    async def read(self) -> Mapping[str, Any]:
        """GET the object from the API server (raises ``ObjectGone`` if it was deleted)."""

    async def write(self, base: Mapping[str, Any], status: NotificationStatus) -> Mapping[str, Any]:
        """PUT ``status`` with ``base``'s resourceVersion as precondition; return the new object.

        Raises ``kubeapi.ConflictError`` when ``base`` is stale, and ``phases.InvalidTransition``
        (without writing) when the phase change from ``base`` is not allowed.
        """

    def freshest(self, view: Mapping[str, Any]) -> Mapping[str, Any]:
        """``view``, or the newest version this replica wrote when ``view`` is provably older.

        "Provably": ``view``'s resourceVersion is one this replica's own successful writes
        were based on (a watch event of its earlier write, a lagging read). Only equality of
        resourceVersions is used, never their order.
        """


class StatusPlanner:
    """Pure decisions about one replica's view of objects (no I/O).

    ``clock`` returns the current time (UTC); ``holder`` is this replica's identity;
    ``claim_timeout`` is in real seconds, already scaled (the controller passes
    ``ControllerConfig.effective_claim_timeout``).
    """

    def __init__(
        self,
        *,
        holder: str,
        claim_timeout: float,
        clock: Callable[[], datetime],
        backoff: Backoff,
        default_channels: Sequence[ChannelName] = (),
    ) -> None:
        self.holder = holder
        self.claim_timeout = timedelta(seconds=claim_timeout)
        self.clock = clock
        self.backoff = backoff
        self.default_channels = tuple(default_channels)

    # -- reading ---------------------------------------------------------------------

    def channels(self, obj: Mapping[str, Any]) -> tuple[ChannelName, ...]:
        """The resolved, de-duplicated channels of ``obj``."""
        return resolve_channels(parse_spec(obj), self.default_channels)

    def due_at(self, spec: NotificationSpec, last: DeliveryAttempt | None) -> datetime | None:
        """When the attempt after ``last`` may be made; ``None`` means now."""
        if last is None or last.status is AttemptStatus.SUCCESS:
            return None
        if last.next_attempt_at is not None:
            return last.next_attempt_at
        # Written without nextAttemptAt (e.g. by another controller version): unjittered.
        delay = self.backoff.unjittered(spec.effective_retry_policy, last.attempt)
        return last.timestamp + timedelta(seconds=delay)

    def plan(self, obj: Mapping[str, Any]) -> ClaimPlan:
        """The deliveries due now on ``obj`` and when the next one becomes due."""
        status = parse_status(obj)
        if status.phase is None or is_terminal(status.phase):
            return ClaimPlan((), None)
        spec = parse_spec(obj)
        policy = spec.effective_retry_policy
        now = self.clock()
        claims = {claim.slot: claim for claim in status.claims}
        requests: list[ClaimRequest] = []
        wakes: list[datetime] = []
        for progress in channel_progress(
            resolve_channels(spec, self.default_channels), status.delivery_attempts
        ):
            if progress.done(policy.max_attempts):
                continue
            attempt = progress.attempts + 1
            due = self.due_at(spec, progress.last)
            if due is not None and due > now:
                wakes.append(due)
                continue
            claim = claims.get((progress.channel, attempt))
            if claim is None:
                requests.append(ClaimRequest(progress.channel, attempt))
                continue
            expiry = claim.claimed_at + self.claim_timeout
            if expiry > now:
                wakes.append(expiry)  # someone is delivering it; look again when it expires
            else:
                requests.append(ClaimRequest(progress.channel, attempt, takeover_from=claim.holder))
        return ClaimPlan(tuple(requests), min(wakes) if wakes else None)

    # -- writing (each returns the complete new status) --------------------------------

    def initialized(self, obj: Mapping[str, Any]) -> NotificationStatus:
        """``"" -> Pending``: counters zeroed, ``queuedAt`` set."""
        status = parse_status(obj)
        now = self.clock()
        status = status.model_copy(
            update={
                "delivery_attempts": (),
                "total_attempts": 0,
                "successful_deliveries": 0,
                "failed_deliveries": 0,
                "claims": (),
                "queued_at": now,
            }
        )
        decision = PhaseDecision(Phase.PENDING, Reason.INITIALIZED, "Notification request received")
        return self._finish(obj, status, decision)

    def started(self, obj: Mapping[str, Any]) -> NotificationStatus:
        """``Pending -> Sending`` (no claims); unchanged phase otherwise."""
        status = parse_status(obj)
        return self._finish(obj, status, self._start_decision(status))

    def claimed(
        self, obj: Mapping[str, Any], requests: Sequence[ClaimRequest]
    ) -> NotificationStatus:
        """The status with ``requests`` claimed by this replica (and Pending -> Sending)."""
        status = parse_status(obj)
        now = self.clock()
        wanted = {request.slot for request in requests}
        recorded = {attempt.slot for attempt in status.delivery_attempts}
        kept = tuple(c for c in status.claims if c.slot not in wanted and c.slot not in recorded)
        fresh = tuple(
            Claim(channel=r.channel, attempt=r.attempt, holder=self.holder, claimed_at=now)
            for r in requests
        )
        status = status.model_copy(update={"claims": kept + fresh})
        return self._finish(obj, status, self._start_decision(status))

    def recorded(
        self, obj: Mapping[str, Any], attempts: Sequence[DeliveryAttempt]
    ) -> NotificationStatus:
        """The status with ``attempts`` as the complete attempt list.

        Claims whose slot is now recorded are released, counters are recomputed from the
        list, and the phase is decided from the list (never from counters).
        """
        status = parse_status(obj)
        spec = parse_spec(obj)
        recorded = {attempt.slot for attempt in attempts}
        counters = count_attempts(attempts)
        status = status.model_copy(
            update={
                "delivery_attempts": tuple(attempts),
                "claims": tuple(c for c in status.claims if c.slot not in recorded),
                "total_attempts": counters.total,
                "successful_deliveries": counters.successful,
                "failed_deliveries": counters.failed,
            }
        )
        progress = channel_progress(resolve_channels(spec, self.default_channels), attempts)
        decision = decide_phase(status.phase, progress, spec.effective_retry_policy.max_attempts)
        return self._finish(obj, status, decision)

    def failed(self, obj: Mapping[str, Any], reason: str, message: str) -> NotificationStatus:
        """A transition to ``Failed`` without delivering (no channels, invalid spec)."""
        status = parse_status(obj)
        return self._finish(obj, status, PhaseDecision(Phase.FAILED, reason, message))

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _start_decision(status: NotificationStatus) -> PhaseDecision | None:
        if status.phase is Phase.PENDING:
            return PhaseDecision(Phase.SENDING, Reason.PROCESSING, "Processing delivery channels")
        return None

    def _finish(
        self,
        obj: Mapping[str, Any],
        status: NotificationStatus,
        decision: PhaseDecision | None,
    ) -> NotificationStatus:
        now = self.clock()
        update: dict[str, Any] = {}
        if decision is not None:
            check_transition(status.phase, decision.phase)
            update.update(phase=decision.phase, reason=decision.reason, message=decision.message)
            if decision.phase is Phase.SENDING and status.processing_started_at is None:
                update["processing_started_at"] = now
            if is_terminal(decision.phase) and status.completion_time is None:
                update["completion_time"] = now  # set once, by the terminal transition
        generation = (obj.get("metadata") or {}).get("generation")
        if isinstance(generation, int):
            update["observed_generation"] = generation
        status = status.model_copy(update=update)
        return status.model_copy(update={"conditions": _with_ready(status, now)})


def _with_ready(status: NotificationStatus, now: datetime) -> tuple[Condition, ...]:
    """``conditions`` with ``Ready`` reflecting the phase (True on Sent/PartiallySent)."""
    value: Literal["True", "False", "Unknown"]
    if status.phase in (Phase.SENT, Phase.PARTIALLY_SENT):
        value = "True"
    elif status.phase is Phase.FAILED:
        value = "False"
    else:
        value = "Unknown"
    reason = status.reason or (status.phase.value if status.phase else "Pending")
    previous = next((c for c in status.conditions if c.type == "Ready"), None)
    changed = previous is None or previous.status != value
    ready = Condition(
        type="Ready",
        status=value,
        observed_generation=status.observed_generation,
        last_transition_time=now if changed or previous is None else previous.last_transition_time,
        reason=reason,
        message=status.message or "",
    )
    others = tuple(c for c in status.conditions if c.type != "Ready")
    return (*others, ready)


@runtime_checkable
class RecordingStrategy(Protocol):
    """How a pass claims deliveries before making them and records them after."""

    name: str

    async def claim(
        self, io: StatusIO, planner: StatusPlanner, base: Mapping[str, Any]
    ) -> ClaimGrant:
        """Decide (from ``base`` or fresher reads) and announce what this pass will deliver."""

    async def record(
        self,
        io: StatusIO,
        planner: StatusPlanner,
        base: Mapping[str, Any],
        batch: Sequence[DeliveryAttempt],
    ) -> Mapping[str, Any]:
        """Record ``batch`` (this pass's attempts) and the resulting phase; return the object."""


class ReferenceStrategy:
    """The correct policy: claim with optimistic concurrency, record once by exact identity.

    Subclasses can change one step at a time (the historical variants do):
    ``use_claims``, ``trust_own_writes``, ``is_duplicate`` (or ``merge``), ``finalize``,
    ``reread``, or a whole step (``claim``, ``record``).
    """

    name = "reference"
    #: Claim in status before delivering. Without claims, the pass delivers whatever its
    #: (possibly stale) view says is due -- the original controller's behaviour.
    use_claims: bool = True
    #: Start from this replica's own last write when the view is provably older than it
    #: (``StatusIO.freshest``): saves the 409 round trip of every self-triggered event. The
    #: preconditions keep the policy correct without it; the original had no such memory,
    #: so the historical variants turn it off to stay faithful.
    trust_own_writes: bool = True

    def __init__(self, *, max_conflicts: int = 16) -> None:
        self.max_conflicts = max_conflicts

    async def claim(
        self, io: StatusIO, planner: StatusPlanner, base: Mapping[str, Any]
    ) -> ClaimGrant:
        """Claim what is due; on 409 re-read from the API server and decide again."""
        if not self.use_claims:
            return await self._start_without_claims(io, planner, base)
        obj = io.freshest(base) if self.trust_own_writes else base
        for _ in range(self.max_conflicts):
            plan = planner.plan(obj)
            if not plan.requests:
                return ClaimGrant(obj, ())
            try:
                written = await io.write(obj, planner.claimed(obj, plan.requests))
            except ConflictError:
                obj = await self.reread(io)
                continue
            return ClaimGrant(written, plan.requests)
        raise TooManyConflicts(f"claim step: {self.max_conflicts} conflicts in a row")

    async def record(
        self,
        io: StatusIO,
        planner: StatusPlanner,
        base: Mapping[str, Any],
        batch: Sequence[DeliveryAttempt],
    ) -> Mapping[str, Any]:
        """One status write with every attempt of the batch; on 409 re-read and re-apply."""
        obj = io.freshest(base) if self.trust_own_writes else base
        for _ in range(self.max_conflicts):
            existing = parse_status(obj).delivery_attempts
            attempts = self.merge(existing, batch)
            status = self.finalize(io, planner, obj, attempts, batch)
            if status == parse_status(obj):
                return obj  # everything already recorded (e.g. by a replica that took over)
            try:
                return await io.write(obj, status)
            except ConflictError:
                obj = await self.reread(io)
        raise TooManyConflicts(f"record step: {self.max_conflicts} conflicts in a row")

    # -- the steps variants replace --------------------------------------------------

    def is_duplicate(self, existing: DeliveryAttempt, new: DeliveryAttempt) -> bool:
        """Exact identity: the same ``(channel, attempt)`` is the same attempt."""
        return existing.slot == new.slot

    def merge(
        self, existing: Sequence[DeliveryAttempt], batch: Sequence[DeliveryAttempt]
    ) -> tuple[DeliveryAttempt, ...]:
        """``existing`` plus every batch attempt that is not a duplicate (order kept)."""
        merged = list(existing)
        for attempt in batch:
            if not any(self.is_duplicate(old, attempt) for old in merged):
                merged.append(attempt)
        return tuple(merged)

    def finalize(
        self,
        io: StatusIO,
        planner: StatusPlanner,
        obj: Mapping[str, Any],
        attempts: Sequence[DeliveryAttempt],
        batch: Sequence[DeliveryAttempt],
    ) -> NotificationStatus:
        """The status to write: counters and phase from the merged list."""
        return planner.recorded(obj, attempts)

    async def reread(self, io: StatusIO) -> Mapping[str, Any]:
        """Where a conflict re-reads from: the API server (never the watch body)."""
        obj = await io.read()
        return io.freshest(obj) if self.trust_own_writes else obj

    # -- without claims ---------------------------------------------------------------

    async def _start_without_claims(
        self, io: StatusIO, planner: StatusPlanner, base: Mapping[str, Any]
    ) -> ClaimGrant:
        # The original: deliver what the reconcile's own (possibly stale) read says is due,
        # after persisting Pending -> Sending (UpdatePhase, retried on conflict).
        plan = planner.plan(base)
        if not plan.requests:
            return ClaimGrant(base, ())
        obj = base
        for _ in range(self.max_conflicts):
            phase = parse_status(obj).phase
            if phase is None or is_terminal(phase):
                return ClaimGrant(obj, ())
            if phase is not Phase.PENDING:
                return ClaimGrant(obj, plan.requests)
            try:
                obj = await io.write(obj, planner.started(obj))
            except ConflictError:
                obj = await self.reread(io)
                continue
            return ClaimGrant(obj, plan.requests)
        raise TooManyConflicts(f"start step: {self.max_conflicts} conflicts in a row")
