"""The plugin's markers: registered with their full signatures, parsed once into frozen
dataclasses, validated with messages that name the wrong argument.

Markers stack on functions, classes and modules. The single-valued ones (replicas,
latency, stale reads, exploration, invariants) take the closest declaration; faults
add up, every ``ntinv_faults`` mark contributing one rule.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from .perturb._values import FAULT_CODES, Delay, parse_delay
from .perturb.schedule import Space
from .replay import ReplayToken
from .sim.strategies import STRATEGIES

__all__ = [
    "MARKERS",
    "ExploreSpec",
    "FaultSpec",
    "InvariantsSpec",
    "LatencySpec",
    "MarkerError",
    "ReplicasSpec",
    "StaleSpec",
    "parse_item_markers",
]


# Each marker's signature is written once, as a stub that binds its arguments; its line in
# ``pytest --markers`` is that signature (without the annotations), then what it does.
_Stub = Callable[..., None]
_STUBS: dict[str, _Stub] = {}

#: Each marker's line in ``pytest --markers``: ``name(signature): what it does``.
MARKERS: dict[str, str] = {}


def _marker(name: str, about: str) -> Callable[[_Stub], _Stub]:
    """Register the decorated stub as ``name``'s signature, and what the marker does."""

    def register(stub: _Stub) -> _Stub:
        sig = inspect.signature(stub)
        bare = sig.replace(
            parameters=[p.replace(annotation=p.empty) for p in sig.parameters.values()],
            return_annotation=sig.empty,
        )
        _STUBS[name] = stub
        MARKERS[name] = f"{name}{bare}: {about}"
        return stub

    return register


# In the order ``pytest --markers`` lists them.


@_marker(
    "ntinv_replicas",
    "run the controller as `count` concurrent replicas (identities prefix-0..count-1). "
    "operator: a registry factory, 'module:factory', or None for the ntinv_operator fixture. "
    "settings: kopf settings, as a callable taking kopf.OperatorSettings or a dict of "
    "dotted paths, e.g. {'persistence.consistency_timeout': 5}. argv: run a controller "
    "process (any language) instead, with its own KUBECONFIG; ready: a regular expression "
    "its output prints once ready; env: extra environment. deterministic: False runs the "
    "replicas free, on threads and real time (default: the ntinv_deterministic ini, on; "
    "processes then run in a world on real time).",
)
def _replicas(
    count: int = 2,
    *,
    operator: Any = None,
    namespaces: Any = None,
    prefix: str = "replica",
    settings: Any = None,
    deterministic: Any = None,
    argv: Any = None,
    ready: Any = None,
    env: Any = None,
) -> None: ...


@_marker(
    "ntinv_watch_latency",
    "delay watch events to replicas by delay seconds or a seeded (low, high) range; "
    "replicas: indices or identities (default all).",
)
def _latency(delay: Any, *, replicas: Any = None) -> None: ...


@_marker(
    "ntinv_stale_reads",
    "serve replicas' GETs and LISTs `versions` versions (or `seconds`) behind the current state.",
)
def _stale(versions: Any = 1, *, seconds: Any = None, replicas: Any = None) -> None: ...


@_marker(
    "ntinv_faults",
    "answer replicas' matching requests with API error `code` "
    f"({', '.join(map(str, FAULT_CODES))}). Stackable.",
)
def _faults(
    code: Any,
    *,
    verb: Any = "write",
    resource: Any = None,
    subresource: Any = None,
    probability: Any = None,
    times: Any = None,
    nth: Any = None,
    retry_after: Any = None,
    replicas: Any = None,
) -> None: ...


@_marker(
    "ntinv_explore",
    "run the test once per seeded schedule of perturbations drawn from `space` (a Space or "
    "dict), the steps of a deterministic world chosen by `strategy` ('random'; 'pct' with "
    "`depth`; 'exhaustive': every run with at most `depth` deviations from arrival order, "
    "fewest first; 'plans': one perturbation learned from an unperturbed run per item; "
    "default: --ntinv-strategy, else random); the seed is in the test id, and a failure "
    "prints a token that replays it with --ntinv-replay=TOKEN. budget: seconds of "
    "exploration for this test, after which its items are skipped.",
)
def _explore(
    schedules: Any = 10,
    *,
    space: Any = None,
    strategy: Any = None,
    depth: Any = 3,
    budget: Any = None,
) -> None: ...


