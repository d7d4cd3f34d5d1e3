"""Endpoint specs of the original integration suite: Retry-After, error texts, the
webhook and unconfigured channels, and the audit records of each attempt.

Ports of the original controller's integration specs 52, 60-63, 65
and 66, and of its channel rules that the original suite could not reach
(it registered only console and Slack): 429 with Retry-After, the webhook channel, and
email/teams/sms failing permanently as "not configured". Two replicas, invariants on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from nrkit import (
    NR_INVARIANTS,
    SCENARIO_TIMEOUTS,
    TIME_SCALE,
    AuditLog,
    nr,
    parse_rfc3339,
    policy,
    status_of,
    uid_of,
    wait_terminal,
)

import reference_controller as rc
from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.packs.notifications import assert_attempts, assert_deliveries
from pytest_ntinvariants.sinks import Sink, reply

pytestmark = [NR_INVARIANTS, pytest.mark.ntinv_replicas(2)]


@pytest.fixture
def nr_config(nr_config: rc.ControllerConfig) -> rc.ControllerConfig:
    """The suite's configuration with patient deliveries (``nrkit.SCENARIO_TIMEOUTS``)."""
    return nr_config.replace(**SCENARIO_TIMEOUTS)


@pytest.fixture
def audit() -> Iterator[AuditLog]:
    """The replicas' audit records (both replicas log to the same in-process logger)."""
    handler = AuditLog()
    logger = logging.getLogger(AuditLog.LOGGER)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_429_retry_after_is_honoured(ntinv: Harness, slack: Sink) -> None:
    """429 is retryable and its Retry-After is the minimum delay (the original's
    BR-NOT-052). The controller scales Retry-After by its time scale like every other
    delay, so "Retry-After: 100" means 100 x 0.001 = 100 ms here -- far above the
    policy's 1 ms backoff: the retry waits for the endpoint, not for the policy."""
    slack.script(reply(429, retry_after=100), times=1)
    ntinv.apply(nr("nr-1", ["slack"], retryPolicy=policy(3)))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert status["phase"] == "Sent"
    first, second = status["deliveryAttempts"]
    assert (first["status"], first["permanent"], second["status"]) == ("failed", False, "success")
    assert "HTTP 429" in first["error"]
    wait = timedelta(seconds=100 * TIME_SCALE)
    assert parse_rfc3339(first["nextAttemptAt"]) - parse_rfc3339(first["timestamp"]) >= wait
    calls = slack.calls_for(name="nr-1")
    assert [c.status for c in calls] == [429, 200]
    # Arrival times: the second call came at least Retry-After after the first was answered
    # (the first call arrived before it was answered, so this gap is a lower bound too).
    # Less a nanosecond: on a virtual clock the gap is exact but for float rounding.
    assert calls[1].monotonic - calls[0].monotonic >= wait.total_seconds() - 1e-9
    assert_deliveries(ntinv, "nr-1", channel="slack", count=2)


def test_large_error_bodies_are_truncated(ntinv: Harness, slack: Sink) -> None:
    """Spec 52 (the original's mock never failed; exact here): a 500 with a 20 KB body:
    the recorded error names the status and keeps only an excerpt of the body."""
    slack.script(reply(500, body="upstream exploded; " * 1000))
    ntinv.apply(nr("nr-1", ["slack"], retryPolicy=policy(1)))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert status["phase"] == "Failed"
    [attempt] = status["deliveryAttempts"]
    assert attempt["error"].startswith("slack endpoint returned HTTP 500: upstream exploded;")
    assert len(attempt["error"]) < 300


def test_webhook_channel_posts_the_notification_document(ntinv: Harness, webhook: Sink) -> None:
    """The webhook channel (an enum value only in the original, so never delivered there):
    one POST of the notification as JSON, with the attribution and idempotency headers;
    Sent."""
    links = [{"service": "grafana", "url": "https://grafana.example/d/1", "label": "Dashboard"}]
    ntinv.apply(
        nr("nr-1", ["webhook"], type="escalation", metadata={"team": "sre"}, actionLinks=links)
    )
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert status["phase"] == "Sent"
    [call] = webhook.calls_for(name="nr-1")
    uid = uid_of(ntinv, "nr-1")
    assert call.method == "POST"
    assert call.headers["Content-Type"].startswith("application/json")
    assert call.headers["Idempotency-Key"] == f"{uid}/webhook/1"
    document = call.json
    expected = {
        "notification_name": "nr-1",
        "namespace": "default",
        "uid": uid,
        "type": "escalation",
        "priority": "medium",
        "subject": "subject nr-1",
        "body": "body of nr-1",
        "channels": ["webhook"],
        "metadata": {"team": "sre"},
        "action_links": links,
        "channel": "webhook",
        "attempt": 1,
        "idempotency_key": f"{uid}/webhook/1",
    }
    assert {key: document[key] for key in expected} == expected
    assert_deliveries(ntinv, "nr-1", channel="webhook", count=1)


