"""Failure reports: what broke, the proof, and the race that led there.

A report reads like pytest's own ``approx`` failures and hypothesis's falsifying
examples: one summary line first, then aligned tables (a pack's, through the
``pytest_ntinvariants_object_sections`` hook; the endpoint calls), then the timeline of
the race (who read which version, who wrote what, which watch event reached whom and how
late, which perturbation fired, which endpoint was called), then the seed and the command
that replays it.

``format_violations`` and ``timeline`` give text, ``to_json`` the same as data,
``render_svg`` a drawing with one lane per replica, per endpoint and for the API server.
Functions that take ``hook`` (pytest's ``config.hook``, a ``CheckContext``'s, or
``hookspecs.hook_relay``'s) ask packs for their parts of a report; without one, the report
is the generic one.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .invariants._core import CheckContext, ObjectRef, Violation
from .invariants._index import LedgerIndex, ObjectHistory, index_of
from .ledger import (
    Entry,
    Ledger,
    ObjectVersion,
    PerturbationFired,
    ReplicaEvent,
    RequestServed,
    SideEffect,
    WatchDelivered,
)

__all__ = [
    "TimelineRow",
    "calls_table",
    "field_changes",
    "format_table",
    "format_violations",
    "object_details",
    "object_header",
    "render_svg",
    "replay_lines",
    "timeline",
    "timeline_rows",
    "to_json",
]

JSON = dict[str, Any]

#: Verbs that only read; everything else writes (and is drawn from its ObjectVersion).
_READS = frozenset({"get", "list", "watch"})


# =================================================================== tables


def format_table(rows: Sequence[Mapping[str, Any]], indent: str = "  ") -> list[str]:
    """Rows of dicts (same keys, in column order) as aligned text lines with a header."""
    if not rows:
        return []
    headers = list(rows[0])
    cells = [[_cell(r.get(h, "")) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return (
            indent + "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True))
        ).rstrip()

    return [line(headers), *(line(c) for c in cells)]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def calls_table(history: ObjectHistory, indent: str = "  ") -> list[str]:
    """The calls fake endpoints received about this object (time, endpoint, key, the
    attributes their attribution gave, status)."""
    calls = history.side_effects()
    names = list(dict.fromkeys(k for c in calls for k in c.attributes))
    # A key made of its call's attributes (``slack #2`` of channel slack, attempt 2) says
    # nothing the attribute columns do not: no column of its own then.
    shown = not calls or not all(_key_of_attributes(c) for c in calls)
    rows = [
        {
            "t ms": f"{c.t * 1000:.1f}",
            "endpoint": c.endpoint,
            **({"key": c.key} if shown else {}),
            **{n: c.attributes.get(n) or "-" for n in names},
            "status": c.status or "closed",
            "detail": c.detail,
        }
        for c in calls
    ]
    return format_table(rows, indent)


def _key_of_attributes(call: SideEffect) -> bool:
    values = {str(v) for v in call.attributes.values()}
    words = [w.lstrip("#") for w in call.key.split()]
    return bool(values) and bool(words) and all(w in values for w in words)


# =================================================================== timeline


@dataclass(frozen=True)
class TimelineRow:
    """One ledger entry, described for a person: when, which lane, what happened."""

    seq: int
    t: float
    lane: str  # a replica identity, an endpoint name, or "apiserver"
    kind: str  # write, read, error, watch, perturbation, replica, call
    text: str
    rv: int | None = None
    stale: bool = False
    delay: float = 0.0
    commit_seq: int | None = None  # for watch events: the version they carry
    obj: str = ""  # "Kind/name" of the object the entry is about, when it names one

    def to_dict(self) -> JSON:
        """A JSON-able dict."""
        return {
            "seq": self.seq,
            "t_ms": round(self.t * 1000, 3),
            "lane": self.lane,
            "kind": self.kind,
            "text": self.text,
            "rv": self.rv,
            "stale": self.stale,
            "object": self.obj,
        }


def _lane(identity: str) -> str:
    return identity or "(anonymous)"


def _path(ns: str, name: str) -> str:
    return f"{ns}/{name}" if ns else name


def timeline_rows(
    ledger: Ledger, uid: str | None = None, *, include: Iterable[int] = (), hook: Any = None
) -> list[TimelineRow]:
    """The entries of the race, as rows; only those about object ``uid`` when given.

    About an object: its versions; reads and failed writes that name it (while it
    existed); lists and watches of its resource in its namespace; watch events carrying
    its versions; endpoint calls attributed to it; and every perturbation and replica
    event within its lifetime. Successful writes appear once, as the version they made.
    Entries whose ledger ``seq`` is in ``include`` are rows too, whatever they are about
    (described as in the whole ledger's timeline, naming their object): a violation of
    one object may rest on what happened to another. ``hook`` lets packs describe writes
    (``pytest_ntinvariants_describe_write``).
    """
    index = index_of(ledger)
    history = index.objects.get(uid) if uid is not None else None
    if uid is not None and history is None:
        return []
    extra = frozenset(include)
    rows: list[TimelineRow] = []
    prev_obj: dict[str, ObjectVersion] = {}
    for e in index.entries:
        row: TimelineRow | None = None
        if history is None or _concerns(e, history, index):
            row = _entry_row(e, index, prev_obj, multi=history is None, hook=hook)
        elif e.seq in extra:
            row = _entry_row(e, index, prev_obj, multi=True, forced=True, hook=hook)
        if isinstance(e, ObjectVersion):
            prev_obj[e.uid] = e
        if row is not None:
            rows.append(row)
    return rows


def _concerns(e: Entry, h: ObjectHistory, index: LedgerIndex) -> bool:
    """Whether entry ``e`` belongs in the timeline of object ``h``."""
    start = h.first.t
    end = h.last.t if h.deleted else math.inf
    if isinstance(e, ObjectVersion):
        return e.uid == h.ref.uid
    if isinstance(e, RequestServed):
        return _about(e, h, start, end)
    if isinstance(e, WatchDelivered):
        rvs = index.memo(("rvs", h.ref.uid), lambda: frozenset(v.rv for v in h.versions))
        return e.rv in rvs
    if isinstance(e, SideEffect):
        return index.uid_of_call(e) == h.ref.uid
    if isinstance(e, PerturbationFired | ReplicaEvent):
        return start <= e.t <= end
    return False


def _entry_row(
    e: Entry,
    index: LedgerIndex,
    prev_obj: Mapping[str, ObjectVersion],
    *,
    multi: bool,
    forced: bool = False,
    hook: Any = None,
) -> TimelineRow | None:
    """One entry as a row (None: it is drawn elsewhere, or is no kind a timeline shows).
    ``multi``: name the object; ``forced``: a row even for a successful write request,
    which the whole ledger's timeline draws from the version it committed."""
    if isinstance(e, ObjectVersion):
        return _version_row(e, prev_obj.get(e.uid), multi, hook)
    if isinstance(e, RequestServed):
        row = _request_row(e, index, multi)
        if row is None and forced:
            what = _path(e.namespace, e.name) + (f"/{e.subresource}" if e.subresource else "")
            return TimelineRow(
                e.seq,
                e.t,
                _lane(e.identity),
                "write",
                f"{e.verb.upper()} {what} -> {e.status} (rv {e.rv or '?'})",
                rv=int(e.rv) if e.rv.isdigit() else None,
                obj=_request_object(e, index),
            )
        return row
    if isinstance(e, WatchDelivered):
        return _watch_row(e, index, multi)
    if isinstance(e, SideEffect):
        where = f" for {_path(e.namespace, e.name)}" if multi and e.name else ""
        status = str(e.status) if e.status else "closed"
        history = index.objects.get(index.uid_of_call(e))
        told = hook.pytest_ntinvariants_describe_call(call=e) if hook is not None else None
        if told is None:
            # The key, then what the attribution added that the key does not show.
            told = (e.key or e.endpoint) + "".join(
                f" {k} {v}" for k, v in e.attributes.items() if v not in e.key
            )
        return TimelineRow(
            e.seq,
            e.t,
            e.endpoint or e.key,
            "call",
            f"call {told}{where} -> {status}" + (f" ({e.detail})" if e.detail else ""),
            obj=f"{history.ref.kind}/{history.ref.name}" if history is not None else "",
        )
    if isinstance(e, PerturbationFired):
        detail = f": {e.detail}" if e.detail else ""
        return TimelineRow(
            e.seq,
            e.t,
            _lane(e.identity),
            "perturbation",
            f"perturbation {e.rule} ({e.action}){detail}",
        )
    if isinstance(e, ReplicaEvent):
        word = e.action.upper() if e.action == "crashed" else e.action
        return TimelineRow(
            e.seq,
            e.t,
            _lane(e.identity),
            "replica",
            f"replica {word}" + (f": {e.detail}" if e.detail else ""),
        )
    return None


def _about(r: RequestServed, h: ObjectHistory, start: float, end: float) -> bool:
    if not (start <= r.t <= end) or r.resource != h.resource:
        return False
    if r.name:
        return r.name == h.ref.name and r.namespace == h.ref.namespace
    return r.verb in ("list", "watch") and r.namespace in ("", h.ref.namespace)


def _version_row(
    v: ObjectVersion, prev: ObjectVersion | None, multi: bool, hook: Any = None
) -> TimelineRow:
    where = f" {v.kind_} {_path(v.namespace, v.name)}" if multi else ""
    # The verb the server recorded: an update made by ``apply`` of an existing object
    # reads "(update)", a create "created".
    verb = f"{v.verb}/{v.subresource}" if v.subresource else v.verb
    if v.type == "ADDED":
        text = f"created{where} rv {v.rv}"
    elif v.type == "DELETED":
        text = f"deleted{where} rv {v.rv}"
    else:
        text = f"wrote{where} rv {v.rv} ({verb})"
    change = _change(v, prev, hook)
    if change:
        text += f": {change}"
    return TimelineRow(
        v.seq, v.t, _lane(v.identity), "write", text, rv=v.rv, obj=f"{v.kind_}/{v.name}"
    )


#: Fields every write changes or the server keeps for itself: no news in a timeline.
_BOOKKEEPING = frozenset(
    {"metadata.resourceVersion", "metadata.managedFields", "metadata.generation"}
)


def _change(v: ObjectVersion, prev: ObjectVersion | None, hook: Any = None) -> str:
    if hook is not None:
        told = hook.pytest_ntinvariants_describe_write(version=v, prev=prev)
        if told is not None:
            return str(told)
    if prev is None:
        return ""
    changed = field_changes(prev.obj, v.obj)
    if not changed and v.type == "MODIFIED":
        return "no change"
    return ", ".join(changed)


def field_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], skip: frozenset[str] = frozenset()
) -> list[str]:
    """What a write changed, field by field two levels deep (``status.claims 0 -> 1
    items``, ``+metadata.labels``, ``data.colour 'red' -> 'blue'``), leaving out the
    paths in ``skip`` and the server's bookkeeping (resourceVersion, managedFields,
    generation)."""
    out: list[str] = []
    for section in dict.fromkeys([*old, *new]):
        a, b = old.get(section), new.get(section)
        if a == b:
            continue
        # A section written for the first time (or dropped) is told field by field.
        if a is None and isinstance(b, Mapping):
            a = {}
        elif b is None and isinstance(a, Mapping):
            b = {}
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            for key in dict.fromkeys([*a, *b]):
                path = f"{section}.{key}"
                if path in skip or path in _BOOKKEEPING or a.get(key) == b.get(key):
                    continue
                out.append(_field_change(path, a, b, key))
        elif section not in skip:
            out.append(_field_change(section, old, new, section))
    return out


