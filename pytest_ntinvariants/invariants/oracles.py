"""Oracles: rules every controller keeps, judged with no code of the test's.

- ``end-state`` (differential, after Sieve): an explored run, once settled, ends in the
  state its unperturbed run ended in. The unperturbed run is the test once in arrival
  order with no perturbation (the plugin runs it once per test and process). States are
  compared after normalising what differs between any two runs: resourceVersions, uids,
  timestamps, managedFields, generated names (``generateName`` + ``*``), owner uids (the
  owner's kind and name instead), which replica did the work (its identity, in any
  string, reads ``<replica>``) and kopf's own bookkeeping (its annotations and
  ``status.kopf``). Objects are compared per kind, namespace, name and owner: spec,
  status, labels, annotations and finalizers; and the successful calls each endpoint
  received, per object and channel. Fields that differ between two unperturbed runs (the
  same order, another seed) are *noise*: ignored, and listed in the summary. Counts
  (objects, calls) are never noise.
- ``side-effects-once``: an endpoint that can tell which object a call is about received
  at most one successful call per object and channel, one more per crash of the replica
  that made it (a replica that crashed right after a call could record nothing of it),
  or as many more as a pack says the controller's contract allows
  (``pytest_ntinvariants_repeated_side_effects``: a claim taken over), whichever is more.
- ``converges``: once settled, every replica re-lists what it watches (a resync, as after
  its watch expired) and makes no write: a controller whose reconcile is not idempotent
  writes again.
- ``no-hot-loop``: no object is written more than ``max_writes`` times by the replicas,
  and no two replicas undo each other's writes (one sets a field, the other sets it back,
  twice over).

Everything here names no kind: the oracles apply to any controller.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from ..ledger import Ledger, PerturbationFired, ReplicaEvent, SideEffect
from ._core import CheckContext, Invariant, ObjectRef, Violation
from ._index import ObjectHistory, index_of, parse_time

__all__ = [
    "ORACLES",
    "Converges",
    "EndState",
    "EndStateMatches",
    "NoHotLoop",
    "SideEffectsOnce",
    "end_state",
    "noise_between",
]

JSON = dict[str, Any]

#: Kinds whose objects are the machinery's, not the controller's result: events (their
#: counts and times depend on timing), leases and kopf's peering records.
IGNORED_KINDS = frozenset({"Event", "Lease", "KopfPeering", "ClusterKopfPeering"})

#: What marks a resync in the ledger (``Harness.resync`` records it).
RESYNC = "resync"

_KOPF = "kopf.zalando.org/"


@dataclass(frozen=True)
class EndState:
    """A run's settled state, normalised: the objects under each key (``Kind
    namespace/name``, with `` owned by Kind name`` when owned), and the successful calls
    each endpoint received per ``endpoint namespace/name channel``."""

    objects: Mapping[str, tuple[JSON, ...]]
    calls: Mapping[str, int]

    def to_dict(self) -> JSON:
        """A JSON-able dict."""
        return {"objects": {k: list(v) for k, v in self.objects.items()}, "calls": dict(self.calls)}


def end_state(ledger: Ledger) -> EndState:
    """The normalised end state of the run ``ledger`` recorded."""
    index = index_of(ledger)
    replicas = sorted({e.identity for e in ledger.entries(ReplicaEvent)}, key=len, reverse=True)
    names = {h.ref.uid: (h.ref.kind, _name(h.last.obj)) for h in index.objects.values()}
    objects: dict[str, list[JSON]] = {}
    for history in index.objects.values():
        if history.deleted or history.ref.kind in IGNORED_KINDS:
            continue
        key, doc = _normalise(history, names, replicas)
        objects.setdefault(key, []).append(doc)
    calls: dict[str, int] = {}
    for call in ledger.entries(SideEffect):
        if 200 <= call.status < 300 and (call.name or call.uid):
            key = _call_key(call)
            calls[key] = calls.get(key, 0) + 1
    return EndState(
        {k: tuple(sorted(v, key=_canonical)) for k, v in sorted(objects.items())},
        dict(sorted(calls.items())),
    )


def noise_between(a: EndState, b: EndState) -> frozenset[str]:
    """The fields (``Kind field.path``) that differ between two unperturbed runs' end
    states: what the differential oracle ignores."""
    out: set[str] = set()
    for key in a.objects.keys() & b.objects.keys():
        kind = key.partition(" ")[0]
        for x, y in zip(a.objects[key], b.objects[key], strict=False):
            out.update(f"{kind} {path}" for path, _, _ in _diff(x, y))
    return frozenset(out)


class EndStateMatches(Invariant):
    """``end-state``: a settled explored run ends as its unperturbed run did."""

    name = "end-state"
    description = (
        "a settled explored run ends in the state its unperturbed run ended in: the same "
        "objects per kind, namespace, name and owner, with the same spec, status, labels, "
        "annotations and finalizers, and the same successful endpoint calls (more only "
        "after a crash)"
    )

    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        """Compare with ``ctx.reference`` (nothing to judge without one, or unsettled)."""
        reference = ctx.reference
        if not isinstance(reference, EndState) or not ctx.quiet:
            return []
        run = end_state(ledger)
        out: list[Violation] = []
        for key in sorted(reference.objects.keys() | run.objects.keys()):
            want, got = reference.objects.get(key, ()), run.objects.get(key, ())
            ref = _ref_of(key)
            if len(want) != len(got):
                out.append(
                    Violation(
                        self.name,
                        ref,
                        f"{len(got)} object(s) {key} at the end, {len(want)} in the "
                        "unperturbed run",
                        evidence=(
                            {"object": key, "unperturbed run": len(want), "this run": len(got)},
                        ),
                    )
                )
                continue
            kind = key.partition(" ")[0]
            rows = [
                {"object": key, "field": path, "unperturbed run": _show(x), "this run": _show(y)}
                for a, b in zip(want, got, strict=True)
                for path, x, y in _diff(a, b)
                if f"{kind} {path}" not in ctx.noise
            ]
            if rows:
                fields = ", ".join(dict.fromkeys(str(r["field"]) for r in rows))
                out.append(
                    Violation(
                        self.name,
                        ref,
                        f"{key} ends with {fields} other than in the unperturbed run",
                        evidence=tuple(rows),
                    )
                )
        crashes = sum(ctx.crashes_by_identity.values())
        for key in sorted(reference.calls.keys() | run.calls.keys()):
            want_calls, got_calls = reference.calls.get(key, 0), run.calls.get(key, 0)
            if got_calls < want_calls or got_calls > want_calls + crashes:
                allowed = f" (+{crashes} for crashes)" if crashes else ""
                out.append(
                    Violation(
                        self.name,
                        None,
                        f"{got_calls} successful call(s) {key}, {want_calls}{allowed} in the "
                        "unperturbed run",
                        evidence=(
                            {
                                "calls": key,
                                "unperturbed run": want_calls,
                                "this run": got_calls,
                                "crashes": crashes,
                            },
                        ),
                    )
                )
        return out


class SideEffectsOnce(Invariant):
    """``side-effects-once``: at most one successful call per object and key."""

    name = "side-effects-once"
    description = (
        "an endpoint that can tell which object a call is about receives at most one "
        "successful call per object and key, one more per crash of the replica that "
        "made it"
    )

    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        """Group the successful attributed calls by endpoint, object and key."""
        # Only successful calls count: a controller that retries a failed call makes no
        # second side effect, whatever key its attribution gives the retry.
        groups: dict[tuple[str, str, str], list[SideEffect]] = {}
        for call in ledger.entries(SideEffect):
            if 200 <= call.status < 300 and (call.uid or call.name):
                where = call.uid or f"{call.namespace}/{call.name}"
                groups.setdefault((call.endpoint, where, call.key), []).append(call)
        out = []
        for (endpoint, _, key), calls in groups.items():
            callers = {c.caller for c in calls if c.caller}
            crashes = sum(ctx.crashes_by_identity.get(c, 0) for c in callers)
            if len(calls) <= 1 + crashes:
                continue
            extra, why = _contract_allows(ledger, ctx, calls)
            if len(calls) <= 1 + max(crashes, extra):
                continue
            first = calls[0]
            out.append(
                Violation(
                    self.name,
                    ObjectRef("", first.namespace, first.name, first.uid),
                    f"{endpoint} received {len(calls)} successful calls with key "
                    f"{key or endpoint!r}"
                    + (
                        f" ({crashes} crash(es) of their callers allow {1 + crashes})"
                        if crashes
                        else ""
                    )
                    + (f" ({why} allow {1 + extra})" if extra else ""),
                    evidence=tuple(
                        {
                            "seq": c.seq,
                            "t ms": round(c.t * 1000, 3),
                            "endpoint": c.endpoint,
                            "caller": c.caller or "?",
                            "status": c.status,
                        }
                        for c in calls
                    ),
                    seqs=tuple(c.seq for c in calls),
                )
            )
        return out


def _contract_allows(ledger: Ledger, ctx: CheckContext, calls: list[SideEffect]) -> tuple[int, str]:
    """The extra calls a pack says the controller's contract allows (and why), or none."""
    if ctx.hook is None:
        return 0, ""
    index = index_of(ledger)
    history = index.objects.get(index.uid_of_call(calls[0]))
    if history is None:
        return 0, ""
    answer = ctx.hook.pytest_ntinvariants_repeated_side_effects(history=history, calls=calls)
    return (answer[0], answer[1]) if answer else (0, "")


