"""The README's example runs as written (its conftest and test blocks, with pytest)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from inner_pytest import INI

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> dict[str, str]:
    text = README.read_text()
    example = text[text.index("## A short example") : text.index("When the test body ends")]
    blocks = re.findall(r"```python\n(.*?)```", example, flags=re.S)
    return {b.splitlines()[0].lstrip("# ").strip(): b for b in blocks}


# Over https too: the replicas' clients must trust the server's CA, and every TLS
# connection must be closed when its replica and server stop (an unclosed one is a
# ResourceWarning, an error under filterwarnings = error).
@pytest.mark.parametrize("options", [[], ["--ntinv-apiserver-tls"]], ids=["http", "https"])
def test_the_short_example_passes(pytester: pytest.Pytester, options: list[str]) -> None:
    blocks = _blocks()
    assert set(blocks) == {"conftest.py", "test_notifications.py"}
    pytester.makeini(INI)
    pytester.makeconftest(blocks["conftest.py"])
    pytester.makepyfile(test_notifications=blocks["test_notifications.py"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--ntinv-seed=1", *options)
    result.assert_outcomes(passed=20)
    result.stdout.fnmatch_lines(
        ["20 test(s) checked, * 0 violation(s) in 0 test(s), 20 seeded schedule(s); seed 1"]
    )


def test_the_marker_table_has_the_registered_signatures_and_fault_codes() -> None:
    from pytest_ntinvariants.markers import MARKERS
    from pytest_ntinvariants.perturb._values import FAULT_CODES

    rows = dict(re.findall(r"^\| `(ntinv_\w+\(.*?\))` \| (.*) \|$", README.read_text(), re.M))
    assert sorted(rows) == sorted(line.split(": ", 1)[0] for line in MARKERS.values())
    faults = next(about for sig, about in rows.items() if sig.startswith("ntinv_faults("))
    assert tuple(int(code) for code in re.findall(r"\b\d{3}\b", faults)) == FAULT_CODES


def _own_blocks() -> dict[str, str]:
    text = README.read_text()
    section = text[
        text.index("## Test your own controller") : text.index("## What the plugin offers")
    ]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return {b.splitlines()[0].lstrip("# ").strip(): b for b in blocks}


#: What the README says a controller that paints the colour it read afresh does.
READ_AFRESH = """
        colour = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "example.com", "v1", namespace, "widgets", name)["spec"]["colour"]
        child = {"metadata": {"name": f"{name}-paint"}, "data": {"colour": colour}}"""


def test_the_own_controller_section_passes_and_its_bug_is_caught(
    pytester: pytest.Pytester,
) -> None:
    """The section's files run as written: kopf replicas and process replicas, judged by
    the oracles and the conftest's rule, with no violation; the read-afresh variant it
    describes fails ``end-state`` and the rule, in some schedules only."""
    blocks = _own_blocks()
    assert set(blocks) == {"widgets.py", "paint_controller.py", "conftest.py", "test_widgets.py"}
    pytester.makeini(INI)
    for name, text in blocks.items():
        (pytester.path / name).write_text(text)
    pytester.syspathinsert()
    result = pytester.runpytest("-p", "no:cacheprovider", "--ntinv-seed=1")
    result.assert_outcomes(passed=22)
    result.stdout.fnmatch_lines(["22 test(s) checked, * 0 violation(s) in 0 test(s), *"])
    fixed = '        child = {"metadata": {"name": f"{name}-paint"}, "data": {"colour": spec["colour"]}}'  # noqa: E501
    assert fixed in blocks["widgets.py"]
    (pytester.path / "widgets.py").write_text(blocks["widgets.py"].replace(fixed, READ_AFRESH[1:]))
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--ntinv-seed=1", "--ntinv-shrink=0", "-k", "kopf"
    )
    outcomes = result.parseoutcomes()
    assert 0 < outcomes.get("failed", 0) < 20, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*end-state: ConfigMap default/w1-paint owned by Widget w1 ends with data.colour "
            "other than in the unperturbed run",
            "*paint-follows-colour: painted red, wants blue",
        ]
    )
