"""The pytest entry point (``pytest11``): options, ini settings, markers, hooks, fixtures.

Thin on purpose: session behaviour lives in ``session.NtinvSession``, registered at
configure time; the machinery lives in ``apiserver/``, ``perturb/``, ``operators``
and ``invariants/``, imported lazily inside fixtures so that having the plugin
installed costs a test run that does not use it nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .markers import MARKERS, MarkerError, parse_invariants, parse_item_markers
from .replay import ReplayToken
from .session import (
    HARNESS_KEY,
    LEDGER_KEY,
    MARKERS_KEY,
    RUN_KEY,
    WORLD_KEY,
    NtinvSession,
    context_options,
    float_ini,
)
from .sim.strategies import STRATEGIES

if TYPE_CHECKING:
    from .apiserver import FakeApiServer
    from .harness import Harness, SinkPool
    from .ledger import Ledger
    from .sim import World

_SESSION = "ntinvariants-session"


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register the ``pytest_ntinvariants_*`` hookspecs."""
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def _seed(value: str) -> int:
    try:
        seed = int(value)
    except ValueError:
        raise pytest.UsageError(
            f"--ntinv-seed/--ntinv-replay takes an integer, got {value!r}"
        ) from None
    if seed < 0:
        raise pytest.UsageError(f"seeds are >= 0, got {seed}")
    return seed


def _replay(value: str) -> int | ReplayToken:
    if value.startswith("ntv"):
        try:
            return ReplayToken.decode(value)
        except ValueError as e:
            raise pytest.UsageError(f"--ntinv-replay: {e}") from None
    return _seed(value)