@_marker(
    "ntinv_replay",
    "run the test once, exactly as the replay token a failure printed says (its "
    "perturbations and every scheduling decision): a regression test pinned to one run.",
)
def _replay(token: Any) -> None: ...


@_marker(
    "ntinv_invariants",
    "choose which invariants are checked at teardown.",
)
def _invariants(*, only: Any = None, exclude: Any = ()) -> None: ...


class MarkerError(ValueError):
    """A marker was used with a wrong argument; the message names it."""


@dataclass(frozen=True)
class ReplicasSpec:
    """``ntinv_replicas``."""

    count: int = 2
    operator: Any = None
    namespaces: tuple[str, ...] | None = None
    prefix: str = "replica"
    settings: Any = None  # a kopf settings hook (checked), or None
    deterministic: bool | None = None  # None: as the ntinv_deterministic ini says
    argv: tuple[str, ...] | None = None  # a controller process instead of a kopf operator
    ready: str | None = None  # the process's ready pattern
    env: tuple[tuple[str, str], ...] = ()  # the process's extra environment

    def identities(self) -> list[str]:
        """The replica identities, ``replica-0`` …"""
        return [f"{self.prefix}-{i}" for i in range(self.count)]


@dataclass(frozen=True)
class LatencySpec:
    """``ntinv_watch_latency``."""

    delay: Delay
    replicas: tuple[int | str, ...] | None = None


@dataclass(frozen=True)
class StaleSpec:
    """``ntinv_stale_reads``."""

    versions: int | None = 1
    seconds: float | None = None
    replicas: tuple[int | str, ...] | None = None


@dataclass(frozen=True)
class FaultSpec:
    """One ``ntinv_faults``."""

    code: int
    verb: str | tuple[str, ...] = "write"
    resource: str | None = None
    subresource: str | None = None
    probability: float | None = None
    times: int | None = None
    nth: int | None = None
    retry_after: int | None = None
    replicas: tuple[int | str, ...] | None = None


@dataclass(frozen=True)
class ExploreSpec:
    """``ntinv_explore``."""

    schedules: int = 10
    space: Space = field(default_factory=Space)
    strategy: str | None = None  # None: as --ntinv-strategy says
    depth: int = 3  # pct's depth, exhaustive's most deviations
    budget: float | None = None  # seconds of exploration for the test (per process)


@dataclass(frozen=True)
class InvariantsSpec:
    """``ntinv_invariants``."""

    only: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemMarkers:
    """Everything the markers say about one test item."""

    replicas: ReplicasSpec | None = None
    latency: LatencySpec | None = None
    stale: StaleSpec | None = None
    faults: tuple[FaultSpec, ...] = ()
    explore: ExploreSpec | None = None
    invariants: InvariantsSpec = field(default_factory=InvariantsSpec)
    replay: ReplayToken | None = None


