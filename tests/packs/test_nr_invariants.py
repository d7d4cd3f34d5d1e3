"""The NotificationRequest invariant pack on hand-built histories.

Each rule gets a passing history and the failing histories the seed's project actually
produced (README.md, "The hidden duplicate"; tests/validation/VARIANTS.md), and the
messages are checked for what a person needs to read: the object, the channel, the
numbers, the versions and who wrote them.
"""

from __future__ import annotations

from typing import Any

import pytest
from nrledgers import POLICY

from pytest_ntinvariants.invariants import CheckContext, Violation
from pytest_ntinvariants.ledger import SideEffect
from pytest_ntinvariants.packs.notifications import (
    SINK_CHANNELS,
    TIME_SCALE,
    NotificationBuilder,
    default_registry,
)
from pytest_ntinvariants.packs.notifications import NotificationLedgerBuilder as LedgerBuilder


def check(b: LedgerBuilder, name: str, **ctx: Any) -> list[Violation]:
    """Run one invariant over the builder's ledger."""
    scale = ctx.pop("time_scale", None)  # the pack's option, by its old keyword
    options = {TIME_SCALE: scale} if scale is not None else {}
    context = CheckContext.from_ledger(b.ledger, options=options, **ctx)
    return default_registry().check(b.ledger, context, include=[name])


def happy(b: LedgerBuilder, name: str = "nr-1") -> NotificationBuilder:
    """A correct history: a 503, a retry after the backoff, then success."""
    nr = b.notification(name, channels=["slack"], retry_policy=POLICY)
    b.watch("replica-a", nr, type="ADDED")
    b.read("replica-a", nr)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1, status=503)
    nr.write("replica-a", phase="Retrying", append=[nr.attempt("slack", 1, "failed")])
    b.advance(1.0)
    b.call("slack", nr, attempt=2, status=200)
    nr.write("replica-a", phase="Sent", append=[nr.attempt("slack", 2, "success")])
    return nr


ALL_NR = [
    "nr-counters-match-attempts",
    "nr-no-duplicate-attempt",
    "nr-attempts-append-only",
    "nr-valid-phase-transitions",
    "nr-attempt-limits",
    "nr-retry-spacing",
    "nr-deliveries-match-records",
    "nr-eventually-terminal",
]


@pytest.mark.parametrize("name", ALL_NR)
def test_the_happy_history_passes_every_rule(name: str) -> None:
    b = LedgerBuilder()
    happy(b)
    assert check(b, name, quiet=True) == []


def test_the_pack_judges_only_notification_requests() -> None:
    b = LedgerBuilder()
    # A ConfigMap with a status that would break every NR rule if it were judged.
    b.version(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default", "uid": "cm-1"},
            "status": {"phase": "Sent", "totalAttempts": 9},
        },
        "test",
        type="ADDED",
    )
    b.version(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default", "uid": "cm-1"},
            "status": {"phase": "Pending"},
        },
        "test",
    )
    for name in ALL_NR:
        assert check(b, name, quiet=True) == []


# ------------------------------------------------------------ counters


def test_counters_disagreeing_with_the_list_are_reported_once_with_every_version() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    a1 = nr.attempt("slack", 1, "failed")
    # The seed's symptom: TotalAttempts 2 for one attempt ("Expected 1 to equal 2").
    v1 = nr.write("replica-a", append=[a1], counters={"totalAttempts": 2, "failedDeliveries": 2})
    v2 = nr.write("replica-b", counters={"totalAttempts": 2, "failedDeliveries": 2})
    [v] = check(b, "nr-counters-match-attempts")
    assert v.object is not None and v.object.path == "default/nr-1"
    assert v.message == (
        "totalAttempts is 2 but deliveryAttempts has 1 attempt; failedDeliveries is 2 but "
        f"deliveryAttempts has 1 failed attempt (rv {v1.rv} by replica-a) "
        f"(still so in rv {v2.rv})"
    )
    assert v.rvs == (v1.rv, v2.rv)
    assert [dict(r) for r in v.evidence] == [
        {"counter": "totalAttempts", "status says": 2, "deliveryAttempts has": 1},
        {"counter": "successfulDeliveries", "status says": 0, "deliveryAttempts has": 0},
        {"counter": "failedDeliveries", "status says": 2, "deliveryAttempts has": 1},
    ]


def test_counters_are_judged_in_intermediate_versions_not_only_the_last() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    bad = nr.write("replica-a", phase="Sending", counters={"successfulDeliveries": 1})
    nr.write("replica-a", phase="Sent", append=[nr.attempt("slack", 1, "success")])
    [v] = check(b, "nr-counters-match-attempts")
    assert v.rvs == (bad.rv,)
    assert "successfulDeliveries is 1 but deliveryAttempts has 0 successful attempts" in v.message