def _count(option: str, least: int) -> Callable[[str], int]:
    """A parser of ``option``'s integer, at least ``least``: a usage error otherwise."""

    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise pytest.UsageError(f"{option} takes an integer, got {value!r}") from None
        if n < least:
            raise pytest.UsageError(f"{option} must be >= {least}, got {n}")
        return n

    return parse


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the plugin's options and ini settings."""
    group = parser.getgroup(
        "ntinvariants", "Kubernetes controller invariants (pytest-ntinvariants)"
    )
    group.addoption(
        "--ntinv-seed",
        dest="ntinv_seed",
        type=_seed,
        default=None,
        metavar="N",
        help="session seed for schedules and perturbations "
        "(default: random, printed in the header).",
    )
    group.addoption(
        "--ntinv-replay",
        dest="ntinv_replay",
        type=_replay,
        default=None,
        metavar="SEED|TOKEN",
        help="run exploration tests with only this schedule: a seed (drawn again), or the "
        "token a failure printed (its schedule and every scheduling decision, as run).",
    )
    group.addoption(
        "--ntinv-strategy",
        dest="ntinv_strategy",
        choices=STRATEGIES,
        default=None,
        help="how exploration tests choose each step of a deterministic world, unless "
        "their marker says: random (default), pct, exhaustive or plans.",
    )
    group.addoption(
        "--ntinv-budget",
        dest="ntinv_budget",
        default=None,
        metavar="TIME|N",
        help="how much exploration each process runs: a wall time (60s, 2m) or a number "
        "of schedules (500); the exploration items past it are skipped, saying so. With "
        "xdist every worker has it, so -n 2 --ntinv-budget=60s explores for about 60s.",
    )
    group.addoption(
        "--ntinv-shrink",
        dest="ntinv_shrink",
        type=_count("--ntinv-shrink", 0),
        default=100,
        metavar="RUNS",
        help="reduce a failing exploration run to fewest perturbations and fewest "
        "deviations from arrival order that still fail the same way, in at most RUNS "
        "more runs (default 100; 0: do not shrink).",
    )
    group.addoption(
        "--ntinv-schedules",
        dest="ntinv_schedules",
        type=_count("--ntinv-schedules", 1),
        default=None,
        metavar="K",
        help="schedules per exploration test (overrides the marker).",
    )
    group.addoption(
        "--ntinv-json",
        dest="ntinv_json",
        default=None,
        metavar="PATH",
        help="write a JSON report of invariants, violations and schedules.",
    )
    group.addoption(
        "--ntinv-report-dir",
        dest="ntinv_report_dir",
        default=None,
        metavar="DIR",
        help="where race drawings (SVG) of failures are written "
        "(default: under pytest's basetemp).",
    )
    group.addoption(
        "--ntinv-apiserver-tls",
        dest="ntinv_apiserver_tls",
        action="store_true",
        default=None,
        help="serve the fake API server over https.",
    )
    parser.addini(
        "ntinv_apiserver_tls",
        type="bool",
        default=False,
        help="serve the fake API server over https with a generated CA.",
    )
    parser.addini(
        "ntinv_bookmark_interval",
        default="60.0",
        help="seconds between watch BOOKMARK events (default 60, about kube-apiserver's).",
    )
    parser.addini("ntinv_json", default="", help="path of the JSON report (like --ntinv-json).")
    parser.addini("ntinv_report_dir", default="", help="directory for race drawings.")
    parser.addini(
        "ntinv_quiet_period",
        default="0.03",
        help="seconds without any API activity that count as quiet before invariants "
        "are checked (default 0.03).",
    )
    parser.addini(
        "ntinv_quiet_timeout",
        default="5.0",
        help="longest wait for quiet before invariants are checked (default 5.0).",
    )
    parser.addini(
        "ntinv_deterministic",
        type="bool",
        default=True,
        help="run in-process replicas (ntinv_replicas) in a deterministic world: one loop, "
        "virtual time, seeded scheduling (default true; the marker's deterministic= wins).",
    )
    parser.addini(
        "ntinv_horizon",
        default="600",
        help="virtual seconds without a write, event or endpoint call after which a "
        "deterministic world counts as settled (default 600).",
    )
    parser.addini(
        "ntinv_process_quiet",
        default="0.05",
        help="real seconds without a byte from process replicas (ntinv_replicas(argv=...)) "
        "that count as quiescent in their world on real time; ten of them without "
        "anything happening count as settled (default 0.05).",
    )
    parser.addini(
        "ntinv_max_writes",
        default="100",
        help="the most times the replicas may write one object before no-hot-loop calls it "
        "a hot loop (default 100).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers and the session plugin."""
    for text in MARKERS.values():
        config.addinivalue_line("markers", text)
    if not config.pluginmanager.has_plugin(_SESSION):
        config.pluginmanager.register(NtinvSession(config), _SESSION)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A wrong ``ntinv_invariants`` (a misspelt name, a bad argument) is an error at the
    setup of its test, naming what is wrong and the invariants there are, before any
    fixture starts and before the body runs for nothing."""
    mark = item.get_closest_marker("ntinv_invariants")
    if mark is None:
        return
    try:
        spec = parse_invariants(mark)
        _session(item.config).registry.select(include=spec.only, exclude=spec.exclude)
    except MarkerError as e:
        error = str(e)
    except KeyError as e:  # the registry's message names the invariants it has
        error = f"@pytest.mark.ntinv_invariants: {e.args[0]}"
    else:
        return
    # Failed outside the except blocks, so no "during handling" chain is shown.
    pytest.fail(error, pytrace=False)


def _session(config: pytest.Config) -> NtinvSession:
    plugin = config.pluginmanager.get_plugin(_SESSION)
    assert isinstance(plugin, NtinvSession)
    return plugin


# ------------------------------------------------------------------------ fixtures


@pytest.fixture
def ntinv_apiserver(request: pytest.FixtureRequest) -> Iterator[FakeApiServer]:
    """A fake Kubernetes API server for this test, on 127.0.0.1 over real HTTP.

    Started before the test and stopped after it; anything that failed in the server's
    thread fails the test at teardown. It serves discovery, CRDs, built-in kinds and
    watches like kube-apiserver. Use ``.kubeconfig(identity)`` for a client config with
    its own token, ``.apply(manifest)`` to seed objects, ``.get(...)`` to read them.
    Everything it does is recorded in the test's ledger (``ntinv_ledger``), and the
    invariants are checked over that record when the test body ends.
    """
    from .apiserver import FakeApiServer
    from .harness import RunInfo, attach_recorder
    from .ledger import Ledger

    config = request.config
    tls = config.getoption("ntinv_apiserver_tls")
    if tls is None:
        tls = bool(config.getini("ntinv_apiserver_tls"))
    seed = _run_seed(request)
    world = _world(request, seed)
    server = FakeApiServer(
        tls=tls,
        bookmark_interval=float_ini(config, "ntinv_bookmark_interval"),
        seed=seed,
        clock=world.now if world is not None else None,
        host=world.thread if world is not None else None,
    )
    ledger = Ledger(clock=world.loop.time) if world is not None else Ledger()
    if world is not None:
        server.gate = world.gate
    recorder = attach_recorder(server, ledger)
    request.node.stash[LEDGER_KEY] = ledger
    session = _session(config)
    request.node.stash[RUN_KEY] = RunInfo(
        request.node.nodeid,
        session.item_seed(request.node.nodeid),
        session.replay_command(request.node, None),
    )
    try:
        server.start()
        if world is not None:
            world.name_port(server.port, "apiserver")
        yield server
    finally:
        recorder.detach()
        try:
            if world is not None:
                world.wind_down()
            server.stop()
        finally:
            if world is not None:
                world.stop()


def _run_seed(request: pytest.FixtureRequest) -> int:
    """The seed of this run: an exploration item's schedule seed (what ``--ntinv-replay``
    passes, so the replay rebuilds the same world), else the test's own."""
    callspec = getattr(request.node, "callspec", None)
    schedule = callspec.params.get("ntinv_schedule_seed") if callspec is not None else None
    if isinstance(schedule, int):
        return schedule
    return _session(request.config).item_seed(request.node.nodeid)


