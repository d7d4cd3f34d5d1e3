from __future__ import annotations

import pytest
from nrkit import NR_INVARIANTS, nr, policy, wait_terminal

from pytest_ntinvariants.sinks import reply

pytestmark = [NR_INVARIANTS]


@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_watch_latency((0, 0.02))
def test_502_then_ok(ntinv, slack) -> None:
    slack.script(reply(502), times=1)
    ntinv.apply(nr("nr-1", ["slack"], retryPolicy=policy(3)))
    obj = wait_terminal(ntinv, "nr-1")
    assert obj["status"]["phase"] == "Sent"
    ntinv.assert_attempts("nr-1", channel="slack", count=2)
    ntinv.assert_deliveries("nr-1", channel="slack", count=2)