def test_absent_counters_count_as_zero() -> None:
    # Go's omitempty drops zero counters; an absent counter with attempts is a mismatch.
    b = LedgerBuilder()
    nr = b.notification("nr-1")
    nr.write("replica-a", phase="Pending")
    assert check(b, "nr-counters-match-attempts") == []
    status = nr.status
    status["deliveryAttempts"] = [nr.attempt("slack", 1, "success")]
    nr.obj["status"] = status  # no counters at all
    b.version(nr.obj, "replica-a", resource=nr.resource)
    [v] = check(b, "nr-counters-match-attempts")
    assert v.message.startswith("totalAttempts is 0 but deliveryAttempts has 1 attempt;")


# ------------------------------------------------------------ duplicates


def test_each_attempt_recorded_twice_is_the_original_bug() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    a1 = nr.attempt("slack", 1, "failed", error="slack webhook returned 400", permanent=True)
    # Batch loop + atomic update: the same attempt appended twice, counters agree.
    v = nr.write("replica-a", phase="Failed", append=[a1, a1])
    [violation] = check(b, "nr-no-duplicate-attempt")
    assert violation.message == (
        f"slack attempt 1 is recorded 2 times (entries #1, #2, identical copies; rv {v.rv} "
        "by replica-a)"
    )
    assert [r["attempt"] for r in violation.evidence] == [1, 1]
    assert check(b, "nr-counters-match-attempts") == []  # the counters cannot see it


def test_a_stale_read_duplicate_has_different_timestamps() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    v1 = nr.write("replica-a", append=[nr.attempt("slack", 1, "failed")])
    b.advance(0.2)
    # replica-b read rv before v1 and computed "attempt 1" again.
    v2 = nr.write("replica-b", append=[nr.attempt("slack", 1, "failed")])
    [violation] = check(b, "nr-no-duplicate-attempt")
    assert "slack attempt 1 is recorded 2 times (entries #1, #2, different timestamps" in (
        violation.message
    )
    assert f"rv {v2.rv} by replica-b" in violation.message
    assert v1.rv not in violation.rvs


def test_same_number_on_different_channels_is_not_a_duplicate() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", channels=["slack", "console"], retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write(
        "replica-a",
        phase="Sending",
        append=[nr.attempt("slack", 1, "failed"), nr.attempt("console", 1, "success")],
    )
    assert check(b, "nr-no-duplicate-attempt") == []


# ------------------------------------------------------------ append-only


def _two_attempts(b: LedgerBuilder) -> tuple[NotificationBuilder, dict[str, Any], dict[str, Any]]:
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    a1 = nr.attempt("slack", 1, "failed")
    nr.write("replica-a", phase="Retrying", append=[a1])
    b.advance(1)
    a2 = nr.attempt("slack", 2, "failed")
    nr.write("replica-a", append=[a2])
    return nr, a1, a2


def test_an_attempt_lost_between_versions() -> None:
    b = LedgerBuilder()
    nr, a1, _ = _two_attempts(b)
    before = nr.rv
    b.advance(2)
    # replica-b wrote from a read that predates a2: a2 is gone, b's own attempt replaces it.
    a3 = nr.attempt("slack", 2, "success")
    after = nr.write("replica-b", attempts=[a1, a3], phase="Sent")
    [v] = check(b, "nr-attempts-append-only")
    assert v.message == (
        f"1 attempt replaced between rv {before} (replica-a) and rv {after.rv} (replica-b): "
        f"2 -> 2 entries; first: slack attempt 2 replaced by success at {a3['timestamp']}"
    )
    assert v.rvs == (before, after.rv)
    assert [r["change"] for r in v.evidence] == [f"replaced by success at {a3['timestamp']}"]
    assert [r["now"] for r in v.evidence] == ["#2"]


def test_an_attempt_dropped_with_nothing_in_its_place_is_lost() -> None:
    b = LedgerBuilder()
    nr, a1, _ = _two_attempts(b)
    before = nr.rv
    after = nr.write("replica-b", attempts=[a1])
    [v] = check(b, "nr-attempts-append-only")
    assert v.message == (
        f"1 attempt lost between rv {before} (replica-a) and rv {after.rv} (replica-b): "
        "2 -> 1 entries; first: slack attempt 2 lost"
    )
    assert [(r["change"], r["now"]) for r in v.evidence] == [("lost", "-")]


def test_an_attempt_rewritten_in_place() -> None:
    b = LedgerBuilder()
    nr, a1, a2 = _two_attempts(b)
    flipped = {**a2, "status": "success"}
    flipped.pop("error")
    nr.write("replica-b", attempts=[a1, flipped])
    [v] = check(b, "nr-attempts-append-only")
    assert "1 rewritten between" in v.message
    change = v.evidence[0]["change"]
    assert change == (
        "rewritten: error 'slack webhook returned 503' -> None, status 'failed' -> 'success'"
    )


