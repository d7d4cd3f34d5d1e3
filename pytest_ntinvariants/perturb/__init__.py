"""Perturbations of what each controller replica sees, and seeded schedules of them."""

from __future__ import annotations

from .rules import (
    Coalesce,
    DropWatch,
    ExpireWatch,
    Fault,
    Hold,
    Perturber,
    RequestLatency,
    Rule,
    StaleView,
    Target,
    WatchLatency,
)
from .triggers import Trigger

__all__ = [
    "Coalesce",
    "DropWatch",
    "ExpireWatch",
    "Fault",
    "Hold",
    "Perturber",
    "RequestLatency",
    "Rule",
    "StaleView",
    "Target",
    "Trigger",
    "WatchLatency",
]