# How many quiet spells without anything happening settle a world of processes.
_PROCESS_HORIZONS = 10


def _world(request: pytest.FixtureRequest, seed: int) -> World | None:
    """A started deterministic world for a test whose in-process replicas run in one."""
    try:
        markers = parse_item_markers(request.node)
    except MarkerError:
        return None  # the ntinv fixture reports it
    spec = markers.replicas
    if spec is None:
        return None
    deterministic = spec.deterministic
    if deterministic is None:
        deterministic = bool(request.config.getini("ntinv_deterministic"))
    if not deterministic:
        return None
    from .sim import World

    strategy = _session(request.config).strategy(request.node, markers.explore, seed)
    if spec.argv is not None:
        # Processes work outside the world's loop: a world on real time, quiescent after
        # a quiet spell (inexact; see sim.engine).
        quiet = float_ini(request.config, "ntinv_process_quiet")
        world = World(
            seed, horizon=_PROCESS_HORIZONS * quiet, quiet=quiet, strategy=strategy
        ).start()
    else:
        horizon = float_ini(request.config, "ntinv_horizon")
        world = World(seed, horizon=horizon, strategy=strategy).start()
    request.node.stash[WORLD_KEY] = world
    return world


@pytest.fixture
def ntinv_ledger(ntinv_apiserver: FakeApiServer, request: pytest.FixtureRequest) -> Ledger:
    """The ledger of this test: every request, object version, watch delivery,
    perturbation, endpoint call and replica event, in order (``pytest_ntinvariants.Ledger``)."""
    ledger: Ledger = request.node.stash[LEDGER_KEY]
    return ledger


@pytest.fixture
def ntinv_kubeconfig_factory(ntinv_apiserver: FakeApiServer) -> Callable[..., Path]:
    """Make a kubeconfig for a named client identity: ``factory("replica-a") -> Path``.

    Each identity gets its own bearer token, so the server attributes every request
    to it (kubectl over plain http sends no token and is seen as ``anonymous``).
    """
    return ntinv_apiserver.kubeconfig


