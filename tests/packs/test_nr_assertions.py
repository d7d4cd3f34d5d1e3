"""``assert_attempts`` and ``assert_deliveries``: pass quietly, fail with the whole story."""

from __future__ import annotations

import re

import pytest
from nrledgers import POLICY, REPLAY

from pytest_ntinvariants.invariants import CheckContext
from pytest_ntinvariants.packs.notifications import (
    NotificationBuilder,
    assert_attempts,
    assert_deliveries,
)
from pytest_ntinvariants.packs.notifications import NotificationLedgerBuilder as LedgerBuilder


def stale_double(b: LedgerBuilder) -> NotificationBuilder:
    """Fix #2 of the seed: replica-b works from a stale read and delivers and records again."""
    nr = b.notification("nr-1", retry_policy=POLICY)
    b.watch("replica-a", nr, type="ADDED", delay=0.002)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    b.watch("replica-b", nr, delay=0.001)
    b.perturb("stale-b", "stale-read", "replica-b", "GETs served at rv 3")
    b.call("slack", nr, attempt=1, status=400)
    nr.write(
        "replica-a",
        phase="Failed",
        append=[
            nr.attempt("slack", 1, "failed", error="slack webhook returned 400", permanent=True)
        ],
    )
    b.read("replica-b", nr, rv=3, served_at=3)
    b.call("slack", nr, attempt=1, status=400)
    b.failed_write("replica-b", nr)
    nr.write(
        "replica-b",
        append=[
            nr.attempt("slack", 1, "failed", error="slack webhook returned 400", permanent=True)
        ],
    )
    return nr


def failure(excinfo: pytest.ExceptionInfo[AssertionError]) -> list[str]:
    return str(excinfo.value).splitlines()


def test_passing_counts_are_silent() -> None:
    b = LedgerBuilder()
    nr = stale_double(b)
    assert_attempts(b.ledger, "nr-1", count=2)
    assert_attempts(b.ledger, "nr-1", channel="slack", outcome="permanent", count=2)
    assert_attempts(b.ledger, nr.uid, channel="console", count=0)
    assert_attempts(b.ledger, "default/nr-1", outcome="success", count=0)
    assert_deliveries(b.ledger, "nr-1", channel="slack", count=2)
    assert_deliveries(b.ledger, nr.uid, count=2)


def test_assert_attempts_failure_tells_the_whole_story() -> None:
    b = LedgerBuilder()
    nr = stale_double(b)
    ctx = CheckContext(seed=1234, replay=REPLAY)
    with pytest.raises(AssertionError) as excinfo:
        assert_attempts(b.ledger, "nr-1", channel="slack", count=1, ctx=ctx)
    lines = failure(excinfo)
    assert lines[0] == "expected 1 slack attempt for default/nr-1, recorded 2 (deliveries: 2)"
    assert lines[1] == ""
    assert lines[2] == (
        f"NotificationRequest default/nr-1 (uid {nr.uid}): 5 versions, latest rv {nr.rv} (Failed)"
    )
    text = "\n".join(lines)
    # The attempts table: aligned columns, one row per attempt, with writer and rv.
    header = next(line for line in lines if line.strip().startswith("#  channel"))
    assert header.split() == [
        "#",
        "channel",
        "attempt",
        "outcome",
        "writer",
        "rv",
        "recorded",
        "ms",
        "timestamp",
        "error",
    ]
    rows = lines[lines.index(header) + 1 : lines.index(header) + 3]
    assert [r.split()[:6] for r in rows] == [
        ["1", "slack", "1", "failed", "(permanent)", "replica-a"],
        ["2", "slack", "1", "failed", "(permanent)", "replica-b"],
    ]
    assert all(
        len(r) > header.index("writer") and r[header.index("writer") - 1] == " " for r in rows
    )
    # The endpoint calls and the timeline of the race.
    assert "  endpoint calls about default/nr-1:" in lines
    assert re.search(r"^\s+t ms\s+endpoint\s+channel\s+attempt\s+status\s+detail$", text, re.M)
    assert re.search(r"lanes: 1=test  2=replica-a  3=replica-b  4=slack$", text, re.M)
    assert re.search(
        r"\| \| R \|  replica-b  GET default/nr-1 -> rv 3 STALE \(served at rv 3; "
        r"latest rv 4\)$",
        text,
        re.M,
    )
    assert re.search(
        r"\| \| ! \|  replica-b  UPDATE default/nr-1/status -> 409 Conflict$", text, re.M
    )
    assert re.search(r"replica-b  watch #1 got MODIFIED rv 3 \(\+1\.0 ms\)$", text, re.M)
    assert re.search(
        r"replica-b  perturbation stale-b \(stale-read\): GETs served at rv 3$", text, re.M
    )
    assert re.search(
        r"^    > +\d+\.\d{3}  \| \| \| C  slack      call slack attempt 1 -> 400$", text, re.M
    )
    # The seed the replay passes, saying which it is.
    assert lines[-2:] == ["seed: 1234 (session seed)", f"replay: {REPLAY}"]


