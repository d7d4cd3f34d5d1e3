"""How the harness decides the system is quiet: silence must outlast the replicas' own
reaction time, which grows on a loaded machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_ntinvariants.apiserver import FakeApiServer
from pytest_ntinvariants.harness import Harness, RunInfo
from pytest_ntinvariants.ledger import Ledger, RequestServed, WatchDelivered


@pytest.fixture
def harness() -> Iterator[Harness]:
    with FakeApiServer() as server:
        h = Harness(server, Ledger(), RunInfo("t", 0, "pytest t"))
        yield h
        h.close()


def _delivered(ledger: Ledger, who: str, t: float) -> None:
    ledger.record(
        WatchDelivered,
        t=t,
        identity=who,
        watcher=1,
        resource="/configmaps",
        type="MODIFIED",
        namespace="default",
        name="c",
        rv=1,
        delay=0.0,
    )


def _request(ledger: Ledger, who: str, t: float) -> None:
    ledger.record(
        RequestServed,
        t=t,
        identity=who,
        verb="patch",
        resource="/configmaps",
        namespace="default",
        name="c",
        subresource="",
        status=200,
        rv="2",
    )


def test_reaction_time_is_the_slowest_answer_to_an_event(harness: Harness) -> None:
    led = harness.ledger
    _delivered(led, "a", 1.00)
    _request(led, "a", 1.02)  # a reacted in 20 ms
    _delivered(led, "b", 1.10)
    _delivered(led, "b", 1.15)  # still waiting since 1.10
    _request(led, "b", 1.19)  # b reacted in 90 ms
    _request(led, "a", 1.30)  # nothing was waiting for a: not a reaction
    assert harness.reaction_time() == pytest.approx(0.09)


def test_late_requests_are_not_reactions(harness: Harness) -> None:
    _delivered(harness.ledger, "a", 1.0)
    _request(harness.ledger, "a", 3.0)  # a timer two seconds later
    assert harness.reaction_time() == 0.0


def test_wait_quiet_needs_a_whole_period(harness: Harness) -> None:
    assert harness.wait_quiet(0.01, timeout=1.0)
    assert not harness.wait_quiet(0.5, timeout=0.2)  # a period longer than the deadline