def test_attempts_moved_and_shrunk_lists() -> None:
    b = LedgerBuilder()
    nr, a1, a2 = _two_attempts(b)
    nr.write("replica-b", attempts=[a2, a1])
    nr.write("replica-b", attempts=[])
    moved, emptied = check(b, "nr-attempts-append-only")
    assert moved.message.startswith("2 moved between")
    assert [r["change"] for r in moved.evidence] == ["moved from #1 to #2", "moved from #2 to #1"]
    assert emptied.message.startswith("2 attempts lost between")
    assert "2 -> 0 entries" in emptied.message


def test_appending_is_fine() -> None:
    b = LedgerBuilder()
    _two_attempts(b)
    assert check(b, "nr-attempts-append-only") == []


# ------------------------------------------------------------ phases


def _phases(*phases: str | None) -> LedgerBuilder:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    for i, phase in enumerate(phases):
        nr.write(f"replica-{'ab'[i % 2]}", phase=phase)
    return b


@pytest.mark.parametrize(
    "phases",
    [
        ("Pending", "Sending", "Sent"),
        ("Pending", "Sending", "Retrying", "Retrying", "PartiallySent"),
        ("Pending", "Failed"),
        ("Pending", "Pending", "Sending", "Sending", "Failed", "Failed"),
        ("Pending", "Sending", "Retrying", "Sent", "Sent"),
    ],
)
def test_allowed_phase_paths(phases: tuple[str, ...]) -> None:
    assert check(_phases(*phases), "nr-valid-phase-transitions") == []


@pytest.mark.parametrize(
    ("phases", "expected"),
    [
        (("Pending", "Sending", "Sent", "Retrying"), "terminal phase Sent changed to Retrying"),
        (("Pending", "Failed", "Sending"), "terminal phase Failed changed to Sending"),
        (
            ("Pending", "Sent"),
            "Pending -> Sent is not an allowed transition (from Pending: Failed, Sending)",
        ),
        (("Sending",), "<none> -> Sending is not an allowed transition (from <none>: Pending)"),
        (
            ("Pending", "Sending", "Pending"),
            "Sending -> Pending is not an allowed transition (from Sending: Failed, PartiallySent, "
            "Retrying, Sent)",
        ),
        (("Pending", "Sending", None), "Sending -> <none> is not an allowed transition"),
        (("Pending", "Bogus", "Sending"), "unknown phase 'Bogus' changed to Sending"),
    ],
)
def test_forbidden_phase_changes(phases: tuple[str | None, ...], expected: str) -> None:
    violations = check(_phases(*phases), "nr-valid-phase-transitions")
    messages = [v.message for v in violations]
    assert any(expected in m for m in messages), messages


def test_sent_to_retrying_names_both_versions_and_the_writer() -> None:
    b = LedgerBuilder()
    nr = happy(b)
    sent = nr.rv
    stale = nr.write("replica-b", phase="Retrying")
    [v] = check(b, "nr-valid-phase-transitions")
    assert v.message == (
        f"terminal phase Sent changed to Retrying (rv {sent} -> rv {stale.rv} by replica-b)"
    )
    assert [r["phase"] for r in v.evidence] == ["Sent", "Retrying"]
    assert [r["writer"] for r in v.evidence] == ["replica-a", "replica-b"]


def test_completion_time_is_set_once() -> None:
    b = LedgerBuilder()
    nr = happy(b)
    first = nr.status["completionTime"]
    nr.write("replica-b", completion_time="2025-12-26T10:05:00Z")
    nr.write("replica-b", completion_time=None)
    changed, removed = check(b, "nr-valid-phase-transitions")
    assert changed.message.startswith(
        f"completionTime changed from {first} to 2025-12-26T10:05:00Z"
    )
    assert removed.message.startswith("completionTime 2025-12-26T10:05:00Z was removed")


# ------------------------------------------------------------ attempt limits


def test_more_attempts_than_max_attempts() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)  # maxAttempts 3
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    for n in range(1, 5):
        b.advance(10)
        last = nr.write("replica-a", append=[nr.attempt("slack", n, "failed")])
    [v] = check(b, "nr-attempt-limits")
    assert v.message == (
        f"slack has 4 attempts but retryPolicy.maxAttempts is 3 (rv {last.rv} by replica-a)"
    )
    assert len(v.evidence) == 4


def test_default_max_attempts_is_five() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1")  # no retryPolicy
    nr.write("replica-a", phase="Pending")
    for n in range(1, 6):
        nr.write("replica-a", append=[nr.attempt("slack", n, "failed")])
    assert check(b, "nr-attempt-limits") == []
    nr.write("replica-a", append=[nr.attempt("slack", 6, "failed")])
    [v] = check(b, "nr-attempt-limits")
    assert "slack has 6 attempts but retryPolicy.maxAttempts is 5" in v.message