class Converges(Invariant):
    """``converges``: after a resync the replicas write nothing."""

    name = "converges"
    description = (
        "once settled, a resync of every replica (a re-list of what it watches) makes no "
        "further write"
    )

    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        """The versions the replicas committed after the resync mark, per object (a
        write that changes nothing makes no version, as in kube)."""
        mark = next((e for e in ledger.entries(PerturbationFired) if e.action == RESYNC), None)
        if mark is None:
            return []
        replicas = {e.identity for e in ledger.entries(ReplicaEvent)}
        out = []
        for history in index_of(ledger).objects.values():
            found = [v for v in history.versions if v.seq > mark.seq and v.identity in replicas]
            if found:
                out.append(
                    Violation(
                        self.name,
                        history.ref,
                        f"written {len(found)} time(s) after every replica re-listed a "
                        "settled world: its reconcile does not reach a fixed point",
                        rvs=tuple(v.rv for v in found),
                        evidence=tuple(
                            {
                                "seq": v.seq,
                                "t ms": round(v.t * 1000, 3),
                                "rv": v.rv,
                                "writer": v.identity,
                                "verb": v.verb,
                                "subresource": v.subresource or "-",
                            }
                            for v in found
                        ),
                        seqs=(mark.seq, *(v.seq for v in found)),
                    )
                )
        return out


