"""The invariant machinery: registry, selection, context, index, and the kind-free rule
``resource-version-monotonic``, on ledgers written entry by entry with ``Ledger.record``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import pytest

from pytest_ntinvariants.invariants import (
    BUILTIN_INVARIANTS,
    CheckContext,
    FunctionInvariant,
    Invariant,
    InvariantRegistry,
    ObjectHistory,
    ObjectRef,
    Violation,
    default_registry,
    index_of,
    parse_time,
)
from pytest_ntinvariants.ledger import (
    Ledger,
    ObjectVersion,
    ReplicaEvent,
    RequestServed,
    WatchDelivered,
)
from pytest_ntinvariants.packs.notifications import NotificationLedgerBuilder as LedgerBuilder
from pytest_ntinvariants.packs.notifications import default_registry as nr_registry

BUILTIN_NAMES = [
    "resource-version-monotonic",
    "end-state",
    "side-effects-once",
    "converges",
    "no-hot-loop",
]
#: The NotificationRequest pack's, registered after the core's.
NR_NAMES = [
    "nr-counters-match-attempts",
    "nr-no-duplicate-attempt",
    "nr-attempts-append-only",
    "nr-valid-phase-transitions",
    "nr-attempt-limits",
    "nr-retry-spacing",
    "nr-deliveries-match-records",
    "nr-eventually-terminal",
]


def cm_version(
    ledger: Ledger,
    rv: int,
    *,
    t: float,
    uid: str = "cm-1",
    name: str = "cm",
    identity: str = "replica-a",
    type: str = "MODIFIED",
    **data: Any,
) -> ObjectVersion:
    """Record a ConfigMap version by hand."""
    return ledger.record(
        ObjectVersion,
        t=t,
        rv=rv,
        type=type,
        resource="/configmaps",
        api_version="v1",
        kind_="ConfigMap",
        namespace="default",
        name=name,
        uid=uid,
        identity=identity,
        verb="update",
        subresource="",
        obj={
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": data,
            "metadata": {
                "name": name,
                "namespace": "default",
                "uid": uid,
                "resourceVersion": str(rv),
            },
        },
    )


def delivered(
    ledger: Ledger,
    rv: int,
    *,
    t: float,
    identity: str = "replica-b",
    watcher: int = 1,
    name: str = "cm",
    delay: float = 0.0,
) -> WatchDelivered:
    """Record a watch delivery by hand."""
    return ledger.record(
        WatchDelivered,
        t=t,
        identity=identity,
        watcher=watcher,
        resource="/configmaps",
        type="MODIFIED",
        namespace="default",
        name=name,
        rv=rv,
        delay=delay,
    )


# ------------------------------------------------------------ registry


def test_default_registry_holds_every_builtin_in_order() -> None:
    registry = default_registry()
    assert registry.names() == BUILTIN_NAMES
    assert len(registry) == len(BUILTIN_INVARIANTS) == 5
    assert nr_registry().names() == [*BUILTIN_NAMES, *NR_NAMES]
    for inv in registry:
        assert inv.description and inv.name in repr(inv)
    assert default_registry() is not registry  # fresh each time: plugins may mutate theirs


class Always(Invariant):
    """Finds one violation per ledger, for registry tests."""

    name = "always"
    description = "always fails"

    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        return [Violation(self.name, None, "always")]


def test_register_unregister_and_errors() -> None:
    registry = InvariantRegistry()
    inv = registry.register(Always())
    assert "always" in registry and registry.get("always") is inv
    with pytest.raises(ValueError, match=r"already registered .*replace=True"):
        registry.register(Always())
    other = Always()
    registry.register(other, replace=True)
    assert registry.get("always") is other
    assert registry.unregister("always") is other
    with pytest.raises(KeyError, match=r"no invariant named 'always' \(registered: none\)"):
        registry.unregister("always")
    nameless = Always()
    nameless.name = ""
    with pytest.raises(ValueError, match="has no name"):
        registry.register(nameless)


def test_select_by_names_and_patterns() -> None:
    registry = nr_registry()
    assert [i.name for i in registry.select(["nr-retry-spacing"])] == ["nr-retry-spacing"]
    assert [i.name for i in registry.select(exclude=["nr-*"])] == BUILTIN_NAMES
    picked = registry.select(["nr-*"], exclude=["nr-eventually-terminal", "nr-retry-*"])
    assert [i.name for i in picked] == [*NR_NAMES[:5], "nr-deliveries-match-records"]
    assert registry.select(["no-such-*"]) == []
    with pytest.raises(
        KeyError,
        match=r"no invariant named 'nr-retry-spacin'.*registered: "
        r"resource-version-monotonic, end-state",
    ):
        registry.select(["nr-retry-spacin"])
    with pytest.raises(KeyError, match="'typo'"):
        registry.select(exclude=["typo"])


def test_check_runs_only_the_selection_and_defaults_the_context() -> None:
    registry = InvariantRegistry([Always()])
    ledger = Ledger()
    assert [v.message for v in registry.check(ledger)] == ["always"]
    assert registry.check(ledger, exclude=["always"]) == []


def test_function_invariant_and_applies_to() -> None:
    def no_empty_data(history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        for v in history.versions:
            if not v.obj.get("data"):
                yield Violation("cm-has-data", history.ref, f"rv {v.rv} has no data", (v.rv,))

    inv = FunctionInvariant(
        "cm-has-data",
        "ConfigMaps have data",
        no_empty_data,
        kinds=["ConfigMap"],
        api_versions=["v1"],
    )
    assert inv.applies_to("ConfigMap") and inv.applies_to("ConfigMap", "v1")
    assert not inv.applies_to("ConfigMap", "v2") and not inv.applies_to("Secret")
    ledger = Ledger()
    cm_version(ledger, 1, t=0.0, type="ADDED", key="x")
    cm_version(ledger, 2, t=0.1)
    [v] = InvariantRegistry([inv]).check(ledger)
    assert v.summary() == "cm-has-data: default/cm: rv 2 has no data"
    assert v.object == ObjectRef("ConfigMap", "default", "cm", "cm-1", "v1")
    assert str(v.object) == "ConfigMap default/cm"


def test_violation_and_context_serialise() -> None:
    ref = ObjectRef("NotificationRequest", "", "cluster-thing", "u")
    assert ref.path == "cluster-thing"
    v = Violation("x", ref, "broken", (3, 4), ({"a": 1},), (7,))
    assert v.to_dict() == {
        "invariant": "x",
        "message": "broken",
        "resourceVersions": [3, 4],
        "evidence": [{"a": 1}],
        "seqs": [7],
        "object": {
            "kind": "NotificationRequest",
            "apiVersion": "",
            "namespace": "",
            "name": "cluster-thing",
            "uid": "u",
        },
    }
    assert Violation("x", None, "m").summary() == "x: m"
    ctx = CheckContext(
        options={"notifications.time_scale": 0.01, "p.names": frozenset({"b", "a"})},
        quiet=True,
        seed=42,
        replay="pytest -k x",
    )
    assert ctx.to_dict() == {
        "quiet": True,
        "seed": 42,
        "replay": "pytest -k x",
        "schedule": None,
        "crashesByIdentity": {},
        "crashesByObject": None,
        "options": {"notifications.time_scale": 0.01, "p.names": ["a", "b"]},
    }


def test_context_counts_crashes_per_identity_and_object() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1")
    other = b.notification("nr-2", namespace="other")
    b.read("replica-a", nr)
    b.read("replica-b", None, verb="list")  # a list of all namespaces sees both
    b.crash("replica-a")
    b.crash("replica-a")
    b.crash("replica-b")
    b.crash("replica-c")
    ctx = CheckContext.from_ledger(b.ledger, seed=7, options={"p.channels": ["slack"]})
    assert ctx.crashes_by_identity == {"replica-a": 2, "replica-b": 1, "replica-c": 1}
    assert ctx.crashes_by_object == {nr.uid: 3, other.uid: 1}
    assert ctx.options == {"p.channels": ["slack"]}
    assert CheckContext().crashes_for(nr.uid, b.ledger) == 3  # derived when not given
    assert CheckContext(crashes_by_object={}).crashes_for(nr.uid, b.ledger) == 0


def test_a_watch_event_counts_as_having_seen_the_object() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1")
    b.watch("replica-a", nr, type="ADDED")
    b.crash("replica-a")
    assert CheckContext.from_ledger(b.ledger).crashes_by_object == {nr.uid: 1}


# ------------------------------------------------------------ index and time


def test_index_is_cached_until_the_ledger_grows() -> None:
    ledger = Ledger()
    cm_version(ledger, 1, t=0.0, type="ADDED")
    first = index_of(ledger)
    assert index_of(ledger) is first
    cm_version(ledger, 2, t=0.1)
    second = index_of(ledger)
    assert second is not first and len(second.objects["cm-1"].versions) == 2


def test_index_finds_objects_by_uid_name_and_path() -> None:
    b = LedgerBuilder()
    old = b.notification("nr-1")
    old.delete()
    new = b.notification("nr-1")
    other = b.notification("nr-1", namespace="prod")
    index = index_of(b.ledger)
    assert index.find(old.uid) is index.objects[old.uid]
    found = index.find("nr-1")
    assert found is not None and found.ref.uid == new.uid  # the newest with that name
    found = index.find("prod/nr-1")
    assert found is not None and found.ref.uid == other.uid
    assert index.find("nr-1", kind="ConfigMap") is None
    assert index.find("missing") is None
    assert index.objects[old.uid].deleted and not index.objects[new.uid].deleted


@pytest.mark.parametrize(
    ("text", "seconds", "resolution"),
    [
        ("2025-12-26T10:00:00Z", 1766743200.0, 1.0),
        ("2025-12-26T10:00:00.5Z", 1766743200.5, 0.1),
        ("2025-12-26T10:00:00.123456Z", 1766743200.123456, 1e-6),
        ("2025-12-26T10:00:00.123456789Z", 1766743200.123456789, 1e-9),
        ("2025-12-26T11:00:00+01:00", 1766743200.0, 1.0),
        ("2025-12-26T05:30:00-0430", 1766743200.0, 1.0),
        ("2025-12-26t10:00:00z", 1766743200.0, 1.0),
    ],
)
def test_parse_time(text: str, seconds: float, resolution: float) -> None:
    parsed = parse_time(text)
    assert parsed is not None
    assert parsed[0] == pytest.approx(seconds, abs=1e-6)
    assert parsed[1] == pytest.approx(resolution)


@pytest.mark.parametrize("text", ["", "yesterday", "2025-13-45T10:00:00Z", None, 17])
def test_parse_time_rejects(text: Any) -> None:
    assert parse_time(text) is None


# ------------------------------------------------------------ resource-version-monotonic


def rv_check(ledger: Ledger) -> list[Violation]:
    return default_registry().check(ledger, CheckContext(), include=["resource-version-monotonic"])


def test_rvs_increasing_per_object_and_per_stream_pass() -> None:
    ledger = Ledger()
    cm_version(ledger, 1, t=0.0, type="ADDED")
    cm_version(ledger, 3, t=0.1, uid="cm-2", name="other", type="ADDED")
    cm_version(ledger, 4, t=0.2)
    delivered(ledger, 1, t=0.3)
    delivered(ledger, 4, t=0.4)
    # A new stream (after a relist) may start over; another replica has its own stream.
    delivered(ledger, 1, t=0.5, watcher=2)
    delivered(ledger, 1, t=0.6, identity="replica-c")
    assert rv_check(ledger) == []


def test_an_object_version_going_back_is_reported() -> None:
    ledger = Ledger()
    cm_version(ledger, 5, t=0.0, type="ADDED", identity="test")
    cm_version(ledger, 4, t=0.1, identity="replica-b")
    cm_version(ledger, 6, t=0.2)
    [v] = rv_check(ledger)
    assert v.message == "rv 4 (MODIFIED by replica-b) committed after rv 5 (ADDED by test)"
    assert v.rvs == (5, 4)
    assert v.object is not None and v.object.kind == "ConfigMap"
    assert [r["rv"] for r in v.evidence] == [5, 4]


def test_a_watch_stream_delivering_an_older_version_is_reported() -> None:
    ledger = Ledger()
    cm_version(ledger, 3, t=0.0, type="ADDED")
    cm_version(ledger, 5, t=0.1)
    delivered(ledger, 5, t=0.2)
    delivered(ledger, 3, t=0.3, delay=0.25)
    [v] = rv_check(ledger)
    assert v.message == "replica-b's watch #1 delivered MODIFIED rv 3 after MODIFIED rv 5"
    assert v.object is not None and v.object.uid == "cm-1"
    assert [r["delay ms"] for r in v.evidence] == [0.0, 250.0]


def test_initial_events_of_many_objects_may_come_in_key_order() -> None:
    # A watch from "0" opens with synthetic ADDED events sorted by name, not by rv.
    ledger = Ledger()
    cm_version(ledger, 1, t=0.0, uid="z", name="zeta", type="ADDED")
    cm_version(ledger, 2, t=0.1, uid="a", name="alpha", type="ADDED")
    delivered(ledger, 2, t=0.2, name="alpha")
    delivered(ledger, 1, t=0.3, name="zeta")
    assert rv_check(ledger) == []


def test_a_pass_over_thousands_of_entries_is_fast() -> None:
    b = LedgerBuilder()
    policy = {
        "maxAttempts": 5,
        "initialBackoffSeconds": 1,
        "backoffMultiplier": 2,
        "maxBackoffSeconds": 60,
    }
    for i in range(200):
        nr = b.notification(f"nr-{i}", channels=["slack", "console"], retry_policy=policy)
        b.read("replica-a", nr)
        nr.write("replica-a", phase="Pending")
        b.watch("replica-a", nr)
        nr.write("replica-a", phase="Sending")
        b.watch("replica-a", nr)
        for n in range(1, 5):
            b.advance(2.0**n)
            b.call("slack", nr, attempt=n, status=503)
            extra = [nr.attempt("console", 1, "success")] if n == 1 else []
            nr.write(
                "replica-a", phase="Retrying", append=[nr.attempt("slack", n, "failed"), *extra]
            )
            b.watch("replica-a", nr)
        b.advance(40)
        b.call("slack", nr, attempt=5)
        nr.write("replica-a", phase="Sent", append=[nr.attempt("slack", 5, "success")])
    assert len(b.ledger) == 4000
    started = time.perf_counter()
    violations = nr_registry().check(b.ledger, CheckContext.from_ledger(b.ledger, quiet=True))
    elapsed = time.perf_counter() - started
    assert violations == []
    # About 35 ms on a busy 2-core machine; the bound only catches a quadratic slip.
    assert elapsed < 1.0, f"{elapsed * 1000:.0f} ms"


def test_raw_request_and_replica_entries_are_indexed() -> None:
    ledger = Ledger()
    ledger.record(
        RequestServed,
        t=0.0,
        identity="a",
        verb="get",
        resource="/configmaps",
        namespace="default",
        name="cm",
        subresource="",
        status=404,
        rv="",
    )
    ledger.record(ReplicaEvent, t=0.1, identity="a", action="started")
    index = index_of(ledger)
    assert len(index.requests) == 1 and len(index.replica_events) == 1
    assert index.objects == {}