@pytest.mark.parametrize("how", ["marker", "slack-format", "field"])
def test_no_attempt_after_a_permanent_failure(how: str) -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    if how == "marker":
        first = nr.attempt("slack", 1, "failed", error="slack webhook returned 400", permanent=True)
    elif how == "slack-format":
        # The original Slack service: "slack webhook returned %d (permanent failure): body".
        first = nr.attempt(
            "slack", 1, "failed", error="slack webhook returned 400 (permanent failure): bad"
        )
    else:
        first = nr.attempt("slack", 1, "failed", error="HTTP 400", permanent_field=True)
    nr.write("replica-a", append=[first])
    b.advance(5)
    v2 = nr.write("replica-b", append=[nr.attempt("slack", 2, "failed")])
    [v] = check(b, "nr-attempt-limits")
    assert v.message == (
        f"slack attempt 2 made after attempt 1 failed permanently (rv {v2.rv} by replica-b)"
    )
    assert [r["outcome"] for r in v.evidence] == ["failed (permanent)", "failed"]


def test_no_attempt_after_a_success() -> None:
    b = LedgerBuilder()
    nr = happy(b)
    b.advance(10)
    nr.write("replica-b", append=[nr.attempt("slack", 3, "success")])
    [v] = check(b, "nr-attempt-limits")
    assert v.message.startswith("slack attempt 3 made after attempt 2 succeeded")


@pytest.mark.parametrize(
    ("numbers", "expected"),
    [
        ((1, 3), "slack attempts are numbered 1, 3; expected 1, 2"),
        ((2,), "slack attempts are numbered 2; expected 1"),
        ((2, 1), "slack attempts are numbered 2, 1; expected 1, 2"),
    ],
)
def test_attempt_numbers_are_consecutive_from_one(numbers: tuple[int, ...], expected: str) -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    for n in numbers:
        b.advance(10)
        nr.write("replica-a", append=[nr.attempt("slack", n, "failed")])
    messages = [v.message for v in check(b, "nr-attempt-limits")]
    assert any(m.startswith(expected) for m in messages), messages


def test_a_missing_attempt_number_is_reported() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    broken = nr.attempt("slack", 1, "failed")
    del broken["attempt"]
    nr.write("replica-a", append=[broken])
    [v] = check(b, "nr-attempt-limits")
    assert v.message.startswith("slack attempts are numbered ?; expected 1")


def test_duplicates_are_left_to_the_duplicate_rule() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    a1 = nr.attempt("slack", 1, "failed")
    nr.write("replica-a", append=[a1, a1])
    assert check(b, "nr-attempt-limits") == []
    assert len(check(b, "nr-no-duplicate-attempt")) == 1


# ------------------------------------------------------------ retry spacing
# (step=0: the builder's clock moves only by the gaps the tests give.)


