"""TLS specs of the original integration suite, through the controller.

The original called its Slack service directly against ``httptest.NewTLSServer``
variants (specs 107-111: self-signed, expired, wrong host, valid, handshake failure;
"not retryable", "TLS certificate validation failed"), and its controller-level TLS specs
(112-117) were loose because the mock spoke plain HTTP. Here the fake Slack endpoint
serves HTTPS in each mode and the controller trusts the endpoint's CA through
``ControllerConfig.ca_bundle``, as a cluster would trust Slack's: a broken certificate is
a permanent failure (BR-NOT-058), one attempt and Failed, never retried.
"""

from __future__ import annotations

import pytest
from nrkit import NR_INVARIANTS, SCENARIO_TIMEOUTS, nr, policy, status_of, wait_terminal

import reference_controller as rc
from pytest_ntinvariants.harness import Harness, SinkPool
from pytest_ntinvariants.packs.notifications import assert_attempts, assert_deliveries
from pytest_ntinvariants.sinks import Sink, TlsMode

pytestmark = [NR_INVARIANTS, pytest.mark.ntinv_replicas(2)]


@pytest.fixture
def slack(ntinv_sinks: SinkPool, request: pytest.FixtureRequest) -> Sink:
    """The fake Slack endpoint over HTTPS, in the TLS mode a test names by indirect
    parametrization ("valid" otherwise)."""
    mode: TlsMode = getattr(request, "param", "valid")
    return ntinv_sinks.get("slack", tls=mode)


@pytest.fixture
def nr_config(nr_config: rc.ControllerConfig, slack: Sink, webhook: Sink) -> rc.ControllerConfig:
    """Trust the Slack endpoint's CA; point the webhook channel at ``https://`` on the
    plain-HTTP webhook endpoint (a TLS handshake that cannot succeed); patient deliveries
    (``nrkit.SCENARIO_TIMEOUTS``)."""
    assert slack.ca_path is not None
    return nr_config.replace(
        ca_bundle=slack.ca_path,
        webhook_url=webhook.url.replace("http://", "https://", 1),
        **SCENARIO_TIMEOUTS,
    )


@pytest.mark.parametrize("slack", ["self-signed", "expired", "wrong-host"], indirect=True)
def test_broken_certificate_is_permanent(ntinv: Harness, slack: Sink) -> None:
    """Specs 107-109, 114, 117: a self-signed, expired or wrong-host certificate: exactly
    one attempt, permanent ("TLS certificate validation failed"), then Failed; with
    RP{3,1} there are no retries at all (spec 117 allowed up to 3)."""
    ntinv.apply(nr("nr-1", ["slack"], retryPolicy=policy(3)))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert (status["phase"], status["reason"]) == ("Failed", "AllDeliveriesFailed")
    [attempt] = status["deliveryAttempts"]
    assert attempt["permanent"] is True
    assert "TLS certificate validation failed" in attempt["error"]
    assert_attempts(ntinv, "nr-1", channel="slack", outcome="permanent", count=1)
    # The handshake fails before any HTTP request: the endpoint records no call.
    assert slack.count() == 0


def test_valid_certificate_is_delivered(ntinv: Harness, slack: Sink) -> None:
    """Spec 110: a valid certificate from the configured CA: Sent, one call over HTTPS."""
    ntinv.apply(nr("nr-1", ["slack"], retryPolicy=policy(3)))
    assert status_of(wait_terminal(ntinv, "nr-1"))["phase"] == "Sent"
    assert_attempts(ntinv, "nr-1", channel="slack", outcome="success", count=1)
    assert_deliveries(ntinv, "nr-1", channel="slack", count=1)


@pytest.mark.parametrize("slack", ["self-signed"], indirect=True)
def test_tls_failure_beside_a_working_channel_is_partially_sent(
    ntinv: Harness, slack: Sink
) -> None:
    """Spec 115 (Successful > 0 and Failed > 0; exact here): console succeeds, Slack's
    certificate is self-signed: PartiallySent with one success and one permanent
    failure."""
    ntinv.apply(nr("nr-1", ["console", "slack"], retryPolicy=policy(3)))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert status["phase"] == "PartiallySent"
    assert (status["successfulDeliveries"], status["failedDeliveries"]) == (1, 1)
    assert_attempts(ntinv, "nr-1", channel="console", outcome="success", count=1)
    assert_attempts(ntinv, "nr-1", channel="slack", outcome="permanent", count=1)


def test_tls_handshake_failure_is_permanent(ntinv: Harness, webhook: Sink) -> None:
    """Specs 111, 114: an ``https://`` URL whose endpoint does not speak TLS: the
    handshake fails, permanently ("TLS handshake failed"): one attempt, then Failed."""
    ntinv.apply(nr("nr-1", ["webhook"], retryPolicy=policy(3)))
    status = status_of(wait_terminal(ntinv, "nr-1"))
    assert status["phase"] == "Failed"
    [attempt] = status["deliveryAttempts"]
    assert attempt["permanent"] is True
    assert "TLS handshake failed" in attempt["error"]
    assert webhook.count() == 0
