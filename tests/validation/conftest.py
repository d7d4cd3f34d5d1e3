"""The validation suite's cluster: the reference controller as replicas against the fake
API server, with fake Slack and webhook endpoints, retries run in milliseconds.

``ntinv_operator`` is the plugin's extension point: the ``ntinv_replicas`` marker runs
whatever registry factory it returns. Tests choose the recording strategy with the
``nr_strategy`` fixture (parametrize it indirectly to run a historical variant).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import kopf
import pytest
from nrkit import TIME_SCALE

import reference_controller as rc
from pytest_ntinvariants.apiserver import FakeApiServer
from pytest_ntinvariants.harness import Harness, SinkPool
from pytest_ntinvariants.operators import connection_info
from pytest_ntinvariants.sinks import Sink

if TYPE_CHECKING:
    from kubernetes.client import CustomObjectsApi


@pytest.fixture
def nr_strategy(request: pytest.FixtureRequest) -> Any:
    """The recording strategy replicas run: the reference one unless parametrized."""
    return getattr(request, "param", None) or rc.ReferenceStrategy()


@pytest.fixture
def slack(ntinv_sinks: SinkPool) -> Sink:
    """The fake Slack incoming webhook (answers 200 ``ok`` unless scripted)."""
    return ntinv_sinks.get("slack")


@pytest.fixture
def webhook(ntinv_sinks: SinkPool) -> Sink:
    """The fake generic webhook endpoint."""
    return ntinv_sinks.get("webhook")


@pytest.fixture
def nr_config(slack: Sink, webhook: Sink, ntinv_schedule_seed: int | None) -> rc.ControllerConfig:
    """The controller's configuration: both endpoints, millisecond backoff, short claim
    timeouts (so a crashed replica's claim is taken over within the test)."""
    return rc.ControllerConfig(
        slack_webhook_url=slack.url,
        webhook_url=webhook.url,
        time_scale=TIME_SCALE,
        http_timeout=1.0,
        claim_timeout=2.0,
        error_backoff=0.01,
        seed=ntinv_schedule_seed or 0,
    )


@pytest.fixture
def ntinv_operator(
    ntinv_apiserver: FakeApiServer, nr_config: rc.ControllerConfig, nr_strategy: Any
) -> Callable[[str], kopf.OperatorRegistry]:
    """The reference controller, one fresh registry per replica identity."""
    ntinv_apiserver.apply(rc.crd_manifest())

    def factory(identity: str) -> kopf.OperatorRegistry:
        # The replica's own token, and the server's CA when it serves https
        # (--ntinv-apiserver-tls).
        connection = connection_info(ntinv_apiserver, identity)
        return rc.build_registry(
            nr_config.replace(identity=identity),
            identity=identity,
            connection=connection,
            strategy=nr_strategy,
        )

    return factory


# --------------------------------------------------------------------------------------
# Scenario fixtures (test_scenarios*.py)
# --------------------------------------------------------------------------------------


@pytest.fixture
def kube(ntinv: Harness) -> Iterator[CustomObjectsApi]:
    """The official ``kubernetes`` client as identity ``test``, for what the original suite
    did through its client: creates the API server may refuse (the error a user sees),
    spec updates, deletes. Requests it makes are in the ledger like the controller's."""
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(ntinv.server.kubeconfig("test")))
    try:
        yield client.CustomObjectsApi(api_client)
    finally:
        api_client.close()


# --------------------------------------------------------------------------------------
# Historical variants (test_variants*.py): time to detection in the terminal summary
# --------------------------------------------------------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the time to detection each variant check measured (``variant_detection``
    user properties; they travel with the reports, so xdist runs print them too)."""
    rows = []
    for report in terminalreporter.stats.get("passed", []):
        for key, value in getattr(report, "user_properties", ()):
            if key == "variant_detection":
                rows.append(json.loads(value))
    if not rows:
        return
    terminalreporter.section("historical variants: time to detection")
    for row in sorted(rows, key=lambda r: str(r["variant"])):
        runs = ", ".join(f"{ms:.0f}" for ms in row["runs_ms"])
        terminalreporter.write_line(
            f"{row['variant']:<20} {row['median_ms']:>6.0f} ms median (setup + call; runs: "
            f"{runs} ms)"
        )
