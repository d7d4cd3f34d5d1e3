"""The NotificationRequest parts of a failure report: the state in an object's header
(its phase), the attempts table, a write's summary (phase, attempts added, counters) and
the attempts in the JSON report. The pack's hooks (``__init__``) call these; they use only
the core's public report helpers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_ntinvariants.invariants import ObjectHistory
from pytest_ntinvariants.ledger import ObjectVersion, SideEffect
from pytest_ntinvariants.report import field_changes, format_table

from .invariants import KIND, call_attempt, call_channel, nr_state, recorded_attempts

__all__ = [
    "SUMMARISED",
    "attempts_json",
    "attempts_table",
    "describe_call",
    "describe_write",
    "sections",
    "state",
]

#: Status fields a NotificationRequest's own summary of a write already describes.
SUMMARISED = frozenset(
    {
        "status.phase",
        "status.deliveryAttempts",
        "status.completionTime",
        "status.totalAttempts",
        "status.successfulDeliveries",
        "status.failedDeliveries",
    }
)


def _clock(timestamp: str) -> str:
    # "2025-12-26T10:00:00.123456Z" -> "10:00:00.123456": the date is noise in a race.
    if "T" in timestamp:
        return timestamp.split("T", 1)[1].rstrip("Zz")
    return timestamp or "-"


def state(history: ObjectHistory) -> str | None:
    """The phase of a NotificationRequest's latest version (None for other kinds)."""
    if history.ref.kind != KIND:
        return None
    return nr_state(history.last, history.index).phase or "no phase"


def attempts_table(history: ObjectHistory, indent: str = "  ") -> list[str]:
    """Every attempt ever recorded for a NotificationRequest, with who recorded it first.

    Columns: position in the latest list, channel, attempt, outcome, writer identity,
    resourceVersion that first recorded it, ledger time of that version, the attempt's
    own timestamp, and the error. An attempt that is no longer in the latest version is
    marked ``LOST``.
    """
    rows = []
    for r in recorded_attempts(history):
        a, v = r.attempt, r.version
        rows.append(
            {
                "#": a.index + 1 if r.in_latest else "LOST",
                "channel": a.channel,
                "attempt": a.number if a.number is not None else "?",
                "outcome": a.outcome,
                "writer": v.identity or "?",
                "rv": v.rv,
                "recorded ms": f"{v.t * 1000:.1f}",
                "timestamp": _clock(a.timestamp),
                "error": a.error or "",
            }
        )
    return format_table(rows, indent)


def sections(history: ObjectHistory) -> list[str] | None:
    """The attempts table of a NotificationRequest (and "no endpoint calls", which the
    generic report leaves out), as report lines; None for other kinds."""
    if history.ref.kind != KIND:
        return None
    lines = [
        f"  attempts of {history.ref.path} (every one ever recorded; # is the position "
        f"in rv {history.last.rv}):"
    ]
    lines.extend(attempts_table(history, indent="    ") or ["    (none recorded)"])
    if not history.side_effects():
        # A delivery that never reached an endpoint is news for this kind.
        lines.extend([f"  endpoint calls about {history.ref.path}:", "    (none)"])
    return lines


def describe_write(v: ObjectVersion, prev: ObjectVersion | None) -> str | None:
    """A NotificationRequest write as a timeline shows it: its spec when created, then
    the phase, attempts added (or rewritten), completionTime and counters it changed,
    and every other field it changed; None for other kinds."""
    if v.kind_ != KIND:
        return None
    cur = nr_state(v)
    if prev is None and not cur.phase and not cur.attempts:
        return (
            f"channels {', '.join(cur.channels) or '<none>'}, maxAttempts "
            f"{cur.policy.max_attempts}, backoff {cur.policy.initial_backoff_seconds:g} s"
            f" x{cur.policy.backoff_multiplier:g} <= {cur.policy.max_backoff_seconds:g} s"
        )
    old = nr_state(prev) if prev is not None else None
    parts = []
    if old is None or cur.phase != old.phase:
        before = f"{old.phase or '<none>'} -> " if old is not None else ""
        parts.append(f"phase {before}{cur.phase or '<none>'}")
    n_old = len(old.attempts) if old is not None else 0
    if old is not None and old.raw_attempts[:n_old] != cur.raw_attempts[:n_old]:
        parts.append(f"attempts rewritten ({n_old} -> {len(cur.attempts)})")
    elif len(cur.attempts) > n_old:
        added = ", ".join(f"{a.label} {a.outcome}" for a in cur.attempts[n_old:])
        parts.append(f"+{added}")
    if old is not None and cur.completion_time != old.completion_time:
        parts.append(f"completionTime {_clock(cur.completion_time) or 'removed'}")
    counters = (cur.total, cur.successful, cur.failed)
    if counters != ((old.total, old.successful, old.failed) if old else (0, 0, 0)):
        parts.append(f"total {cur.total} ok {cur.successful} failed {cur.failed}")
    # Everything else the write changed (a claim in status.claims, a label): a write
    # that only claims a delivery is no "no change".
    if prev is not None:
        parts.extend(field_changes(prev.obj, v.obj, skip=SUMMARISED))
    return "; ".join(parts) or ("no change" if v.type == "MODIFIED" else "")


def describe_call(call: SideEffect) -> str | None:
    """A delivery as ``slack attempt 2`` (None for a call the pack did not attribute)."""
    if "channel" not in call.attributes:
        return None
    return f"{call_channel(call)} attempt {call_attempt(call) or '?'}"


def attempts_json(history: ObjectHistory) -> Mapping[str, Any] | None:
    """``{"attempts": [...]}``: every attempt ever recorded, for the JSON report; None
    for other kinds."""
    if history.ref.kind != KIND:
        return None
    return {
        "attempts": [
            {
                "channel": r.attempt.channel,
                "attempt": r.attempt.number,
                "status": r.attempt.status,
                "permanent": r.attempt.permanent,
                "timestamp": r.attempt.timestamp,
                "error": r.attempt.error,
                "writer": r.version.identity,
                "rv": r.version.rv,
                "recorded_ms": round(r.version.t * 1000, 3),
                "inLatest": r.in_latest,
            }
            for r in recorded_attempts(history)
        ]
    }