def _field_change(path: str, old: Mapping[str, Any], new: Mapping[str, Any], key: str) -> str:
    if key not in old:
        return f"+{path}" + _brief(new[key], " = ")
    if key not in new:
        return f"-{path}"
    a, b = old[key], new[key]
    if isinstance(a, list) and isinstance(b, list) and len(a) != len(b):
        return f"{path} {len(a)} -> {len(b)} items"
    if _brief(a) and _brief(b):
        return f"{path}{_brief(a, ' ')} ->{_brief(b, ' ')}"
    return f"{path} changed"


def _brief(value: Any, prefix: str = "") -> str:
    """A short scalar as text after ``prefix`` ("" for anything longer or nested)."""
    if isinstance(value, list):
        return f" ({_n(len(value), 'item')})" if prefix == " = " else ""
    if isinstance(value, dict):
        return ""
    text = repr(value)
    return prefix + text if len(text) <= 40 else ""


def _latest_before(index: LedgerIndex, h: ObjectHistory, seq: int) -> ObjectVersion | None:
    seqs = index.memo(("seqs", h.ref.uid), lambda: [v.seq for v in h.versions])
    i = bisect.bisect_left(seqs, seq)
    return h.versions[i - 1] if i else None


def _request_row(r: RequestServed, index: LedgerIndex, multi: bool) -> TimelineRow | None:
    what = (
        _path(r.namespace, r.name)
        if r.name
        else (f"{r.resource.split('/')[-1]}" + (f" in {r.namespace}" if r.namespace else ""))
    )
    sub = f"/{r.subresource}" if r.subresource else ""
    verb = r.verb.upper()
    if r.status >= 400:
        reason = f" {r.reason}" if r.reason else ""
        return TimelineRow(
            r.seq,
            r.t,
            _lane(r.identity),
            "error",
            f"{verb} {what}{sub} -> {r.status}{reason}",
            obj=_request_object(r, index),
        )
    if r.verb not in _READS:
        return None  # drawn from the version it committed
    rv = int(r.rv) if r.rv.isdigit() else None
    stale = r.served_at is not None
    note = ""
    if r.served_at is not None:
        note = f" STALE (served at rv {r.served_at})"
    if r.name and rv is not None:
        h = _history_of(r, index)
        latest = _latest_before(index, h, r.seq) if h is not None else None
        if latest is not None and latest.rv > rv:
            stale = True
            note = (
                f" STALE (latest rv {latest.rv})"
                if r.served_at is None
                else f" STALE (served at rv {r.served_at}; latest rv {latest.rv})"
            )
    text = f"{verb} {what}{sub} -> rv {r.rv or '?'}{note}"
    return TimelineRow(
        r.seq,
        r.t,
        _lane(r.identity),
        "read",
        text,
        rv=rv,
        stale=stale,
        obj=_request_object(r, index),
    )


