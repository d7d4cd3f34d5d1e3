"""``Harness.wait_quiet``: only a whole quiet period counts as quiet."""

from __future__ import annotations

import threading

from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.ledger import ReplicaEvent


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
