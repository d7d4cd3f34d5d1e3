"""The phase state machine and the phase decision, as pure functions.

The transition table is the original's (``pkg/notification/phase/types.go``). The decision
differs from the original's ``determinePhaseTransition`` on purpose:

* it is computed from the attempts *after* this pass's batch is merged (the original used
  the status before the batch, so a permanent 4xx reached Failed only one reconcile later);
* ``Retrying`` means "a retry is scheduled" whether or not another channel succeeded (the
  original stayed in ``Sending`` when every channel had failed, which is also why its
  backoff gate, active only in ``Retrying``, let retries run back to back: NT-BUG-007);
* zero resolved channels is ``Failed`` with reason ``NoChannelsResolved``, never ``Sent``
  (the original's Dec-2025 shadowing bug sent such objects to Sent with no delivery).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from .models import AttemptStatus, ChannelName, DeliveryAttempt, Phase

__all__ = [
    "TERMINAL_PHASES",
    "TRANSITIONS",
    "ChannelProgress",
    "InvalidTransition",
    "PhaseDecision",
    "Reason",
    "can_transition",
    "channel_progress",
    "check_transition",
    "decide_phase",
    "is_terminal",
]

#: Allowed phase changes; ``None`` is the absent phase (the original's ``""``).
TRANSITIONS: Final[dict[Phase | None, frozenset[Phase]]] = {
    None: frozenset({Phase.PENDING}),
    Phase.PENDING: frozenset({Phase.SENDING, Phase.FAILED}),
    Phase.SENDING: frozenset({Phase.SENT, Phase.RETRYING, Phase.PARTIALLY_SENT, Phase.FAILED}),
    Phase.RETRYING: frozenset({Phase.SENT, Phase.RETRYING, Phase.PARTIALLY_SENT, Phase.FAILED}),
    Phase.SENT: frozenset(),
    Phase.PARTIALLY_SENT: frozenset(),
    Phase.FAILED: frozenset(),
}

TERMINAL_PHASES: Final = frozenset({Phase.SENT, Phase.PARTIALLY_SENT, Phase.FAILED})


class Reason:
    """``status.reason`` values (the original's, plus the ones this controller adds)."""

    INITIALIZED: Final = "Initialized"
    PROCESSING: Final = "ProcessingDeliveries"
    ALL_SUCCEEDED: Final = "AllDeliveriesSucceeded"
    PARTIAL_RETRYING: Final = "PartialFailureRetrying"
    PARTIAL_SUCCESS: Final = "PartialDeliverySuccess"
    ALL_FAILED: Final = "AllDeliveriesFailed"
    MAX_RETRIES: Final = "MaxRetriesExhausted"
    NO_CHANNELS: Final = "NoChannelsResolved"
    #: Added: every channel has failed so far and a retry is scheduled.
    RETRYING_AFTER_FAILURE: Final = "RetryingAfterFailure"
    #: Added: the spec failed validation in the controller (the API server should prevent it).
    INVALID_SPEC: Final = "InvalidSpec"


class InvalidTransition(ValueError):
    """A phase change the state machine forbids; such a change is never written."""

    def __init__(self, current: Phase | None, target: Phase) -> None:
        super().__init__(f"invalid phase transition from {current or '<none>'!s} to {target!s}")
        self.current = current
        self.target = target


def is_terminal(phase: Phase | None) -> bool:
    """Whether ``phase`` is Sent, PartiallySent or Failed (never left once reached)."""
    return phase in TERMINAL_PHASES


def can_transition(current: Phase | None, target: Phase) -> bool:
    """Whether ``current -> target`` is allowed; staying in a non-terminal phase is allowed."""
    if current == target:
        return not is_terminal(current)
    return target in TRANSITIONS[current]


def check_transition(current: Phase | None, target: Phase) -> None:
    """Raise ``InvalidTransition`` unless ``current -> target`` is allowed."""
    if not can_transition(current, target):
        raise InvalidTransition(current, target)


@dataclass(frozen=True)
class ChannelProgress:
    """What the recorded attempts say about one channel."""

    channel: ChannelName
    attempts: int
    succeeded: bool
    permanent: bool
    failures: int
    last: DeliveryAttempt | None

    def exhausted(self, max_attempts: int) -> bool:
        """Whether retries are used up (and the channel never succeeded)."""
        return not self.succeeded and not self.permanent and self.attempts >= max_attempts

    def done(self, max_attempts: int) -> bool:
        """Whether no further delivery will be made to this channel."""
        return self.succeeded or self.permanent or self.attempts >= max_attempts


def channel_progress(
    channels: Iterable[ChannelName], attempts: Sequence[DeliveryAttempt]
) -> list[ChannelProgress]:
    """Summarise ``attempts`` per channel, in the order of ``channels``."""
    result = []
    for channel in channels:
        mine = [a for a in attempts if a.channel == channel]
        result.append(
            ChannelProgress(
                channel=channel,
                attempts=len(mine),
                succeeded=any(a.status is AttemptStatus.SUCCESS for a in mine),
                permanent=any(a.permanent for a in mine),
                failures=sum(1 for a in mine if a.status is AttemptStatus.FAILED),
                last=max(mine, key=lambda a: a.attempt) if mine else None,
            )
        )
    return result


@dataclass(frozen=True)
class PhaseDecision:
    """Where the phase goes after a pass: target phase, reason and message."""

    phase: Phase
    reason: str
    message: str


def decide_phase(
    current: Phase | None,
    progress: Sequence[ChannelProgress],
    max_attempts: int,
) -> PhaseDecision | None:
    """Decide the phase from the attempts recorded so far; ``None`` means "leave it as is".

    A decision is always a transition ``can_transition`` allows from ``current``; a terminal
    ``current`` is never changed.
    """
    if is_terminal(current) or current is None:
        return None
    total = len(progress)
    succeeded = sum(1 for p in progress if p.succeeded)
    if total == 0:
        decision = PhaseDecision(Phase.FAILED, Reason.NO_CHANNELS, "No delivery channels resolved")
    elif succeeded == total:
        decision = PhaseDecision(
            Phase.SENT, Reason.ALL_SUCCEEDED, f"Successfully delivered to {total} channel(s)"
        )
    elif all(p.done(max_attempts) for p in progress):
        if succeeded:
            decision = PhaseDecision(
                Phase.PARTIALLY_SENT,
                Reason.PARTIAL_SUCCESS,
                f"Delivered to {succeeded}/{total} channel(s), others failed",
            )
        else:
            reason = Reason.ALL_FAILED if all(p.permanent for p in progress) else Reason.MAX_RETRIES
            decision = PhaseDecision(
                Phase.FAILED, reason, "All delivery attempts failed or exhausted retries"
            )
    elif any(not p.done(max_attempts) and p.failures for p in progress):
        if succeeded:
            decision = PhaseDecision(
                Phase.RETRYING,
                Reason.PARTIAL_RETRYING,
                f"Delivered to {succeeded}/{total} channel(s), retrying failed channels "
                "with backoff",
            )
        else:
            decision = PhaseDecision(
                Phase.RETRYING,
                Reason.RETRYING_AFTER_FAILURE,
                "Delivery failed, will retry with backoff",
            )
    else:
        # Deliveries still in flight (claimed, not yet recorded) and nothing to retry.
        return None
    if current is Phase.PENDING and decision.phase is not Phase.FAILED:
        # Pending -> Sending happens in the claim write; a decision from Pending can only
        # be Failed (e.g. no channels). Anything else would skip a phase.
        return None
    if decision.phase == current and decision.phase is not Phase.RETRYING:
        return None
    return decision if can_transition(current, decision.phase) else None