def _retry(
    b: LedgerBuilder,
    gap: float,
    policy: dict[str, Any] | None = None,
    first: int = 1,
    **attempt_kw: Any,
) -> NotificationBuilder:
    nr = b.notification("nr-1", retry_policy=policy or POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    for n in range(1, first):
        nr.write("replica-a", append=[nr.attempt("slack", n, "failed", **attempt_kw)])
        b.advance(1000)
    nr.write(
        "replica-a", phase="Retrying", append=[nr.attempt("slack", first, "failed", **attempt_kw)]
    )
    b.advance(gap)
    nr.write("replica-a", append=[nr.attempt("slack", first + 1, "failed", **attempt_kw)])
    return nr


def test_back_to_back_retries_are_nt_bug_007() -> None:
    b = LedgerBuilder(step=0)
    _retry(b, 0.150, {"initialBackoffSeconds": 30})
    [v] = check(b, "nr-retry-spacing")
    assert v.message == (
        "slack attempt 2 came 150.0 ms after attempt 1 failed; backoff(1) = 30 s needs at "
        "least 27.000 s (-10% jitter) [by attempt timestamps]"
    )
    assert [r["attempt"] for r in v.evidence] == [1, 2]
    assert all("by replica-a" in r["first recorded"] for r in v.evidence)


@pytest.mark.parametrize(("gap", "ok"), [(0.9, True), (0.95, True), (0.89, False)])
def test_jitter_allows_ten_percent_early(gap: float, ok: bool) -> None:
    b = LedgerBuilder(step=0)
    _retry(b, gap)
    assert (check(b, "nr-retry-spacing") == []) is ok


def test_backoff_grows_and_is_capped() -> None:
    policy = {
        "maxAttempts": 5,
        "initialBackoffSeconds": 30,
        "backoffMultiplier": 2,
        "maxBackoffSeconds": 60,
    }
    b = LedgerBuilder(step=0)
    _retry(b, 55, policy, first=3)  # backoff(3) = min(120, 60) = 60 -> at least 54 s
    assert check(b, "nr-retry-spacing") == []
    b = LedgerBuilder(step=0)
    _retry(b, 53, policy, first=3)
    [v] = check(b, "nr-retry-spacing")
    assert "backoff(3) = 60 s needs at least 54.000 s" in v.message
    b = LedgerBuilder(step=0)
    _retry(b, 55, policy, first=2)  # backoff(2) = 60 as well
    assert check(b, "nr-retry-spacing") == []


def test_time_scale_shrinks_the_backoff() -> None:
    b = LedgerBuilder(step=0)
    _retry(b, 0.028, {"initialBackoffSeconds": 30})
    assert check(b, "nr-retry-spacing", time_scale=0.001) == []
    b = LedgerBuilder(step=0)
    _retry(b, 0.020, {"initialBackoffSeconds": 30})
    [v] = check(b, "nr-retry-spacing", time_scale=0.001)
    assert (
        "came 20.0 ms after attempt 1 failed; backoff(1) = 30 s x time scale 0.001 needs "
        "at least 27.0 ms"
    ) in v.message


def test_whole_second_timestamps_fall_back_to_ledger_times() -> None:
    # Both attempts carry the same whole-second timestamp: they cannot express a 27 ms
    # backoff, so the versions' ledger times (28 ms apart) decide.
    stamp = "2025-12-26T10:00:00Z"
    b = LedgerBuilder(step=0)
    _retry(b, 0.028, {"initialBackoffSeconds": 30}, timestamp=stamp)
    assert check(b, "nr-retry-spacing", time_scale=0.001) == []
    b = LedgerBuilder(step=0)
    _retry(b, 0.010, {"initialBackoffSeconds": 30}, timestamp=stamp)
    [v] = check(b, "nr-retry-spacing", time_scale=0.001)
    assert "[by ledger times of the versions that first recorded them]" in v.message
    assert "came 10.0 ms after" in v.message


def test_whole_second_timestamps_judge_long_backoffs_within_a_second() -> None:
    b = LedgerBuilder(step=0)
    nr = b.notification("nr-1", retry_policy={"initialBackoffSeconds": 30})
    nr.write(
        "replica-a",
        phase="Sending",
        append=[nr.attempt("slack", 1, "failed", timestamp="2025-12-26T10:00:00Z")],
    )
    # 26 s apart by the stamps; the true gap may be up to 27 s: benefit of the doubt.
    nr.write(
        "replica-a", append=[nr.attempt("slack", 2, "failed", timestamp="2025-12-26T10:00:26Z")]
    )
    assert check(b, "nr-retry-spacing") == []
    b = LedgerBuilder(step=0)
    nr = b.notification("nr-1", retry_policy={"initialBackoffSeconds": 30})
    nr.write(
        "replica-a",
        phase="Sending",
        append=[nr.attempt("slack", 1, "failed", timestamp="2025-12-26T10:00:00Z")],
    )
    nr.write(
        "replica-a",
        append=[nr.attempt("slack", 2, "failed", timestamp="2025-12-26T10:00:25+00:00")],
    )
    [v] = check(b, "nr-retry-spacing")
    assert "came 25.000 s after" in v.message and "[by attempt timestamps]" in v.message


def test_spacing_ignores_other_channels_and_attempts_after_success() -> None:
    b = LedgerBuilder(step=0)
    nr = b.notification("nr-1", channels=["slack", "console"], retry_policy=POLICY)
    nr.write(
        "replica-a",
        phase="Sending",
        append=[nr.attempt("slack", 1, "failed"), nr.attempt("console", 1, "failed")],
    )
    b.advance(1)
    nr.write(
        "replica-a", append=[nr.attempt("slack", 2, "success"), nr.attempt("console", 2, "success")]
    )
    nr.write("replica-a", append=[nr.attempt("slack", 3, "success")])  # limits' business
    assert check(b, "nr-retry-spacing") == []


def test_a_repeated_attempt_number_is_left_to_the_duplicate_rule() -> None:
    b = LedgerBuilder(step=0)
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending", append=[nr.attempt("slack", 1, "failed")])
    b.advance(0.1)
    nr.write("replica-b", append=[nr.attempt("slack", 1, "failed")])
    assert check(b, "nr-retry-spacing") == []
    assert len(check(b, "nr-no-duplicate-attempt")) == 1


def test_a_retry_later_lost_from_the_list_is_still_judged() -> None:
    b = LedgerBuilder(step=0)
    nr = _retry(b, 0.1)
    status = nr.status
    nr.write("replica-b", attempts=status["deliveryAttempts"][:1])
    [v] = check(b, "nr-retry-spacing")
    assert "slack attempt 2 came 100.0 ms after attempt 1 failed" in v.message


# ------------------------------------------------------------ deliveries vs records


def _permanent_400(b: LedgerBuilder, calls: int, crash: str | None = None) -> NotificationBuilder:
    nr = b.notification("nr-1", retry_policy=POLICY)
    b.watch("replica-a", nr, type="ADDED")
    b.read("replica-a", nr)
    b.read("replica-b", nr)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    for _ in range(calls):
        b.call("slack", nr, attempt=1, status=400)
    if crash:
        b.crash(crash)
    nr.write(
        "replica-a",
        phase="Failed",
        append=[
            nr.attempt("slack", 1, "failed", error="slack webhook returned 400", permanent=True)
        ],
    )
    return nr


def test_the_seeds_hidden_duplicate_delivery() -> None:
    # The timestamp-window dedupe: one attempt recorded, the webhook called twice.
    b = LedgerBuilder()
    nr = _permanent_400(b, calls=2)
    assert check(b, "nr-counters-match-attempts") == []
    assert check(b, "nr-no-duplicate-attempt") == []
    [v] = check(b, "nr-deliveries-match-records")
    assert v.message == (
        f"slack endpoint received 2 calls but 1 attempt recorded in rv {nr.rv} "
        "(allowed extra: 0): a delivery is hidden"
    )
    assert [dict(r) for r in v.evidence] == [
        {
            "channel": "slack",
            "recorded attempts": 1,
            "endpoint calls": 2,
            "allowed extra": 0,
            "recorded numbers": "1",
            "endpoint numbers": "1, 1",
        }
    ]
    calls = [e.seq for e in b.ledger.side_effects()]
    assert set(calls) <= set(v.seqs)


def test_one_extra_delivery_per_crash_of_a_replica_that_saw_the_object() -> None:
    b = LedgerBuilder()
    _permanent_400(b, calls=2, crash="replica-b")
    assert check(b, "nr-deliveries-match-records") == []
    b = LedgerBuilder()
    _permanent_400(b, calls=3, crash="replica-b")
    [v] = check(b, "nr-deliveries-match-records")
    assert v.message.startswith("slack endpoint received 3 calls but 1 attempt recorded")
    assert "(allowed extra: 1 for 1 crash of a replica that saw it)" in v.message


def test_crashes_that_could_not_have_hit_the_object_allow_nothing() -> None:
    b = LedgerBuilder()
    b.crash("replica-b")  # before the object existed
    nr = _permanent_400(b, calls=2, crash="replica-c")  # replica-c never looked at it
    assert nr.rv
    [v] = check(b, "nr-deliveries-match-records")
    assert "(allowed extra: 0)" in v.message
    ctx = CheckContext.from_ledger(b.ledger)
    assert ctx.crashes_by_identity == {"replica-b": 1, "replica-c": 1}
    assert ctx.crashes_by_object == {}


def test_explicit_crash_counts_override_the_ledger() -> None:
    b = LedgerBuilder()
    nr = _permanent_400(b, calls=2)
    ctx = CheckContext(crashes_by_object={nr.uid: 1})
    assert default_registry().check(b.ledger, ctx, include=["nr-deliveries-match-records"]) == []


def test_attempts_recorded_twice_for_one_delivery() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1, status=400)
    a1 = nr.attempt("slack", 1, "failed", permanent=True)
    last = nr.write("replica-a", phase="Failed", append=[a1, {**a1, "attempt": 2}])
    [v] = check(b, "nr-deliveries-match-records")
    assert v.message == (
        f"2 attempts on slack recorded in rv {last.rv} but the endpoint "
        "received 1 call: an attempt is counted that was never made"
    )