def _request_object(r: RequestServed, index: LedgerIndex) -> str:
    """``Kind/name`` of the object a request names ("" for lists and watches)."""
    if not r.name:
        return ""
    h = _history_of(r, index)
    return f"{h.ref.kind}/{r.name}" if h is not None else f"{r.resource.split('/')[-1]}/{r.name}"


def _history_of(r: RequestServed, index: LedgerIndex) -> ObjectHistory | None:
    """The object a named request was about: the newest of its name and resource
    created before it."""
    uids = index.by_name.get((r.namespace, r.name), [])
    return next(
        (
            index.objects[u]
            for u in reversed(uids)
            if index.objects[u].resource == r.resource and index.objects[u].first.seq < r.seq
        ),
        None,
    )


def _watch_row(d: WatchDelivered, index: LedgerIndex, multi: bool) -> TimelineRow:
    where = f" {_path(d.namespace, d.name)}" if multi else ""
    commit = index.by_rv.get(d.rv)
    late = f" (+{d.delay * 1000:.1f} ms)" if d.delay >= 0.0005 else ""
    return TimelineRow(
        d.seq,
        d.t,
        _lane(d.identity),
        "watch",
        f"watch #{d.watcher} got {d.type}{where} rv {d.rv}{late}",
        rv=d.rv,
        delay=d.delay,
        commit_seq=commit.seq if commit is not None else None,
        obj=f"{commit.kind_}/{commit.name}"
        if commit is not None
        else f"{d.resource.split('/')[-1]}/{d.name}",
    )


