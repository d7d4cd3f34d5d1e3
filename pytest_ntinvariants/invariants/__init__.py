"""Invariants over the ledger, assertion helpers, and hand-built ledgers for their tests.

The public door of the invariants package: the ``Invariant``
protocol and ``InvariantRegistry`` the plugin and third-party hooks use, the built-in
rules (``resource-version-monotonic`` and the oracles, for any kind), the assertion
helpers for tests, and the builder used to test all of them on exact histories. Rules
about one kind come from packs (``pytest_ntinvariants.packs``).
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
from .assertions import assert_no_side_effects, assert_side_effects, failure_message, find_object
from .builder import LedgerBuilder, Target
from .builtin import BUILTIN_INVARIANTS, ResourceVersionMonotonic, default_registry

__all__ = [
    "BUILTIN_INVARIANTS",
    "CheckContext",
    "FunctionInvariant",
    "Invariant",
    "InvariantRegistry",
    "LedgerBuilder",
    "LedgerIndex",
    "ObjectHistory",
    "ObjectInvariant",
    "ObjectRef",
    "ResourceVersionMonotonic",
    "Target",
    "Violation",
    "assert_no_side_effects",
    "assert_side_effects",
    "default_registry",
    "failure_message",
    "find_object",
    "index_of",
    "parse_time",
]