def test_in_flight_deliveries_are_not_judged_until_settled() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1, status=503)  # made, not yet recorded
    assert check(b, "nr-deliveries-match-records") == []
    [v] = check(b, "nr-deliveries-match-records", quiet=True)
    assert "slack endpoint received 1 call but 0 attempts recorded" in v.message


def test_channels_without_an_endpoint_are_not_compared() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", channels=["slack", "console"], retry_policy=POLICY)
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1)
    nr.write(
        "replica-a",
        phase="Sent",
        append=[nr.attempt("slack", 1, "success"), nr.attempt("console", 1, "success")],
    )
    assert check(b, "nr-deliveries-match-records") == []
    # Declared sink channels are compared even when they saw no call at all.
    ctx = CheckContext(options={SINK_CHANNELS: frozenset({"slack", "console"})})
    [v] = default_registry().check(b.ledger, ctx, include=["nr-deliveries-match-records"])
    assert v.message.startswith("1 attempt on console recorded")


def test_calls_without_a_channel_are_not_compared() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1)
    # A call the endpoint could not attribute to a channel: nothing to compare it with.
    b.ledger.record(
        SideEffect,
        t=0.5,
        endpoint="slack",
        uid=nr.uid,
        namespace="default",
        name="nr-1",
        key="",
        status=200,
    )
    nr.write("replica-a", phase="Sent", append=[nr.attempt("slack", 1, "success")])
    assert check(b, "nr-deliveries-match-records") == []


def test_calls_without_uid_are_attributed_by_name_and_time() -> None:
    b = LedgerBuilder()
    old = b.notification("nr-1", retry_policy=POLICY)
    old.write("replica-a", phase="Failed")
    old.delete()
    nr = b.notification("nr-1", retry_policy=POLICY)  # same name, new uid
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1, uid="")
    b.call("slack", nr, attempt=1, uid="")
    nr.write("replica-a", phase="Sent", append=[nr.attempt("slack", 1, "success")])
    [v] = check(b, "nr-deliveries-match-records")
    assert v.object is not None and v.object.uid == nr.uid
    assert "received 2 calls but 1 attempt" in v.message