def _elide(rows: list[TimelineRow], limit: int, keep: set[int]) -> list[TimelineRow | int]:
    """At most ``limit`` rows: the highlighted ones, then the head and the tail.

    Gaps are ints (how many rows were left out there).
    """
    if len(rows) <= limit:
        return list(rows)
    budget = max(limit - sum(1 for r in rows if r.seq in keep), 2)
    head = budget // 2
    tail = budget - head
    chosen = {i for i, r in enumerate(rows) if r.seq in keep}
    chosen.update(range(min(head, len(rows))))
    chosen.update(range(max(len(rows) - tail, 0), len(rows)))
    out: list[TimelineRow | int] = []
    gap = 0
    for i, r in enumerate(rows):
        if i in chosen:
            if gap:
                out.append(gap)
                gap = 0
            out.append(r)
        else:
            gap += 1
    if gap:
        out.append(gap)
    return out


_GLYPH = {
    "write": "W",
    "read": "R",
    "error": "!",
    "watch": "E",
    "perturbation": "P",
    "replica": "X",
    "call": "C",
}


def timeline(
    ledger: Ledger,
    uid: str | None = None,
    limit: int = 200,
    *,
    highlight: Iterable[int] = (),
    indent: str = "  ",
    hook: Any = None,
) -> str:
    """The race as aligned text: one line per entry, times in ms, one lane per identity.

    Each line shows the time, a lane strip (one column per identity or endpoint: the
    entry's glyph in its own lane, ``|`` elsewhere; W write, R read, ! failed request,
    E watch event, P perturbation, X replica event, C endpoint call), the lane's name and
    what happened. Lines whose ledger ``seq`` is in ``highlight`` start with ``>``.
    More than ``limit`` entries are elided in the middle (highlighted lines are kept).
    ``hook``: packs describe writes (see ``timeline_rows``).
    """
    keep = set(highlight)
    rows = timeline_rows(ledger, uid, include=keep, hook=hook)
    if not rows:
        return f"{indent}(no ledger entries" + (f" about uid {uid})" if uid else ")")
    lanes = list(dict.fromkeys(r.lane for r in rows))
    col = {lane: i for i, lane in enumerate(lanes)}
    width = max(len(lane) for lane in lanes)
    tw = max(len(f"{r.t * 1000:.3f}") for r in rows)
    legend = "  ".join(f"{i + 1}={lane}" for i, lane in enumerate(lanes))
    strip_head = " ".join(str((i + 1) % 10) for i in range(len(lanes)))
    lines = [
        f"{indent}lanes: {legend}",
        f"{indent}  {'t ms'.rjust(tw)}  {strip_head}  {'who'.ljust(width)}  what",
    ]
    for item in _elide(rows, limit, keep):
        if isinstance(item, int):
            lines.append(f"{indent}  {'...'.rjust(tw)}  ({item} more entries)")
            continue
        strip = ["|"] * len(lanes)
        strip[col[item.lane]] = _GLYPH.get(item.kind, "*")
        mark = ">" if item.seq in keep else " "
        lines.append(
            f"{indent}{mark} {f'{item.t * 1000:.3f}'.rjust(tw)}  {' '.join(strip)}  "
            f"{item.lane.ljust(width)}  {item.text}"
        )
    return "\n".join(lines)


# =================================================================== violations


def report_seed(seed: object, replay: str | None) -> tuple[object, str]:
    """The one seed a report names, and what it is: the number its replay command passes.

    A test that is not an exploration item is replayed with ``--ntinv-seed``, the session
    seed (its world's own seed is derived from that and the test's id, so printing it
    too would show two numbers for one run); an exploration item with ``--ntinv-replay``,
    its schedule's seed (alone, or in the token)."""
    passed = re.search(r"--ntinv-seed=(\d+)", replay or "")
    if passed is not None:
        return int(passed.group(1)), "session seed"
    if "--ntinv-replay=" in (replay or ""):
        return seed, "schedule seed"
    return seed, ""


def seed_line(seed: object, replay: str | None) -> str:
    """``seed: N (session seed)``: the seed the replay command passes, and which it is."""
    number, what = report_seed(seed, replay)
    return f"seed: {number}" + (f" ({what})" if what else "")


def replay_lines(ctx: CheckContext | None) -> list[str]:
    """``seed: N``, ``schedule:`` (indented steps) and ``replay: <command>`` lines, when the
    context has them."""
    if ctx is None:
        return []
    out = []
    if ctx.seed is not None:
        out.append(seed_line(ctx.seed, ctx.replay))
    if ctx.schedule:
        out.append("schedule:")
        out.extend(f"  {line}" for line in ctx.schedule.splitlines() if line.strip())
    if ctx.digest:
        out.append(digest_line(ctx.digest))
    if ctx.replay:
        out.append(f"replay: {ctx.replay}")
    return out


def digest_line(digest: str) -> str:
    """``digest: X``: what a replay of a deterministic run must reproduce."""
    return f"digest: {digest} (of the ledger; a replay of this deterministic run gives the same)"


def steps_text(steps: Sequence[Any], limit: int = 80) -> str:
    """The released actions of a deterministic run, the last ``limit`` of them."""
    shown = list(steps)[-limit:]
    head = [f"... {len(steps) - len(shown)} earlier step(s)"] if len(shown) < len(steps) else []
    return "\n".join([*head, *(s.describe() for s in shown)])


def object_header(h: ObjectHistory, hook: Any = None) -> str:
    """``Gadget default/g1 (uid ...): 5 versions, latest rv 17 (Ready)``: the state in
    parentheses is a pack's (``pytest_ntinvariants_object_state``), when one tells it."""
    last = h.last
    phase = ""
    state = hook.pytest_ntinvariants_object_state(history=h) if hook is not None else None
    if state is not None:
        phase = f" ({state})"
    gone = ", deleted" if last.type == "DELETED" else ""
    versions = _n(len(h.versions), "version")
    return f"{h.ref} (uid {h.ref.uid}): {versions}, latest rv {last.rv}{phase}{gone}"


