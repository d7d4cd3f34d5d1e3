"""Assertions on side effects for tests, for any kind: what the outside world received.

The seed's failures read ``Expected <int>: 1 to equal <int>: 2`` and nothing else
(README.md, "The hidden duplicate"); three fixes later the cause was still guessed at.
These helpers say which object, which key, how many calls were expected and received,
then show the calls and the race that produced them (with a pack's sections, when the
context's hook has one), and end with the seed and the replay command: a failure
explains itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..ledger import Ledger, SideEffect
from ._core import CheckContext
from ._index import LedgerIndex, ObjectHistory, index_of

__all__ = ["assert_no_side_effects", "assert_side_effects", "failure_message", "find_object"]


def assert_side_effects(
    ledger: Ledger,
    obj: str | Mapping[str, Any],
    *,
    count: int,
    key: str | None = None,
    endpoint: str | None = None,
    successful: bool = False,
    namespace: str = "default",
    kind: str | None = None,
    ctx: CheckContext | None = None,
    **attributes: Any,
) -> None:
    """Assert fake endpoints received ``count`` calls about an object.

    ``obj`` is an object (a dict with ``metadata``), a uid, a name in ``namespace`` or
    ``"namespace/name"`` (``kind`` decides between objects of several kinds with that
    name). Only calls with ``key``, to ``endpoint``, answered 2xx (``successful``) and
    carrying every given attribute (``**attributes``, compared as strings, as the ledger
    records them) count.
    """
    __tracebackhide__ = True
    h = find_object(ledger, obj, namespace, kind)
    calls = _matching(h.side_effects(), key, endpoint, successful, attributes)
    if len(calls) == count:
        return
    what = _describe(count, key, endpoint, successful, attributes)
    summary = f"expected {what} about {h.ref}, endpoints received {len(calls)}"
    raise AssertionError(failure_message(summary, h, ledger, ctx, {c.seq for c in calls}))


def assert_no_side_effects(
    ledger: Ledger,
    obj: str | Mapping[str, Any] | None = None,
    *,
    key: str | None = None,
    endpoint: str | None = None,
    successful: bool = False,
    namespace: str = "default",
    kind: str | None = None,
    ctx: CheckContext | None = None,
    **attributes: Any,
) -> None:
    """Assert no fake endpoint received a matching call: about ``obj`` when given (see
    ``assert_side_effects``), else about anything at all."""
    __tracebackhide__ = True
    if obj is not None:
        assert_side_effects(
            ledger,
            obj,
            count=0,
            key=key,
            endpoint=endpoint,
            successful=successful,
            namespace=namespace,
            kind=kind,
            ctx=ctx,
            **attributes,
        )
        return
    calls = _matching(index_of(ledger).side_effects, key, endpoint, successful, attributes)
    if not calls:
        return
    from ..report import format_table, replay_lines, timeline

    what = _describe(0, key, endpoint, successful, attributes)
    rows = [
        {
            "seq": c.seq,
            "t ms": round(c.t * 1000, 3),
            "endpoint": c.endpoint,
            "about": f"{c.namespace}/{c.name}" if c.namespace else c.name or c.uid or "?",
            "key": c.key,
            "status": c.status or "closed",
        }
        for c in calls
    ]
    hook = ctx.hook if ctx is not None else None
    lines = [f"expected {what}, endpoints received {len(calls)}", ""]
    lines.extend(format_table(rows))
    lines.append("  timeline (ms since the ledger began; > marks the calls):")
    lines.append(
        timeline(ledger, None, 120, highlight={c.seq for c in calls}, indent="    ", hook=hook)
    )
    tail = replay_lines(ctx)
    if tail:
        lines.extend(["", *tail])
    raise AssertionError("\n".join(lines))


def _matching(
    calls: list[SideEffect],
    key: str | None,
    endpoint: str | None,
    successful: bool,
    attributes: Mapping[str, Any],
) -> list[SideEffect]:
    wanted = {k: str(v) for k, v in attributes.items() if v is not None}
    return [
        c
        for c in calls
        if (key is None or c.key == key)
        and (endpoint is None or c.endpoint == endpoint)
        and (not successful or 200 <= c.status < 300)
        and all(c.attributes.get(k) == v for k, v in wanted.items())
    ]


def _describe(
    count: int,
    key: str | None,
    endpoint: str | None,
    successful: bool,
    attributes: Mapping[str, Any],
) -> str:
    words = [str(count)]
    if successful:
        words.append("successful")
    words.append("call" if count == 1 else "calls")
    if endpoint:
        words.append(f"to {endpoint}")
    if key is not None:
        words.append(f"with key {key!r}")
    given = [f"{k}={v!r}" for k, v in attributes.items() if v is not None]
    if given:
        words.append(f"({', '.join(given)})")
    return " ".join(words)


def find_object(
    ledger: Ledger,
    obj: str | Mapping[str, Any],
    namespace: str = "default",
    kind: str | None = None,
) -> ObjectHistory:
    """The history of the object ``obj`` names (an object, a uid, a name in ``namespace``
    or ``"namespace/name"``; ``kind`` decides among kinds); an ``AssertionError`` naming
    the objects the ledger knows (of ``kind``, when given) if there is none."""
    __tracebackhide__ = True
    index = index_of(ledger)
    if isinstance(obj, Mapping):
        meta = obj.get("metadata") or {}
        kind = kind or obj.get("kind") or None
        namespace = str(meta.get("namespace") or namespace)
        obj = str(meta.get("uid") or meta.get("name") or "")
    h = _find(index, obj, namespace, kind)
    if h is None:
        known = (
            ", ".join(
                sorted(
                    {
                        f"{o.ref.path if kind else o.ref} (uid {o.ref.uid})"
                        for o in index.objects.values()
                        if kind is None or o.ref.kind == kind
                    }
                )
            )
            or "none"
        )
        raise AssertionError(
            f"no object {obj!r} (namespace {namespace!r}) in the ledger; "
            f"{kind + 's' if kind else 'objects'} known: {known}"
        )
    return h


def _find(index: LedgerIndex, obj: str, namespace: str, kind: str | None) -> ObjectHistory | None:
    h = index.find(obj, namespace, kind=kind)
    if h is not None and kind is not None and h.ref.kind != kind:
        return None  # a uid of another kind
    return h


def failure_message(
    summary: str,
    h: ObjectHistory,
    ledger: Ledger,
    ctx: CheckContext | None,
    highlight: set[int],
) -> str:
    """An assertion's failure: ``summary``, then the object's header, sections (a pack's,
    through ``ctx.hook``), endpoint calls and timeline with ``highlight`` marked, then the
    seed and the replay command."""
    # Imported here: report imports this package, and the report is only needed on failure.
    from ..report import object_details, object_header, replay_lines

    hook = ctx.hook if ctx is not None else None
    lines = [summary, "", object_header(h, hook)]
    lines.extend(object_details(h, ledger, highlight, hook=hook))
    tail = replay_lines(ctx)
    if tail:
        lines.append("")
        lines.extend(tail)
    return "\n".join(lines)
