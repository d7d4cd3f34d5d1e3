"""The phase table and the phase decision."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from reference_controller.models import ChannelName, DeliveryAttempt, Phase
from reference_controller.phases import (
    TERMINAL_PHASES,
    InvalidTransition,
    Reason,
    can_transition,
    channel_progress,
    check_transition,
    decide_phase,
    is_terminal,
)

ALLOWED = {
    (None, Phase.PENDING),
    (Phase.PENDING, Phase.SENDING),
    (Phase.PENDING, Phase.FAILED),
    *((Phase.SENDING, p) for p in (Phase.SENT, Phase.RETRYING, Phase.PARTIALLY_SENT, Phase.FAILED)),
    *(
        (Phase.RETRYING, p)
        for p in (Phase.SENT, Phase.RETRYING, Phase.PARTIALLY_SENT, Phase.FAILED)
    ),
    # Staying in a non-terminal phase is not a transition (the status manager's rule).
    (Phase.PENDING, Phase.PENDING),
    (Phase.SENDING, Phase.SENDING),
}
T0 = datetime(2025, 12, 26, 10, tzinfo=UTC)
SLACK, CONSOLE = ChannelName.SLACK, ChannelName.CONSOLE


def test_transition_table_is_exactly_the_original_one() -> None:
    for current, target in itertools.product([None, *Phase], Phase):
        assert can_transition(current, target) == ((current, target) in ALLOWED), (current, target)


def test_terminal_phases_never_change() -> None:
    assert {Phase.SENT, Phase.PARTIALLY_SENT, Phase.FAILED} == TERMINAL_PHASES
    for phase in TERMINAL_PHASES:
        assert is_terminal(phase)
        for target in Phase:
            with pytest.raises(InvalidTransition, match=f"from {phase} to {target}"):
                check_transition(phase, target)
    assert not is_terminal(None)
    with pytest.raises(InvalidTransition, match="from <none> to Sent"):
        check_transition(None, Phase.SENT)


def a(channel: ChannelName, n: int, ok: bool, *, permanent: bool = False) -> DeliveryAttempt:
    return DeliveryAttempt(
        channel=channel,
        attempt=n,
        timestamp=T0,
        status="success" if ok else "failed",
        permanent=permanent,
    )


def decide(
    current: Phase | None,
    channels: list[ChannelName],
    attempts: list[DeliveryAttempt],
    max_attempts: int = 3,
):
    return decide_phase(current, channel_progress(channels, attempts), max_attempts)


def test_all_channels_succeeded_is_sent() -> None:
    decision = decide(Phase.SENDING, [CONSOLE, SLACK], [a(CONSOLE, 1, True), a(SLACK, 2, True)])
    assert decision is not None
    assert (decision.phase, decision.reason) == (Phase.SENT, Reason.ALL_SUCCEEDED)
    assert decision.message == "Successfully delivered to 2 channel(s)"


def test_permanent_failure_fails_in_the_same_pass() -> None:
    # The original needed a second reconcile (it decided from the pre-batch status).
    decision = decide(Phase.SENDING, [SLACK], [a(SLACK, 1, False, permanent=True)])
    assert decision is not None
    assert (decision.phase, decision.reason) == (Phase.FAILED, Reason.ALL_FAILED)


def test_exhausted_retries_fail_with_max_retries_reason() -> None:
    attempts = [a(SLACK, n, False) for n in (1, 2, 3)]
    decision = decide(Phase.RETRYING, [SLACK], attempts)
    assert decision is not None
    assert (decision.phase, decision.reason) == (Phase.FAILED, Reason.MAX_RETRIES)


def test_mixed_outcomes_with_nothing_left_is_partially_sent() -> None:
    decision = decide(
        Phase.SENDING, [CONSOLE, SLACK], [a(CONSOLE, 1, True), a(SLACK, 1, False, permanent=True)]
    )
    assert decision is not None
    assert (decision.phase, decision.reason) == (Phase.PARTIALLY_SENT, Reason.PARTIAL_SUCCESS)
    assert "Partial" in decision.reason


def test_a_scheduled_retry_is_retrying_with_or_without_a_success() -> None:
    partial = decide(Phase.SENDING, [CONSOLE, SLACK], [a(CONSOLE, 1, True), a(SLACK, 1, False)])
    assert partial is not None
    assert (partial.phase, partial.reason) == (Phase.RETRYING, Reason.PARTIAL_RETRYING)
    none_yet = decide(Phase.SENDING, [SLACK], [a(SLACK, 1, False)])
    assert none_yet is not None
    assert (none_yet.phase, none_yet.reason) == (Phase.RETRYING, Reason.RETRYING_AFTER_FAILURE)
    again = decide(Phase.RETRYING, [SLACK], [a(SLACK, 1, False), a(SLACK, 2, False)])
    assert again is not None and again.phase is Phase.RETRYING


def test_in_flight_channels_leave_the_phase_alone() -> None:
    # console recorded, slack claimed by another replica and not recorded yet.
    assert decide(Phase.SENDING, [CONSOLE, SLACK], [a(CONSOLE, 1, True)]) is None
    # A permanent failure elsewhere is not a retry: stay in Sending while slack is in flight.
    assert decide(Phase.SENDING, [CONSOLE, SLACK], [a(CONSOLE, 1, False, permanent=True)]) is None


def test_zero_channels_fail_and_never_look_sent() -> None:
    for current in (Phase.PENDING, Phase.SENDING):
        decision = decide(current, [], [])
        assert decision is not None
        assert (decision.phase, decision.reason) == (Phase.FAILED, Reason.NO_CHANNELS)


def test_no_decision_from_terminal_absent_or_pending_except_failed() -> None:
    ok = [a(CONSOLE, 1, True)]
    for phase in TERMINAL_PHASES:
        assert decide(phase, [CONSOLE], ok) is None
    assert decide(None, [CONSOLE], ok) is None
    assert decide(Phase.PENDING, [CONSOLE], ok) is None  # would skip Sending
    failed = decide(Phase.PENDING, [SLACK], [a(SLACK, 1, False, permanent=True)])
    assert failed is not None and failed.phase is Phase.FAILED


def test_every_decision_is_a_valid_transition() -> None:
    outcomes = [None, (1, True), (1, False), (1, "perm"), (3, False), (2, True)]
    for current in [None, *Phase]:
        for console, slack in itertools.product(outcomes, repeat=2):
            attempts = []
            for channel, outcome in ((CONSOLE, console), (SLACK, slack)):
                if outcome is None:
                    continue
                count, result = outcome
                for n in range(1, count + 1):
                    last = n == count
                    attempts.append(
                        a(channel, n, result is True and last, permanent=result == "perm" and last)
                    )
            decision = decide(current, [CONSOLE, SLACK], attempts)
            if decision is not None:
                assert can_transition(current, decision.phase), (current, decision)


def test_channel_progress_summary() -> None:
    progress = channel_progress(
        [SLACK, CONSOLE], [a(SLACK, 1, False), a(SLACK, 2, False, permanent=True)]
    )
    slack, console = progress
    assert (slack.attempts, slack.failures, slack.permanent, slack.succeeded) == (2, 2, True, False)
    assert slack.last is not None and slack.last.attempt == 2
    assert slack.done(5) and not slack.exhausted(5)
    assert (console.attempts, console.last, console.done(5)) == (0, None, False)
    three = channel_progress([SLACK], [a(SLACK, n, False) for n in (1, 2, 3)])[0]
    assert three.exhausted(3) and not three.exhausted(4)
