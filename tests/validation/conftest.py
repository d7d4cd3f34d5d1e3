"""The validation suite's cluster: the reference controller as replicas against the fake
API server, with fake Slack and webhook endpoints, retries run in milliseconds.

``ntinv_operator`` is the plugin's extension point: the ``ntinv_replicas`` marker runs
whatever registry factory it returns. Tests choose the recording strategy with the
``nr_strategy`` fixture (parametrize it indirectly to run a historical variant).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf
import pytest
from nrkit import TIME_SCALE

import reference_controller as rc
from pytest_ntinvariants.apiserver import FakeApiServer
from pytest_ntinvariants.harness import SinkPool
from pytest_ntinvariants.sinks import Sink


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
        connection = kopf.ConnectionInfo(
            server=ntinv_apiserver.url, token=ntinv_apiserver.token_for(identity)
        )
        return rc.build_registry(
            nr_config.replace(identity=identity),
            identity=identity,
            connection=connection,
            strategy=nr_strategy,
        )

    return factory
