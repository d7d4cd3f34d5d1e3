"""Failure reports: text, timeline, JSON and the SVG drawing of the race."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from nrledgers import POLICY, REPLAY

from pytest_ntinvariants.hookspecs import hook_relay
from pytest_ntinvariants.invariants import CheckContext, ObjectRef, Violation
from pytest_ntinvariants.packs import notifications
from pytest_ntinvariants.packs.notifications import NotificationBuilder, default_registry
from pytest_ntinvariants.packs.notifications import NotificationLedgerBuilder as LedgerBuilder
from pytest_ntinvariants.report import (
    format_table,
    format_violations,
    render_svg,
    timeline,
    timeline_rows,
    to_json,
)

#: The NotificationRequest pack's report hooks, as pytest would call them.
HOOK = hook_relay(notifications)

SVG = "{http://www.w3.org/2000/svg}"


def hidden_duplicate(b: LedgerBuilder) -> NotificationBuilder:
    """The seed's final fix: the timestamp dedupe hides replica-b's second delivery."""
    nr = b.notification("nr-1", retry_policy=POLICY)
    b.replica("replica-a", "started")
    b.watch("replica-a", nr, type="ADDED", delay=0.002)
    b.read("replica-a", nr)
    nr.write("replica-a", phase="Pending")
    nr.write("replica-a", phase="Sending")
    b.perturb("stale-b", "stale-read", "replica-b", "GETs served at rv 2")
    b.read("replica-b", nr, rv=2, served_at=2)
    b.call("slack", nr, attempt=1, status=400)
    b.call("slack", nr, attempt=1, status=400)
    nr.write(
        "replica-a",
        phase="Failed",
        append=[
            nr.attempt("slack", 1, "failed", error="slack webhook returned 400", permanent=True)
        ],
    )
    b.watch("replica-b", nr, delay=0.25)
    b.failed_write("replica-b", nr)
    nr.write("replica-b")  # dedupe absorbed replica-b's attempt: nothing changes
    b.crash("replica-b")
    return nr


def violations(b: LedgerBuilder, ctx: CheckContext) -> list[Violation]:
    return default_registry().check(b.ledger, ctx)


def test_format_table_aligns_columns_and_trims() -> None:
    lines = format_table(
        [{"a": 1, "long header": "x", "c": None}, {"a": 12345, "long header": "y" * 80, "c": 0.5}],
        indent="",
    )
    assert lines[0] == "a      long header                                                   c"
    assert lines[1] == "1      x                                                             -"
    assert lines[2].endswith("...  0.500")
    assert format_table([]) == []


def test_violations_are_hashable_despite_their_evidence_dicts() -> None:
    v = Violation("x", None, "m", (1,), ({"a": 1},))
    assert {v, Violation("x", None, "m", (1,), ({"a": 1},))} == {v}
    assert len({v, Violation("x", None, "m", (1,), ({"a": 2},))}) == 2


def test_no_violations() -> None:
    b = LedgerBuilder()
    assert format_violations([], b.ledger, CheckContext(hook=HOOK)) == "no invariant violations"


def test_format_violations_reads_top_down() -> None:
    b = LedgerBuilder()
    nr = hidden_duplicate(b)
    ctx = CheckContext.from_ledger(b.ledger, hook=HOOK, quiet=True, seed=1234, replay=REPLAY)
    found = violations(b, ctx)
    # The crash came after the deliveries but replica-b had looked: one extra is allowed.
    assert found == []
    ctx = CheckContext(hook=HOOK, quiet=True, seed=1234, replay=REPLAY, crashes_by_object={})
    found = violations(b, ctx)
    assert [v.invariant for v in found] == ["nr-deliveries-match-records"]
    text = format_violations(found, b.ledger, ctx)
    lines = text.splitlines()
    assert lines[0] == "1 invariant violation (1 invariant, 1 object), seed 1234"
    assert lines[1] == "  nr-deliveries-match-records    1  default/nr-1"
    assert lines[2] == ""
    assert lines[3] == (
        f"NotificationRequest default/nr-1 (uid {nr.uid}): 5 versions, latest rv {nr.rv} (Failed)"
    )
    assert lines[4] == (
        f"  nr-deliveries-match-records: slack endpoint received 2 calls but "
        f"1 attempt recorded in rv {nr.rv} (allowed extra: 0): a delivery is "
        "hidden"
    )
    assert lines[5].split() == [
        "channel",
        "recorded",
        "attempts",
        "endpoint",
        "calls",
        "allowed",
        "extra",
        "recorded",
        "numbers",
        "endpoint",
        "numbers",
    ]
    assert lines[6].split() == ["slack", "1", "2", "0", "1", "1,", "1"]
    assert lines[7] == (
        f"  attempts of default/nr-1 (every one ever recorded; # is the position in rv {nr.rv}):"
    )
    assert lines[8].split()[:6] == ["#", "channel", "attempt", "outcome", "writer", "rv"]
    assert lines[9].split()[:6] == ["1", "slack", "1", "failed", "(permanent)", "replica-a"]
    assert "  endpoint calls about default/nr-1:" in lines
    # Both calls and the version in question are marked in the timeline.
    marked = [line for line in lines if line.startswith("    >")]
    assert len(marked) == 3
    assert sum("call slack attempt 1 -> 400" in line for line in marked) == 2
    assert re.search(
        r"replica-b  GET default/nr-1 -> rv 2 STALE \(served at rv 2; latest "
        r"rv 3\)$",
        text,
        re.M,
    )
    assert re.search(r"replica-b  replica CRASHED$", text, re.M)
    assert re.search(r"replica-a  replica started$", text, re.M)
    assert re.search(r"replica-b  wrote rv \d+ \(patch/status\): no change$", text, re.M)
    assert lines[-3:] == ["", "seed: 1234 (session seed)", f"replay: {REPLAY}"]


def test_several_invariants_and_objects_are_summarised_first() -> None:
    b = LedgerBuilder()
    one = b.notification("nr-1", retry_policy=POLICY)
    one.write("replica-a", phase="Pending")
    a1 = one.attempt("slack", 1, "failed")
    one.write("replica-a", phase="Sending", append=[a1, a1])
    two = b.notification("nr-2", retry_policy=POLICY)
    for phase in ("Pending", "Sending", "Sent"):
        two.write("replica-a", phase=phase)
    two.write("replica-b", phase="Retrying")
    ctx = CheckContext(hook=HOOK, quiet=True)
    found = violations(b, ctx)
    text = format_violations(found, b.ledger, ctx)
    lines = text.splitlines()
    assert lines[0] == "4 invariant violations (3 invariants, 2 objects)"
    assert lines[1:4] == [
        "  nr-no-duplicate-attempt       1  default/nr-1",
        "  nr-valid-phase-transitions    1  default/nr-2",
        "  nr-eventually-terminal        2  default/nr-1, default/nr-2",
    ]
    headers = [line for line in lines if line.startswith("NotificationRequest ")]
    assert [h.split()[1] for h in headers] == ["default/nr-1", "default/nr-2"]
    assert "seed" not in text


def test_timeline_of_the_whole_ledger_names_objects_and_lanes() -> None:
    b = LedgerBuilder()
    hidden_duplicate(b)
    other = b.notification("nr-2")
    b.call("slack", other, attempt=1)
    text = timeline(b.ledger, hook=HOOK)
    lines = text.splitlines()
    assert lines[0] == "  lanes: 1=test  2=replica-a  3=replica-b  4=slack"
    assert lines[1].split() == ["t", "ms", "1", "2", "3", "4", "who", "what"]
    assert re.search(
        r"W \| \| \|  test       created NotificationRequest default/nr-1 rv 1: "
        r"channels slack, maxAttempts 3, backoff 1 s x2 <= 60 s$",
        text,
        re.M,
    )
    assert re.search(
        r"\| \| \| C  slack      call slack attempt 1 for default/nr-2 -> 200$", text, re.M
    )
    assert re.search(
        r"replica-b  watch #1 got MODIFIED default/nr-1 rv \d+ \(\+250\.0 ms\)$", text, re.M
    )
    # Times are milliseconds with three decimals, right-aligned under the header.
    width = len(lines[1].split("ms")[0]) + 2
    assert all(re.fullmatch(r"  [ >] *\d+\.\d{3}", line[:width]) for line in lines[2:])
    # The lane strip sits in the same columns on every line.
    strip = lines[1].index("1 2 3 4")
    assert all(
        re.fullmatch(r"[|WREPXC!] [|WREPXC!] [|WREPXC!] [|WREPXC!]", line[strip : strip + 7])
        for line in lines[2:]
    )


def test_timeline_of_one_object_leaves_others_out() -> None:
    b = LedgerBuilder()
    nr = hidden_duplicate(b)
    other = b.notification("nr-2")
    b.read("replica-a", other)
    text = timeline(b.ledger, nr.uid, hook=HOOK)
    assert "nr-2" not in text
    assert "created rv 1" in text
    assert timeline(b.ledger, "nope", hook=HOOK) == "  (no ledger entries about uid nope)"
    assert [r.kind for r in timeline_rows(b.ledger, other.uid, hook=HOOK)] == ["write", "read"]


def test_stale_reads_are_detected_without_a_stale_view_marker() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1")
    nr.write("replica-a", phase="Pending")
    b.read("replica-b", nr, rv=1)  # an informer cache lagging behind: no served_at
    [row] = [r for r in timeline_rows(b.ledger, nr.uid, hook=HOOK) if r.kind == "read"]
    assert row.stale and row.text == "GET default/nr-1 -> rv 1 STALE (latest rv 2)"


def test_long_timelines_are_elided_in_the_middle_keeping_highlights() -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1")
    for _ in range(50):
        b.read("replica-a", nr)
    special = b.read("replica-b", nr)
    for _ in range(50):
        b.read("replica-a", nr)
    text = timeline(b.ledger, nr.uid, limit=11, highlight=[special.seq], hook=HOOK)
    lines = text.splitlines()[2:]
    assert len(lines) == 13  # 11 entries and two gaps
    assert sum(1 for line in lines if "more entries)" in line) == 2
    assert any(line.startswith("  >") and "replica-b" in line for line in lines)


def test_to_json_is_json_and_complete() -> None:
    b = LedgerBuilder()
    nr = hidden_duplicate(b)
    ctx = CheckContext(hook=HOOK, quiet=True, seed=5, crashes_by_object={})
    found = violations(b, ctx)
    data = to_json(found, b.ledger, ctx)
    assert json.loads(json.dumps(data)) == data
    assert data["ok"] is False
    assert data["summary"] == {"nr-deliveries-match-records": 1}
    assert data["context"]["seed"] == 5
    [v] = data["violations"]
    assert v["object"]["uid"] == nr.uid
    obj = data["objects"][nr.uid]
    assert [a["writer"] for a in obj["attempts"]] == ["replica-a"]
    assert len(obj["calls"]) == 2 and obj["calls"][0]["entry"] == "SideEffect"
    assert [x["type"] for x in obj["versions"]] == ["ADDED"] + ["MODIFIED"] * 4
    assert any("STALE" in row["text"] for row in obj["timeline"])
    assert to_json([], b.ledger)["ok"] is True


def parse_svg(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def marks(root: ET.Element, cls: str) -> list[ET.Element]:
    return [
        g
        for g in root.iter(f"{SVG}g")
        if cls in (g.get("class") or "").split() and "mark" in (g.get("class") or "").split()
    ]


def test_svg_draws_lanes_and_marks(tmp_path: Path) -> None:
    b = LedgerBuilder()
    nr = hidden_duplicate(b)
    ctx = CheckContext(hook=HOOK, quiet=True, crashes_by_object={})
    [v] = violations(b, ctx)
    path = render_svg(
        b.ledger,
        tmp_path / "race.svg",
        title="nr-1 & the <hidden> duplicate",
        uid=nr.uid,
        highlight=v.seqs,
        hook=HOOK,
    )
    root = parse_svg(path)
    assert root.tag == f"{SVG}svg"
    title = next(t for t in root.iter(f"{SVG}text") if t.get("class") == "title")
    assert title.text == "nr-1 & the <hidden> duplicate"
    lanes = {
        g.get("data-lane"): g.get("data-kind")
        for g in root.iter(f"{SVG}g")
        if g.get("class") == "lane"
    }
    assert lanes == {
        "apiserver": "apiserver",
        "test": "replica",
        "replica-a": "replica",
        "replica-b": "replica",
        "slack": "endpoint",
    }
    lane_y = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "lane":
            line = g.find(f"{SVG}line")
            assert line is not None
            lane_y[g.get("data-lane")] = float(line.get("y1", "0"))
    assert lane_y["apiserver"] < lane_y["test"] < lane_y["replica-a"] < lane_y["replica-b"]
    assert lane_y["replica-b"] < lane_y["slack"]
    writes = marks(root, "write")
    assert [int(w.get("data-rv", "0")) for w in writes] == [v.rv for v in nr.versions]
    # A resourceVersion is labelled with the object's kind and name.
    assert all(
        any(
            t.text == f"NotificationRequest/nr-1 rv {w.get('data-rv')}"
            for t in w.iter(f"{SVG}text")
        )
        for w in writes
    )
    assert {w.get("data-object") for w in writes} == {"NotificationRequest/nr-1"}
    [stale] = marks(root, "stale")
    assert stale.get("data-lane") == "replica-b" and stale.get("data-rv") == "2"
    assert any(t.text == "NotificationRequest/nr-1 rv 2 stale" for t in stale.iter(f"{SVG}text"))
    assert [w.get("data-lane") for w in marks(root, "watch")] == ["replica-a", "replica-b"]
    assert any(
        t.text == f"NotificationRequest/nr-1 rv {nr.versions[3].rv} +250 ms"
        for t in marks(root, "watch")[1].iter(f"{SVG}text")
    )
    assert [m.get("data-lane") for m in marks(root, "perturbation")] == ["replica-b"]
    assert [m.get("data-lane") for m in marks(root, "crashed")] == ["replica-b"]
    assert [m.get("data-lane") for m in marks(root, "error")] == ["replica-b"]
    calls = marks(root, "call")
    assert [c.get("data-lane") for c in calls] == ["slack", "slack"]
    assert all("highlighted" in (c.get("class") or "") for c in calls)
    # Time runs left to right in ledger order.
    xs = [float(g.get("data-t-ms", "0")) for g in root.iter(f"{SVG}g") if g.get("data-seq")]
    assert xs == sorted(xs)
    legend = {g.get("data-item") for g in root.iter(f"{SVG}g") if g.get("class") == "legend-item"}
    assert legend == {
        "write",
        "read",
        "stale",
        "error",
        "watch",
        "perturbation",
        "crash",
        "call",
        "highlight",
    }
    # Every mark explains itself on hover, in the pack's words where a pack has them.
    tips = {m.get("data-rv"): m.findtext(f"{SVG}title") or "" for m in writes}
    assert "phase <none> -> Pending" in tips[str(nr.versions[1].rv)]
    assert all(m.find(f"{SVG}title") is not None for m in writes + calls)
    assert all("slack attempt" in (c.findtext(f"{SVG}title") or "") for c in calls)


def test_svg_of_a_whole_ledger_with_long_gaps(tmp_path: Path) -> None:
    b = LedgerBuilder()
    nr = b.notification("nr-1")
    nr.write("replica-a", phase="Pending")
    b.advance(30.0)  # a backoff: shortened on the axis, with its real length
    nr.write("replica-a", phase="Sending")
    root = parse_svg(render_svg(b.ledger, tmp_path / "all.svg"))
    breaks = [g for g in root.iter(f"{SVG}g") if g.get("class") == "break"]
    assert [[t.text for t in g.iter(f"{SVG}text")] for g in breaks] == [["//", "+30.00 s"]]
    assert int(root.get("width", "0")) < 2000


def test_svg_of_an_empty_ledger(tmp_path: Path) -> None:
    root = parse_svg(render_svg(LedgerBuilder().ledger, tmp_path / "empty.svg"))
    assert [g.get("data-lane") for g in root.iter(f"{SVG}g") if g.get("class") == "lane"] == [
        "apiserver"
    ]


@pytest.mark.skipif(shutil.which("rsvg-convert") is None, reason="rsvg-convert not installed")
def test_svg_renders_to_png(tmp_path: Path) -> None:
    b = LedgerBuilder()
    hidden_duplicate(b)
    svg = render_svg(b.ledger, tmp_path / "race.svg", title="race")
    png = tmp_path / "race.png"
    subprocess.run(["rsvg-convert", str(svg), "-o", str(png)], check=True, timeout=60)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def configmap(b: LedgerBuilder, name: str, data: dict[str, str], *, type: str = "ADDED") -> int:
    """Commit a version of ConfigMap ``name`` and return its ledger seq."""
    obj = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "data": data,
    }
    verb = "create" if type == "ADDED" else "update"
    return b.version(obj, "replica-a", type=type, verb=verb, resource="/configmaps").seq


def test_a_cross_object_violation_shows_and_marks_the_entries_it_points_to() -> None:
    """A violation of one object resting on another object's write: the object's
    timeline once left that write out, and marked nothing."""
    b = LedgerBuilder()
    nr = hidden_duplicate(b)
    other = configmap(b, "ledger-of-nr-1", {"count": "2"})
    v = Violation(
        "one-record-per-delivery",
        ObjectRef("NotificationRequest", "default", "nr-1", nr.uid, "kubernaut.ai/v1alpha1"),
        "recorded elsewhere too",
        seqs=(nr.versions[-1].seq, other),
    )
    text = format_violations([v], b.ledger, CheckContext(hook=HOOK))
    marked = [line for line in text.splitlines() if line.startswith("    >")]
    assert len(marked) == 2, text
    assert re.search(r"replica-a  created ConfigMap default/ledger-of-nr-1 rv \d+$", marked[1]), (
        marked
    )
    # A violation about no one object: the ledger's timeline, its entries marked.
    across = Violation("no-orphans", None, "a ConfigMap outlived its owner", seqs=(other,))
    text = format_violations([across], b.ledger, CheckContext(hook=HOOK))
    assert "across objects (the whole ledger)" in text
    (line,) = [line for line in text.splitlines() if line.startswith("    >")]
    assert "created ConfigMap default/ledger-of-nr-1" in line


def test_one_object_breaking_two_invariants_has_one_timeline_naming_both() -> None:
    """Two invariants naming one object by refs that differ (one without its uid, as a
    third-party invariant may write it) once printed its header and timeline twice."""
    b = LedgerBuilder()
    configmap(b, "c", {"colour": "red"})
    blue = configmap(b, "c", {"colour": "blue"}, type="MODIFIED")
    found = [
        Violation(
            "no-blue", ObjectRef("ConfigMap", "default", "c", "uid-c", "v1"), "blue", seqs=(blue,)
        ),
        Violation("no-change", ObjectRef("ConfigMap", "default", "c"), "changed", seqs=(blue,)),
    ]
    text = format_violations(found, b.ledger, CheckContext(hook=HOOK))
    assert text.count("ConfigMap default/c (uid uid-c)") == 1, text
    assert text.count("lanes:") == 1, text
    assert (
        "  timeline of default/c (ms since the ledger began; > marks the entries in question "
        "of no-blue, no-change):" in text.splitlines()
    )
    assert re.search(r"^    > .*wrote rv \d+ \(update\): data.colour 'red' -> 'blue'$", text, re.M)


def test_a_claim_write_shows_what_it_changed() -> None:
    """A status write that only adds a claim once read "no change"."""
    b = LedgerBuilder()
    nr = b.notification("nr-1", retry_policy=POLICY)
    nr.write("replica-a", phase="Pending")
    claim = {"channel": "slack", "attempt": 1, "holder": "replica-a"}
    nr.obj["status"] = {**nr.status, "claims": [claim]}
    nr.write("replica-a")
    nr.obj["status"] = {**nr.status, "claims": [claim, {**claim, "attempt": 2}]}
    nr.write("replica-a")
    nr.write("replica-b")
    text = timeline(b.ledger, nr.uid, hook=HOOK)
    assert re.search(r"wrote rv \d+ \(patch/status\): \+status.claims \(1 item\)$", text, re.M)
    assert re.search(r"wrote rv \d+ \(patch/status\): status.claims 1 -> 2 items$", text, re.M)
    assert re.search(r"replica-b  wrote rv \d+ \(patch/status\): no change$", text, re.M)


@pytest.mark.parametrize(
    ("replay", "line"),
    [
        ("pytest t.py::test -p no:randomly --ntinv-seed=11", "seed: 11 (session seed)"),
        ("pytest 't.py::test[seed-7]' -p no:randomly --ntinv-replay=7", "seed: 7 (schedule seed)"),
        ("pytest 't.py::test[seed-7]' --ntinv-replay=ntv1-abc", "seed: 7 (schedule seed)"),
        (None, "seed: 7"),
    ],
)
def test_a_report_names_the_seed_its_replay_passes(replay: str | None, line: str) -> None:
    """A test that is not an exploration item has a world seed of its own, derived from
    the session seed; the report once printed that beside the replay's --ntinv-seed."""
    b = LedgerBuilder()
    b.notification("nr-1")
    ctx = CheckContext(hook=HOOK, seed=7, replay=replay)
    found = [Violation("x", None, "m")]
    lines = format_violations(found, b.ledger, ctx).splitlines()
    assert line in lines
    assert lines[0].endswith(f", seed {line.split()[1]}")
