"""Temporary: re-exports for the moved module's relative imports (removed next commit)."""

from ...invariants._core import CheckContext, ObjectInvariant, ObjectRef, Violation

__all__ = ["CheckContext", "ObjectInvariant", "ObjectRef", "Violation"]
