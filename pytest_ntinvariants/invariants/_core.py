"""Invariants, violations, the registry and the check context.

An invariant is a named rule over the whole ledger of one test: it sees every version
of every object, every request, delivery and side effect, and returns the violations it
found. Invariants are plain objects so the plugin and third
parties (through hooks) can register, select and run them the same way.
"""

from __future__ import annotations

import abc
import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..ledger import Ledger, ReplicaEvent

if TYPE_CHECKING:
    from ._index import ObjectHistory

__all__ = [
    "CheckContext",
    "FunctionInvariant",
    "Invariant",
    "InvariantRegistry",
    "ObjectInvariant",
    "ObjectRef",
    "Violation",
]

JSON = dict[str, Any]


@dataclass(frozen=True)
class ObjectRef:
    """Which object a violation is about: kind, namespace, name, uid (and apiVersion)."""

    kind: str
    namespace: str
    name: str
    uid: str = ""
    api_version: str = ""

    @property
    def path(self) -> str:
        """``namespace/name`` (or ``name`` for cluster-scoped objects)."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"

    def to_dict(self) -> JSON:
        """A JSON-able dict."""
        return {
            "kind": self.kind,
            "apiVersion": self.api_version,
            "namespace": self.namespace,
            "name": self.name,
            "uid": self.uid,
        }


@dataclass(frozen=True)
class Violation:
    """One broken rule: which invariant, about which object, and the proof.

    ``rvs`` are the resourceVersions of the offending object versions (every version in
    which the problem holds, first one first); ``evidence`` are table rows (dicts with
    the same keys, in column order) that a report prints under the message; ``seqs``
    are the ledger positions of the entries involved, which reports highlight.
    """

    invariant: str
    object: ObjectRef | None
    message: str
    rvs: tuple[int, ...] = ()
    evidence: tuple[Mapping[str, Any], ...] = ()
    seqs: tuple[int, ...] = ()

    def __hash__(self) -> int:
        # Evidence rows are dicts (unhashable); the rest identifies a violation.
        return hash((self.invariant, self.object, self.message, self.rvs))

    def summary(self) -> str:
        """One line: ``invariant: namespace/name: message``."""
        where = f"{self.object.path}: " if self.object is not None else ""
        return f"{self.invariant}: {where}{self.message}"

    def to_dict(self) -> JSON:
        """A JSON-able dict (for the JSON report)."""
        return {
            "invariant": self.invariant,
            "object": self.object.to_dict() if self.object is not None else None,
            "message": self.message,
            "resourceVersions": list(self.rvs),
            "evidence": [dict(row) for row in self.evidence],
            "seqs": list(self.seqs),
        }


@dataclass(frozen=True)
class CheckContext:
    """What an invariant needs to know beyond the ledger.

    ``quiet`` says the test
    finished waiting, so "eventually" rules may be judged. ``crashes_by_identity`` and
    ``crashes_by_object`` count injected replica crashes (each may leave one side effect
    unrecorded); ``crashes_by_object`` ``None`` means "derive from the ledger".
    ``options`` are what packs put there for their invariants (through the
    ``pytest_ntinvariants_context_options`` hook; keys namespaced by the pack, e.g.
    ``"mypack.threshold"``), and ``hook`` is pytest's hook relay (or
    ``hookspecs.hook_relay``'s), through which reports ask packs for their sections
    (None: no pack is asked). ``seed``, the
    ``schedule`` of perturbations (its description, one step a line), ``replay`` and, in a
    deterministic world, the ledger's ``digest`` are printed at the end of every failure
    report. ``reference`` is what the run is compared with (the end state of its
    unperturbed run, for the ``end-state`` oracle; None: nothing to compare with), and
    ``noise`` the fields (``Kind field.path``) that differ between two unperturbed runs.
    """

    quiet: bool = False
    seed: int | str | None = None
    replay: str | None = None
    schedule: str | None = None
    digest: str | None = None
    crashes_by_identity: Mapping[str, int] = field(default_factory=dict)
    crashes_by_object: Mapping[str, int] | None = None
    reference: Any = None
    noise: frozenset[str] = frozenset()
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    hook: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_ledger(
        cls,
        ledger: Ledger,
        *,
        quiet: bool = False,
        seed: int | str | None = None,
        replay: str | None = None,
        schedule: str | None = None,
        digest: str | None = None,
        options: Mapping[str, Any] | None = None,
        hook: Any = None,
    ) -> CheckContext:
        """A context whose crash counts are read from the ledger's ``ReplicaEvent``s."""
        from ._index import index_of

        by_identity: dict[str, int] = {}
        for event in ledger.entries(ReplicaEvent, action="crashed"):
            by_identity[event.identity] = by_identity.get(event.identity, 0) + 1
        return cls(
            quiet=quiet,
            seed=seed,
            replay=replay,
            schedule=schedule,
            digest=digest,
            crashes_by_identity=by_identity,
            crashes_by_object=index_of(ledger).crashes_by_object(),
            options=dict(options or {}),
            hook=hook,
        )

    def crashes_for(self, uid: str, ledger: Ledger) -> int:
        """Injected crashes that could have hit the object ``uid`` (see ``LedgerIndex``)."""
        if self.crashes_by_object is not None:
            return self.crashes_by_object.get(uid, 0)
        from ._index import index_of

        return index_of(ledger).crashes_by_object().get(uid, 0)

    def to_dict(self) -> JSON:
        """A JSON-able dict."""
        return {
            "quiet": self.quiet,
            "seed": self.seed,
            "replay": self.replay,
            "schedule": self.schedule,
            "crashesByIdentity": dict(self.crashes_by_identity),
            "crashesByObject": (
                dict(self.crashes_by_object) if self.crashes_by_object is not None else None
            ),
            "options": {k: _jsonable(v) for k, v in self.options.items()},
        }