def _bind(name: str, mark: pytest.Mark) -> dict[str, Any]:
    """Bind a mark's arguments to the marker's signature, or raise naming what is wrong."""
    try:
        bound = inspect.signature(_STUBS[name]).bind(*mark.args, **mark.kwargs)
    except TypeError as e:
        raise MarkerError(f"@pytest.mark.{name}: {e}; signature: {MARKERS[name]}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _replica_list(name: str, value: Any) -> tuple[int | str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (int, str)) else value
    if not isinstance(items, Sequence) or not all(
        isinstance(v, (int, str)) and not isinstance(v, bool) for v in items
    ):
        raise MarkerError(
            f"@pytest.mark.{name}: replicas must be indices or identities, got {value!r}"
        )
    return tuple(items)


def parse_replicas(mark: pytest.Mark) -> ReplicasSpec:
    """Parse ``ntinv_replicas``."""
    a = _bind("ntinv_replicas", mark)
    count = a["count"]
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 16:
        raise MarkerError(
            f"@pytest.mark.ntinv_replicas: count must be an int in 1..16, got {count!r}"
        )
    ns = a["namespaces"]
    if ns is not None and (isinstance(ns, str) or not all(isinstance(n, str) for n in ns)):
        raise MarkerError(
            f"@pytest.mark.ntinv_replicas: namespaces must be a list of names, got {ns!r}"
        )
    op = a["operator"]
    if op is not None and not (callable(op) or (isinstance(op, str) and ":" in op)):
        raise MarkerError(
            "@pytest.mark.ntinv_replicas: operator must be a callable or "
            f"'module:factory', got {op!r}"
        )
    if not isinstance(a["prefix"], str) or not a["prefix"]:
        raise MarkerError(
            f"@pytest.mark.ntinv_replicas: prefix must be a non-empty string, got {a['prefix']!r}"
        )
    from .operators import settings_hook

    try:
        settings = settings_hook(a["settings"])
    except ValueError as e:
        raise MarkerError(f"@pytest.mark.ntinv_replicas: {e}") from None
    det = a["deterministic"]
    if det is not None and not isinstance(det, bool):
        raise MarkerError(
            f"@pytest.mark.ntinv_replicas: deterministic must be True, False or None, got {det!r}"
        )
    argv, ready, env = _process_arguments(a)
    if argv is not None and (op is not None or settings is not None):
        raise MarkerError(
            "@pytest.mark.ntinv_replicas: argv runs a process; operator and settings are for "
            "kopf operators: give one or the other"
        )
    return ReplicasSpec(
        count,
        op,
        tuple(ns) if ns is not None else None,
        a["prefix"],
        settings,
        det,
        argv,
        ready,
        env,
    )


def _process_arguments(
    a: dict[str, Any],
) -> tuple[tuple[str, ...] | None, str | None, tuple[tuple[str, str], ...]]:
    argv, ready, env = a["argv"], a["ready"], a["env"]
    if argv is not None:
        if isinstance(argv, str) or not isinstance(argv, Sequence) or not argv:
            raise MarkerError(
                "@pytest.mark.ntinv_replicas: argv must be a non-empty list of arguments, "
                f"got {argv!r}"
            )
        try:
            argv = tuple(os.fspath(arg) for arg in argv)
        except TypeError:
            raise MarkerError(
                f"@pytest.mark.ntinv_replicas: argv must hold strings or paths, got {argv!r}"
            ) from None
    elif ready is not None or env is not None:
        raise MarkerError("@pytest.mark.ntinv_replicas: ready and env need argv (a process)")
    if ready is not None:
        if not isinstance(ready, str):
            raise MarkerError(
                f"@pytest.mark.ntinv_replicas: ready must be a regular expression, got {ready!r}"
            )
        try:
            re.compile(ready)
        except re.error as e:
            raise MarkerError(f"@pytest.mark.ntinv_replicas: ready: {e}") from None
    if env is not None and not (
        isinstance(env, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise MarkerError(
            f"@pytest.mark.ntinv_replicas: env must map names to strings, got {env!r}"
        )
    return argv, ready, tuple(sorted((env or {}).items()))


def parse_latency(mark: pytest.Mark) -> LatencySpec:
    """Parse ``ntinv_watch_latency``."""
    a = _bind("ntinv_watch_latency", mark)
    try:
        delay = parse_delay(a["delay"], "delay")
    except ValueError as e:
        raise MarkerError(f"@pytest.mark.ntinv_watch_latency: {e}") from None
    return LatencySpec(delay, _replica_list("ntinv_watch_latency", a["replicas"]))


def parse_stale(mark: pytest.Mark) -> StaleSpec:
    """Parse ``ntinv_stale_reads``."""
    a = _bind("ntinv_stale_reads", mark)
    versions, seconds = a["versions"], a["seconds"]
    # The default versions gives way to seconds; given (versions is the only positional),
    # it contradicts them.
    if not (mark.args or "versions" in mark.kwargs):
        versions = None
    if versions is not None and seconds is not None:
        raise MarkerError("@pytest.mark.ntinv_stale_reads: give versions or seconds, not both")
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise MarkerError(
                f"@pytest.mark.ntinv_stale_reads: seconds must be >= 0, got {seconds!r}"
            )
        seconds = float(seconds)
    else:
        versions = 1 if versions is None else versions  # None, given or not: the default
        if isinstance(versions, bool) or not isinstance(versions, int) or versions < 1:
            raise MarkerError(
                f"@pytest.mark.ntinv_stale_reads: versions must be an int >= 1, got {versions!r}"
            )
    return StaleSpec(versions, seconds, _replica_list("ntinv_stale_reads", a["replicas"]))


def parse_fault(mark: pytest.Mark) -> FaultSpec:
    """Parse one ``ntinv_faults``."""
    a = _bind("ntinv_faults", mark)
    code = a["code"]
    if code not in FAULT_CODES:
        raise MarkerError(
            f"@pytest.mark.ntinv_faults: code must be one of {sorted(FAULT_CODES)}, got {code!r}"
        )
    p = a["probability"]
    if p is not None and (
        isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1
    ):
        raise MarkerError(f"@pytest.mark.ntinv_faults: probability must be in [0, 1], got {p!r}")
    for key in ("times", "nth", "retry_after"):
        v = a[key]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise MarkerError(f"@pytest.mark.ntinv_faults: {key} must be an int >= 0, got {v!r}")
    verb = a["verb"]
    if not isinstance(verb, str) and not (
        isinstance(verb, (list, tuple)) and all(isinstance(v, str) for v in verb)
    ):
        raise MarkerError(
            f"@pytest.mark.ntinv_faults: verb must be a verb or a list of verbs, got {verb!r}"
        )
    return FaultSpec(
        code,
        verb if isinstance(verb, str) else tuple(verb),
        a["resource"],
        a["subresource"],
        p,
        a["times"],
        a["nth"],
        a["retry_after"],
        _replica_list("ntinv_faults", a["replicas"]),
    )


def parse_explore(mark: pytest.Mark) -> ExploreSpec:
    """Parse ``ntinv_explore``."""
    a = _bind("ntinv_explore", mark)
    n = a["schedules"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MarkerError(f"@pytest.mark.ntinv_explore: schedules must be an int >= 1, got {n!r}")
    try:
        space = Space.from_marker(a["space"])
    except (ValueError, TypeError) as e:
        raise MarkerError(f"@pytest.mark.ntinv_explore: {e}") from None
    strategy, depth = a["strategy"], a["depth"]
    if strategy is not None and strategy not in STRATEGIES:
        raise MarkerError(
            f"@pytest.mark.ntinv_explore: strategy must be one of {', '.join(STRATEGIES)}, "
            f"got {strategy!r}"
        )
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise MarkerError(f"@pytest.mark.ntinv_explore: depth must be an int >= 1, got {depth!r}")
    budget = a["budget"]
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0
    ):
        raise MarkerError(f"@pytest.mark.ntinv_explore: budget must be seconds > 0, got {budget!r}")
    return ExploreSpec(n, space, strategy, depth, float(budget) if budget is not None else None)


def parse_invariants(mark: pytest.Mark) -> InvariantsSpec:
    """Parse ``ntinv_invariants``."""
    a = _bind("ntinv_invariants", mark)
    only, exclude = a["only"], a["exclude"]
    for key, v in (("only", only), ("exclude", exclude)):
        if v is not None and (isinstance(v, str) or not all(isinstance(x, str) for x in v)):
            raise MarkerError(
                f"@pytest.mark.ntinv_invariants: {key} must be a list of invariant names, got {v!r}"
            )
    return InvariantsSpec(tuple(only) if only is not None else None, tuple(exclude))


def parse_replay(mark: pytest.Mark) -> ReplayToken:
    """Parse ``ntinv_replay``."""
    token = _bind("ntinv_replay", mark)["token"]
    if not isinstance(token, str):
        raise MarkerError(f"@pytest.mark.ntinv_replay: token must be a string, got {token!r}")
    try:
        return ReplayToken.decode(token)
    except ValueError as e:
        raise MarkerError(f"@pytest.mark.ntinv_replay: {e}") from None


def parse_item_markers(item: pytest.Item) -> ItemMarkers:
    """Everything the markers of one item say (closest mark wins; faults add up)."""

    def closest(name: str, parse: Callable[[pytest.Mark], Any]) -> Any:
        mark = item.get_closest_marker(name)
        return parse(mark) if mark is not None else None

    invariants = closest("ntinv_invariants", parse_invariants) or InvariantsSpec()
    replay = closest("ntinv_replay", parse_replay)
    explore = closest("ntinv_explore", parse_explore)
    if replay is not None and explore is None:
        explore = ExploreSpec(1)  # a pinned run is one exploration run, replayed
    return ItemMarkers(
        replicas=closest("ntinv_replicas", parse_replicas),
        latency=closest("ntinv_watch_latency", parse_latency),
        stale=closest("ntinv_stale_reads", parse_stale),
        faults=tuple(parse_fault(m) for m in item.iter_markers("ntinv_faults")),
        explore=explore,
        invariants=invariants,
        replay=replay,
    )