@pytest.fixture
def ntinv_kubeconfig(ntinv_apiserver: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The path of a kubeconfig for identity ``test``; ``KUBECONFIG`` points at it.

    The environment variable is restored after the test, and so is the default path of
    ``kubernetes.config``, which reads ``KUBECONFIG`` only once, at import: it is pointed
    here too when it was imported already, so ``config.load_kube_config()`` inside the test
    loads this file even if an earlier test (or kopf) imported the client first.
    """
    path = ntinv_apiserver.kubeconfig("test")
    monkeypatch.setenv("KUBECONFIG", str(path))
    kube_config = sys.modules.get("kubernetes.config.kube_config")
    if kube_config is not None:
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    return path


@pytest.fixture
def ntinv_sinks(ntinv_ledger: Ledger, request: pytest.FixtureRequest) -> Iterator[SinkPool]:
    """The fake external endpoints of this test (stand-ins for Slack, webhooks), by name.

    ``ntinv_sinks.get("slack")`` starts one on 127.0.0.1 (options on first use:
    ``tls="valid" | "self-signed" | "expired" | "wrong-host"``, ``strict_json=...``);
    ``.script(...)`` makes it answer 502 once, then 200, or close the connection.
    Every call it receives is recorded in the ledger as a side effect, so invariants
    can compare what a controller recorded with what the outside world received.
    """
    from .harness import SinkPool

    pool = SinkPool(
        ntinv_ledger, world=request.node.stash.get(WORLD_KEY, None), hook=request.config.hook
    )
    try:
        yield pool
    finally:
        pool.stop()


@pytest.fixture
def ntinv_schedule_seed(request: pytest.FixtureRequest) -> int | None:
    """The seed of this item's perturbation schedule (``ntinv_explore`` items), else None."""
    return getattr(request, "param", None)


@pytest.fixture
def ntinv_operator() -> Any:
    """The controller that ``@pytest.mark.ntinv_replicas`` runs when the marker names none.

    Override it in your ``conftest.py`` to return a kopf registry factory
    (``Callable[[str], kopf.OperatorRegistry]``, called with each replica's identity) or
    ``"module:factory"``.
    """
    raise pytest.UsageError(
        "@pytest.mark.ntinv_replicas needs a controller: pass operator='module:factory' "
        "to the marker, or define an ntinv_operator fixture returning a kopf registry factory"
    )


@pytest.fixture
def ntinv(
    ntinv_apiserver: FakeApiServer,
    ntinv_sinks: SinkPool,
    ntinv_schedule_seed: int | None,
    request: pytest.FixtureRequest,
) -> Iterator[Harness]:
    """One test's fake cluster: ``server``, ``ledger``, ``perturb``, ``replicas``, ``sink()``.

    Applies the test's markers: ``ntinv_replicas`` starts the controller as N replicas
    (each its own identity and token), ``ntinv_watch_latency``/``ntinv_stale_reads``/
    ``ntinv_faults`` perturb what they see, and an ``ntinv_explore`` item gets its seeded
    schedule. ``wait_for(...)`` blocks on an object's condition without polling;
    ``assert_side_effects``/``assert_no_side_effects`` explain failures with the race
    timeline.
    When the test body ends, perturbations are removed, the system is let settle, and
    every registered invariant is checked over every version of every object.
    Process replicas (``start_process_replicas``) write their output to
    ``ntinv-replica-logs`` in the test's ``tmp_path``, kept as pytest's
    ``tmp_path_retention_policy`` says.
    """
    from .harness import Harness, RunInfo
    from .perturb.schedule import Schedule

    item = request.node
    session = _session(request.config)
    # (A misspelt invariant name failed the setup already: pytest_runtest_setup.)
    try:
        markers = parse_item_markers(item)
    except MarkerError as e:
        error = str(e)
    else:
        error = ""
    if error:  # failed outside the except block, so no "during handling" chain is shown
        pytest.fail(error, pytrace=False)
    item.stash[MARKERS_KEY] = markers
    seed = _run_seed(request)
    run = RunInfo(
        item.nodeid,
        seed,
        session.replay_command(item, ntinv_schedule_seed),
        options=context_options(item),
        hook=request.config.hook,
    )
    item.stash[RUN_KEY] = run
    try:
        # Process replicas' logs go to the test's tmp_path, kept or removed as pytest's
        # retention policy says (tmp_path_retention_policy/count). Requested here, before
        # any replica starts: a fixture requested later would be torn down earlier, and
        # could be removed while the replicas still write to it.
        log_dir: Path | None = request.getfixturevalue("tmp_path") / "ntinv-replica-logs"
    except pytest.FixtureLookupError:  # -p no:tmpdir: each replica removes its own logs
        log_dir = None
    harness = Harness(
        ntinv_apiserver,
        item.stash[LEDGER_KEY],
        run,
        ntinv_sinks,
        log_dir=log_dir,
        world=item.stash.get(WORLD_KEY, None),
    )
    item.stash[HARNESS_KEY] = harness
    try:
        spec = markers.replicas
        identities = spec.identities() if spec is not None else []
        if session.reference_run(item):
            # The run explored ones are compared with sees the world as it is: no marker
            # delays or ages its view (faults stay: the test chose that adversity).
            markers = dataclasses.replace(markers, latency=None, stale=None)
        try:
            harness.apply_markers(markers, identities)
        except (IndexError, ValueError) as e:
            pytest.fail(f"ntinvariants markers of {item.nodeid}: {e}", pytrace=False)
        if ntinv_schedule_seed is not None and markers.explore is not None:
            space = markers.explore.space

            def draw(ids: list[str]) -> Schedule:
                replayed = session.schedule(item, seed)
                if replayed is not None:  # a token's schedule, as it ran
                    return replayed
                drawn = request.config.hook.pytest_ntinvariants_draw_schedule(
                    space=space, seed=seed, identities=ids, item=item
                )
                return drawn or Schedule.draw(space, seed, ids)

            schedule = draw(identities)
            harness.apply_schedule(schedule)
            if not identities and not schedule.steps:
                # Replicas the test body starts (process replicas) are drawn for then.
                harness.defer_schedule(draw)
        if spec is not None and spec.argv is not None:
            harness.start_process_replicas(
                list(spec.argv),
                spec.count,
                prefix=spec.prefix,
                ready=spec.ready,
                env=dict(spec.env),
            )
        elif spec is not None:
            operator = spec.operator
            if operator is None:
                operator = request.getfixturevalue("ntinv_operator")
            harness.start_replicas(
                _resolve(operator),
                spec.count,
                prefix=spec.prefix,
                namespaces=spec.namespaces,
                settings=spec.settings,
            )
        yield harness
    finally:
        harness.close()


def _resolve(operator: Any) -> Any:
    if isinstance(operator, str):
        module, _, attr = operator.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise pytest.UsageError(
                f"ntinv_replicas: cannot load operator {operator!r}: {e}"
            ) from None
    return operator