def _jsonable(value: Any) -> Any:
    # Packs' options may be sets (of names, say): sorted lists in JSON.
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return value


class Invariant(abc.ABC):
    """A named rule over a ledger.

    Subclasses set ``name`` (kebab-case, unique in a registry), ``description`` (one
    sentence: the rule), optionally ``kinds`` / ``api_versions`` (``None``: any), and
    implement ``check``.
    """

    name: str = ""
    description: str = ""
    kinds: frozenset[str] | None = None
    api_versions: frozenset[str] | None = None

    def applies_to(self, kind: str, api_version: str = "") -> bool:
        """Whether objects of this kind (and apiVersion, when given) are judged."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        return not (
            self.api_versions is not None and api_version and api_version not in self.api_versions
        )

    @abc.abstractmethod
    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        """Every violation of this rule in ``ledger`` (empty when it holds)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class ObjectInvariant(Invariant):
    """An invariant judged object by object: implement ``check_object``.

    ``check`` walks every object the ledger has versions of (in order of creation),
    skips those ``applies_to`` rejects, and collects ``check_object``'s violations.
    """

    def check(self, ledger: Ledger, ctx: CheckContext) -> list[Violation]:
        """Run ``check_object`` on every object this invariant applies to."""
        from ._index import index_of

        index = index_of(ledger)
        out: list[Violation] = []
        for history in index.objects.values():
            if self.applies_to(history.ref.kind, history.ref.api_version):
                out.extend(self.check_object(history, ctx))
        return out

    @abc.abstractmethod
    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """The violations of this rule by one object's history."""


class FunctionInvariant(ObjectInvariant):
    """An ``ObjectInvariant`` from a function ``fn(history, ctx) -> Iterable[Violation]``.

    For third-party invariants registered from a hook without writing a class::

        FunctionInvariant("cm-has-owner", "every ConfigMap has an owner", fn,
                          kinds={"ConfigMap"})
    """

    def __init__(
        self,
        name: str,
        description: str,
        fn: Callable[[ObjectHistory, CheckContext], Iterable[Violation]],
        *,
        kinds: Iterable[str] | None = None,
        api_versions: Iterable[str] | None = None,
    ) -> None:
        self.name = name
        self.description = description
        self.fn = fn
        self.kinds = frozenset(kinds) if kinds is not None else None
        self.api_versions = frozenset(api_versions) if api_versions is not None else None

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Call the wrapped function."""
        return self.fn(history, ctx)


class InvariantRegistry:
    """Invariants by name, in registration order; select with include/exclude patterns."""

    def __init__(self, invariants: Iterable[Invariant] = ()) -> None:
        self._by_name: dict[str, Invariant] = {}
        for invariant in invariants:
            self.register(invariant)

    def register(self, invariant: Invariant, *, replace: bool = False) -> Invariant:
        """Add ``invariant``; a second one with the same name is an error unless ``replace``."""
        if not invariant.name:
            raise ValueError(f"{invariant!r} has no name")
        if invariant.name in self._by_name and not replace:
            raise ValueError(
                f"an invariant named {invariant.name!r} is already registered "
                "(pass replace=True to replace it)"
            )
        self._by_name[invariant.name] = invariant
        return invariant

    def unregister(self, name: str) -> Invariant:
        """Remove and return the invariant called ``name``."""
        try:
            return self._by_name.pop(name)
        except KeyError:
            raise KeyError(self._unknown(name)) from None

    def get(self, name: str) -> Invariant:
        """The invariant called ``name``."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(self._unknown(name)) from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Invariant]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def select(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] = ()
    ) -> list[Invariant]:
        """The invariants named by ``include`` (all when ``None``) minus ``exclude``.

        Names may be shell patterns (``"widget-*"``). A plain name (no pattern) that is not
        registered is an error, so a typo in a marker or option never silently disables
        a check.
        """
        include = list(include) if include is not None else None
        exclude = list(exclude)
        for pattern in [*(include or ()), *exclude]:
            if not _is_pattern(pattern) and pattern not in self._by_name:
                raise KeyError(self._unknown(pattern))
        chosen = [
            inv
            for inv in self._by_name.values()
            if include is None or any(fnmatch.fnmatchcase(inv.name, p) for p in include)
        ]
        return [inv for inv in chosen if not any(fnmatch.fnmatchcase(inv.name, p) for p in exclude)]

    def check(
        self,
        ledger: Ledger,
        ctx: CheckContext | None = None,
        *,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
    ) -> list[Violation]:
        """Run the selected invariants over ``ledger``; violations in registration order.

        Without ``ctx``, ``CheckContext.from_ledger(ledger)`` is used.
        """
        ctx = ctx if ctx is not None else CheckContext.from_ledger(ledger)
        out: list[Violation] = []
        for invariant in self.select(include, exclude):
            out.extend(invariant.check(ledger, ctx))
        return out

    def _unknown(self, name: str) -> str:
        known = ", ".join(self._by_name) or "none"
        return f"no invariant named {name!r} (registered: {known})"


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")
