"""Watch streams keep resourceVersion order when writes come from several threads and when
a hold is released while writes go on.

Both were seen in the validation suite as ``resource-version-monotonic`` violations: a
test's create (made on the test's thread) reached a stream after the controller's status
write that followed it (rv 7 before rv 6), and events held for a replica reached its
stream after a newer one written while the hold was being released. Each test plays the
stream writer by hand: it takes whatever is queued at the moments the real writer could
run, so the order on the wire is checked, not only the order in the queue.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from pytest_ntinvariants.apiserver import Event, Store, WriteContext
from pytest_ntinvariants.apiserver.selectors import FieldSelector, LabelSelector
from pytest_ntinvariants.apiserver.watch import Watcher, WatchHub
from pytest_ntinvariants.ledger import Ledger
from pytest_ntinvariants.perturb import Perturber, Target
from pytest_ntinvariants.perturb.triggers import Trigger


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop this thread plays the server's loop thread for (run by hand)."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        loop.close()


def _events(count: int) -> tuple[Store, list[Event]]:
    """``count`` committed ConfigMap events (rv order), without any watcher attached."""
    store = Store(seed=1)
    cms = store.registry.lookup("", "v1", "configmaps")
    assert cms is not None
    events: list[Event] = []
    undo = store.subscribe(events.append)
    for i in range(count):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"cm-{i}"}}
        store.create(cms, "default", body, WriteContext(identity="test", verb="create"))
    undo()
    return store, events


def _watcher(store: Store, loop: asyncio.AbstractEventLoop, identity: str = "b") -> Watcher:
    cms = store.registry.lookup("", "v1", "configmaps")
    assert cms is not None
    return Watcher(cms, None, LabelSelector(), FieldSelector(), identity, loop)


def _write(watcher: Watcher) -> list[int]:
    """What the stream writer would send now: everything due at the head of the queue."""
    sent = []
    while watcher.pending:
        sent.append(watcher.pending.popleft().version.rv)
    return sent


def _run_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def test_an_event_from_another_thread_is_not_overtaken(loop: asyncio.AbstractEventLoop) -> None:
    store, (first, second) = _events(2)
    watcher = _watcher(store, loop)
    # The first write happens on another thread (a test's apply): it hops to the loop.
    thread = threading.Thread(target=watcher.offer, args=(first,))
    thread.start()
    thread.join()
    # The second happens on the loop thread itself (a client's request), before the hop.
    watcher.offer(second)
    wire = _write(watcher)
    _run_callbacks(loop)
    wire += _write(watcher)
    assert wire == [first.rv, second.rv]


def test_a_hold_released_while_writes_go_on_keeps_the_order(
    loop: asyncio.AbstractEventLoop,
) -> None:
    store, (held, newer) = _events(2)
    perturber = Perturber(store, WatchHub(store), Ledger())
    watcher = _watcher(store, loop)
    watcher.on_delivery = perturber.on_delivery
    release = Trigger("release")
    perturber.hold(target=Target(identity="b"), until=release)
    watcher.offer(held)
    assert _write(watcher) == []
    # The trigger fires on another thread (a sink call, the test) ...
    thread = threading.Thread(target=release.fire)
    thread.start()
    thread.join()
    # ... and a newer event is written on the loop before the release gets there.
    watcher.offer(newer)
    wire = _write(watcher)
    _run_callbacks(loop)
    wire += _write(watcher)
    assert wire == [held.version.rv, newer.version.rv]
    assert perturber.rules() == []  # fully released: the rule is gone
    # Later events pass straight through.
    _, (later,) = _events(1)
    watcher.offer(later)
    assert _write(watcher) == [later.version.rv]