class NoHotLoop(Invariant):
    """``no-hot-loop``: bounded writes per object, and no two replicas undoing each other."""

    name = "no-hot-loop"
    description = (
        "the replicas write no object more than max_writes times, and no two replicas "
        "set a field back and forth (each undoing the other's write, twice over)"
    )

    def __init__(self, max_writes: int = 100) -> None:
        self.max_writes = max_writes

    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        """Count each object's versions written by replicas; look for undo cycles."""
        replicas = {e.identity for e in ledger.entries(ReplicaEvent)}
        if not replicas:
            return []
        out: list[Violation] = []
        for history in index_of(ledger).objects.values():
            written = [v for v in history.versions if v.identity in replicas]
            if len(written) > self.max_writes:
                out.append(
                    Violation(
                        self.name,
                        history.ref,
                        f"written {len(written)} times by the replicas (at most {self.max_writes})",
                        rvs=(written[0].rv, written[-1].rv),
                        evidence=tuple(
                            {"writer": who, "writes": n}
                            for who, n in _count(v.identity for v in written).items()
                        ),
                    )
                )
            out.extend(self._undo_cycles(history, replicas))
        return out

    def _undo_cycles(
        self, history: ObjectHistory, replicas: Collection[str]
    ) -> Iterator[Violation]:
        changes: dict[str, list[tuple[str, str, int, int]]] = {}
        previous: JSON | None = None
        for v in history.versions:
            doc = _content(v.obj)
            if previous is not None and v.identity in replicas:
                for path, _, value in _diff(previous, doc):
                    changes.setdefault(path, []).append(
                        (v.identity, _canonical(value), v.rv, v.seq)
                    )
            previous = doc
        for path, seen in changes.items():
            cycle = _flip_flop(seen)
            if cycle:
                yield Violation(
                    self.name,
                    history.ref,
                    f"{cycle[0][0]} and {cycle[1][0]} set {path} back and forth: each "
                    "undoes the other's write",
                    rvs=tuple(c[2] for c in cycle),
                    evidence=tuple(
                        {"rv": rv, "writer": who, "field": path, "value": value[:60]}
                        for who, value, rv, _ in cycle
                    ),
                    seqs=tuple(c[3] for c in cycle),
                )


