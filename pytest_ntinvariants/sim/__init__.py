"""The deterministic engine: one loop, virtual time, held actions, seeded choices.

A deterministic test runs its API server, its fake endpoints and its in-process
controller replicas on one ``WorldLoop``, in one thread. What reaches a replica (the
handling of its requests, the events of its watch streams, the calls it makes to an
endpoint, the results of its thread jobs) is held by the ``Engine``, which releases one
action at a time, only when the whole world is quiescent, and moves virtual time to the
next timer when nothing else may happen. Every choice comes from the test's seed, so a
seed replays a run exactly; ``World.digest`` proves it. A ``Strategy`` chooses each step
(a random walk, PCT), and the choices it made replay without it (``Replay``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers; loaded lazily below
    from .engine import Action, DriveResult, Engine, Step
    from .loop import ACTOR, WorldLoop
    from .strategies import PCT, STRATEGIES, RandomWalk, Replay, Strategy, make_strategy
    from .world import EPOCH, World, WorldGate

_WHERE = {
    "ACTOR": ".loop",
    "EPOCH": ".world",
    "PCT": ".strategies",
    "STRATEGIES": ".strategies",
    "Action": ".engine",
    "DriveResult": ".engine",
    "Engine": ".engine",
    "RandomWalk": ".strategies",
    "Replay": ".strategies",
    "Step": ".engine",
    "Strategy": ".strategies",
    "World": ".world",
    "WorldGate": ".world",
    "WorldLoop": ".loop",
    "make_strategy": ".strategies",
}

__all__ = [
    "ACTOR",
    "EPOCH",
    "PCT",
    "STRATEGIES",
    "Action",
    "DriveResult",
    "Engine",
    "RandomWalk",
    "Replay",
    "Step",
    "Strategy",
    "World",
    "WorldGate",
    "WorldLoop",
    "make_strategy",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the markers read the strategies' names at collection, which
    # must not import the server (aiohttp) into runs that never start one.
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
