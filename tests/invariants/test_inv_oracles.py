"""The built-in oracles on exact, hand-built histories: what the end state keeps and
normalises, what counts as a duplicate side effect, a write after a resync, a hot loop."""

from __future__ import annotations

from typing import Any

from pytest_ntinvariants.invariants import CheckContext, LedgerBuilder
from pytest_ntinvariants.invariants.oracles import (
    RESYNC,
    Converges,
    EndStateMatches,
    NoHotLoop,
    SideEffectsOnce,
    end_state,
    noise_between,
)


def gadget(name: str, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ntinv.test/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"size": 1},
        "status": status,
    }


def child(owner: str, suffix: str, made_by: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{owner}-{suffix}",
            "generateName": f"{owner}-",
            "namespace": "default",
            "uid": f"uid-{owner}-{suffix}",
            "creationTimestamp": "2026-12-05T10:00:00Z",
            "ownerReferences": [{"kind": "Gadget", "name": owner, "uid": f"uid-{owner}"}],
            "annotations": {"kopf.zalando.org/last-handled-configuration": "{}"},
        },
        "data": {"made-by": made_by, "at": "2026-12-05T10:00:01.5Z"},
    }


def run(*children: tuple[str, str], called: str = "replica-0") -> LedgerBuilder:
    """A ledger of two replicas: a Gadget, its children, a status write."""
    b = LedgerBuilder()
    b.replica("replica-0", "started")
    b.replica("replica-1", "started")
    b.version(gadget("g1"), "test", type="ADDED", verb="create")
    for suffix, who in children:
        b.version(child("g1", suffix, who), who, type="ADDED", verb="create")
    b.version(gadget("g1", called=called), called, subresource="status")
    return b


def judge(b: LedgerBuilder, reference: Any, noise: frozenset[str] = frozenset()) -> list[Any]:
    ctx = CheckContext.from_ledger(b.ledger, quiet=True)
    ctx = CheckContext(**{**ctx.__dict__, "reference": reference, "noise": noise})
    return EndStateMatches().check(b.ledger, ctx)


def test_the_end_state_forgets_what_differs_between_any_two_runs() -> None:
    """Generated names, uids, timestamps, kopf's bookkeeping and which replica did the
    work are not the controller's result: two runs that differ only there end alike."""
    one = end_state(run(("abcde", "replica-0")).ledger)
    two = end_state(run(("xyz12", "replica-1"), called="replica-1").ledger)
    assert one == two
    [(key, (doc,))] = [(k, v) for k, v in one.objects.items() if k.startswith("ConfigMap")]
    assert key == "ConfigMap default/g1-* owned by Gadget g1"
    assert doc == {"data": {"made-by": "<replica>", "at": "<time>"}}


def test_a_second_child_breaks_the_end_state() -> None:
    reference = end_state(run(("abcde", "replica-0")).ledger)
    [violation] = judge(run(("abcde", "replica-0"), ("fghij", "replica-1")), reference)
    assert violation.invariant == "end-state"
    assert violation.message == (
        "2 object(s) ConfigMap default/g1-* owned by Gadget g1 at the end, 1 in the unperturbed run"
    )


def test_a_field_other_than_in_the_reference_is_shown_unless_it_is_noise() -> None:
    b = LedgerBuilder()
    b.replica("replica-0", "started")
    b.version(gadget("g1", doubled=2), "replica-0", type="ADDED", verb="create")
    reference = end_state(run().ledger)  # status.called, no status.doubled
    [violation] = judge(b, reference)
    rows = {r["field"]: r for r in violation.evidence}
    assert rows["status.doubled"]["unperturbed run"] == "(absent)"
    assert rows["status.doubled"]["this run"] == "2"
    assert judge(b, reference, frozenset({"Gadget status.doubled", "Gadget status.called"})) == []


def test_noise_is_the_fields_two_unperturbed_runs_disagree_on() -> None:
    b = LedgerBuilder()
    b.version(gadget("g1", token="a1"), "test", type="ADDED", verb="create")
    c = LedgerBuilder()
    c.version(gadget("g1", token="b2"), "test", type="ADDED", verb="create")
    assert noise_between(end_state(b.ledger), end_state(c.ledger)) == {"Gadget status.token"}


def test_an_unsettled_run_or_one_with_nothing_to_compare_with_is_not_judged() -> None:
    b = run(("abcde", "replica-0"), ("fghij", "replica-1"))
    reference = end_state(run(("abcde", "replica-0")).ledger)
    assert judge(b, None) == []
    unsettled = CheckContext(reference=reference, quiet=False)
    assert EndStateMatches().check(b.ledger, unsettled) == []


def test_one_successful_call_per_object_and_key() -> None:
    b = LedgerBuilder()
    nr = b.version(gadget("g1"), "test", type="ADDED", verb="create")
    b.call("hook", nr, attempt=1, status=500)  # failed: the next is a retry, not a copy
    b.call("hook", nr, attempt=2)
    assert SideEffectsOnce().check(b.ledger, CheckContext.from_ledger(b.ledger)) == []
    b.call("hook", nr, attempt=2)
    [violation] = SideEffectsOnce().check(b.ledger, CheckContext.from_ledger(b.ledger))
    assert violation.message == "hook received 2 successful calls with key 'hook'"


def test_a_crash_of_the_caller_allows_one_more_call() -> None:
    b = LedgerBuilder()
    nr = b.version(gadget("g1"), "test", type="ADDED", verb="create")
    b.call("hook", nr, caller="replica-0")
    b.crash("replica-0")
    b.call("hook", nr, caller="replica-1")
    assert SideEffectsOnce().check(b.ledger, CheckContext.from_ledger(b.ledger)) == []


def test_a_write_after_the_resync_means_no_fixed_point() -> None:
    b = run()
    assert Converges().check(b.ledger, CheckContext.from_ledger(b.ledger)) == []
    mark = b.perturb(RESYNC, RESYNC, "")
    assert Converges().check(b.ledger, CheckContext.from_ledger(b.ledger)) == []
    b.version(gadget("g1", called="replica-0", seen=2), "replica-1", subresource="status")
    [violation] = Converges().check(b.ledger, CheckContext.from_ledger(b.ledger))
    assert violation.seqs[0] == mark.seq
    assert [row["writer"] for row in violation.evidence] == ["replica-1"]


def test_two_replicas_setting_a_field_back_and_forth_is_a_hot_loop() -> None:
    b = LedgerBuilder()
    b.replica("replica-0", "started")
    b.replica("replica-1", "started")
    b.version(gadget("g1"), "test", type="ADDED", verb="create")
    for _ in range(2):
        b.version(gadget("g1", mode="a"), "replica-0", subresource="status")
        b.version(gadget("g1", mode="b"), "replica-1", subresource="status")
    [violation] = NoHotLoop().check(b.ledger, CheckContext.from_ledger(b.ledger))
    assert violation.message == (
        "replica-0 and replica-1 set status.mode back and forth: each undoes the other's write"
    )
    # Bounded writes per object, whoever writes.
    [bound] = NoHotLoop(max_writes=3).check(b.ledger, CheckContext.from_ledger(b.ledger))[:1]
    assert bound.message == "written 4 times by the replicas (at most 3)"
