"""The deterministic engine: one loop, virtual time, held actions, seeded choices.

A deterministic test runs its API server, its fake endpoints and its in-process
controller replicas on one ``WorldLoop``, in one thread. What reaches a replica (the
handling of its requests, the events of its watch streams, the calls it makes to an
endpoint, the results of its thread jobs) is held by the ``Engine``, which releases one
action at a time, only when the whole world is quiescent, and moves virtual time to the
next timer when nothing else may happen. Every choice comes from the test's seed, so a
seed replays a run exactly; ``World.digest`` proves it.
"""

from .engine import Action, DriveResult, Engine, Step
from .loop import ACTOR, WorldLoop
from .world import EPOCH, World, WorldGate

__all__ = [
    "ACTOR",
    "EPOCH",
    "Action",
    "DriveResult",
    "Engine",
    "Step",
    "World",
    "WorldGate",
    "WorldLoop",
]
