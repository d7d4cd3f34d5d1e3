"""Seeded randomness for code running inside a simulated world.

A seed is a complete reproduction only if everything the world's code draws at random
comes from it. kopf draws from the ``random`` module's shared generator: which of two
credentials of equal priority a request goes out with (each has its own connection pool,
so the choice decides which connection, and with it the order in which the server
receives requests), the order of handlers in ``kopf.lifecycles.shuffled``, peering
jitter. Controllers draw backoff jitter. The shared generator is seeded from the
operating system once per process, so without this module the same seed replayed a
different run about one time in five.

``activate(rng)`` makes ``rng`` the generator of the current context, as
``clock.activate`` does for the clock: the world's loop thread activates a generator
seeded from the world's seed, its tasks inherit it, pytest's thread does not; a thread
job gets one of its own, seeded from it when the job starts (``spawned``).
``patching.install`` rebinds, in the world's modules, a global bound to the ``random``
module to ``MODULE`` (whose functions draw from the active generator, or from the shared
one outside a world) and a global bound to one of the module's functions (``from random
import choice``) to its counterpart here (``REPLACEMENTS``). ``MODULE.Random()`` made
with no seed inside a world is seeded from the world's generator too.

What stays unseeded: ``os.urandom``, ``secrets`` and ``uuid.uuid4`` (the operating
system's entropy), and generators made before the world started or by libraries that
are not patched (see ``patching.world_prefixes``).
"""

from __future__ import annotations

import contextvars
import random
from collections.abc import Callable
from typing import Any

from .patching import ModuleProxy

__all__ = ["MODULE", "REPLACEMENTS", "WorldRandom", "activate", "active", "seeded", "spawned"]

_REAL_MODULE = random
_REAL_RANDOM = random.Random

#: The module-level functions of ``random``: bound methods of its shared generator (some
#: of them built-in: ``random``, ``getrandbits``).
_DRAWS = frozenset(
    name
    for name in random.__all__
    if isinstance(getattr(getattr(random, name), "__self__", None), _REAL_RANDOM)
)

_ACTIVE: contextvars.ContextVar[random.Random | None] = contextvars.ContextVar(
    "pytest_ntinvariants.sim.entropy.active", default=None
)


def seeded(seed: int) -> random.Random:
    """A world's generator for ``seed`` (the same draws in every process: a string seed
    goes through SHA-512, not through ``hash()``, which varies per process)."""
    return _REAL_RANDOM(f"ntinv-world-{seed}")


def spawned(rng: random.Random) -> random.Random:
    """A generator of its own for a thread job started with ``rng`` active, seeded from
    ``rng`` when the job starts (in the engine's order): a job sharing the world's
    generator with the loop, which runs on meanwhile, would interleave their draws in
    whatever order the operating system runs the two threads."""
    return _REAL_RANDOM(rng.getrandbits(64))


def activate(rng: random.Random) -> contextvars.Token[random.Random | None]:
    """Make ``rng`` the generator of the current context; return the undo token."""
    return _ACTIVE.set(rng)


def active() -> random.Random | None:
    """The generator active in the current context, or None outside any world."""
    return _ACTIVE.get()


class WorldRandom(_REAL_RANDOM):
    """``random.Random`` as the world's code sees it: made with no seed inside a world,
    it is seeded from the world's generator instead of the operating system."""

    def __init__(self, x: Any = None) -> None:
        rng = _ACTIVE.get()
        if x is None and rng is not None:
            x = rng.getrandbits(64)
        super().__init__(x)


def _draw(name: str) -> Callable[..., Any]:
    shared = getattr(_REAL_MODULE, name)

    def draw(*args: Any, **kwargs: Any) -> Any:
        rng = _ACTIVE.get()
        return shared(*args, **kwargs) if rng is None else getattr(rng, name)(*args, **kwargs)

    draw.__name__ = draw.__qualname__ = name
    draw.__doc__ = shared.__doc__
    return draw


_FUNCTIONS = {name: _draw(name) for name in sorted(_DRAWS)}


#: What the world's modules see in place of the ``random`` module: its functions draw
#: from the active world's generator, ``Random`` is ``WorldRandom``.
MODULE = ModuleProxy(_REAL_MODULE, {**_FUNCTIONS, "Random": WorldRandom}, "world-seeded")

#: The real objects ``patching.install`` replaces in the world's modules, by identity
#: (the module and each of its drawing functions), and what replaces each.
REPLACEMENTS: dict[int, object] = {
    id(_REAL_MODULE): MODULE,
    **{id(getattr(_REAL_MODULE, name)): f for name, f in _FUNCTIONS.items()},
}