def object_details(
    h: ObjectHistory,
    ledger: Ledger,
    highlight: Iterable[int] = (),
    limit: int = 120,
    *,
    invariants: Sequence[str] = (),
    with_timeline: bool = True,
    hook: Any = None,
) -> list[str]:
    """Packs' sections (``pytest_ntinvariants_object_sections``), the endpoint-calls
    table and the timeline of one object (which shows the ``highlight`` entries too,
    whatever object they are about; ``invariants``: the names whose entries the marks
    are, said when more than one)."""
    lines: list[str] = []
    if hook is not None:
        for section in hook.pytest_ntinvariants_object_sections(history=h, ledger=ledger):
            lines.extend(section or ())
    calls = calls_table(h, indent="    ")
    if calls:
        lines.append(f"  endpoint calls about {h.ref.path}:")
        lines.extend(calls)
    if with_timeline:
        lines.append(
            f"  timeline of {h.ref.path} (ms since the ledger began; > marks the entries in "
            f"question{_of(invariants)}):"
        )
        lines.append(
            timeline(ledger, h.ref.uid, limit, highlight=highlight, indent="    ", hook=hook)
        )
    return lines


def _of(invariants: Sequence[str]) -> str:
    return f" of {', '.join(invariants)}" if len(invariants) > 1 else ""


def format_violations(
    violations: Sequence[Violation],
    ledger: Ledger,
    ctx: CheckContext | None = None,
    *,
    timelines: bool = True,
    replay: bool = True,
) -> str:
    """The full failure report: a summary, then per object its violations with their
    evidence, its attempts and endpoint calls, and its timeline (once, however many
    invariants it broke; with the entries the violations point to, whatever object they
    are about); then seed and replay. ``timelines=False`` leaves the timelines out (for
    a report printed beside a timeline of the whole ledger), ``replay=False`` the seed and
    replay lines (for one printed beside the plugin's replay section).
    """
    if not violations:
        return "no invariant violations"
    hook = ctx.hook if ctx is not None else None
    index = index_of(ledger)
    by_inv: dict[str, list[Violation]] = {}
    # One group per object, by its history: two invariants may name one object by refs
    # that differ (one without its uid, or its apiVersion).
    groups: dict[object, tuple[ObjectHistory | None, ObjectRef | None, list[Violation]]] = {}
    for v in violations:
        by_inv.setdefault(v.invariant, []).append(v)
        h = _history_for(v.object, index)
        key = h.ref.uid if h is not None else v.object
        groups.setdefault(key, (h, v.object, []))[2].append(v)
    n_obj = sum(1 for _, ref, _ in groups.values() if ref is not None)
    lines = [
        f"{_n(len(violations), 'invariant violation')} "
        f"({_n(len(by_inv), 'invariant')}, {_n(n_obj, 'object')})"
        + (
            f", seed {report_seed(ctx.seed, ctx.replay)[0]}"
            if ctx is not None and ctx.seed is not None
            else ""
        ),
    ]
    name_w = max(len(name) for name in by_inv)
    for name, vs in by_inv.items():
        objs = list(dict.fromkeys(v.object.path for v in vs if v.object is not None))
        shown = ", ".join(objs[:4]) + (f", +{len(objs) - 4} more" if len(objs) > 4 else "")
        lines.append(f"  {name.ljust(name_w)}  {len(vs):>3}  {shown}")
    for h, ref, vs in groups.values():
        lines.append("")
        if h is not None:
            lines.append(object_header(h, hook))
        else:
            lines.append(str(ref) if ref is not None else "across objects (the whole ledger)")
        highlight: set[int] = set()
        for v in vs:
            lines.append(f"  {v.invariant}: {v.message}")
            lines.extend(format_table(v.evidence, indent="      "))
            highlight.update(v.seqs)
        names = list(dict.fromkeys(v.invariant for v in vs))
        if h is not None:
            lines.extend(
                object_details(
                    h, ledger, highlight, invariants=names, with_timeline=timelines, hook=hook
                )
            )
        elif highlight and timelines:
            # No one object's history to show: the ledger, with the entries in question.
            lines.append(
                f"  timeline (ms since the ledger began; > marks the entries in question"
                f"{_of(names)}):"
            )
            lines.append(timeline(ledger, None, 120, highlight=highlight, indent="    ", hook=hook))
    tail = replay_lines(ctx) if replay else []
    if tail:
        lines.append("")
        lines.extend(tail)
    return "\n".join(lines)


def _history_for(ref: ObjectRef | None, index: LedgerIndex) -> ObjectHistory | None:
    """The object ``ref`` names: by uid, else the newest of its kind, namespace and name."""
    if ref is None:
        return None
    h = index.objects.get(ref.uid) if ref.uid else None
    if h is None and ref.name:
        h = index.find(ref.name, ref.namespace, kind=ref.kind)
    return h


