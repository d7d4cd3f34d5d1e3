"""A kopf operator that draws at random, for the tests of the world's seeded randomness.

On every Gadget it writes three draws into the status: one from the ``random`` module's
functions, one from a function imported from it, one from a ``random.Random()`` made with
no seed. In a deterministic world all three come from the test's seed.
"""

from __future__ import annotations

import random
from random import choice
from typing import Any

import kopf

from .gadgets import GROUP, PLURAL, VERSION


def make_registry(identity: str) -> kopf.OperatorRegistry:
    """A fresh registry whose handler records its draws in each Gadget's status."""
    registry = kopf.OperatorRegistry()

    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
    async def roll(patch: kopf.Patch, **_: Any) -> None:
        patch.status["draws"] = {
            "random": random.random(),
            "choice": choice(range(1 << 30)),
            "instance": random.Random().random(),
        }

    return registry
