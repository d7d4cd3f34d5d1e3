"""The kinds the server knows: one strategy per kind family (``base.Strategy``), and the
table of built-ins (``builtin.BUILTIN``). See base.py."""

from __future__ import annotations

from .base import BaseStrategy, Strategy
from .builtin import BUILTIN, DEFAULT, UNSERVED_PATCH_ROOTS, strategy_for

__all__ = [
    "BUILTIN",
    "DEFAULT",
    "UNSERVED_PATCH_ROOTS",
    "BaseStrategy",
    "Strategy",
    "strategy_for",
]