def test_unconfigured_channels_fail_permanently(ntinv: Harness) -> None:
    """email, teams and sms have no implementation (the original: "channel not
    registered", not retryable): each gets exactly one permanent attempt "channel not
    configured: <name>", and the request Fails with AllDeliveriesFailed."""
    channels = ["email", "teams", "sms"]
    ntinv.apply(nr("nr-1", channels))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert (status["phase"], status["reason"]) == ("Failed", "AllDeliveriesFailed")
    attempts = status["deliveryAttempts"]
    assert sorted(a["channel"] for a in attempts) == sorted(channels)
    for attempt in attempts:
        assert attempt["permanent"] is True
        expected = f"permanent failure: channel not configured: {attempt['channel']}"
        assert attempt["error"] == expected
    for channel in channels:
        assert_attempts(ntinv, "nr-1", channel=channel, outcome="permanent", count=1)


# -- audit records (controller_audit_emission_test.go) -------------------------------------

#: The ADR-034 envelope every record carries (spec 65).
AUDIT_FIELDS = {
    "event_type",
    "category",
    "actor",
    "resource",
    "correlation_id",
    "namespace",
    "outcome",
    "timestamp",
    "channel",
    "attempt",
}


def test_one_audit_record_per_attempt(ntinv: Harness, slack: Sink, audit: AuditLog) -> None:
    """Specs 60-63, 65, 66 (the original queried its audit store; here the controller's
    audit log): exactly one record per attempt. Console and Slack successes are
    ``notification.message.sent`` with outcome success and correlation_id = the uid
    (60, 61), or ``metadata.remediationRequestName`` when set (62); two channels give two
    records (63); each Slack 503 is a ``notification.message.failed`` record with outcome
    failure and error_type transient (66); every record has the ADR-034 fields (65)."""
    slack.script(reply(503), name="nr-failing")
    ntinv.apply(nr("nr-console", ["console"]))
    ntinv.apply(nr("nr-slack", ["slack"], metadata={"remediationRequestName": "rr-7"}))
    ntinv.apply(nr("nr-both", ["console", "slack"]))
    ntinv.apply(nr("nr-failing", ["slack"], retryPolicy=policy(2)))
    expected = {"nr-console": 1, "nr-slack": 1, "nr-both": 2, "nr-failing": 2}
    records = {}
    for name, count in expected.items():
        wait_terminal(ntinv, name)
        records[name] = audit.wait_for(ntinv, uid_of(ntinv, name), count)
    assert ntinv.wait_quiet(), "the system did not go quiet"
    for name, count in expected.items():
        mine = audit.of(uid_of(ntinv, name))
        assert len(mine) == count, (name, mine)
        assert len({r["idempotency_key"] for r in mine}) == count, name
        for record in mine:
            assert record.keys() >= AUDIT_FIELDS, (name, record)
            assert record["category"] == "notification"
            assert record["actor"] == "service/notification-controller"
            assert record["resource"] == f"NotificationRequest/{name}"
    [console] = records["nr-console"]
    assert (console["event_type"], console["outcome"], console["channel"]) == (
        "notification.message.sent",
        "success",
        "console",
    )
    assert console["correlation_id"] == uid_of(ntinv, "nr-console")
    assert records["nr-slack"][0]["correlation_id"] == "rr-7"
    assert sorted(r["channel"] for r in records["nr-both"]) == ["console", "slack"]
    for record in records["nr-failing"]:
        assert (record["event_type"], record["outcome"], record["error_type"]) == (
            "notification.message.failed",
            "failure",
            "transient",
        )
        assert "HTTP 503" in record["error"]
    assert sorted(r["attempt"] for r in records["nr-failing"]) == [1, 2]
