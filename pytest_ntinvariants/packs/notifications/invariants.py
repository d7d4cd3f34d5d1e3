"""The NotificationRequest invariant pack (``kubernaut.ai/v1alpha1``).

Each rule comes from the seed's history (README.md, "The hidden duplicate";
tests/validation/VARIANTS.md) and the original controller's contract (its
``kubernaut.ai/v1alpha1`` API: CRD, phase table, channel rules, status manager). Every
rule is judged on every committed version of every NotificationRequest, not only on the
final one: the seed's bugs were visible in intermediate versions (attempts counted twice,
lost, or recorded from stale reads) even when a final count happened to look right.

The status shape is the original's, plus the reference controller's additions, read
leniently: ``status.phase``, ``status.deliveryAttempts[]`` {channel, attempt, timestamp,
status success|failed, error, permanent?}, ``totalAttempts``, ``successfulDeliveries``,
``failedDeliveries`` (per attempt), ``completionTime``; ``spec.retryPolicy`` and
``spec.channels``.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_ntinvariants.invariants import (
    CheckContext,
    LedgerIndex,
    ObjectHistory,
    ObjectInvariant,
    ObjectRef,
    Violation,
    parse_time,
)
from pytest_ntinvariants.ledger import ObjectVersion, SideEffect

from .attribution import delivery_key

__all__ = [
    "JITTER",
    "KIND",
    "NR_INVARIANTS",
    "SINK_CHANNELS",
    "TERMINAL_PHASES",
    "TIME_SCALE",
    "TRANSITIONS",
    "Attempt",
    "AttemptLimits",
    "AttemptsAppendOnly",
    "CountersMatchAttempts",
    "DeliveriesMatchRecords",
    "EventuallyTerminal",
    "NoDuplicateAttempt",
    "NotificationState",
    "RecordedAttempt",
    "RetryPolicy",
    "RetrySpacing",
    "ValidPhaseTransitions",
    "call_attempt",
    "call_channel",
    "fmt_seconds",
    "nr_state",
    "nr_states",
    "recorded_attempts",
    "repeated_deliveries",
]

KIND: Final = "NotificationRequest"

#: The original's phase table (its ``pkg/notification/phase/types.go``);
#: "" is the absent phase. Staying in the same phase is always allowed.
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "": frozenset({"Pending"}),
    "Pending": frozenset({"Sending", "Failed"}),
    "Sending": frozenset({"Sent", "Retrying", "PartiallySent", "Failed"}),
    "Retrying": frozenset({"Sent", "Retrying", "PartiallySent", "Failed"}),
    "Sent": frozenset(),
    "PartiallySent": frozenset(),
    "Failed": frozenset(),
}
TERMINAL_PHASES: Final = frozenset({"Sent", "PartiallySent", "Failed"})

#: Backoff jitter bound (the original's: uniform +-10%); the spacing rule allows -10%.
JITTER: Final = 0.10

_PERMANENT_MARKER: Final = "permanent failure"


#: ``CheckContext.options`` keys the pack reads: the factor the controller's backoff runs
#: at (``NOTIFY_TIME_SCALE``; retry spacing is judged on the scaled clock), and the
#: channels whose deliveries a fake endpoint observes (None: every channel some call was
#: attributed to).
TIME_SCALE: Final = "notifications.time_scale"
SINK_CHANNELS: Final = "notifications.sink_channels"


def time_scale(ctx: CheckContext) -> float:
    """The time scale the context's options give (1.0 when none)."""
    return float(ctx.options.get(TIME_SCALE, 1.0))


def call_channel(call: SideEffect) -> str:
    """The channel an endpoint call was attributed to (its ``channel`` attribute, else its
    key: a call recorded with no attributes)."""
    return call.attributes.get("channel") or call.key


def call_attempt(call: SideEffect) -> str:
    """The attempt number a call carried ("" when none)."""
    return call.attributes.get("attempt", "")


def fmt_seconds(seconds: float) -> str:
    """``0.150 s`` -> ``150.0 ms``; ``27.0`` -> ``27.000 s``: durations a person reads."""
    if abs(seconds) < 1.0:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s"


# ----------------------------------------------------------------- parsed state


@dataclass(frozen=True)
class RetryPolicy:
    """``spec.retryPolicy`` with the original's defaults (5 / 30 s / x2 / 480 s)."""

    max_attempts: int = 5
    initial_backoff_seconds: float = 30.0
    backoff_multiplier: float = 2.0
    max_backoff_seconds: float = 480.0

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RetryPolicy:
        """Read ``spec.retryPolicy``; missing or malformed fields take the defaults."""
        raw = spec.get("retryPolicy")
        if not isinstance(raw, Mapping):
            return cls()
        d = cls()
        return cls(
            max_attempts=int(_num(raw.get("maxAttempts"), d.max_attempts)),
            initial_backoff_seconds=_num(
                raw.get("initialBackoffSeconds"), d.initial_backoff_seconds
            ),
            backoff_multiplier=_num(raw.get("backoffMultiplier"), d.backoff_multiplier),
            max_backoff_seconds=_num(raw.get("maxBackoffSeconds"), d.max_backoff_seconds),
        )

    def backoff(self, failed_attempt: int) -> float:
        """Unjittered, unscaled delay after the ``failed_attempt``-th failure (1-based).

        ``initial * multiplier**(n-1)`` capped at the maximum (the original's
        ``pkg/shared/backoff``).
        """
        n = max(failed_attempt, 1)
        try:
            delay = self.initial_backoff_seconds * self.backoff_multiplier ** (n - 1)
        except OverflowError:
            delay = self.max_backoff_seconds
        return min(delay, self.max_backoff_seconds)