def test_deleted_mid_flight_allows_one_unrecorded_delivery() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1)
    nr.delete()
    assert check(b, "nr-deliveries-match-records") == []
    b.call("slack", nr, attempt=1)
    [v] = check(b, "nr-deliveries-match-records")
    assert "(allowed extra: 1 for deleted mid-flight)" in v.message


# ------------------------------------------------------------ eventually terminal


def test_eventually_terminal_only_when_quiet() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Retrying", append=[nr.attempt("slack", 1, "failed")])
    assert check(b, "nr-eventually-terminal") == []
    [v] = check(b, "nr-eventually-terminal", quiet=True)
    assert v.message == (
        f"still Retrying when the test went quiet (latest: rv {nr.rv} by "
        f"replica-a at {nr.versions[-1].t * 1000:.1f} ms; attempts slack 1/3 "
        "(failed))"
    )


def test_never_reconciled_and_deleted_objects() -> None:
    b = LedgerBuilder()
    b.notification("nr-1")
    gone = b.notification("nr-2")
    gone.write("replica-a", phase="Sending")
    gone.delete()
    [v] = check(b, "nr-eventually-terminal", quiet=True)
    assert v.object is not None and v.object.name == "nr-1"
    assert v.message.startswith("still without a phase when the test went quiet")


def test_an_object_being_deleted_is_exempt() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1")
    nr.obj["metadata"]["deletionTimestamp"] = "2025-12-26T10:00:01Z"
    nr.write("replica-a", phase="Sending")
    assert check(b, "nr-eventually-terminal", quiet=True) == []


# ------------------------------------------------------------ exact for the reference contract


def test_a_claim_taken_over_allows_the_second_delivery_and_is_named() -> None:
    # replica-a claimed slack #1 and delivered, but its record write was slower than the
    # claim timeout: replica-b took the claim over and delivered again. Documented
    # at-least-once behaviour, not a hidden delivery.
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending", claims=[nr.claim("slack", 1, "replica-a")])
    b.call("slack", nr, attempt=1, status=200, caller="replica-a")
    b.advance(60)
    took = nr.write("replica-b", claims=[nr.claim("slack", 1, "replica-b")])
    b.call("slack", nr, attempt=1, status=200, caller="replica-b")
    nr.write("replica-b", phase="Sent", append=[nr.attempt("slack", 1, "success")], claims=[])
    assert check(b, "nr-deliveries-match-records", quiet=True) == []
    # A third call is one too many: the message names the takeover it allowed for.
    b.call("slack", nr, attempt=1, status=200, caller="replica-a")
    [v] = check(b, "nr-deliveries-match-records", quiet=True)
    assert v.message == (
        f"slack endpoint received 3 calls but 1 attempt recorded in rv {nr.rv} (allowed "
        f"extra: 1 for 1 claim taken over (slack #1: replica-a's claim taken over by "
        f"replica-b in rv {took.rv})): a delivery is hidden"
    )
    assert v.evidence[0]["claims taken over"] == 1
    assert took.seq in v.seqs


def test_a_claim_renewed_after_its_attempt_was_recorded_is_no_takeover() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending", claims=[nr.claim("slack", 1, "replica-a")])
    b.call("slack", nr, attempt=1, status=503)
    nr.write("replica-a", append=[nr.attempt("slack", 1, "failed")], claims=[])
    # A stale write brings the old claim back, then another replica claims slot 1 again.
    nr.write("replica-b", claims=[nr.claim("slack", 1, "replica-b")])
    b.call("slack", nr, attempt=1, status=503)
    [v] = check(b, "nr-deliveries-match-records", quiet=True)
    assert "(allowed extra: 0)" in v.message


def test_everything_is_frozen_once_terminal() -> None:
    b = LedgerBuilder()
    nr = happy(b)
    sent = nr.rv
    late = nr.write(
        "replica-b",
        append=[nr.attempt("slack", 3, "success")],
        claims=[nr.claim("slack", 3, "replica-b")],
    )
    [v] = check(b, "nr-valid-phase-transitions")
    assert v.message == (
        "Sent object changed after it was terminal: attempt slack #3 added; totalAttempts "
        "2 -> 3; successfulDeliveries 1 -> 2; claim slack #3 by replica-b added "
        f"(rv {sent} -> rv {late.rv} by replica-b)"
    )
    assert [(r["attempts"], r["claims"]) for r in v.evidence] == [
        (2, "-"),
        (3, "slack #3 by replica-b"),
    ]


def test_a_terminal_object_written_again_unchanged_is_fine() -> None:
    b = LedgerBuilder()
    nr = happy(b)
    nr.write("replica-b")  # e.g. a condition refreshed: nothing the phase freezes
    assert check(b, "nr-valid-phase-transitions") == []


