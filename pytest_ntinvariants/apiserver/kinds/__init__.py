"""The kinds the server knows: one strategy per kind family (``base.Strategy``), each kind's
type beside it, and the table of built-ins (``builtin.BUILTIN_KINDS``). See base.py."""

from __future__ import annotations

from .base import BaseStrategy, Builtin, Strategy
from .builtin import (
    BUILTIN,
    BUILTIN_KINDS,
    BUILTIN_TYPES,
    DEFAULT,
    UNSERVED_PATCH_ROOTS,
    strategy_for,
)

__all__ = [
    "BUILTIN",
    "BUILTIN_KINDS",
    "BUILTIN_TYPES",
    "DEFAULT",
    "UNSERVED_PATCH_ROOTS",
    "BaseStrategy",
    "Builtin",
    "Strategy",
    "strategy_for",
]