def _n(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def to_json(
    violations: Sequence[Violation], ledger: Ledger, ctx: CheckContext | None = None
) -> JSON:
    """The report as data: the violations, the context, and per violated object its
    versions, endpoint calls and timeline rows, plus what packs add
    (``pytest_ntinvariants_object_json``, through ``ctx.hook``)."""
    hook = ctx.hook if ctx is not None else None
    index = index_of(ledger)
    counts: dict[str, int] = {}
    for v in violations:
        counts[v.invariant] = counts.get(v.invariant, 0) + 1
    objects: dict[str, JSON] = {}
    for v in violations:
        if v.object is None or not v.object.uid or v.object.uid in objects:
            continue
        h = index.objects.get(v.object.uid)
        if h is None:
            continue
        extra: JSON = {}
        if hook is not None:
            for part in hook.pytest_ntinvariants_object_json(history=h):
                extra.update(part or {})
        objects[h.ref.uid] = {
            **h.ref.to_dict(),
            "versions": [
                {"rv": x.rv, "type": x.type, "writer": x.identity, "t_ms": round(x.t * 1000, 3)}
                for x in h.versions
            ],
            **extra,
            "calls": [c.to_dict() for c in h.side_effects()],
            "timeline": [r.to_dict() for r in timeline_rows(ledger, h.ref.uid, hook=hook)],
        }
    return {
        "ok": not violations,
        "summary": counts,
        "violations": [v.to_dict() for v in violations],
        "context": ctx.to_dict() if ctx is not None else None,
        "objects": objects,
    }


# =================================================================== SVG

_LANE_H = 64
_LEFT = 150
_TOP = 56
_RIGHT = 90
# A label's extent per character, rotated as ``_label`` draws it (10 px type, about 6 px
# a character, at 35 degrees): up and to the right.
_LABEL_RISE = 3.5
_LABEL_RUN = 5.0
_MIN_STEP = 36.0
_MAX_STEP = 130.0
_PX_PER_MS = 3.0

_COLORS = {
    "write": "#1f5fbf",
    "read": "#2e8b57",
    "stale": "#d62728",
    "error": "#d62728",
    "watch": "#7b3fa0",
    "perturbation": "#e67e00",
    "crashed": "#d62728",
    "replica": "#555555",
    "call-ok": "#2e8b57",
    "call-bad": "#d62728",
    "lane": "#f4f6f8",
    "highlight": "#ffe066",
}


def render_svg(
    ledger: Ledger,
    path: str | Path,
    *,
    title: str = "",
    uid: str | None = None,
    highlight: Iterable[int] = (),
    limit: int = 400,
    hook: Any = None,
) -> Path:
    """Draw the race as a self-contained SVG file and return its path.

    One horizontal lane for the API server, one per replica identity, one per endpoint;
    time runs left to right (a gap longer than a few tens of ms is shortened and marked
    with its real length, so bursts stay readable). Writes are dots labelled with their
    resourceVersion on the API server lane, joined to the writer; reads are arrows from
    the API server to the reader labelled with the rv served (stale ones in red); watch
    events are arrows from the commit to the watcher labelled with their delay;
    perturbations are orange diamonds, crashes red crosses, endpoint calls squares on
    the endpoint lanes. Entries whose ``seq`` is in ``highlight`` get a yellow halo.
    Every mark carries ``class`` and ``data-*`` attributes and a ``<title>`` tooltip,
    which says what the mark is as the text timeline does (``hook``: packs describe
    writes and calls there too).
    """
    keep = set(highlight)
    rows = timeline_rows(ledger, uid, include=keep, hook=hook)
    items = _elide(rows, limit, keep)
    drawn = [r for r in items if isinstance(r, TimelineRow)]
    endpoints = list(dict.fromkeys(r.lane for r in drawn if r.kind == "call"))
    replicas = [lane for lane in dict.fromkeys(r.lane for r in drawn) if lane not in endpoints]
    lanes = ["apiserver", *replicas, *endpoints]
    # Room above the API server's lane for the longest label of a write drawn on it (it
    # names the object), so none is cut off at the top.
    longest = max((len(_write_label(r)) for r in drawn if r.kind == "write"), default=0)
    top = max(_TOP, int(longest * _LABEL_RISE) + 30)
    y = {lane: top + 30 + i * _LANE_H for i, lane in enumerate(lanes)}
    xs: list[float] = []
    breaks: list[tuple[float, float]] = []
    x = 0.0
    prev_t: float | None = None
    for item in items:
        if isinstance(item, int):
            x += _MAX_STEP
            breaks.append((x - _MAX_STEP / 2, math.nan))
            prev_t = None
            continue
        if prev_t is not None:
            step = (item.t - prev_t) * 1000 * _PX_PER_MS
            if step > _MAX_STEP:
                breaks.append((x + _MAX_STEP / 2, item.t - prev_t))
            x += min(max(step, _MIN_STEP), _MAX_STEP)
        xs.append(x)
        prev_t = item.t
    x_of = {r.seq: _LEFT + xi for r, xi in zip(drawn, xs, strict=True)}
    # Room on the right for the last labels (about as long as a write's, plus a delay).
    reach = max(
        (xi + (len(_write_label(r)) + 10) * _LABEL_RUN for r, xi in zip(drawn, xs, strict=True)),
        default=0.0,
    )
    width = max(int(_LEFT + max(xs[-1] if xs else 0, reach) + _RIGHT + 60), _LEFT + 3 * 230 + 40)
    lanes_bottom = top + 30 + (len(lanes) - 1) * _LANE_H + 30
    height = lanes_bottom + 180
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="11">',
        _defs(),
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text class="title" x="12" y="24" font-size="15" font-weight="bold">'
        f"{escape(title or 'ledger timeline')}</text>",
    ]
    # lanes
    for lane in lanes:
        kind = (
            "apiserver" if lane == "apiserver" else ("endpoint" if lane in endpoints else "replica")
        )
        ly = y[lane]
        label = "API server" if lane == "apiserver" else lane
        out.append(
            f'<g class="lane" data-lane={quoteattr(lane)} data-kind="{kind}">'
            f'<rect x="{_LEFT - 10}" y="{ly - _LANE_H / 2 + 4}" width="{width - _LEFT}" '
            f'height="{_LANE_H - 8}" fill="{_COLORS["lane"]}" rx="4"/>'
            f'<line x1="{_LEFT - 10}" y1="{ly}" x2="{width - 20}" y2="{ly}" '
            'stroke="#b0b8c0" stroke-width="1"/>'
            f'<text x="{_LEFT - 16}" y="{ly + 4}" text-anchor="end" font-weight="bold">'
            f"{escape(label)}</text>"
            f'<text x="{_LEFT - 16}" y="{ly + 17}" text-anchor="end" fill="#777" '
            f'font-size="9">{kind}</text></g>'
        )
    # time axis
    axis_y = lanes_bottom
    out.append(
        f'<line class="axis" x1="{_LEFT}" y1="{axis_y}" x2="{width - 20}" '
        f'y2="{axis_y}" stroke="#333"/>'
    )
    last_tick = -1e9
    for r in drawn:
        rx = x_of[r.seq]
        if rx - last_tick >= 70:
            out.append(
                f'<g class="tick"><line x1="{rx:.1f}" y1="{axis_y}" x2="{rx:.1f}" '
                f'y2="{axis_y + 5}" stroke="#333"/><text x="{rx:.1f}" '
                f'y="{axis_y + 17}" text-anchor="middle" font-size="9">'
                f"{r.t * 1000:.1f} ms</text></g>"
            )
            last_tick = rx
    for bx, gap in breaks:
        label = "entries elided" if math.isnan(gap) else f"+{_dur(gap)}"
        out.append(
            f'<g class="break"><text x="{_LEFT + bx:.1f}" y="{axis_y + 4}" '
            f'text-anchor="middle" font-size="14" fill="#999">//</text>'
            f'<text x="{_LEFT + bx:.1f}" y="{axis_y + 30}" text-anchor="middle" '
            f'font-size="9" fill="#999">{escape(label)}</text></g>'
        )
    out.append(
        f'<text x="{_LEFT}" y="{axis_y + 44}" font-size="9" fill="#777">time (ms since '
        "the ledger began; // marks a shortened gap)</text>"
    )
    api_y = y["apiserver"]
    for r in drawn:
        out.append(_mark(r, x_of[r.seq], y[r.lane], api_y, x_of, r.seq in keep))
    out.append(_legend(lanes_bottom + 92))
    out.append("</svg>")
    target = Path(path)
    target.write_text("\n".join(out), encoding="utf-8")
    return target


