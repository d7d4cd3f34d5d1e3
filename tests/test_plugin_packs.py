"""Packs: the NotificationRequest pack is opt-in (without it no ``nr-*`` invariant runs and
calls are attributed by the generic headers only), and a user's own pack plugs into the
same public hooks: invariants, options, call attribution and report parts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

#: The inner runs' ini without the pack (tests/inner_pytest.py's INI enables it).
BARE_INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
addopts = -p no:hypothesispytest -p no:kmock -p no:anyio -p no:benchmark
"""
PACK = "pytest_ntinvariants.packs.notifications"

TEST_APPLIES = """
import urllib.request

CM = {"apiVersion": "v1", "kind": "ConfigMap",
      "metadata": {"name": "cm-1", "namespace": "default"}, "data": {"colour": "red"}}

def test_applies(ntinv):
    [cm] = ntinv.apply(CM)
    hook = ntinv.sink("hook")
    request = urllib.request.Request(hook.url, data=b"{}", headers={
        "X-Notification-Uid": cm["metadata"]["uid"], "X-Notification-Attempt": "1"})
    urllib.request.urlopen(request).close()
    hook.wait_for_calls(1)
"""


def checked(pytester: pytest.Pytester, *args: str) -> tuple[list[str], list[dict[str, object]]]:
    """Run TEST_APPLIES; the invariants its one test was checked with, and its calls."""
    pytester.makeini(BARE_INI)
    pytester.makepyfile(test_applies=TEST_APPLIES)
    pytester.makeconftest(
        """
        import json, pytest

        @pytest.hookimpl(optionalhook=True)
        def pytest_ntinvariants_checked(item, checked, violations):
            calls = [e.to_dict() for e in item.funcargs["ntinv"].ledger.side_effects()]
            with open("checked.json", "w") as f:
                json.dump({"checked": list(checked), "calls": calls}, f)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    data = json.loads((pytester.path / "checked.json").read_text())
    return data["checked"], data["calls"]


def test_without_the_pack_no_nr_invariant_runs(pytester: pytest.Pytester) -> None:
    names, calls = checked(pytester)
    assert names and not [n for n in names if n.startswith("nr-")]
    assert "side-effects-once" in names
    # No pack attributes the call: the generic headers do not know these.
    assert [(c["uid"], c["key"], c["attributes"]) for c in calls] == [("", "hook", {})]


def test_with_the_pack_its_invariants_and_attribution_apply(pytester: pytest.Pytester) -> None:
    names, calls = checked(pytester, "-p", PACK)
    assert [n for n in names if n.startswith("nr-")] == [
        "nr-counters-match-attempts",
        "nr-no-duplicate-attempt",
        "nr-attempts-append-only",
        "nr-valid-phase-transitions",
        "nr-attempt-limits",
        "nr-retry-spacing",
        "nr-deliveries-match-records",
        "nr-eventually-terminal",
    ]
    [call] = calls
    assert call["uid"] and call["key"] == "hook #1"
    assert call["attributes"] == {"channel": "hook", "attempt": "1"}


def test_the_pack_marker_exists_only_with_the_pack(pytester: pytest.Pytester) -> None:
    pytester.makeini(BARE_INI)
    without = pytester.runpytest("--markers", "-p", "no:cacheprovider").stdout.str()
    assert "ntinv_notifications" not in without and "@pytest.mark.ntinv_invariants" in without
    with_pack = pytester.runpytest("--markers", "-p", "no:cacheprovider", "-p", PACK)
    with_pack.stdout.fnmatch_lines(["@pytest.mark.ntinv_notifications(*, time_scale=None)*"])


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_pack() -> str:
    """The README's sketch of a pack of one's own, as written."""
    text = README.read_text()
    section = text[text.index("### A pack for your own CRD") :]
    block = re.search(r"```python\n(# colour_pack\.py\n.*?)```", section, flags=re.S)
    assert block is not None
    return block.group(1)


#: A user's pack for ConfigMaps with a colour, written as a user would (public names
#: only): the README's sketch, plus the report parts it leaves to the reader.
USER_PACK = (
    readme_pack()
    + """

@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_object_sections(history, ledger):
    return [f"  palette of {history.ref.path}:", "    red, blue"]


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_describe_write(version, prev):
    if prev is None:
        return None
    return "repainted " + version.obj["data"]["colour"]


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_describe_call(call):
    return "paint " + call.attributes.get("colour", "?")
"""
)

USER_TEST = """
import json, urllib.request

def cm(colour):
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm-1", "namespace": "default"}, "data": {"colour": colour}}

def test_paint(ntinv):
    ntinv.apply(cm("red"))
    ntinv.apply(cm("green"))
    hook = ntinv.sink("hook")
    request = urllib.request.Request(hook.url, data=json.dumps({"colour": "green"}).encode(),
                                     headers={"X-Paint-For": "cm-1"})
    urllib.request.urlopen(request).close()
    hook.wait_for_calls(1)
    ntinv.assert_side_effects("cm-1", key="paint", colour="green", count=1)
"""


def test_a_users_own_pack_plugs_in_through_the_same_hooks(pytester: pytest.Pytester) -> None:
    pytester.makeini(BARE_INI)
    pytester.makepyfile(colour_pack=USER_PACK, test_paint=USER_TEST)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "colour_pack")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "ConfigMap default/cm-1 (uid *): 2 versions, latest rv * (colour green)",
            "  colour-known: painted green",
            "  palette of default/cm-1:",
            "    red, blue",
            "  endpoint calls about default/cm-1:",
            "*paint*green*200*",
            "*wrote rv * (*): repainted green",
            "*call paint green -> 200 (default)",
        ]
    )
    # Without the pack nothing attributes the call to the ConfigMap (the test's own
    # assertion fails) and no rule judges colours.
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*expected 1 call with key 'paint' (colour='green') about *"])
    assert "colour-known" not in result.stdout.str()
