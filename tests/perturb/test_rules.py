"""Perturbation rules against a real FakeApiServer over HTTP: each acts on its target only,
is recorded in the ledger, and undoes cleanly."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_ntinvariants.apiserver import FakeApiServer, RequestInfo, errors
from pytest_ntinvariants.harness import attach_recorder
from pytest_ntinvariants.ledger import Ledger, PerturbationFired, RequestServed, WatchDelivered
from pytest_ntinvariants.perturb import Fault, Perturber, Rule, Schedule, Target
from pytest_ntinvariants.perturb._values import FAULT_CODES
from pytest_ntinvariants.perturb.schedule import Step

CM = "/api/v1/namespaces/default/configmaps"


class Client:
    """A tiny synchronous client with its own identity (bearer token)."""

    def __init__(self, server: FakeApiServer, identity: str) -> None:
        self.server = server
        self.token = server.token_for(identity)

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any], Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.server.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), json.loads(resp.read())
        except urllib.error.HTTPError as e:
            with e:
                return e.code, dict(e.headers), json.loads(e.read())

    def patch(self, name: str, data: dict[str, str]) -> tuple[int, dict[str, Any], Any]:
        return self.request("PATCH", f"{CM}/{name}", {"data": data}, "application/merge-patch+json")

    def watch(self, query: str = "") -> Iterator[dict[str, Any]]:
        """Open a watch now (so it is registered before the caller writes) and iterate
        its events; the stream is closed when the iterator is exhausted or collected."""
        req = urllib.request.Request(
            f"{self.server.url}{CM}?watch=true&{query}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        resp = urllib.request.urlopen(req, timeout=10)

        def events() -> Iterator[dict[str, Any]]:
            with resp:
                while line := resp.readline():
                    yield json.loads(line)

        return events()


@pytest.fixture
def env() -> Iterator[tuple[FakeApiServer, Ledger, Perturber]]:
    yield from _env(Ledger())


@pytest.fixture
def clock() -> list[float]:
    """A hand-moved clock for the ledger: ``clock[0] += s`` lets ``s`` seconds pass."""
    return [1000.0]


@pytest.fixture
def clocked_env(clock: list[float]) -> Iterator[tuple[FakeApiServer, Ledger, Perturber]]:
    """``env`` whose ledger (and so every time-based rule) reads ``clock``."""
    yield from _env(Ledger(clock=lambda: clock[0]))


def _env(ledger: Ledger) -> Iterator[tuple[FakeApiServer, Ledger, Perturber]]:
    with FakeApiServer() as server:
        recorder = attach_recorder(server, ledger)
        perturber = Perturber(server.store, server.hub, ledger, seed=7)
        handle = server.add_interceptor(perturber)
        yield server, ledger, perturber
        perturber.undo()
        handle.remove()
        recorder.detach()


def _seed_cm(client: Client, name: str = "x", versions: int = 3) -> list[str]:
    status, _, obj = client.request("POST", CM, {"metadata": {"name": name}, "data": {"n": "0"}})
    assert status == 201
    rvs = [obj["metadata"]["resourceVersion"]]
    for i in range(1, versions):
        status, _, obj = client.patch(name, {"n": str(i)})
        assert status == 200
        rvs.append(obj["metadata"]["resourceVersion"])
    return rvs


def test_stale_reads_serve_the_target_an_older_version(env: Any) -> None:
    server, ledger, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rvs = _seed_cm(a)
    perturber.stale_reads(versions=1, identity="b")
    assert a.request("GET", f"{CM}/x")[2]["data"] == {"n": "2"}
    assert b.request("GET", f"{CM}/x")[2]["data"] == {"n": "1"}
    listed = b.request("GET", CM)[2]
    assert [i["data"] for i in listed["items"]] == [{"n": "1"}]
    served = [r for r in ledger.requests(identity="b") if r.verb == "get"]
    assert served[0].served_at == int(rvs[1])
    assert ledger.perturbations(identity="b")[0].action == "stale-read"


def test_stale_reads_never_predate_the_object(env: Any) -> None:
    server, _, perturber = env
    a = Client(server, "a")
    _seed_cm(a, versions=1)
    perturber.stale_reads(versions=5, identity="a")
    status, _, obj = a.request("GET", f"{CM}/x")
    assert status == 200 and obj["data"] == {"n": "0"}


def test_a_view_versions_behind_catches_up_as_a_cache_does(
    clocked_env: Any, clock: list[float]
) -> None:
    """A replica read one version behind for as long as nothing else wrote: a correct
    controller re-reading after a conflict got the same stale object forever."""
    server, _, perturber = clocked_env
    a, b = Client(server, "a"), Client(server, "b")
    _seed_cm(a)
    perturber.stale_reads(versions=1, identity="b", catch_up=0.5)

    def seen() -> tuple[str, list[str]]:
        got = b.request("GET", f"{CM}/x")[2]["data"]["n"]
        listed = [i["data"]["n"] for i in b.request("GET", CM)[2]["items"]]
        return got, listed

    assert seen() == ("1", ["1"])
    clock[0] += 0.49
    assert seen() == ("1", ["1"])
    clock[0] += 0.01  # the last write is catch_up old: the cache has it
    assert seen() == ("2", ["2"])
    a.patch("x", {"n": "3"})  # a new write lags again, then is caught up with
    assert seen() == ("2", ["2"])
    clock[0] += 0.5
    assert seen() == ("3", ["3"])


def test_a_hold_holds_reads_from_its_start(env: Any) -> None:
    """A replica lists before it watches: holding only the watch let the first LIST show
    what was written meanwhile, so "b sees nothing until a's write" did not hold."""
    server, ledger, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    _seed_cm(a, "old", versions=1)
    released = perturber.after_write("a", nth=2)
    perturber.hold(identity="b", until=released)
    _seed_cm(a, "new", versions=1)  # a's first write: b must not see it yet
    assert [i["metadata"]["name"] for i in b.request("GET", CM)[2]["items"]] == ["old"]
    assert b.request("GET", f"{CM}/new")[0] == 404
    assert [i["metadata"]["name"] for i in a.request("GET", CM)[2]["items"]] == ["new", "old"]
    a.patch("new", {"n": "1"})  # a's second write releases the hold
    assert released.fired
    assert b.request("GET", f"{CM}/new")[2]["data"] == {"n": "1"}
    held = [p.detail for p in ledger.perturbations(identity="b")]
    assert any("held at rv=" in d for d in held), held


def test_frozen_view_until_a_trigger(env: Any) -> None:
    server, _, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    _seed_cm(a, versions=1)
    thaw = perturber.after_write("a", nth=2)
    perturber.stale_reads(identity="b", until=thaw)
    a.patch("x", {"n": "1"})
    assert b.request("GET", f"{CM}/x")[2]["data"] == {"n": "0"}
    a.patch("x", {"n": "2"})
    assert thaw.fired
    assert b.request("GET", f"{CM}/x")[2]["data"] == {"n": "2"}


def test_faults_hit_the_nth_matching_request_only(env: Any) -> None:
    server, ledger, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    _seed_cm(a, versions=1)
    perturber.fault(409, identity="b", verb="patch", nth=2)
    assert b.patch("x", {"n": "1"})[0] == 200
    status, _, body = b.patch("x", {"n": "2"})
    assert status == 409 and body["reason"] == "Conflict" and body["kind"] == "Status"
    assert b.patch("x", {"n": "3"})[0] == 200
    assert a.patch("x", {"n": "4"})[0] == 200
    failed = [r for r in ledger.requests() if r.status == 409]
    assert [(r.identity, r.reason) for r in failed] == [("b", "Conflict")]


def test_429_carries_retry_after(env: Any) -> None:
    server, _, perturber = env
    a = Client(server, "a")
    perturber.fault(429, retry_after=3, identity="a", verb="write", times=1)
    status, headers, body = a.request("POST", CM, {"metadata": {"name": "y"}})
    assert status == 429 and headers["Retry-After"] == "3"
    assert body["details"]["retryAfterSeconds"] == 3
    assert a.request("POST", CM, {"metadata": {"name": "y"}})[0] == 201


def test_seeded_probability_replays(env: Any) -> None:
    server, _, _ = env

    def outcomes(seed: int) -> list[int]:
        ledger = Ledger()
        p = Perturber(server.store, server.hub, ledger, seed=seed)
        handle = server.add_interceptor(p)
        try:
            p.fault(503, identity="c", verb="get", probability=0.5)
            c = Client(server, "c")
            return [c.request("GET", f"{CM}/nope")[0] for _ in range(20)]
        finally:
            p.undo()
            handle.remove()

    first, again, other = outcomes(1), outcomes(1), outcomes(2)
    assert first == again
    assert set(first) == {503, 404}
    assert first != other


def test_watch_latency_delays_only_the_target(env: Any) -> None:
    server, ledger, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    perturber.watch_latency(0.15, identity="b")
    fast, slow = a.watch(f"resourceVersion={rv}"), b.watch(f"resourceVersion={rv}")
    t0 = time.monotonic()
    _, _, obj = a.patch("x", {"n": "1"})
    write_took = time.monotonic() - t0
    assert next(fast)["object"]["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    fast_at = time.monotonic() - t0
    event = next(slow)
    slow_at = time.monotonic() - t0
    assert event["type"] == "MODIFIED"
    assert slow_at >= 0.15 > fast_at and write_took < 0.15
    delays = {d.identity: d.delay for d in ledger.deliveries(type="MODIFIED")}
    assert delays["b"] >= 0.15 > delays["a"]


def test_watch_latency_keeps_order(env: Any) -> None:
    server, _, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    perturber.watch_latency((0.0, 0.05), identity="b")
    stream = b.watch(f"resourceVersion={rv}")
    for i in range(1, 8):
        a.patch("x", {"n": str(i)})
    got = [int(next(stream)["object"]["metadata"]["resourceVersion"]) for _ in range(7)]
    assert got == sorted(got) and len(set(got)) == 7


def test_hold_until_another_identity_writes_status(env: Any) -> None:
    server, ledger, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    release = perturber.after_write("a", nth=2)
    perturber.hold(identity="b", until=release)
    stream = b.watch(f"resourceVersion={rv}")
    a.patch("x", {"n": "1"})
    assert not release.fired
    a.patch("x", {"n": "2"})
    assert release.fired
    first, second = next(stream), next(stream)
    assert [first["object"]["data"]["n"], second["object"]["data"]["n"]] == ["1", "2"]
    actions = [p.action for p in ledger.perturbations(identity="b")]
    assert actions.count("hold") == 2


def test_coalesce_hides_intermediate_states(env: Any) -> None:
    server, _, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    perturber.coalesce(window=0.2, identity="b")
    stream = b.watch(f"resourceVersion={rv}")
    for i in range(1, 4):
        a.patch("x", {"n": str(i)})
    marker = a.request("POST", CM, {"metadata": {"name": "after"}})[2]
    seen = []
    for event in stream:
        seen.append(
            (event["type"], event["object"]["metadata"]["name"], event["object"].get("data"))
        )
        if event["object"]["metadata"]["name"] == "after":
            break
    assert seen == [("MODIFIED", "x", {"n": "3"}), ("ADDED", "after", None)]
    assert marker["metadata"]["name"] == "after"


def test_coalescing_the_nth_event_lets_any_newer_one_replace_it(env: Any) -> None:
    """``nth=2``: the second event waits out the window, and the newer events of its
    object that come meanwhile (which the rule itself does not match) replace it; the
    first goes as it comes, and so does every event once the window passed."""
    server, _, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    perturber.coalesce(window=0.5, identity="b", nth=2)
    stream = b.watch(f"resourceVersion={rv}")
    for i in range(1, 5):
        a.patch("x", {"n": str(i)})
    seen = [next(stream)["object"]["data"] for _ in range(2)]
    assert seen == [{"n": "1"}, {"n": "4"}]
    a.patch("x", {"n": "5"})
    assert next(stream)["object"]["data"] == {"n": "5"}


def test_drop_watch_closes_the_stream(env: Any) -> None:
    server, ledger, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    perturber.drop_watches(identity="b", times=1)
    stream = b.watch(f"resourceVersion={rv}")
    a.patch("x", {"n": "1"})
    assert list(stream) == []  # closed without the event
    # Resuming from the last rv it saw gets the event from history.
    resumed = b.watch(f"resourceVersion={rv}")
    assert next(resumed)["object"]["data"] == {"n": "1"}
    assert ledger.perturbations(action="drop-watch")


def test_expire_watch_answers_in_stream_410(env: Any) -> None:
    server, _, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    perturber.expire_watches(identity="b", times=1)
    events = list(b.watch(f"resourceVersion={rv}"))
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    assert next(a.watch(f"resourceVersion={rv}&timeoutSeconds=0.1"), None) is None


def test_expire_until_relisted_refuses_every_resumption_until_a_fresh_list(env: Any) -> None:
    """As after a compaction: a client that retries from where it was is refused again;
    once it listed afresh, its watch from that list goes on."""
    server, _, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rv = _seed_cm(a, versions=1)[0]
    perturber.expire_watches(identity="b", until_relisted=True)
    for _ in range(2):
        [event] = list(b.watch(f"resourceVersion={rv}"))
        assert event["object"]["code"] == 410
    _, _, listed = b.request("GET", CM)
    fresh = listed["metadata"]["resourceVersion"]
    stream = b.watch(f"resourceVersion={fresh}&timeoutSeconds=0.2")
    a.patch("x", {"n": "after"})
    assert next(stream)["object"]["data"] == {"n": "after"}


def test_request_latency(env: Any) -> None:
    server, _, perturber = env
    a = Client(server, "a")
    perturber.latency(0.1, identity="a", verb="get", times=1)
    t0 = time.monotonic()
    a.request("GET", f"{CM}/nope")
    slow = time.monotonic() - t0
    t0 = time.monotonic()
    a.request("GET", f"{CM}/nope")
    assert slow >= 0.1 > time.monotonic() - t0


def test_rules_undo_and_name_their_target(env: Any) -> None:
    server, ledger, perturber = env
    a = Client(server, "a")
    _seed_cm(a, versions=1)
    rule = perturber.fault(500, target=Target(identity="a", verb="write"))
    assert "identity=a" in rule.name and "verb=write" in rule.name
    assert a.patch("x", {"n": "1"})[0] == 500
    assert a.request("GET", f"{CM}/x")[0] == 200  # reads are not writes
    rule.remove()
    rule.remove()  # idempotent
    assert a.patch("x", {"n": "1"})[0] == 200
    assert perturber.rules() == []
    fired = ledger.entries(PerturbationFired)
    assert len(fired) == 1 and fired[0].detail.startswith("500 on patch configmaps/x")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"delay": -1}, "delay must be a number of seconds >= 0"),
        ({"delay": (0.2, 0.1)}, "low <= high"),
        ({"delay": 0.1, "nth": 0}, "nth must be >= 1"),
        ({"delay": 0.1, "probability": 2}, "probability must be within [0, 1]"),
        ({"delay": 0.1, "colour": "red"}, "unexpected argument(s) colour"),
    ],
)
def test_bad_rule_arguments_are_named(env: Any, kwargs: dict[str, Any], message: str) -> None:
    _, _, perturber = env
    with pytest.raises((ValueError, TypeError), match=None) as info:
        perturber.watch_latency(**kwargs)
    assert message in str(info.value)


def test_triggers_fire_once_on_the_nth_match(env: Any) -> None:
    server, ledger, perturber = env
    a = Client(server, "a")
    trigger = perturber.trigger(RequestServed, nth=2, identity="a", verb="create")
    calls: list[int] = []
    trigger.on_fire(lambda: calls.append(1))
    a.request("POST", CM, {"metadata": {"name": "one"}})
    assert not trigger.fired
    a.request("POST", CM, {"metadata": {"name": "two"}})
    a.request("POST", CM, {"metadata": {"name": "three"}})
    assert trigger.fired and calls == [1]
    assert trigger.wait(0)
    late: list[int] = []
    trigger.on_fire(lambda: late.append(1))
    assert late == [1]
    assert ledger.deliveries() == [] or all(
        isinstance(d, WatchDelivered) for d in ledger.deliveries()
    )


@dataclass(eq=False)
class Forbid(Rule):
    """A kind of rule the package does not have: it needs only the hook it acts in."""

    async def on_request(self, request: RequestInfo) -> None:
        if self.target.matches_request(request) and self.should_fire():
            self.record(request.identity, "forbidden")
            raise errors.Forbidden("not today")


def test_a_rule_acts_only_through_the_hooks_it_overrides(env: Any) -> None:
    server, ledger, perturber = env
    a, b = Client(server, "a"), Client(server, "b")
    rvs = _seed_cm(a, versions=2)
    plain = perturber.add(Rule())
    forbid = perturber.add(Forbid(target=Target(identity="b", verb="get"), times=1))
    events = b.watch(f"resourceVersion={rvs[0]}")
    assert b.request("GET", f"{CM}/x")[0] == 403
    assert b.request("GET", f"{CM}/x")[0] == 200
    assert a.request("GET", f"{CM}/x")[0] == 200
    assert next(events)["object"]["metadata"]["resourceVersion"] == rvs[1]
    # The base rule's hooks pass everything through and count no match.
    assert (plain.matched, plain.fired) == (0, 0)
    assert (forbid.matched, forbid.fired) == (1, 1)
    assert [e.rule for e in ledger.entries(PerturbationFired)] == [forbid.name]


def test_every_fault_code_is_answered_with_that_code() -> None:
    request = RequestInfo(seq=1, identity="a", method="GET", path=CM, verb="get", name="x")
    for code in FAULT_CODES:
        error = Fault(code=code).error(request)
        assert isinstance(error, errors.ApiError) and error.code == code, code
    with pytest.raises(ValueError, match=r"code must be one of \[400, .*504\], got 418"):
        Fault(code=418)


def test_a_schedule_adds_one_rule_per_step_and_hands_crashes_back(env: Any) -> None:
    _, _, perturber = env
    event = (("resource", "/configmaps"), ("nth", 2))
    steps = (
        Step("watch-latency", "a", (("delay", 0.01),)),
        Step("stale-reads", "a", (("versions", 1),)),
        Step("coalesce", "a", (("window", 0.01),)),
        Step("fault", "a", (("code", 503), ("probability", 0.5))),
        Step("slow-writes", "a", (("delay", 0.01),)),
        Step("hold", "a", (("until_status_write_of", "b"),)),
        Step("crash", "b", (("after_writes", 2),)),
        Step("stale-from-event", "a", event),
        Step("coalesce-event", "a", (*event, ("window", 1.0))),
        Step("delay-event", "a", (*event, ("until_write_of", "b"))),
        Step("no-such-kind", "a"),
    )
    rules, crashes = Schedule(5, steps).apply(perturber)
    assert [type(r).__name__ for r in rules] == [
        "WatchLatency",
        "StaleView",
        "Coalesce",
        "Fault",
        "RequestLatency",
        "Hold",
        "StaleView",
        "Coalesce",
        "Hold",
    ]
    assert perturber.rules() == rules
    assert crashes == [steps[6]]