def _with_next(b: LedgerBuilder, nr: NotificationBuilder, number: int, due_in: float) -> Any:
    return nr.attempt("slack", number, "failed", nextAttemptAt=b.wall(b.now + due_in))


def test_spacing_is_judged_by_the_recorded_next_attempt_at_with_no_time_scale() -> None:
    # backoff(1) is 30 s, but the controller ran at a time scale the test never said and
    # recorded when the retry was due: 25 ms later. Made on time, it passes.
    b = LedgerBuilder(step=0)
    nr = b.notification("nr-1", retry_policy={"initialBackoffSeconds": 30})
    nr.write("replica-a", phase="Sending", append=[_with_next(b, nr, 1, 0.025)])
    b.advance(0.025)
    nr.write("replica-a", append=[nr.attempt("slack", 2, "failed")])
    assert check(b, "nr-retry-spacing") == []
    # Made 10 ms early, it fails, naming the recorded due time.
    b = LedgerBuilder(step=0)
    nr = b.notification("nr-1", retry_policy={"initialBackoffSeconds": 30})
    first = _with_next(b, nr, 1, 0.025)
    nr.write("replica-a", phase="Sending", append=[first])
    b.advance(0.015)
    second = nr.attempt("slack", 2, "failed")
    nr.write("replica-a", append=[second])
    [v] = check(b, "nr-retry-spacing")
    assert v.message == (
        f"slack attempt 2 was made at {second['timestamp']}, 10.0 ms before the nextAttemptAt "
        f"{first['nextAttemptAt']} recorded with attempt 1 [by the recorded nextAttemptAt]"
    )


def test_a_permanent_answer_retried_is_caught_from_the_endpoint() -> None:
    # The controller took a 404 for a retryable failure: every version it wrote is
    # consistent (attempt 1 failed, attempt 2 after the backoff); only the endpoint knows.
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending")
    first = b.call("slack", nr, attempt=1, status=404, caller="replica-a")
    nr.write("replica-a", phase="Retrying", append=[nr.attempt("slack", 1, "failed")])
    b.advance(1.0)
    again = b.call("slack", nr, attempt=2, status=404, caller="replica-a")
    retried = nr.write("replica-a", append=[nr.attempt("slack", 2, "failed")])
    assert check(b, "nr-retry-spacing") == []
    [v] = check(b, "nr-attempt-limits")
    assert v.message == (
        "slack attempt 2 was made after the endpoint answered attempt 1 with 404, a "
        "permanent failure"
    )
    assert v.rvs == (retried.rv,)
    assert {first.seq, again.seq} <= set(v.seqs)
    assert [r["endpoint answered"] for r in v.evidence] == [404, 404]


@pytest.mark.parametrize("status", [503, 429, 408, 0])
def test_retryable_answers_may_be_retried(status: int) -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending")
    b.call("slack", nr, attempt=1, status=status)
    nr.write("replica-a", phase="Retrying", append=[nr.attempt("slack", 1, "failed")])
    b.advance(1.0)
    b.call("slack", nr, attempt=2, status=200)
    nr.write("replica-a", phase="Sent", append=[nr.attempt("slack", 2, "success")])
    assert check(b, "nr-attempt-limits") == []


def test_side_effects_once_allows_a_delivery_per_claim_taken_over() -> None:
    # The pack answers pytest_ntinvariants_repeated_side_effects: the core oracle allows
    # the takeover's second delivery of slack #1, names it when a third comes, and without
    # the pack (no hook) keeps its at-most-once promise.
    import pytest_ntinvariants.packs.notifications as pack
    from pytest_ntinvariants.hookspecs import hook_relay

    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending", claims=[nr.claim("slack", 1, "replica-a")])
    b.call("slack", nr, attempt=1, status=200, caller="replica-a")
    took = nr.write("replica-b", claims=[nr.claim("slack", 1, "replica-b")])
    b.call("slack", nr, attempt=1, status=200, caller="replica-b")
    nr.write("replica-b", phase="Sent", append=[nr.attempt("slack", 1, "success")], claims=[])
    hook = hook_relay(pack)
    assert check(b, "side-effects-once", quiet=True, hook=hook) == []
    [alone] = check(b, "side-effects-once", quiet=True)
    assert alone.message == "slack received 2 successful calls with key 'slack #1'"
    b.call("slack", nr, attempt=1, status=200, caller="replica-a")
    [v] = check(b, "side-effects-once", quiet=True, hook=hook)
    assert v.message == (
        "slack received 3 successful calls with key 'slack #1' (1 claim taken over "
        f"(slack #1: replica-a's claim taken over by replica-b in rv {took.rv}) allow 2)"
    )
    # Another attempt's key gets nothing from that takeover.
    b.call("slack", nr, attempt=2, status=200, caller="replica-a")
    b.call("slack", nr, attempt=2, status=200, caller="replica-b")
    messages = {v.message for v in check(b, "side-effects-once", quiet=True, hook=hook)}
    assert "slack received 2 successful calls with key 'slack #2'" in messages