def test_outcome_and_plural_wording() -> None:
    b = LedgerBuilder()
    stale_double(b)
    with pytest.raises(AssertionError) as excinfo:
        assert_attempts(b.ledger, "nr-1", channel="slack", outcome="failed", count=1)
    assert failure(excinfo)[0] == (
        "expected 1 failed slack attempt for default/nr-1, recorded 2 (deliveries: 2)"
    )
    with pytest.raises(AssertionError) as excinfo:
        assert_attempts(b.ledger, "nr-1", outcome="permanent", count=3)
    assert failure(excinfo)[0] == (
        "expected 3 permanently failed attempts for default/nr-1, recorded 2 (deliveries: 2)"
    )
    with pytest.raises(AssertionError) as excinfo:
        assert_attempts(b.ledger, "nr-1", outcome="success", count=1)
    assert failure(excinfo)[0].startswith("expected 1 successful attempt for default/nr-1, ")
    # No seed, no replay: the message ends with the timeline.
    assert not failure(excinfo)[-1].startswith(("seed", "replay"))


def test_assert_deliveries_failure() -> None:
    b = LedgerBuilder()
    stale_double(b)
    with pytest.raises(AssertionError) as excinfo:
        assert_deliveries(b.ledger, "nr-1", channel="slack", count=1, ctx=CheckContext(seed=99))
    lines = failure(excinfo)
    assert lines[0] == (
        "expected 1 slack delivery to default/nr-1, endpoints received 2 (recorded attempts: 2)"
    )
    assert lines[-1] == "seed: 99"
    schedule = "stale-read replica-b at=3\nwatch-latency replica-b delay=0.250"
    with pytest.raises(AssertionError) as excinfo:
        assert_deliveries(
            b.ledger,
            "nr-1",
            count=1,
            ctx=CheckContext(seed=99, schedule=schedule, replay="pytest x"),
        )
    assert failure(excinfo)[-5:] == [
        "seed: 99",
        "schedule:",
        "  stale-read replica-b at=3",
        "  watch-latency replica-b delay=0.250",
        "replay: pytest x",
    ]
    with pytest.raises(AssertionError) as excinfo:
        assert_deliveries(b.ledger, "nr-1", count=3)
    assert failure(excinfo)[0] == (
        "expected 3 deliveries to default/nr-1, endpoints received 2 (recorded attempts: 2)"
    )


def test_unknown_object_and_bad_outcome() -> None:
    b = LedgerBuilder()
    nr = stale_double(b)
    with pytest.raises(
        AssertionError,
        match=(
            rf"no object 'nr-9' \(namespace 'default'\) in the ledger; NotificationRequests "
            rf"known: default/nr-1 \(uid {nr.uid}\)"
        ),
    ):
        assert_attempts(b.ledger, "nr-9", count=1)
    with pytest.raises(AssertionError, match="no object 'nr-1' \\(namespace 'prod'\\)"):
        assert_deliveries(b.ledger, "nr-1", namespace="prod", count=1)
    with pytest.raises(ValueError, match="outcome must be one of success, failed, permanent"):
        assert_attempts(b.ledger, "nr-1", outcome="ok", count=1)


def test_lost_attempts_show_in_the_table() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Sending", append=[nr.attempt("slack", 1, "failed")])
    nr.write("replica-b", attempts=[])
    with pytest.raises(AssertionError) as excinfo:
        assert_attempts(b.ledger, "nr-1", count=1)
    lines = failure(excinfo)
    assert lines[0] == "expected 1 attempt for default/nr-1, recorded 0 (deliveries: 0)"
    assert any(line.split()[:3] == ["LOST", "slack", "1"] for line in lines)
    assert "    (none)" in lines  # no endpoint calls


def test_helpers_hide_their_own_frames(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from pytest_ntinvariants.packs.notifications import (
            NotificationLedgerBuilder,
            assert_attempts,
        )

        def test_it():
            b = NotificationLedgerBuilder()
            nr = b.notification("nr-1")
            nr.write("replica-a", phase="Sending", append=[nr.attempt("slack", 1, "failed")])
            assert_attempts(b.ledger, "nr-1", channel="slack", count=2)
        """
    )
    # pytest-benchmark, where installed, warns inside an xdist worker and that warning is
    # an error here; the other plugins only cost the inner run time.
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "-p",
        "no:asyncio",
        "-p",
        "no:benchmark",
        "-p",
        "no:hypothesispytest",
        "-p",
        "no:kmock",
        "-p",
        "no:anyio",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            '*assert_attempts(b.ledger, "nr-1", channel="slack", count=2)',
            "E*AssertionError: expected 2 slack attempts for default/nr-1, recorded 1 "
            "(deliveries: 0)",
        ]
    )
    assert "assertions.py" not in result.stdout.str()
    assert "__tracebackhide__" not in result.stdout.str()
