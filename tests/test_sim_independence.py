"""Which steps commute, which deviations only reorder them, and the name of a run's class
of equivalent orders."""

from __future__ import annotations

from pytest_ntinvariants.sim.independence import (
    Footprint,
    Traced,
    commute,
    equivalent_deviations,
    trace_class,
)

CM = "configmaps"


def step(seq: int, actor: str, touches: Footprint | None = None, label: str = "") -> Traced:
    return Traced(seq, actor, label or f"#{seq}", touches)


def get(name: str, namespace: str = "default") -> Footprint:
    return Footprint(CM, namespace, name)


def write(name: str = "", namespace: str = "default") -> Footprint:
    return Footprint(CM, namespace, name, write=True)


def test_steps_of_one_actor_never_commute() -> None:
    assert not commute(step(1, "a"), step(2, "a"))


def test_what_stays_inside_its_actor_commutes_with_anything_of_another() -> None:
    event = step(1, "a")  # an event delivered, a job's result
    assert commute(event, step(2, "b", write("x")))
    assert commute(event, step(3, "b", Footprint(None)))


def test_reads_commute_and_a_write_conflicts_with_what_reads_its_object() -> None:
    assert commute(step(1, "a", get("x")), step(2, "b", get("x")))
    assert not commute(step(1, "a", get("x")), step(2, "b", write("x")))
    assert commute(step(1, "a", get("y")), step(2, "b", write("x")))
    assert commute(step(1, "a", get("x", "other")), step(2, "b", write("x")))
    # A list or watch reads every object of its type (in its namespace, or all).
    assert not commute(step(1, "a", get("")), step(2, "b", write("x")))
    assert not commute(step(1, "a", get("", "")), step(2, "b", write("x")))
    assert commute(step(1, "a", get("", "other")), step(2, "b", write("x")))
    # A create names no object until it is made: it conflicts with reads of its type.
    assert not commute(step(1, "a", get("x")), step(2, "b", write("")))
    # Another type does not conflict; a request outside the resources reads everything.
    assert commute(step(1, "a", Footprint("secrets", "default", "x")), step(2, "b", write("x")))
    assert not commute(step(1, "a", Footprint(None)), step(2, "b", write("x")))


def test_two_writes_of_one_type_conflict_for_their_watchers() -> None:
    assert not commute(step(1, "a", write("x")), step(2, "b", write("y")))
    sink = Footprint("sink:hooks", write=True)
    assert not commute(step(1, "a", sink), step(2, "b", sink))
    assert commute(step(1, "a", sink), step(2, "b", write("y")))


def test_a_deviation_is_equivalent_when_it_moves_a_step_past_only_independent_ones() -> None:
    # Decision 0 (step 1) had a's event first and b's read of x second: b's read went at
    # step 3, after a's event and a's read of y. Moving it first reorders independent
    # steps. Decision 1 (step 3) had b's read, then b's write of x (same actor: not).
    # Decision 2 (step 4) had a's write of x... moved past b's write of x: a conflict.
    trace = [
        step(10, "a"),
        step(12, "a", get("y")),
        step(11, "b", get("x")),
        step(14, "b", write("x")),
        step(13, "a", write("x")),
    ]
    candidates = [(10, 11), (11, 14), (14, 13)]
    assert equivalent_deviations(trace, candidates, [1, 3, 4]) == {(0, 1)}
    # A candidate the run never released is not equivalent to anything it did.
    assert equivalent_deviations(trace, [(10, 99)], [1]) == frozenset()


def test_runs_that_swap_independent_steps_share_a_class() -> None:
    one = [step(1, "a", get("x"), "GET x"), step(2, "b", get("y"), "GET y")]
    two = [step(5, "b", get("y"), "GET y"), step(6, "a", get("x"), "GET x")]
    assert trace_class(one) == trace_class(two)
    three = [step(1, "a", get("x"), "GET x"), step(2, "b", write("x"), "PUT x")]
    four = [step(2, "b", write("x"), "PUT x"), step(1, "a", get("x"), "GET x")]
    assert trace_class(three) != trace_class(four)
