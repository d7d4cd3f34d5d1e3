"""``assert_side_effects`` and ``assert_no_side_effects``: the calls fake endpoints
received about any object, by key, endpoint, success and attributes; silent when they
hold, the object's calls and race when they do not."""

from __future__ import annotations

from typing import Any

import pytest

import pytest_ntinvariants
from pytest_ntinvariants.invariants import (
    CheckContext,
    LedgerBuilder,
    assert_no_side_effects,
    assert_side_effects,
)
from pytest_ntinvariants.ledger import ObjectVersion
from pytest_ntinvariants.packs.notifications import NotificationLedgerBuilder, assert_attempts


def gadget(name: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "ntinv.test/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
        "spec": {"size": 1},
    }


def painted() -> tuple[LedgerBuilder, ObjectVersion]:
    """A Gadget whose webhook was called three times: a 503, then two 200s (one a retry)."""
    b = LedgerBuilder()
    g = b.version(gadget("g1"), "test", type="ADDED", verb="create")
    b.version(gadget("g2"), "test", type="ADDED", verb="create")
    b.call("hook", g, key="paint", status=503, colour="red", caller="replica-0")
    b.call("hook", g, key="paint", colour="red", caller="replica-0")
    b.call("audit", g, key="log", colour="red", caller="replica-1")
    return b, g


def test_counts_that_hold_are_silent() -> None:
    b, g = painted()
    assert_side_effects(b.ledger, "g1", count=3)
    assert_side_effects(b.ledger, g.obj, key="paint", count=2)  # an object, as applied
    assert_side_effects(b.ledger, "default/g1", key="paint", successful=True, count=1)
    assert_side_effects(b.ledger, "uid-g1", endpoint="audit", count=1)
    assert_side_effects(b.ledger, "g1", colour="red", count=3)  # attributes, as strings
    assert_side_effects(b.ledger, "g1", colour="blue", count=0)
    assert_side_effects(b.ledger, "g1", kind="Gadget", count=3)
    assert_side_effects(b.ledger, "g2", count=0)
    assert_no_side_effects(b.ledger, "g2")
    assert_no_side_effects(b.ledger, key="nothing")


def test_a_wrong_count_names_the_object_and_shows_its_calls_and_race() -> None:
    b, _ = painted()
    ctx = CheckContext(seed=7, replay="pytest t --ntinv-seed=7")
    with pytest.raises(AssertionError) as info:
        assert_side_effects(b.ledger, "g1", key="paint", successful=True, count=2, ctx=ctx)
    lines = str(info.value).splitlines()
    assert lines[0] == (
        "expected 2 successful calls with key 'paint' about Gadget default/g1, endpoints received 1"
    )
    assert lines[2].startswith("Gadget default/g1 (uid uid-g1): 1 version, latest rv 1")
    assert "  endpoint calls about default/g1:" in lines
    header = next(line for line in lines if line.strip().startswith("t ms"))
    assert header.split() == ["t", "ms", "endpoint", "key", "colour", "status", "detail"]
    # The counted call is marked in the timeline, the others are shown unmarked.
    marked = [line for line in lines if line.startswith("    >")]
    assert len(marked) == 1 and "call paint colour red -> 200" in marked[0]
    assert sum("call paint colour red -> 503" in line for line in lines) == 1
    assert lines[-2:] == ["seed: 7 (session seed)", "replay: pytest t --ntinv-seed=7"]


def test_no_side_effects_about_anything_lists_the_calls() -> None:
    b, _ = painted()
    with pytest.raises(AssertionError) as info:
        assert_no_side_effects(b.ledger, endpoint="audit")
    text = str(info.value)
    assert text.startswith("expected 0 calls to audit, endpoints received 1\n")
    assert "default/g1" in text and "log" in text
    with pytest.raises(AssertionError, match="expected 0 calls with key 'paint' about Gadget"):
        assert_no_side_effects(b.ledger, "g1", key="paint")


def test_an_unknown_object_lists_the_known_ones() -> None:
    b, _ = painted()
    with pytest.raises(AssertionError) as info:
        assert_side_effects(b.ledger, "g9", count=1)
    assert str(info.value) == (
        "no object 'g9' (namespace 'default') in the ledger; objects known: "
        "Gadget default/g1 (uid uid-g1), Gadget default/g2 (uid uid-g2)"
    )
    with pytest.raises(AssertionError, match="Widgets known: none"):
        assert_side_effects(b.ledger, "g1", kind="Widget", count=1)


def test_the_public_names_are_the_same_functions() -> None:
    assert pytest_ntinvariants.assert_side_effects is assert_side_effects
    assert pytest_ntinvariants.assert_no_side_effects is assert_no_side_effects


def test_assert_attempts_on_another_kind_says_it_does_not_apply() -> None:
    b = NotificationLedgerBuilder()
    b.version(gadget("g1"), "test", type="ADDED", verb="create")
    b.notification("nr-1")
    with pytest.raises(AssertionError) as info:
        assert_attempts(b.ledger, "g1", count=0)
    assert str(info.value) == (
        "assert_attempts applies to NotificationRequests only; Gadget default/g1 is a Gadget "
        "(use ntinv.assert_side_effects for the calls about any object)"
    )
    assert_attempts(b.ledger, "nr-1", count=0)  # its own kind: judged


def test_the_harness_asserts_for_any_kind(pytester: pytest.Pytester) -> None:
    from inner_pytest import INI

    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import urllib.request

        CM = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "cm-1", "namespace": "default"}, "data": {"a": "1"}}

        def test_calls(ntinv):
            [cm] = ntinv.apply(CM)
            hook = ntinv.sink("hook")
            request = urllib.request.Request(hook.url, data=b"{}", headers={
                "X-Ntinv-Uid": cm["metadata"]["uid"], "X-Ntinv-Key": "paint"})
            urllib.request.urlopen(request).close()
            hook.wait_for_calls(1)
            ntinv.assert_side_effects(cm, key="paint", count=1)
            ntinv.assert_no_side_effects("cm-1", key="other")
            ntinv.assert_side_effects("cm-1", count=2)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "E*AssertionError: expected 2 calls about ConfigMap default/cm-1, endpoints received 1",
        ]
    )
