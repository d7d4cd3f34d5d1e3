"""The seed's historical buggy recording policies, as ``RecordingStrategy`` implementations.

Each variant is the reference strategy with one step replaced (and, like the original, with
no memory of its own writes: ``trust_own_writes = False``), so it can be plugged into the
real controller (``build_registry(..., strategy=variant)``) and the plugin's invariants can
be shown to catch it. The history is told in README.md ("The hidden duplicate") and
tests/validation/VARIANTS.md.

1. ``RecordTwice`` -- the original bug: the batch recording loop (``RecordDeliveryAttempt``
   per attempt) *and* the atomic update both record the batch: every attempt twice.
2. ``LostAttempts`` -- attempted fix #1: the loop removed while only ``transitionToFailed``
   passed the attempts on; every other transition writes the phase and loses the attempts.
3. ``NoDedupe`` -- attempted fix #2: atomic writes, no claims and no de-duplication; under
   stale reads a second reconcile delivers and records the same attempt again.
4. ``TimestampWindowDedupe`` -- the seed's final fix: no claims; an attempt with the same
   channel and attempt number within 1 s of a recorded one is dropped. The record looks
   right while the endpoint was called twice.
5. ``NoAttemptNumberDedupe`` -- the January 2026 key (channel, status, error, |dt| < 1 s)
   without the attempt number: fast real retries with the same error are silently merged.
6. ``StaleSuccessCount`` -- counters taken from the pass's (possibly stale) starting view plus
   the batch, instead of from the attempt list (``status.successfulDeliveries + batch``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from reference_controller.kubeapi import ConflictError
from reference_controller.models import DeliveryAttempt, NotificationStatus, Phase, parse_status
from reference_controller.recording import (
    ReferenceStrategy,
    StatusIO,
    StatusPlanner,
    TooManyConflicts,
    count_attempts,
)

__all__ = [
    "VARIANTS",
    "LostAttempts",
    "NoAttemptNumberDedupe",
    "NoDedupe",
    "RecordTwice",
    "StaleSuccessCount",
    "TimestampWindowDedupe",
]

_WINDOW = timedelta(seconds=1)


def _with_attempts(
    status: NotificationStatus, attempts: Sequence[DeliveryAttempt]
) -> NotificationStatus:
    counters = count_attempts(attempts)
    return status.model_copy(
        update={
            "delivery_attempts": tuple(attempts),
            "total_attempts": counters.total,
            "successful_deliveries": counters.successful,
            "failed_deliveries": counters.failed,
        }
    )


class RecordTwice(ReferenceStrategy):
    """(1) Batch recording loop plus atomic update: each attempt recorded twice."""

    name = "record-twice"
    use_claims = False
    trust_own_writes = False

    async def record(
        self,
        io: StatusIO,
        planner: StatusPlanner,
        base: Mapping[str, Any],
        batch: Sequence[DeliveryAttempt],
    ) -> Mapping[str, Any]:
        """``RecordDeliveryAttempt`` per attempt, then ``AtomicStatusUpdate`` with the batch."""
        obj = base
        for attempt in batch:  # the batch recording loop (one write per attempt, no dedupe)
            for _ in range(self.max_conflicts):
                status = parse_status(obj)
                try:
                    obj = await io.write(
                        obj, _with_attempts(status, (*status.delivery_attempts, attempt))
                    )
                    break
                except ConflictError:
                    obj = await self.reread(io)
            else:
                raise TooManyConflicts("record loop")
        for _ in range(self.max_conflicts):  # the atomic update, recording the batch again
            existing = parse_status(obj).delivery_attempts
            try:
                return await io.write(obj, planner.recorded(obj, (*existing, *batch)))
            except ConflictError:
                obj = await self.reread(io)
        raise TooManyConflicts("atomic update")


class LostAttempts(ReferenceStrategy):
    """(2) Recording loop removed; only a transition to Failed records the attempts."""

    name = "lost-attempts"
    use_claims = False
    trust_own_writes = False

    def finalize(
        self,
        io: StatusIO,
        planner: StatusPlanner,
        obj: Mapping[str, Any],
        attempts: Sequence[DeliveryAttempt],
        batch: Sequence[DeliveryAttempt],
    ) -> NotificationStatus:
        """Decide the phase from the batch, but keep only the old attempts unless Failed."""
        decided = planner.recorded(obj, attempts)
        if decided.phase is Phase.FAILED:
            return decided
        before = parse_status(obj)
        return _with_attempts(decided, before.delivery_attempts).model_copy(
            update={"claims": before.claims}
        )


class NoDedupe(ReferenceStrategy):
    """(3) Atomic writes without claims and without de-duplication."""

    name = "no-dedupe"
    use_claims = False
    trust_own_writes = False

    def is_duplicate(self, existing: DeliveryAttempt, new: DeliveryAttempt) -> bool:
        """Nothing is ever a duplicate."""
        return False


class TimestampWindowDedupe(ReferenceStrategy):
    """(4) The seed's fix: same channel and attempt number within 1 s is a duplicate."""

    name = "timestamp-window"
    use_claims = False
    trust_own_writes = False

    def is_duplicate(self, existing: DeliveryAttempt, new: DeliveryAttempt) -> bool:
        """``channel ==`` and ``attempt ==`` and ``|dt| < 1 s``."""
        return (
            existing.channel == new.channel
            and existing.attempt == new.attempt
            and abs(existing.timestamp - new.timestamp) < _WINDOW
        )


class NoAttemptNumberDedupe(ReferenceStrategy):
    """(5) January 2026: channel, status and error within 1 s; the attempt number dropped."""

    name = "no-attempt-number"
    use_claims = False
    trust_own_writes = False

    def is_duplicate(self, existing: DeliveryAttempt, new: DeliveryAttempt) -> bool:
        """``channel ==`` and ``status ==`` and ``error ==`` and ``|dt| < 1 s``."""
        return (
            existing.channel == new.channel
            and existing.status == new.status
            and existing.error == new.error
            and abs(existing.timestamp - new.timestamp) < _WINDOW
        )


class StaleSuccessCount(ReferenceStrategy):
    """(6) Counters from the pass's starting view plus the batch, not from the list."""

    name = "stale-success-count"

    def finalize(
        self,
        io: StatusIO,
        planner: StatusPlanner,
        obj: Mapping[str, Any],
        attempts: Sequence[DeliveryAttempt],
        batch: Sequence[DeliveryAttempt],
    ) -> NotificationStatus:
        """``status.successfulDeliveries`` (as first read) ``+ batch``, and so on."""
        stale = parse_status(io.cached)
        added = count_attempts(batch)
        return planner.recorded(obj, attempts).model_copy(
            update={
                "total_attempts": stale.total_attempts + added.total,
                "successful_deliveries": stale.successful_deliveries + added.successful,
                "failed_deliveries": stale.failed_deliveries + added.failed,
            }
        )


#: name -> strategy class, in the order of the seed's history.
VARIANTS: dict[str, type[ReferenceStrategy]] = {
    cls.name: cls
    for cls in (
        RecordTwice,
        LostAttempts,
        NoDedupe,
        TimestampWindowDedupe,
        NoAttemptNumberDedupe,
        StaleSuccessCount,
    )
}
