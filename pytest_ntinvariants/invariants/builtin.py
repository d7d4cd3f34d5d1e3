"""Invariants that hold for every kind, and the default registry."""

from __future__ import annotations

from typing import Final

from ..ledger import Ledger, WatchDelivered
from ._core import CheckContext, Invariant, InvariantRegistry, ObjectRef, Violation
from ._index import index_of
from .oracles import ORACLES

__all__ = ["BUILTIN_INVARIANTS", "ResourceVersionMonotonic", "default_registry"]


class ResourceVersionMonotonic(Invariant):
    """``resource-version-monotonic``: versions and watch events never go back in time."""

    name = "resource-version-monotonic"
    description = (
        "per object, resourceVersions strictly increase across its versions; per watch "
        "stream, the events about one object arrive in strictly increasing resourceVersion"
    )

    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        """Check object versions, then each watch stream's events per object."""
        # One global, monotonically increasing resourceVersion, as in kube-apiserver:
        # clients compare versions and resume watches from them, and a controller that
        # sees an older version after a newer one acts on a state that no longer exists.
        index = index_of(ledger)
        out: list[Violation] = []
        for history in index.objects.values():
            if not self.applies_to(history.ref.kind, history.ref.api_version):
                continue
            prev = None
            for v in history.versions:
                if prev is not None and v.rv <= prev.rv:
                    out.append(
                        Violation(
                            self.name,
                            history.ref,
                            f"rv {v.rv} ({v.type} by {v.identity or '?'}) committed after rv "
                            f"{prev.rv} ({prev.type} by {prev.identity or '?'})",
                            (prev.rv, v.rv),
                            tuple(
                                {
                                    "seq": x.seq,
                                    "t ms": round(x.t * 1000, 3),
                                    "rv": x.rv,
                                    "type": x.type,
                                    "writer": x.identity or "?",
                                }
                                for x in (prev, v)
                            ),
                            (prev.seq, v.seq),
                        )
                    )
                if prev is None or v.rv > prev.rv:
                    prev = v
        # Per stream and object, not across objects: a watch that starts from "0" (or with
        # sendInitialEvents) opens with synthetic ADDED events in key order, not rv order.
        last: dict[tuple[str, int, str, str, str], WatchDelivered] = {}
        for d in index.deliveries:
            key = (d.identity, d.watcher, d.resource, d.namespace, d.name)
            before = last.get(key)
            if before is not None and d.rv <= before.rv:
                version = index.by_rv.get(d.rv)
                ref = (
                    version
                    and ObjectRef(
                        version.kind_,
                        version.namespace,
                        version.name,
                        version.uid,
                        version.api_version,
                    )
                ) or ObjectRef(d.resource, d.namespace, d.name)
                if self.applies_to(ref.kind, ref.api_version):
                    out.append(
                        Violation(
                            self.name,
                            ref,
                            f"{d.identity or '?'}'s watch #{d.watcher} delivered {d.type} "
                            f"rv {d.rv} "
                            f"after {before.type} rv {before.rv}",
                            (before.rv, d.rv),
                            tuple(
                                {
                                    "seq": x.seq,
                                    "t ms": round(x.t * 1000, 3),
                                    "watcher": f"{x.identity or '?'} #{x.watcher}",
                                    "event": x.type,
                                    "rv": x.rv,
                                    "delay ms": round(x.delay * 1000, 3),
                                }
                                for x in (before, d)
                            ),
                            (before.seq, d.seq),
                        )
                    )
            if before is None or d.rv > before.rv:
                last[key] = d
        return out


#: Every built-in invariant class, in the order they run and are reported.
BUILTIN_INVARIANTS: Final[tuple[type[Invariant], ...]] = (
    ResourceVersionMonotonic,
    *ORACLES,
)


def default_registry() -> InvariantRegistry:
    """A new registry holding one instance of every built-in invariant."""
    return InvariantRegistry(cls() for cls in BUILTIN_INVARIANTS)
