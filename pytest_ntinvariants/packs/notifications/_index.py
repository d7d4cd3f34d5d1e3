"""Temporary: re-exports for the moved module's relative imports (removed next commit)."""

from ...invariants._index import LedgerIndex, ObjectHistory, parse_time

__all__ = ["LedgerIndex", "ObjectHistory", "parse_time"]
