"""Unreachable endpoints: connection refused and timeouts are retryable (specs 112, 113).

The original's specs were loose (its mock always answered: "Failed or Sent"). Here Slack's
URL points at a port that refuses connections, and the webhook endpoint never answers
within the controller's HTTP timeout: both are transport errors, retryable, so exactly
``maxAttempts`` attempts are made with the backoff between them, then Failed
(MaxRetriesExhausted).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from nrkit import NR_INVARIANTS, nr, policy, status_of, wait_terminal

import reference_controller as rc
from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.packs.notifications import assert_attempts, assert_deliveries
from pytest_ntinvariants.sinks import Gate, Sink, reply

pytestmark = [NR_INVARIANTS, pytest.mark.ntinv_replicas(2)]

#: The controller's HTTP timeout in this module: short, so spec 113 stays fast, but long
#: enough that a loaded machine still gets each request to the endpoint before it expires
#: (a request that never arrived would be a recorded attempt the endpoint never saw).
HTTP_TIMEOUT = 0.5


@pytest.fixture
def refused_url() -> Iterator[str]:
    """An http:// URL on a port that refuses connections: bound (so no one else gets the
    port while the test runs) but never listening, so a connect is answered with RST."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


@pytest.fixture
def nr_config(nr_config: rc.ControllerConfig, refused_url: str) -> rc.ControllerConfig:
    """Slack at the refusing port; deliveries time out after ``HTTP_TIMEOUT``."""
    return nr_config.replace(slack_webhook_url=refused_url, http_timeout=HTTP_TIMEOUT)


def test_connection_refused_is_retried_until_max_attempts(ntinv: Harness) -> None:
    """Spec 112: connection refused is retryable: exactly 3 attempts (RP{3,1,2,60}), each
    a connection error, then Failed with MaxRetriesExhausted."""
    ntinv.apply(nr("nr-1", ["slack"], retryPolicy=policy(3)))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert (status["phase"], status["reason"]) == ("Failed", "MaxRetriesExhausted")
    attempts = status["deliveryAttempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert all("connection failed" in a["error"] and not a["permanent"] for a in attempts)
    assert_attempts(ntinv, "nr-1", channel="slack", outcome="failed", count=3)


def test_timeout_is_retried_until_max_attempts(ntinv: Harness, webhook: Sink) -> None:
    """Spec 113: the endpoint takes the request and never answers (a gate that is never
    opened): each delivery times out after the HTTP timeout, retryably: exactly 2
    attempts (RP{2,1,2,60}) and 2 calls received, then Failed."""
    webhook.script(reply(200, hold=Gate()))
    ntinv.apply(nr("nr-1", ["webhook"], retryPolicy=policy(2)))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert (status["phase"], status["reason"]) == ("Failed", "MaxRetriesExhausted")
    attempts = status["deliveryAttempts"]
    assert [a["attempt"] for a in attempts] == [1, 2]
    for attempt in attempts:
        assert attempt["error"] == f"webhook delivery timed out after {HTTP_TIMEOUT:g}s"
        # Less a millisecond: the duration is rounded to microseconds, and the event loop
        # may fire a timer up to its clock resolution early.
        assert attempt["durationSeconds"] >= HTTP_TIMEOUT - 0.001
    assert_attempts(ntinv, "nr-1", channel="webhook", outcome="failed", count=2)
    assert_deliveries(ntinv, "nr-1", channel="webhook", count=2)
