"""Seeded schedules: a reproducible choice of perturbations drawn from a declared space.

An exploration turns one test into K items, each running one schedule; the schedule
is a pure function of its seed and the replica identities, so the seed printed in a
failure replays the same perturbations exactly (``--ntinv-replay=SEED``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._values import FAULT_CODES, parse_delay

if TYPE_CHECKING:
    from .rules import Perturber, Rule, Target
    from .triggers import Trigger

__all__ = ["Schedule", "Space", "Step", "derive_seed"]


def derive_seed(*parts: object) -> int:
    """A stable 31-bit seed from any parts (session seed, node id, index).

    Stable across processes and Python runs (unlike ``hash()``), so xdist workers
    and a later replay derive the same seeds.
    """
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


@dataclass(frozen=True)
class Space:
    """What a schedule may draw from; every field can be narrowed or switched off.

    - ``watch_latency``: ``(low, high)`` seconds of watch delay per replica, or None.
    - ``stale_reads``: at most this many versions behind, per replica (0: never).
    - ``coalesce``: probability that a replica sees only the latest of close events.
    - ``hold``: probability that one replica's events are held until another
      replica's first status write (the seed's self-triggered stale reconcile).
    - ``faults``: HTTP code (one of ``FAULT_CODES``) -> probability that a replica's
      write gets that error.
    - ``crash``: probability that one replica crashes after its nth write (n in 1..3).
    - ``slow_writes``: ``(low, high)`` seconds by which a replica's writes land late (half
      of the replicas, drawn), or None (the default): a write that lands after a claim or
      a lease expired, after another replica took over.
    """

    watch_latency: tuple[float, float] | None = (0.0, 0.03)
    stale_reads: int = 2
    coalesce: float = 0.3
    hold: float = 0.3
    faults: Mapping[int, float] = field(default_factory=dict)
    crash: float = 0.0
    slow_writes: tuple[float, float] | None = None

    @classmethod
    def from_marker(cls, value: Any) -> Space:
        """A ``Space`` from a marker argument (a ``Space`` or a dict); ValueError naming
        the offending key."""
        if value is None:
            return cls()
        if isinstance(value, Space):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(f"space must be a Space or a dict, got {type(value).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"space has unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        kwargs = dict(value)
        for name in ("watch_latency", "slow_writes"):
            if kwargs.get(name) is not None:
                lat = parse_delay(kwargs[name], f"space.{name}")
                kwargs[name] = lat if isinstance(lat, tuple) else (0.0, lat)
        for prob in ("coalesce", "hold", "crash"):
            if prob in kwargs and not 0.0 <= float(kwargs[prob]) <= 1.0:
                raise ValueError(f"space.{prob} must be a probability in [0, 1]")
        if "stale_reads" in kwargs and (
            not isinstance(kwargs["stale_reads"], int) or kwargs["stale_reads"] < 0
        ):
            raise ValueError("space.stale_reads must be an int >= 0")
        for code, p in dict(kwargs.get("faults") or {}).items():
            if int(code) not in FAULT_CODES:
                raise ValueError(f"space.faults code {code} not one of {FAULT_CODES}")
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"space.faults[{code}] must be a probability in [0, 1]")
        return cls(**kwargs)


@dataclass(frozen=True)
class Step:
    """One drawn perturbation: a kind, its target identity, and its parameters."""

    kind: str
    identity: str
    params: tuple[tuple[str, Any], ...] = ()

    def describe(self) -> str:
        """``watch-latency replica-0 delay=0.012`` for reports."""
        args = " ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params
        )
        return f"{self.kind} {self.identity} {args}".strip()


@dataclass(frozen=True)
class Schedule:
    """A seeded set of perturbation steps for a set of replica identities."""

    seed: int
    steps: tuple[Step, ...]

    @classmethod
    def draw(cls, space: Space, seed: int, identities: Sequence[str]) -> Schedule:
        """Draw a schedule; the same inputs always give the same schedule."""
        rng = random.Random(seed)
        steps: list[Step] = []
        for ident in identities:
            if space.watch_latency is not None and rng.random() < 0.7:
                lo, hi = space.watch_latency
                steps.append(Step("watch-latency", ident, (("delay", rng.uniform(lo, hi)),)))
            if space.stale_reads and rng.random() < 0.5:
                steps.append(
                    Step("stale-reads", ident, (("versions", rng.randint(1, space.stale_reads)),))
                )
            if space.coalesce and rng.random() < space.coalesce:
                steps.append(Step("coalesce", ident, (("window", rng.uniform(0.005, 0.03)),)))
            for code, p in sorted(space.faults.items()):
                if p and rng.random() < 0.5:
                    steps.append(Step("fault", ident, (("code", int(code)), ("probability", p))))
            # (Drawn only when asked for, so that other spaces draw what they always did.)
            if space.slow_writes is not None and rng.random() < 0.5:
                lo, hi = space.slow_writes
                steps.append(Step("slow-writes", ident, (("delay", rng.uniform(lo, hi)),)))
        if len(identities) >= 2 and space.hold and rng.random() < space.hold:
            victim, writer = rng.sample(list(identities), 2)
            steps.append(Step("hold", victim, (("until_status_write_of", writer),)))
        if identities and space.crash and rng.random() < space.crash:
            steps.append(
                Step("crash", rng.choice(list(identities)), (("after_writes", rng.randint(1, 3)),))
            )
        return cls(seed, tuple(steps))

    def describe(self) -> str:
        """One line per step, for the report header of a failing schedule."""
        if not self.steps:
            return f"seed {self.seed}: no perturbations"
        return f"seed {self.seed}:\n" + "\n".join(f"  - {s.describe()}" for s in self.steps)

    def apply(self, perturber: Perturber) -> tuple[list[Rule], list[Step]]:
        """Add the schedule's rules; returns them and the crash steps (which need the
        replicas, so the caller applies those)."""
        rules: list[Rule] = []
        crashes: list[Step] = []
        # A draw of its own, so rule probabilities replay independently of the drawing.
        perturber.rng.seed(self.seed)
        for step in self.steps:
            apply = _KINDS.get(step.kind)
            if apply is None:
                continue  # an unknown kind (a hand-made schedule's, say) adds no rule
            rule = apply(perturber, step.identity, dict(step.params))
            if rule is None:
                crashes.append(step)
            else:
                rules.append(rule)
        return rules, crashes


# How each kind of step is applied: a function of the perturber, the step's identity and
# its parameters that adds the step's rule. None means the caller applies the step.
_Apply = Callable[["Perturber", str, dict[str, Any]], "Rule | None"]
_KINDS: dict[str, _Apply] = {}


def _kind(name: str) -> Callable[[_Apply], _Apply]:
    """Register how steps of kind ``name`` are applied (the only place a kind is known)."""

    def register(apply: _Apply) -> _Apply:
        _KINDS[name] = apply
        return apply

    return register


def _target(identity: str, **fields: Any) -> Target:
    # Imported here: the rules load the API server, which markers must not pay for.
    from .rules import Target

    return Target(identity=identity, **fields)


@_kind("watch-latency")
def _watch_latency(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    return perturber.watch_latency(p["delay"], target=_target(who))


@_kind("stale-reads")
def _stale_reads(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    return perturber.stale_reads(versions=p["versions"], target=_target(who))


@_kind("coalesce")
def _coalesce(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    return perturber.coalesce(p["window"], target=_target(who))


@_kind("fault")
def _fault(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    return perturber.fault(
        p["code"], probability=p["probability"], target=_target(who, verb="write")
    )


@_kind("slow-writes")
def _slow_writes(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    return perturber.latency(p["delay"], target=_target(who, verb="write"))


@_kind("hold")
def _hold(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    trigger = perturber.after_write(p["until_status_write_of"], subresource="status")
    return perturber.hold(target=_target(who), until=trigger)


@_kind("crash")
def _crash(perturber: Perturber, who: str, p: dict[str, Any]) -> None:
    """A crash needs the replicas, which the caller has: ``apply`` hands the step back."""
    return None


# The kinds of the steps that learned plans make (see ``plans``): each acts at the
# ``nth`` event of ``resource`` to the step's replica.


def _delivered(perturber: Perturber, who: str, resource: str, nth: int) -> Trigger:
    from ..ledger import WatchDelivered

    return perturber.trigger(WatchDelivered, identity=who, resource=resource, nth=nth)


def _event_target(who: str, resource: str) -> Target:
    from .plans import target_resource

    return _target(who, resource=target_resource(resource))


@_kind("stale-from-event")
def _stale_from_event(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    after = _delivered(perturber, who, p["resource"], p["nth"])
    return perturber.stale_reads(versions=1, target=_target(who), after=after)


@_kind("coalesce-event")
def _coalesce_event(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    """The nth event waits ``window`` seconds; a newer event of its object replaces it."""
    target = _event_target(who, p["resource"])
    return perturber.coalesce(p["window"], target=target, nth=p["nth"])


@_kind("delay-event")
def _delay_event(perturber: Perturber, who: str, p: dict[str, Any]) -> Rule:
    """Hold from the nth event on, until the other replica's next write."""
    from ..ledger import RequestServed
    from .rules import WRITE_VERBS

    nth = p["nth"]
    start = _delivered(perturber, who, p["resource"], nth - 1) if nth > 1 else None

    def next_write(e: Any) -> bool:
        started = start is None or start.fired
        return started and e.verb in WRITE_VERBS and e.status < 300

    until = perturber.trigger(RequestServed, identity=p["until_write_of"], where=next_write)
    return perturber.hold(target=_event_target(who, p["resource"]), after=start, until=until)