def _write_label(r: TimelineRow) -> str:
    """``ConfigMap/c rv 5``: a write's label on the API server's lane."""
    return f"{r.obj} rv {r.rv}" if r.obj else f"rv {r.rv}"


def _dur(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _defs() -> str:
    markers = "".join(
        f'<marker id="arrow-{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="9" '
        'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M 0 0 L 10 5 L 0 10 z" '
        f'fill="{color}"/></marker>'
        for name, color in (
            ("read", _COLORS["read"]),
            ("stale", _COLORS["stale"]),
            ("watch", _COLORS["watch"]),
            ("error", _COLORS["error"]),
            ("write", _COLORS["write"]),
        )
    )
    return f"<defs>{markers}</defs>"


def _label(x: float, y: float, text: str, color: str, cls: str = "label") -> str:
    # Rotated labels: neighbours 20 px apart never overlap, whatever their length.
    return (
        f'<text class="{cls}" x="{x + 3:.1f}" y="{y - 8:.1f}" fill="{color}" '
        f'font-size="10" transform="rotate(-35 {x + 3:.1f} {y - 8:.1f})">'
        f"{escape(text)}</text>"
    )


def _mark(
    r: TimelineRow, x: float, y: float, api_y: float, x_of: Mapping[int, float], halo: bool
) -> str:
    tip = f"<title>{escape(f'{r.t * 1000:.3f} ms  {r.lane}: {r.text}')}</title>"
    data = f'data-seq="{r.seq}" data-t-ms="{r.t * 1000:.3f}" data-lane={quoteattr(r.lane)}'
    if r.rv is not None:
        data += f' data-rv="{r.rv}"'
    if r.obj:
        data += f" data-object={quoteattr(r.obj)}"
    # A resourceVersion alone says nothing to a reader: labels name the object too.
    about = f"{r.obj} " if r.obj else ""
    parts: list[str] = []
    if halo:
        parts.append(
            f'<circle class="halo" cx="{x:.1f}" cy="{y:.1f}" r="11" fill="{_COLORS["highlight"]}"/>'
        )
    kind = r.kind
    if kind == "write":
        c = _COLORS["write"]
        if y != api_y:
            parts.append(
                f'<line x1="{x:.1f}" y1="{y:.1f}" x2="{x:.1f}" y2="{api_y:.1f}" '
                f'stroke="{c}" stroke-width="1.2" stroke-dasharray="3 2"/>'
            )
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{c}"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{api_y:.1f}" r="5.5" fill="{c}"/>')
        parts.append(_label(x, api_y, _write_label(r), c))
        cls = "mark write"
    elif kind in ("read", "error"):
        stale = r.stale or kind == "error"
        name = "error" if kind == "error" else ("stale" if r.stale else "read")
        c = _COLORS[name]
        dash = ' stroke-dasharray="4 2"' if kind == "error" else ""
        parts.append(
            f'<line x1="{x:.1f}" y1="{api_y + 6:.1f}" x2="{x:.1f}" y2="{y - 3:.1f}" '
            f'stroke="{c}" stroke-width="{2.2 if stale else 1.4}"{dash} '
            f'marker-end="url(#arrow-{name})"/>'
        )
        if kind == "error":
            text = r.text.split("->")[-1].strip()
        else:
            text = f"{about}rv {r.rv if r.rv is not None else '?'}" + (" stale" if r.stale else "")
        parts.append(_label(x, y, text, c))
        cls = f"mark {kind}" + (" stale" if r.stale else "")
    elif kind == "watch":
        c = _COLORS["watch"]
        x0 = x_of.get(r.commit_seq, x - _MIN_STEP) if r.commit_seq is not None else x - _MIN_STEP
        parts.append(
            f'<line x1="{x0:.1f}" y1="{api_y + 4:.1f}" x2="{x:.1f}" y2="{y - 3:.1f}" '
            f'stroke="{c}" stroke-width="1.3" marker-end="url(#arrow-watch)" '
            'opacity="0.85"/>'
        )
        delay = f"+{r.delay * 1000:.0f} ms" if r.delay >= 0.0005 else "+0 ms"
        parts.append(_label(x, y, f"{about}rv {r.rv} {delay}", c))
        cls = "mark watch"
    elif kind == "perturbation":
        c = _COLORS["perturbation"]
        parts.append(
            f'<path d="M {x:.1f} {y - 7:.1f} L {x + 7:.1f} {y:.1f} L {x:.1f} '
            f'{y + 7:.1f} L {x - 7:.1f} {y:.1f} z" fill="{c}"/>'
        )
        parts.append(_label(x, y, r.text.removeprefix("perturbation ").split(":")[0], c))
        cls = "mark perturbation"
    elif kind == "replica":
        crashed = "CRASHED" in r.text
        c = _COLORS["crashed" if crashed else "replica"]
        if crashed:
            parts.append(
                f'<path d="M {x - 6:.1f} {y - 6:.1f} L {x + 6:.1f} {y + 6:.1f} M '
                f'{x + 6:.1f} {y - 6:.1f} L {x - 6:.1f} {y + 6:.1f}" stroke="{c}" '
                'stroke-width="3"/>'
            )
        else:
            parts.append(
                f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" '
                f'fill="none" stroke="{c}" stroke-width="2"/>'
            )
        parts.append(_label(x, y, r.text.removeprefix("replica ").split(":")[0], c))
        cls = "mark replica" + (" crashed" if crashed else "")
    else:  # call
        ok = "-> 2" in r.text
        c = _COLORS["call-ok" if ok else "call-bad"]
        parts.append(f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{c}"/>')
        short = r.text.removeprefix("call ").replace(" attempt ", " #")
        parts.append(_label(x, y, short.split(" (")[0], c))
        cls = "mark call"
    if halo:
        cls += " highlighted"
    return f'<g class="{cls}" {data}>{tip}{"".join(parts)}</g>'


def _legend(top: float) -> str:
    entries = [
        (
            "write",
            f'<circle cx="8" cy="0" r="5" fill="{_COLORS["write"]}"/>',
            "write (rv committed)",
        ),
        (
            "read",
            f'<line x1="8" y1="-8" x2="8" y2="6" stroke="{_COLORS["read"]}" '
            'stroke-width="1.5" marker-end="url(#arrow-read)"/>',
            "read (rv served)",
        ),
        (
            "stale",
            f'<line x1="8" y1="-8" x2="8" y2="6" stroke="{_COLORS["stale"]}" '
            'stroke-width="2.2" marker-end="url(#arrow-stale)"/>',
            "stale read",
        ),
        (
            "error",
            f'<line x1="8" y1="-8" x2="8" y2="6" stroke="{_COLORS["error"]}" '
            'stroke-dasharray="4 2" marker-end="url(#arrow-error)"/>',
            "failed request",
        ),
        (
            "watch",
            f'<line x1="0" y1="-8" x2="14" y2="6" stroke="{_COLORS["watch"]}" '
            'marker-end="url(#arrow-watch)"/>',
            "watch event (+delay)",
        ),
        (
            "perturbation",
            f'<path d="M 8 -7 L 15 0 L 8 7 L 1 0 z" fill="{_COLORS["perturbation"]}"/>',
            "perturbation",
        ),
        (
            "crash",
            f'<path d="M 2 -6 L 14 6 M 14 -6 L 2 6" stroke="{_COLORS["crashed"]}" '
            'stroke-width="3"/>',
            "replica crash",
        ),
        (
            "call",
            f'<rect x="3" y="-5" width="10" height="10" fill="{_COLORS["call-ok"]}"/>'
            f'<rect x="15" y="-5" width="10" height="10" fill="{_COLORS["call-bad"]}"/>',
            "endpoint call (ok / error)",
        ),
        (
            "highlight",
            f'<circle cx="8" cy="0" r="8" fill="{_COLORS["highlight"]}"/>',
            "entry in question",
        ),
    ]
    parts = [
        f'<g class="legend" transform="translate({_LEFT} {top})">'
        '<text x="0" y="-16" font-weight="bold">legend</text>'
    ]
    for i, (name, glyph, text) in enumerate(entries):
        gx = (i % 3) * 230
        gy = (i // 3) * 26
        parts.append(
            f'<g class="legend-item" data-item="{name}" transform="translate({gx} '
            f'{gy})">{glyph}<text x="32" y="4">{escape(text)}</text></g>'
        )
    parts.append("</g>")
    return "".join(parts)
