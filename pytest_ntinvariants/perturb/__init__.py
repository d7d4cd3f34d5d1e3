"""Perturbations of what each controller replica sees, and seeded schedules of them.

The rules import the API server (and so aiohttp); they are loaded on first use, so
that the plugin's markers can be parsed without paying for the server.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Coalesce",
    "DropWatch",
    "ExpireWatch",
    "Fault",
    "Hold",
    "Perturber",
    "RequestLatency",
    "Rule",
    "Schedule",
    "Space",
    "StaleView",
    "Target",
    "Trigger",
    "WatchLatency",
]

_WHERE = {name: ".rules" for name in __all__}
_WHERE.update(Trigger=".triggers", Schedule=".schedule", Space=".schedule")


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name], __name__), name)
