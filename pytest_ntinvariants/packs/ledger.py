"""Temporary: re-exports for the moved module's relative imports (removed next commit)."""

from ..ledger import ObjectVersion, SideEffect

__all__ = ["ObjectVersion", "SideEffect"]