#: The oracles, in the order they are registered (after the other built-in invariants).
ORACLES: tuple[type[Invariant], ...] = (EndStateMatches, SideEffectsOnce, Converges, NoHotLoop)


# ------------------------------------------------------------------------ helpers


def _flip_flop(seen: list[tuple[str, str, int, int]]) -> list[tuple[str, str, int, int]]:
    # Four consecutive changes of one field by two writers taking turns, with two values
    # taking turns: A sets x, B sets y, A sets x again, B sets y again.
    for i in range(len(seen) - 3):
        a, b, c, d = seen[i : i + 4]
        if a[0] == c[0] != b[0] == d[0] and a[1] == c[1] != b[1] == d[1]:
            return [a, b, c, d]
    return []


def _normalise(
    history: ObjectHistory, names: Mapping[str, tuple[str, str]], replicas: list[str]
) -> tuple[str, JSON]:
    obj = history.last.obj
    meta = obj.get("metadata") or {}
    # An owner by kind and name as it ended (its uid differs from run to run).
    owners = sorted(
        " ".join(names.get(o.get("uid", ""), (o.get("kind", ""), o.get("name", ""))))
        for o in meta.get("ownerReferences") or ()
    )
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    key = f"{history.ref.kind} {where}{_name(obj)}"
    if owners:
        key += " owned by " + ", ".join(owners)
    doc = _content(obj)
    return key, _scrub(doc, replicas)


def _content(obj: JSON) -> JSON:
    """What the differential oracle compares of an object."""
    meta = obj.get("metadata") or {}
    doc = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if _KOPF not in k}
    if annotations:
        doc["annotations"] = annotations
    for name in ("labels", "finalizers"):
        if meta.get(name):
            doc[name] = meta[name]
    status = doc.get("status")
    if isinstance(status, dict) and "kopf" in status:
        doc["status"] = {k: v for k, v in status.items() if k != "kopf"}
    return doc


def _name(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    if meta.get("generateName"):
        return f"{meta['generateName']}*"
    return str(meta.get("name", ""))


def _scrub(value: Any, replicas: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, replicas) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, replicas) for v in value]
    if isinstance(value, str):
        if parse_time(value) is not None:
            return "<time>"
        for identity in replicas:  # longest first: replica-1 before replica-10's prefix
            if identity in value:
                value = re.sub(rf"(?<![\w-]){re.escape(identity)}(?![\w-])", "<replica>", value)
    return value


def _diff(a: Any, b: Any, path: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(path, a's value, b's value)`` for each leaf where ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(a.keys() | b.keys()):
            yield from _diff(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif a != b:
        yield path, a, b


def _canonical(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _show(value: Any) -> str:
    text = _canonical(value) if value is not None else "(absent)"
    return text if len(text) <= 60 else text[:57] + "..."


def _ref_of(key: str) -> ObjectRef:
    kind, _, rest = key.partition(" ")
    where = rest.partition(" owned by ")[0]
    namespace, _, name = where.rpartition("/")
    return ObjectRef(kind, namespace, name)


def _call_key(call: SideEffect) -> str:
    return f"to {call.endpoint} about {call.namespace}/{call.name} on {call.key or call.endpoint}"


def _count(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out