def _num(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return default
    try:
        return float(value)
    except ValueError:
        return default


@dataclass(frozen=True)
class Attempt:
    """One entry of ``status.deliveryAttempts`` as written (``raw``), read leniently."""

    index: int  # position in the list, 0-based
    channel: str
    number: int | None  # the ``attempt`` field; None when missing or not a number
    status: str
    error: str
    permanent: bool
    timestamp: str
    time: float | None  # seconds since the epoch
    resolution: float  # of ``timestamp``: 1.0 for whole seconds
    holder: str
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    #: ``nextAttemptAt`` (seconds since the epoch): when the controller itself said the
    #: channel may be retried (the reference controller records it); None when absent.
    next_attempt_at: float | None = None

    @property
    def key(self) -> tuple[str, int | None, str]:
        """What identifies one real attempt: channel, number and timestamp."""
        return (self.channel, self.number, self.timestamp)

    @property
    def outcome(self) -> str:
        """``success``, ``failed`` or ``failed (permanent)`` (or the raw status)."""
        if self.status == "failed" and self.permanent:
            return "failed (permanent)"
        return self.status or "?"

    @property
    def label(self) -> str:
        """``slack #2``."""
        return f"{self.channel} #{self.number if self.number is not None else '?'}"

    @classmethod
    def parse(cls, index: int, raw: Any) -> Attempt:
        """Read one list entry; anything malformed becomes an empty or ``None`` field."""
        d: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        number = d.get("attempt")
        if isinstance(number, str) and number.isdigit():
            number = int(number)
        if not isinstance(number, int) or isinstance(number, bool):
            number = None
        error = d.get("error")
        error = error if isinstance(error, str) else ""
        parsed = parse_time(d.get("timestamp"))
        due = parse_time(d.get("nextAttemptAt"))
        # Permanence: the original remembers it only as the "permanent failure" marker
        # in the error text (its orchestrator skips a channel whose error "contains" it);
        # the reference controller also writes ``permanent: true``.
        permanent = d.get("permanent") is True or _PERMANENT_MARKER in error.lower()
        return cls(
            index=index,
            channel=str(d.get("channel", "")),
            number=number,
            status=str(d.get("status", "")),
            error=error,
            permanent=permanent,
            timestamp=str(d.get("timestamp", "")),
            time=parsed[0] if parsed else None,
            resolution=parsed[1] if parsed else 1.0,
            holder=str(d.get("holder") or ""),
            raw=d,
            next_attempt_at=due[0] if due else None,
        )


@dataclass(frozen=True)
class Claim:
    """One entry of ``status.claims``: a delivery announced before it is made (the
    reference controller's claim-before-deliver), read leniently."""

    channel: str
    number: int | None
    holder: str
    claimed_at: str

    @property
    def slot(self) -> tuple[str, int | None]:
        """The ``(channel, attempt)`` the claim reserves."""
        return (self.channel, self.number)

    @property
    def label(self) -> str:
        """``slack #2 by replica-1``."""
        return f"{self.channel} #{self.number} by {self.holder or '?'}"

    @classmethod
    def parse(cls, raw: Any) -> Claim:
        """Read one list entry; anything malformed becomes an empty or ``None`` field."""
        d: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
        number = d.get("attempt")
        if not isinstance(number, int) or isinstance(number, bool):
            number = None
        return cls(
            channel=str(d.get("channel", "")),
            number=number,
            holder=str(d.get("holder") or ""),
            claimed_at=str(d.get("claimedAt") or ""),
        )


@dataclass(frozen=True)
class NotificationState:
    """The parts of one NotificationRequest version the invariants judge."""

    phase: str
    attempts: tuple[Attempt, ...]
    raw_attempts: tuple[Any, ...]
    total: int
    successful: int
    failed: int
    completion_time: str
    policy: RetryPolicy
    channels: tuple[str, ...]
    spec: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    claims: tuple[Claim, ...] = ()

    @property
    def terminal(self) -> bool:
        """Whether the phase is Sent, PartiallySent or Failed."""
        return self.phase in TERMINAL_PHASES

    def on_channel(self, channel: str) -> list[Attempt]:
        """This channel's attempts, in list order."""
        return [a for a in self.attempts if a.channel == channel]


def nr_state(version: ObjectVersion, index: LedgerIndex | None = None) -> NotificationState:
    """Parse one version (memoised in ``index`` when given)."""
    if index is None:
        return _parse_state(version.obj)
    return index.memo(("nr-state", version.seq), lambda: _parse_state(version.obj))


def nr_states(history: ObjectHistory) -> list[NotificationState]:
    """Every version of a NotificationRequest parsed, in order (memoised in its index).

    Versions of one object share most of their attempts (the list is append-only), so
    entries equal to the previous version's at the same position are reused rather than
    parsed again: a pass stays linear in the number of versions.
    """
    index = history.index

    def build() -> list[NotificationState]:
        out: list[NotificationState] = []
        prev: NotificationState | None = None
        for v in history.versions:
            key = ("nr-state", v.seq)
            st = index.cache.get(key)
            if st is None:
                st = index.cache[key] = _parse_state(v.obj, prev)
            out.append(st)
            prev = st
        return out

    return index.memo(("nr-states", history.ref.uid), build)


def _parse_state(
    obj: Mapping[str, Any], prev: NotificationState | None = None
) -> NotificationState:
    status = obj.get("status")
    status = status if isinstance(status, Mapping) else {}
    spec = obj.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    raw = status.get("deliveryAttempts")
    raw_attempts = tuple(raw) if isinstance(raw, list) else ()
    raw_claims = status.get("claims")
    if prev is not None and (prev.spec is spec or prev.spec == spec):
        policy, channels = prev.policy, prev.channels  # the spec is immutable (DD-NOT-005)
    else:
        policy = RetryPolicy.from_spec(spec)
        listed = spec.get("channels")
        channels = tuple(str(c) for c in listed) if isinstance(listed, list) else ()
    return NotificationState(
        phase=str(status.get("phase") or ""),
        attempts=_parse_attempts(raw_attempts, prev),
        raw_attempts=raw_attempts,
        # Go's omitempty drops zero counters: absent means 0.
        total=int(_num(status.get("totalAttempts"), 0)),
        successful=int(_num(status.get("successfulDeliveries"), 0)),
        failed=int(_num(status.get("failedDeliveries"), 0)),
        completion_time=str(status.get("completionTime") or ""),
        policy=policy,
        channels=channels,
        spec=spec,
        claims=tuple(Claim.parse(c) for c in raw_claims) if isinstance(raw_claims, list) else (),
    )


def _parse_attempts(raw: tuple[Any, ...], prev: NotificationState | None) -> tuple[Attempt, ...]:
    reuse = prev.attempts if prev is not None else ()
    out = []
    for i, a in enumerate(raw):
        if i < len(reuse) and (reuse[i].raw is a or reuse[i].raw == a):
            out.append(reuse[i])
        else:
            out.append(Attempt.parse(i, a))
    return tuple(out)


@dataclass(frozen=True)
class RecordedAttempt:
    """An attempt with the version that first recorded it (its writer, rv and time)."""

    attempt: Attempt
    version: ObjectVersion
    in_latest: bool  # still present in the latest version


def recorded_attempts(history: ObjectHistory) -> list[RecordedAttempt]:
    """Every distinct attempt ever recorded for the object, in order of first recording.

    Two entries with the same channel, number and timestamp in one version are two
    records (the seed's double count); the k-th copy is matched to the k-th copy in
    other versions.
    """
    index = history.index

    def build() -> list[RecordedAttempt]:
        first: dict[tuple[Any, ...], tuple[Attempt, ObjectVersion]] = {}
        seen: Counter[tuple[str, int | None, str]] = Counter()
        done: tuple[Attempt, ...] = ()
        for v, st in zip(history.versions, nr_states(history), strict=True):
            # Append-only histories (the normal case) only need their new entries looked
            # at; anything else starts the occurrence count over.
            start = len(done)
            if st.attempts[:start] != done:
                seen.clear()
                start = 0
            for a in st.attempts[start:]:
                seen[a.key] += 1
                first.setdefault((*a.key, seen[a.key]), (a, v))
            done = st.attempts
        latest: Counter[tuple[str, int | None, str]] = Counter(
            a.key for a in nr_state(history.last, index).attempts
        )
        out = []
        for k, (a, v) in first.items():
            out.append(RecordedAttempt(a, v, in_latest=latest[a.key] >= k[-1]))
        out.sort(key=lambda r: (r.version.seq, r.attempt.index))
        return out

    return index.memo(("nr-recorded", history.ref.uid), build)


@dataclass(frozen=True)
class Takeover:
    """A claim taken over: the same ``(channel, attempt)`` claimed anew before anything
    recorded it (its first holder crashed, or was slower than the claim timeout). The
    reference controller documents it: each one may add a delivery the record does not
    show, the first holder's."""

    slot: tuple[str, int | None]
    before: Claim
    after: Claim
    version: ObjectVersion  # the version that holds the new claim

    def describe(self) -> str:
        """``slack #1: replica-0's claim taken over by replica-1 in rv 12``."""
        channel, number = self.slot
        return (
            f"{channel} #{number if number is not None else '?'}: "
            f"{self.before.holder or '?'}'s claim taken over by {self.after.holder or '?'} "
            f"in rv {self.version.rv}"
        )


def takeovers(history: ObjectHistory) -> list[Takeover]:
    """Every claim taken over, in order: a slot claimed again, differently, while no
    version had recorded its attempt yet (memoised in the history's index)."""

    def build() -> list[Takeover]:
        out = []
        open_claims: dict[tuple[str, int | None], Claim] = {}
        for v, st in zip(history.versions, nr_states(history), strict=True):
            for claim in st.claims:
                before = open_claims.get(claim.slot)
                if before is not None and before != claim:
                    out.append(Takeover(claim.slot, before, claim, v))
                open_claims[claim.slot] = claim
            # A recorded slot is done: a later claim of it is another bug's business.
            for a in st.attempts:
                open_claims.pop((a.channel, a.number), None)
        return out

    return history.index.memo(("nr-takeovers", history.ref.uid), build)


def repeated_deliveries(
    history: ObjectHistory, calls: Sequence[SideEffect]
) -> tuple[int, str] | None:
    """For ``side-effects-once``: the takeovers of the claim the calls were made under
    (their key is ``channel #attempt``), each of which may add a delivery; None for
    another kind, or a key no claim was taken over for."""
    if history.ref.kind != KIND or not calls:
        return None
    handed = [t for t in takeovers(history) if delivery_key(*t.slot) == calls[0].key]
    if not handed:
        return None
    return len(handed), f"{_plural(len(handed), 'claim')} taken over (" + "; ".join(
        t.describe() for t in handed
    ) + ")"


# ----------------------------------------------------------------- helpers


class _Problems:
    """Collects one violation per distinct problem, with every version it holds in."""

    def __init__(self, invariant: str, ref: ObjectRef) -> None:
        self.invariant = invariant
        self.ref = ref
        self._items: dict[Hashable, tuple[str, list[int], list[Mapping[str, Any]], list[int]]] = {}

    def add(
        self,
        key: Hashable,
        versions: Sequence[ObjectVersion],
        message: str,
        evidence: Iterable[Mapping[str, Any]] = (),
        extra_seqs: Iterable[int] = (),
    ) -> None:
        item = self._items.get(key)
        if item is None:
            self._items[key] = (
                message,
                [v.rv for v in versions],
                list(evidence),
                [*(v.seq for v in versions), *extra_seqs],
            )
        else:
            for v in versions:
                if v.rv not in item[1]:
                    item[1].append(v.rv)
                    item[3].append(v.seq)

    def violations(self) -> list[Violation]:
        out = []
        for message, rvs, evidence, seqs in self._items.values():
            if len(rvs) > 1:
                message = f"{message} (still so in rv {_rv_list(rvs[1:])})"
            out.append(
                Violation(
                    self.invariant,
                    self.ref,
                    message,
                    tuple(rvs),
                    tuple(evidence),
                    tuple(sorted(set(seqs))),
                )
            )
        return out


def _rv_list(rvs: Sequence[int], limit: int = 6) -> str:
    if len(rvs) <= limit:
        return ", ".join(str(r) for r in rvs)
    return ", ".join(str(r) for r in rvs[: limit - 1]) + f", ... {rvs[-1]}"


def _by(v: ObjectVersion) -> str:
    return f"rv {v.rv} by {v.identity or '?'}"


def _attempt_row(a: Attempt, v: ObjectVersion | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "#": a.index + 1,
        "channel": a.channel,
        "attempt": a.number if a.number is not None else "?",
        "outcome": a.outcome,
        "timestamp": a.timestamp,
    }
    if v is not None:
        row["first recorded"] = _by(v)
    row["error"] = a.error
    return row


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class _NRInvariant(ObjectInvariant):
    kinds = frozenset({KIND})

    def _states(self, history: ObjectHistory) -> list[tuple[ObjectVersion, NotificationState]]:
        return list(zip(history.versions, nr_states(history), strict=True))


# ----------------------------------------------------------------- the rules


class CountersMatchAttempts(_NRInvariant):
    """``nr-counters-match-attempts``: the counters agree with the list, in every version."""

    name = "nr-counters-match-attempts"
    description = (
        "in every version, totalAttempts == len(deliveryAttempts), successfulDeliveries == "
        "#attempts with status success, failedDeliveries == #attempts with status failed"
    )

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Compare the three counters with counts of the list (absent counters are 0)."""
        # The seed's symptom was exactly this kind of disagreement ("Expected 1 to equal
        # 2"); the counters are per attempt in the original's Dec-2025 contract.
        problems = _Problems(self.name, history.ref)
        for v, st in self._states(history):
            n = len(st.attempts)
            ok = sum(1 for a in st.attempts if a.status == "success")
            bad = sum(1 for a in st.attempts if a.status == "failed")
            rows = [
                ("totalAttempts", st.total, n, "attempt"),
                ("successfulDeliveries", st.successful, ok, "successful attempt"),
                ("failedDeliveries", st.failed, bad, "failed attempt"),
            ]
            wrong = [r for r in rows if r[1] != r[2]]
            if not wrong:
                continue
            parts = [
                f"{f} is {have} but deliveryAttempts has {_plural(want, what)}"
                for f, have, want, what in wrong
            ]
            problems.add(
                tuple((f, have, want) for f, have, want, _ in wrong),
                [v],
                f"{'; '.join(parts)} ({_by(v)})",
                [
                    {"counter": f, "status says": have, "deliveryAttempts has": want}
                    for f, have, want, _ in rows
                ],
            )
        return problems.violations()


class NoDuplicateAttempt(_NRInvariant):
    """``nr-no-duplicate-attempt``: no (channel, attempt) identity is recorded twice."""

    name = "nr-no-duplicate-attempt"
    description = "in every version, each (channel, attempt number) appears at most once"

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Count (channel, number) pairs in every version."""
        # The original bug (batch loop plus atomic update: each attempt recorded twice)
        # and fix #2 (stale reads: two reconciles each record "attempt 1"); the reference
        # controller makes (channel, attempt) an exact identity, not a time window.
        problems = _Problems(self.name, history.ref)
        for v, st in self._states(history):
            counts = Counter((a.channel, a.number) for a in st.attempts if a.number is not None)
            for (channel, number), n in counts.items():
                if n < 2:
                    continue
                same = [a for a in st.attempts if (a.channel, a.number) == (channel, number)]
                positions = ", ".join(f"#{a.index + 1}" for a in same)
                stamps = {a.timestamp for a in same}
                how = (
                    "identical copies"
                    if len(stamps) == 1 and len({a.status for a in same}) == 1
                    else "different timestamps or outcomes"
                )
                problems.add(
                    (channel, number, n),
                    [v],
                    f"{channel} attempt {number} is recorded {n} times (entries {positions}, "
                    f"{how}; {_by(v)})",
                    [_attempt_row(a) for a in same],
                )
        return problems.violations()


class AttemptsAppendOnly(_NRInvariant):
    """``nr-attempts-append-only``: the list only grows by appending."""

    name = "nr-attempts-append-only"
    description = (
        "between consecutive versions, deliveryAttempts keeps every earlier entry unchanged "
        "and in place; new entries are only appended"
    )

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Compare each version's list with the previous version's, entry by entry."""
        # Fix #1 lost attempts (recording loop removed), and the later dedupe key without
        # the attempt number silently dropped real ones (stale reads gave different
        # attempts the same number); a status
        # written from a stale read overwrites attempts it never saw.
        out: list[Violation] = []
        states = self._states(history)
        for (pv, prev), (cv, cur) in itertools.pairwise(states):
            before, after = prev.raw_attempts, cur.raw_attempts
            if before is after or (len(after) >= len(before) and after[: len(before)] == before):
                continue
            rows = []
            after_keys: dict[tuple[str, int | None, str], list[Attempt]] = {}
            for a in cur.attempts:
                after_keys.setdefault(a.key, []).append(a)
            for a in prev.attempts:
                if a.index < len(cur.attempts) and cur.attempts[a.index].raw == a.raw:
                    continue
                same = after_keys.get(a.key, [])
                moved = [b for b in same if b.raw == a.raw]
                if moved:
                    change = f"moved from #{a.index + 1} to #{moved[0].index + 1}"
                    now = moved[0]
                elif same:
                    diff = sorted(
                        k
                        for k in set(a.raw) | set(same[0].raw)
                        if a.raw.get(k) != same[0].raw.get(k)
                    )
                    change = "rewritten: " + ", ".join(
                        f"{k} {a.raw.get(k)!r} -> {same[0].raw.get(k)!r}" for k in diff
                    )
                    now = same[0]
                else:
                    # Another entry for the same (channel, attempt) that the earlier list
                    # did not have took its place: replaced (a stale write recorded its
                    # own delivery of that attempt), not simply dropped.
                    replacing = [
                        b
                        for b in cur.attempts
                        if a.number is not None
                        and (b.channel, b.number) == (a.channel, a.number)
                        and not any(b.raw == x.raw for x in prev.attempts)
                    ]
                    if replacing:
                        now = replacing[0]
                        change = f"replaced by {now.outcome} at {now.timestamp}"
                    else:
                        change = "lost"
                        now = None
                rows.append(
                    {
                        "#": a.index + 1,
                        "channel": a.channel,
                        "attempt": a.number if a.number is not None else "?",
                        "outcome": a.outcome,
                        "timestamp": a.timestamp,
                        "change": change,
                        "now": f"#{now.index + 1}" if now is not None else "-",
                    }
                )
            if not rows:
                continue
            lost = sum(1 for r in rows if r["change"] == "lost")
            replaced = sum(1 for r in rows if str(r["change"]).startswith("replaced"))
            rewritten = sum(1 for r in rows if str(r["change"]).startswith("rewritten"))
            moved_n = len(rows) - lost - replaced - rewritten
            parts = [
                p
                for p in (
                    f"{_plural(lost, 'attempt')} lost" if lost else "",
                    f"{_plural(replaced, 'attempt')} replaced" if replaced else "",
                    f"{rewritten} rewritten" if rewritten else "",
                    f"{moved_n} moved" if moved_n else "",
                )
                if p
            ]
            first = rows[0]
            out.append(
                Violation(
                    self.name,
                    history.ref,
                    f"{', '.join(parts)} between rv {pv.rv} ({pv.identity or '?'}) and rv {cv.rv} "
                    f"({cv.identity or '?'}): {len(prev.attempts)} -> {len(cur.attempts)} entries; "
                    f"first: {first['channel']} attempt {first['attempt']} {first['change']}",
                    (pv.rv, cv.rv),
                    tuple(rows),
                    (pv.seq, cv.seq),
                )
            )
        return out


class ValidPhaseTransitions(_NRInvariant):
    """``nr-valid-phase-transitions``: the original's state machine, on every version pair."""

    name = "nr-valid-phase-transitions"
    description = (
        '"" -> Pending -> {Sending, Failed}; Sending/Retrying -> {Sent, Retrying, '
        "PartiallySent, Failed}; same phase allowed; Sent, PartiallySent and Failed never "
        "change, nor do the attempts, counters and claims of an object in them; "
        "completionTime, once set, never changes"
    )

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Check each consecutive pair of versions (the first version is the start)."""
        # The phase table is the original's pkg/notification/phase/types.go; the Dec-26
        # run hit Pending -> Sent (NT-BUG-008/013/014), and terminal immutability is
        # asserted by the original suite (specs 10 and 11) for 5 s.
        out: list[Violation] = []
        states = self._states(history)
        for (pv, prev), (cv, cur) in itertools.pairwise(states):
            p0, p1 = prev.phase, cur.phase
            if p0 != p1:
                if p0 in TERMINAL_PHASES:
                    why = f"terminal phase {p0} changed to {p1 or '<none>'}"
                elif p0 not in TRANSITIONS:
                    why = f"unknown phase {p0!r} changed to {p1 or '<none>'}"
                elif p1 not in TRANSITIONS[p0]:
                    allowed = ", ".join(sorted(TRANSITIONS[p0])) or "none"
                    why = (
                        f"{p0 or '<none>'} -> {p1 or '<none>'} is not an allowed transition "
                        f"(from {p0 or '<none>'}: {allowed})"
                    )
                else:
                    why = ""
                if why:
                    out.append(self._violation(history, pv, cv, why))
            if p0 in TERMINAL_PHASES:
                changed = _frozen_changes(prev, cur)
                if changed:
                    # A terminal object is done: an attempt or claim added to it is a
                    # delivery made (or announced) after the end, by a stale reconcile.
                    why = f"{p0} object changed after it was terminal: {'; '.join(changed)}"
                    out.append(self._violation(history, pv, cv, why))
            c0, c1 = prev.completion_time, cur.completion_time
            if c0 and c1 != c0:
                why = (
                    f"completionTime changed from {c0} to {c1}"
                    if c1
                    else f"completionTime {c0} was removed"
                )
                out.append(self._violation(history, pv, cv, why))
        return out

    def _violation(
        self, history: ObjectHistory, pv: ObjectVersion, cv: ObjectVersion, why: str
    ) -> Violation:
        index = history.index
        rows = [
            {
                "rv": v.rv,
                "writer": v.identity or "?",
                "verb": _verb(v),
                "phase": nr_state(v, index).phase or "<none>",
                "completionTime": nr_state(v, index).completion_time or "-",
                "attempts": len(nr_state(v, index).attempts),
                "claims": ", ".join(c.label for c in nr_state(v, index).claims) or "-",
            }
            for v in (pv, cv)
        ]
        return Violation(
            self.name,
            history.ref,
            f"{why} (rv {pv.rv} -> rv {cv.rv} by {cv.identity or '?'})",
            (pv.rv, cv.rv),
            tuple(rows),
            (pv.seq, cv.seq),
        )


def _frozen_changes(prev: NotificationState, cur: NotificationState) -> list[str]:
    """What changed between two versions in what a terminal phase freezes."""
    changed = []
    if cur.raw_attempts != prev.raw_attempts:
        added = [a.label for a in cur.attempts[len(prev.attempts) :]]
        if prev.raw_attempts == cur.raw_attempts[: len(prev.raw_attempts)]:
            changed.append("attempt " + ", ".join(added) + " added")
        else:
            changed.append(
                f"deliveryAttempts rewritten ({len(prev.attempts)} -> {len(cur.attempts)} entries)"
            )
    for label, was, now in (
        ("totalAttempts", prev.total, cur.total),
        ("successfulDeliveries", prev.successful, cur.successful),
        ("failedDeliveries", prev.failed, cur.failed),
    ):
        if was != now:
            changed.append(f"{label} {was} -> {now}")
    if cur.claims != prev.claims:
        new = [c for c in cur.claims if c not in prev.claims]
        gone = [c for c in prev.claims if c not in cur.claims]
        if new:
            changed.append("claim " + ", ".join(c.label for c in new) + " added")
        if gone:
            changed.append(f"{_plural(len(gone), 'claim')} removed")
    return changed


def _verb(v: ObjectVersion) -> str:
    return f"{v.verb}/{v.subresource}" if v.subresource else v.verb


class AttemptLimits(_NRInvariant):
    """``nr-attempt-limits``: retry policy and stop conditions, per channel."""

    name = "nr-attempt-limits"
    description = (
        "per channel: at most retryPolicy.maxAttempts attempts; none after a success or a "
        "permanent failure (recorded, or answered by the endpoint: a status other than 2xx, "
        "5xx, 408 and 429); attempt numbers are 1, 2, ..., n in order"
    )

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Judge each channel's attempts in every version."""
        # The original orchestrator's delivery-loop rules: skip a channel that succeeded or
        # has a "permanent failure"; stop at maxAttempts. The seed's 4xx specs assert
        # TotalAttempts == 1 after a permanent error. Repeated (channel, number) pairs are
        # left to nr-no-duplicate-attempt, so one bug is not reported twice here.
        problems = _Problems(self.name, history.ref)
        for v, st in self._states(history):
            channels: dict[str, list[Attempt]] = {}
            for a in st.attempts:
                channels.setdefault(a.channel, []).append(a)
            for channel, attempts in channels.items():
                self._channel(problems, v, st, channel, attempts)
        self._after_permanent_answers(problems, history)
        return problems.violations()

    def _after_permanent_answers(self, problems: _Problems, history: ObjectHistory) -> None:
        # A controller that misclassifies a 404 records attempt 1 as retryable and tries
        # again: every recorded version looks consistent, and only the endpoint's answer
        # says the retry should never have been made.
        first: dict[str, SideEffect] = {}
        for call in history.side_effects():
            number = _attempt_number(call)
            if number is None:
                continue  # an endpoint that cannot tell attempts apart: nothing to judge
            answered = first.get(call_channel(call))
            if answered is None:
                if _permanent_answer(call.status):
                    first[call_channel(call)] = call
                continue
            before = _attempt_number(answered)
            assert before is not None
            if number <= before:
                continue  # the same attempt again: nr-deliveries-match-records' business
            recorded = [
                r.version
                for r in recorded_attempts(history)
                if (r.attempt.channel, r.attempt.number) == (call_channel(call), number)
            ]
            problems.add(
                ("retried", call_channel(call), before),
                recorded[:1] or [history.last],
                f"{call_channel(call)} attempt {number} was made after the endpoint answered "
                f"attempt {before} with {answered.status}, a permanent failure",
                [
                    {
                        "channel": call_channel(c),
                        "attempt": call_attempt(c) or "?",
                        "endpoint answered": c.status,
                        "t ms": round(c.t * 1000, 1),
                        "caller": c.caller or "?",
                    }
                    for c in (answered, call)
                ],
                extra_seqs=(answered.seq, call.seq),
            )

    def _channel(
        self,
        problems: _Problems,
        v: ObjectVersion,
        st: NotificationState,
        channel: str,
        attempts: list[Attempt],
    ) -> None:
        distinct: list[Attempt] = []
        seen: set[int | None] = set()
        for a in attempts:
            if a.number is None or a.number not in seen:
                distinct.append(a)
                seen.add(a.number)
        numbers = [a.number for a in distinct]
        limit = st.policy.max_attempts
        if len(distinct) > limit:
            problems.add(
                ("max", channel, len(distinct)),
                [v],
                f"{channel} has {len(distinct)} attempts but retryPolicy.maxAttempts is "
                f"{limit} ({_by(v)})",
                [_attempt_row(a) for a in distinct],
            )
        expected = list(range(1, len(distinct) + 1))
        if numbers != expected:
            shown = ", ".join("?" if n is None else str(n) for n in numbers)
            problems.add(
                ("numbers", channel, tuple(numbers)),
                [v],
                f"{channel} attempts are numbered {shown}; expected "
                f"{', '.join(map(str, expected))} ({_by(v)})",
                [_attempt_row(a) for a in distinct],
            )
        for i, a in enumerate(distinct):
            if a.status == "success" or (a.status == "failed" and a.permanent):
                later = distinct[i + 1 :]
                if later:
                    what = "succeeded" if a.status == "success" else "failed permanently"
                    names = ", ".join(str(b.number) if b.number is not None else "?" for b in later)
                    problems.add(
                        ("after", channel, a.number, len(later)),
                        [v],
                        f"{channel} attempt {names} made after attempt {a.number} {what} "
                        f"({_by(v)})",
                        [_attempt_row(b) for b in [a, *later]],
                    )
                break


class RetrySpacing(_NRInvariant):
    """``nr-retry-spacing``: a retry waits for its backoff (minus 10 % jitter)."""

    name = "nr-retry-spacing"
    description = (
        "after a (non-permanent) failure of attempt n on a channel, attempt n+1 is not made "
        "before the nextAttemptAt recorded with attempt n; without one, the two are at least "
        "backoff(n) x time_scale x 0.9 apart, backoff(n) = min(initial x multiplier^(n-1), max)"
    )

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Judge every pair of consecutive attempts ever recorded on each channel."""
        # NT-BUG-007: the original's backoff gate ran only in Retrying, so a channel that
        # kept failing was retried back to back (5 attempts in ~150 ms in the original's
        # Dec-25 runs). Attempts are judged across all versions (first recording), so a
        # retry that was later lost from the list is judged too.
        out: list[Violation] = []
        per_channel: dict[str, list[RecordedAttempt]] = {}
        for r in recorded_attempts(history):
            per_channel.setdefault(r.attempt.channel, []).append(r)
        policy = nr_state(history.last, history.index).policy
        for channel, recs in per_channel.items():
            for pos, (ra, rb) in enumerate(itertools.pairwise(recs)):
                a, b = ra.attempt, rb.attempt
                if a.status != "failed" or a.permanent:
                    continue  # nr-attempt-limits judges attempts after a success/permanent
                if a.number is not None and b.number == a.number:
                    continue  # the same attempt twice: nr-no-duplicate-attempt's business
                n = a.number if a.number is not None else pos + 1
                if a.next_attempt_at is not None and b.time is not None:
                    # The controller said when: exact, with no time scale to guess (its
                    # jitter and a Retry-After are in it). One unit of the retry's
                    # timestamp resolution is the benefit of the doubt.
                    early = a.next_attempt_at - b.time
                    if early <= b.resolution:
                        continue
                    out.append(
                        Violation(
                            self.name,
                            history.ref,
                            f"{channel} attempt {b.number} was made at {b.timestamp}, "
                            f"{fmt_seconds(early)} before the nextAttemptAt "
                            f"{a.raw.get('nextAttemptAt')} recorded with attempt {a.number} "
                            "[by the recorded nextAttemptAt]",
                            (ra.version.rv, rb.version.rv),
                            tuple(_attempt_row(r.attempt, r.version) for r in (ra, rb)),
                            (ra.version.seq, rb.version.seq),
                        )
                    )
                    continue
                base = policy.backoff(n)
                required = base * time_scale(ctx) * (1.0 - JITTER)
                resolution = max(a.resolution, b.resolution)
                if a.time is not None and b.time is not None and resolution < required:
                    # The attempts' own timestamps (taken when each delivery returned) can
                    # express the backoff; allow one unit of their resolution.
                    gap = b.time - a.time
                    ok = gap + resolution >= required
                    source = "attempt timestamps"
                else:
                    # Whole-second timestamps (metav1.Time) cannot judge a sub-second
                    # backoff (e.g. under a small time scale): use the ledger times of the
                    # versions that first recorded each attempt instead. Recording lags
                    # delivery by about the same amount for both, so the gap holds.
                    gap = rb.version.t - ra.version.t
                    ok = gap >= required
                    source = "ledger times of the versions that first recorded them"
                if ok:
                    continue
                scale = f" x time scale {time_scale(ctx):g}" if time_scale(ctx) != 1.0 else ""
                out.append(
                    Violation(
                        self.name,
                        history.ref,
                        f"{channel} attempt {b.number} came {fmt_seconds(gap)} after attempt "
                        f"{a.number} failed; backoff({n}) = {base:g} s{scale} needs at least "
                        f"{fmt_seconds(required)} (-10% jitter) [by {source}]",
                        (ra.version.rv, rb.version.rv),
                        tuple(_attempt_row(r.attempt, r.version) for r in (ra, rb)),
                        (ra.version.seq, rb.version.seq),
                    )
                )
        return out


class DeliveriesMatchRecords(_NRInvariant):
    """``nr-deliveries-match-records``: what the outside world received == what is recorded."""

    name = "nr-deliveries-match-records"
    description = (
        "per (object, channel) observed by a fake endpoint, endpoint calls == attempts in the "
        "latest version, except one extra call per claim taken over on the channel or, if "
        "more, per injected crash that could have hit the object"
    )

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Compare endpoint calls with recorded attempts, once the object has settled."""
        # THE seed's hidden bug: the timestamp-window dedupe made the recorded count right
        # while the webhook was called twice (README.md, "The hidden duplicate"). Only an
        # outside count can see it; the reference controller's target is exact equality
        # except one delivery per crash between delivery and record.
        index = history.index
        final = nr_state(history.last, index)
        deleted = history.deleted
        if not (ctx.quiet or final.terminal or deleted):
            return []  # a delivery may be in flight: made, not yet recorded
        sinks = ctx.options.get(SINK_CHANNELS)
        if sinks is None:
            sinks = index.memo(
                "nr-sink-channels", lambda: frozenset(call_channel(c) for c in index.side_effects)
            )
        calls = history.side_effects()
        by_channel: dict[str, int] = Counter(call_channel(c) for c in calls)
        recorded: dict[str, int] = Counter(a.channel for a in final.attempts)
        counts = ctx.crashes_by_object
        if counts is None:
            counts = index.crashes_by_object()
        crashes = counts.get(history.ref.uid, 0)
        taken: dict[str, list[Takeover]] = {}
        for t in takeovers(history):
            taken.setdefault(t.slot[0], []).append(t)
        out = []
        # A call no channel was attributed to ("") cannot be matched to an attempt.
        for channel in sorted((set(recorded) | set(by_channel)) & sinks - {""}):
            sent, rec = by_channel.get(channel, 0), recorded.get(channel, 0)
            # Deleted before settling: one delivery per channel may have been made and
            # then found the object gone (specs 19 and 30 delete mid-flight).
            in_flight = 1 if deleted and not final.terminal else 0
            # A takeover is the documented way an at-least-once controller delivers twice
            # (a record slower than the claim timeout, too); a crash usually causes one, so
            # the two allowances are not added up.
            handed = taken.get(channel, [])
            allowance = max(crashes, len(handed)) + in_flight
            if rec <= sent <= rec + allowance:
                continue
            why = []
            if handed:
                why.append(
                    f"{_plural(len(handed), 'claim')} taken over ("
                    + "; ".join(t.describe() for t in handed)
                    + ")"
                )
            if crashes:
                why.append(f"{_plural(crashes, 'crash')} of a replica that saw it")
            why = [" or ".join(why)] if why else []  # the larger of the two counts
            if in_flight:
                why.append("deleted mid-flight")
            allowed = f"allowed extra: {allowance}" + (f" for {', '.join(why)}" if why else "")
            if sent > rec:
                msg = (
                    f"{channel} endpoint received {_plural(sent, 'call')} but "
                    f"{_plural(rec, 'attempt')} recorded in rv {history.last.rv} "
                    f"({allowed}): a delivery is hidden"
                )
            else:
                msg = (
                    f"{_plural(rec, 'attempt')} on {channel} recorded in rv "
                    f"{history.last.rv} but the endpoint received {_plural(sent, 'call')}: "
                    "an attempt is counted that was never made"
                )
            mine = [c for c in calls if call_channel(c) == channel]
            numbers = [a.number for a in final.attempts if a.channel == channel]
            out.append(
                Violation(
                    self.name,
                    history.ref,
                    msg,
                    (history.last.rv,),
                    (
                        {
                            "channel": channel,
                            "recorded attempts": rec,
                            "endpoint calls": sent,
                            "allowed extra": allowance,
                            **({"claims taken over": len(handed)} if handed else {}),
                            # The attempt numbers on both sides show which attempt was repeated.
                            "recorded numbers": _numbers(numbers),
                            "endpoint numbers": _numbers(call_attempt(c) or None for c in mine),
                        },
                    ),
                    (
                        history.last.seq,
                        *(c.seq for c in mine),
                        *(t.version.seq for t in handed),
                    ),
                )
            )
        return out


def _attempt_number(call: SideEffect) -> int | None:
    """The attempt an endpoint call says it is (None: it does not say)."""
    attempt = call_attempt(call)
    return int(attempt) if attempt.isdigit() else None


def _permanent_answer(status: int) -> bool:
    """Whether an endpoint's HTTP answer is a permanent failure in the original's contract:
    any status but 2xx, 5xx, 408 and 429 (0, a closed connection, is a transport error)."""
    return status != 0 and not (200 <= status < 300 or status >= 500 or status in (408, 429))


def _numbers(values: Iterable[object]) -> str:
    return ", ".join("?" if v is None else str(v) for v in values) or "-"


class EventuallyTerminal(_NRInvariant):
    """``nr-eventually-terminal``: once quiet, every live object has finished."""

    name = "nr-eventually-terminal"
    description = (
        "when the test has gone quiet, the latest version of every NotificationRequest not "
        "deleted is Sent, PartiallySent or Failed"
    )

    def check_object(self, history: ObjectHistory, ctx: CheckContext) -> Iterable[Violation]:
        """Judge only the latest version, and only when ``ctx.quiet``."""
        # Every spec of the original integration suite waits for a terminal phase;
        # a controller that parks an object (e.g. a claim never released) fails them.
        if not ctx.quiet or history.deleted:
            return []
        last = history.last
        st = nr_state(last, history.index)
        if st.terminal:
            return []
        progress = ", ".join(
            f"{ch} {len(st.on_channel(ch))}/{st.policy.max_attempts}"
            + (f" ({st.on_channel(ch)[-1].outcome})" if st.on_channel(ch) else "")
            for ch in dict.fromkeys(st.channels or [a.channel for a in st.attempts])
        )
        return [
            Violation(
                self.name,
                history.ref,
                f"still {st.phase or 'without a phase'} when the test went quiet (latest: rv "
                f"{last.rv} by {last.identity or '?'} at {last.t * 1000:.1f} ms"
                + (f"; attempts {progress}" if progress else "")
                + ")",
                (last.rv,),
                (),
                (last.seq,),
            )
        ]


#: The pack, in the order reports list them.
NR_INVARIANTS: Final[tuple[type[ObjectInvariant], ...]] = (
    CountersMatchAttempts,
    NoDuplicateAttempt,
    AttemptsAppendOnly,
    ValidPhaseTransitions,
    AttemptLimits,
    RetrySpacing,
    DeliveriesMatchRecords,
    EventuallyTerminal,
)
