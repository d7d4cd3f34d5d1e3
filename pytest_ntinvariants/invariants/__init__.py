"""Invariants over the ledger, assertion helpers, and hand-built ledgers for their tests.

The public door of the invariants package: the ``Invariant``
protocol and ``InvariantRegistry`` the plugin and third-party hooks use, the built-in
rules (``resource-version-monotonic`` and the NotificationRequest pack), the assertion
helpers for tests, and the builder used to test all of them on exact histories.
"""

from __future__ import annotations

from ._core import (
    CheckContext,
    FunctionInvariant,
    Invariant,
    InvariantRegistry,
    ObjectInvariant,
    ObjectRef,
    Violation,
)
from ._index import LedgerIndex, ObjectHistory, index_of, parse_time
from .assertions import assert_attempts, assert_deliveries
from .builder import LedgerBuilder, NotificationBuilder
from .builtin import BUILTIN_INVARIANTS, ResourceVersionMonotonic, default_registry
from ..packs.notifications.invariants import (
    NR_INVARIANTS,
    Attempt,
    AttemptLimits,
    AttemptsAppendOnly,
    CountersMatchAttempts,
    DeliveriesMatchRecords,
    EventuallyTerminal,
    NoDuplicateAttempt,
    NotificationState,
    RecordedAttempt,
    RetryPolicy,
    RetrySpacing,
    ValidPhaseTransitions,
    nr_state,
    recorded_attempts,
)

__all__ = [
    "BUILTIN_INVARIANTS",
    "NR_INVARIANTS",
    "Attempt",
    "AttemptLimits",
    "AttemptsAppendOnly",
    "CheckContext",
    "CountersMatchAttempts",
    "DeliveriesMatchRecords",
    "EventuallyTerminal",
    "FunctionInvariant",
    "Invariant",
    "InvariantRegistry",
    "LedgerBuilder",
    "LedgerIndex",
    "NoDuplicateAttempt",
    "NotificationBuilder",
    "NotificationState",
    "ObjectHistory",
    "ObjectInvariant",
    "ObjectRef",
    "RecordedAttempt",
    "ResourceVersionMonotonic",
    "RetryPolicy",
    "RetrySpacing",
    "ValidPhaseTransitions",
    "Violation",
    "assert_attempts",
    "assert_deliveries",
    "default_registry",
    "index_of",
    "nr_state",
    "parse_time",
    "recorded_attempts",
]
