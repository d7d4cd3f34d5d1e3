"""``Harness.wait_quiet``: only a whole quiet period counts as quiet."""

from __future__ import annotations

import json
import threading
import urllib.request

from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.ledger import PerturbationFired, ReplicaEvent


def test_wait_quiet_is_false_when_activity_never_stops(ntinv: Harness) -> None:
    # Regression: the last wait before the deadline was cut short and, when nothing
    # arrived in that sliver, reported quiet although the system never paused for
    # ``period`` (a livelocked controller looked quiet after ``timeout``).
    stop = threading.Event()

    def busy() -> None:
        while not stop.wait(0.01):
            ntinv.ledger.record(ReplicaEvent, identity="busy", action="started")

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    try:
        assert ntinv.wait_quiet(period=0.1, timeout=0.35) is False
    finally:
        stop.set()
        thread.join()
    assert ntinv.wait_quiet(period=0.05, timeout=2.0) is True


def test_wait_quiet_needs_a_whole_period_within_the_timeout(ntinv: Harness) -> None:
    assert ntinv.wait_quiet(period=0.2, timeout=0.1) is False


def test_wait_quiet_waits_for_a_request_a_rule_still_holds_back(ntinv: Harness) -> None:
    """A request held by a latency rule kept sleeping after the rules were removed, and
    quiet was declared before its write landed: a bug seen only in that write passed."""
    kubeconfig_token = ntinv.server.token_for("slow")
    ntinv.perturb.latency(0.4, identity="slow", verb="create")
    body = json.dumps({"metadata": {"name": "late"}}).encode()
    request = urllib.request.Request(
        f"{ntinv.server.url}/api/v1/namespaces/default/configmaps",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {kubeconfig_token}", "Content-Type": "application/json"},
    )
    fired = threading.Event()  # the rule records its firing just before it holds
    undo = ntinv.ledger.subscribe(
        lambda e: fired.set() if isinstance(e, PerturbationFired) else None
    )
    sent = threading.Thread(target=lambda: urllib.request.urlopen(request, timeout=10).close())
    sent.start()
    try:
        assert fired.wait(5)
        undo()
        ntinv.perturb.undo()  # the schedule ends; the held request sleeps on
        assert ntinv.wait_quiet(period=0.05, timeout=5.0) is True
        # Quiet only once the held write landed.
        assert ntinv.server.get("v1", "ConfigMap", "late")["metadata"]["name"] == "late"
    finally:
        sent.join()
