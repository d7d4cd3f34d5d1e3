"""Virtual wall-clock time: the clock, its activation per context, and module patching."""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import importlib
import pickle
import sys
import textwrap
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from pytest_ntinvariants.sim import clock as vclock
from pytest_ntinvariants.sim import patching
from pytest_ntinvariants.sim.clock import VirtualClock, VirtualDatetime

T = TypeVar("T")
UTC = datetime.UTC
REAL = datetime.datetime
# Far from any real "now", so a virtual reading cannot pass for a real one.
EPOCH = REAL(2001, 2, 3, 4, 5, 6, tzinfo=UTC)
# Utility (utc*) methods are deprecated from Python 3.12; the patch must still serve them.
ignore_utc_deprecation = pytest.mark.filterwarnings(
    "ignore:datetime.datetime.utc:DeprecationWarning"
)


class Source:
    """A monotonic source the test moves by hand, as a simulated loop's time jumps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value


def is_real_now(moment: REAL, reference: Callable[[], REAL]) -> bool:
    return abs(moment - reference()) < datetime.timedelta(seconds=60)


@pytest.fixture
def clean() -> Iterator[None]:
    patching.uninstall()
    yield
    patching.uninstall()


PROBE_MODULE = """
import datetime

def now_utc():
    return datetime.datetime.now(datetime.UTC)

def now_naive():
    return datetime.datetime.now()

def utcnow():
    return datetime.datetime.utcnow()

def today():
    return datetime.datetime.today()

def is_datetime(value):
    return isinstance(value, datetime.datetime)

def parse(text):
    return datetime.datetime.fromisoformat(text)

def later(seconds):
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
"""

PROBE_CLASS = """
from datetime import UTC, datetime, timedelta, timezone

def now_utc():
    return datetime.now(UTC)

def now_in(offset_hours):
    return datetime.now(tz=timezone(timedelta(hours=offset_hours)))

def is_datetime(value):
    return isinstance(value, datetime)

def parse(text):
    return datetime.fromisoformat(text)

def make(*args, **kwargs):
    return datetime(*args, **kwargs)
"""

PROBE_NAMES = ("ntinv_probe", "ntinv_probe.mod", "ntinv_probe.cls", "ntinv_probe.late")


@pytest.fixture
def probe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean: None
) -> Iterator[types.SimpleNamespace]:
    """A throwaway package with one module per import style, imported for real."""
    package = tmp_path / "ntinv_probe"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "mod.py").write_text(textwrap.dedent(PROBE_MODULE))
    (package / "cls.py").write_text(textwrap.dedent(PROBE_CLASS))
    (package / "late.py").write_text("from datetime import datetime as dt\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        yield types.SimpleNamespace(
            mod=importlib.import_module("ntinv_probe.mod"),
            cls=importlib.import_module("ntinv_probe.cls"),
            path=package,
        )
    finally:
        patching.uninstall()
        for name in PROBE_NAMES:
            sys.modules.pop(name, None)


def run_virtual(clock: VirtualClock, fn: Callable[[], T]) -> T:
    """Call ``fn`` in a fresh context where ``clock`` is active."""

    def inner() -> T:
        vclock.activate(clock)
        return fn()

    return contextvars.copy_context().run(inner)


# -- the clock ------------------------------------------------------------------------


def test_clock_is_epoch_plus_elapsed_source_time() -> None:
    source = Source(500.0)
    clock = VirtualClock(EPOCH, source)
    assert clock.now() == EPOCH
    assert clock.epoch == EPOCH
    source.value += 90.25
    assert clock.now() == EPOCH + datetime.timedelta(seconds=90.25)
    assert clock.now().tzinfo is UTC
    assert type(clock.now()) is REAL
    assert clock.wall() == pytest.approx(clock.now().timestamp(), abs=1e-6)
    assert "2001-02-03T04:06:36.250000+00:00" in repr(clock)


def test_clock_epoch_must_be_aware_and_is_kept_in_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(REAL(2001, 1, 1), Source())
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    clock = VirtualClock(REAL(2001, 1, 1, 12, tzinfo=plus_two), Source())
    assert clock.now() == REAL(2001, 1, 1, 10, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_activation_is_per_context() -> None:
    clock = VirtualClock(EPOCH, Source())
    assert vclock.active() is None
    ctx = contextvars.copy_context()
    token = ctx.run(vclock.activate, clock)
    assert ctx.run(vclock.active) is clock
    assert vclock.active() is None
    ctx.run(vclock.deactivate, token)
    assert ctx.run(vclock.active) is None

    token = vclock.activate(clock)
    try:
        assert vclock.active() is clock
    finally:
        vclock.deactivate(token)
    assert vclock.active() is None


# -- VirtualDatetime itself -----------------------------------------------------------


@ignore_utc_deprecation
def test_virtual_datetime_reads_the_active_clock_or_the_real_one() -> None:
    source = Source()
    clock = VirtualClock(EPOCH, source)
    assert is_real_now(VirtualDatetime.now(UTC), lambda: REAL.now(UTC))
    assert is_real_now(VirtualDatetime.now(), REAL.now)
    assert is_real_now(VirtualDatetime.utcnow(), REAL.utcnow)
    assert is_real_now(VirtualDatetime.today(), REAL.today)

    source.value += 3600
    hour_later = EPOCH + datetime.timedelta(hours=1)
    plus_five = datetime.timezone(datetime.timedelta(hours=5))
    readings = run_virtual(
        clock,
        lambda: (
            VirtualDatetime.now(UTC),
            VirtualDatetime.now(tz=plus_five),
            VirtualDatetime.now(),
            VirtualDatetime.utcnow(),
            VirtualDatetime.today(),
        ),
    )
    aware, shifted, naive, utc_naive, today = readings
    assert aware == hour_later and aware.tzinfo is UTC
    assert shifted == hour_later and shifted.tzinfo is plus_five and shifted.hour == 10
    # naive readings are local time, as the real methods give
    assert naive == hour_later.astimezone().replace(tzinfo=None) == today
    assert utc_naive == hour_later.replace(tzinfo=None)
    for reading in readings:
        assert type(reading) is REAL


@ignore_utc_deprecation
def test_virtual_datetime_constructors_return_plain_datetimes() -> None:
    made = [
        VirtualDatetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC),
        VirtualDatetime.fromisoformat("2020-01-02T03:04:05+00:00"),
        VirtualDatetime.strptime("2020-01-02 03:04:05", "%Y-%m-%d %H:%M:%S"),
        VirtualDatetime.combine(datetime.date(2020, 1, 2), datetime.time(3, 4, 5)),
        VirtualDatetime.fromtimestamp(1577934245, UTC),
        VirtualDatetime.fromtimestamp(1577934245),
        VirtualDatetime.utcfromtimestamp(1577934245),
        VirtualDatetime.fromordinal(737426),
        VirtualDatetime.fromisocalendar(2020, 1, 4),
        VirtualDatetime.min,
        VirtualDatetime.max,
    ]
    for value in made:
        assert type(value) is REAL, value
    parsed = made[1]
    assert parsed == REAL(2020, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert hash(parsed) == hash(REAL(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    assert VirtualDatetime.resolution == REAL.resolution


def test_virtual_datetime_type_checks_accept_real_datetimes() -> None:
    assert isinstance(REAL.now(), VirtualDatetime)
    assert isinstance(REAL.now(UTC), VirtualDatetime)
    assert not isinstance(datetime.date.today(), VirtualDatetime)
    assert not isinstance("2020-01-01", VirtualDatetime)
    assert issubclass(REAL, VirtualDatetime)
    assert issubclass(VirtualDatetime, REAL)
    assert issubclass(VirtualDatetime, datetime.date)
    assert not issubclass(datetime.date, VirtualDatetime)
    assert not issubclass(int, VirtualDatetime)
    with pytest.raises(TypeError):
        issubclass(1, VirtualDatetime)


def test_a_subclass_of_virtual_datetime_is_an_ordinary_class() -> None:
    class Mine(VirtualDatetime):
        pass

    value = Mine(2020, 1, 1)
    assert type(value) is Mine
    assert isinstance(value, Mine)
    assert not isinstance(REAL(2020, 1, 1), Mine)
    assert not issubclass(REAL, Mine)


# -- install / uninstall on real modules ----------------------------------------------


def test_install_patches_both_import_styles(probe: types.SimpleNamespace) -> None:
    patching.install(["ntinv_probe"])
    assert probe.mod.datetime.datetime is VirtualDatetime
    assert probe.cls.datetime is VirtualDatetime
    # the proxy module forwards everything else to the real module
    proxy = probe.mod.datetime
    assert proxy is not datetime
    assert proxy.UTC is UTC
    assert proxy.timedelta is datetime.timedelta
    assert proxy.timezone is datetime.timezone
    assert proxy.date is datetime.date
    assert proxy.MAXYEAR == datetime.MAXYEAR
    assert proxy.__file__ == datetime.__file__
    assert "timedelta" in dir(proxy)
    assert "virtual-time proxy" in repr(proxy)
    # names imported from the module that are not the class stay real
    assert probe.cls.timedelta is datetime.timedelta


@ignore_utc_deprecation
def test_patched_modules_read_virtual_time_only_where_a_clock_is_active(
    probe: types.SimpleNamespace,
) -> None:
    patching.install(["ntinv_probe"])
    source = Source()
    clock = VirtualClock(EPOCH, source)
    source.value += 10

    for module in (probe.mod, probe.cls):
        assert run_virtual(clock, module.now_utc) == EPOCH + datetime.timedelta(seconds=10)
        # pytest's thread has no clock active: real time
        assert is_real_now(module.now_utc(), lambda: REAL.now(UTC))

    expected = EPOCH + datetime.timedelta(seconds=10)
    assert run_virtual(clock, probe.mod.now_naive) == expected.astimezone().replace(tzinfo=None)
    assert run_virtual(clock, probe.mod.utcnow) == expected.replace(tzinfo=None)
    assert run_virtual(clock, probe.mod.today) == expected.astimezone().replace(tzinfo=None)
    assert run_virtual(clock, lambda: probe.cls.now_in(-3)).hour == 1
    assert run_virtual(clock, lambda: probe.cls.now_in(-3)) == expected


def test_patched_modules_keep_datetime_semantics(probe: types.SimpleNamespace) -> None:
    patching.install(["ntinv_probe"])
    clock = VirtualClock(EPOCH, Source())
    real_now = REAL.now(UTC)

    for module in (probe.mod, probe.cls):
        virtual = run_virtual(clock, module.now_utc)
        assert type(virtual) is REAL
        assert module.is_datetime(virtual)
        assert module.is_datetime(real_now)
        assert not module.is_datetime(datetime.date(2020, 1, 1))
        parsed = module.parse("2001-02-03T04:05:06+00:00")
        assert type(parsed) is REAL
        assert parsed == virtual == EPOCH
        assert hash(parsed) == hash(EPOCH)
        # comparisons and arithmetic between virtual and real datetimes
        assert virtual < real_now
        assert real_now - virtual > datetime.timedelta(days=365 * 20)
        assert virtual + datetime.timedelta(days=1) == REAL(2001, 2, 4, 4, 5, 6, tzinfo=UTC)
        assert sorted([real_now, virtual]) == [virtual, real_now]

    later = run_virtual(clock, lambda: probe.mod.later(30))
    assert later == EPOCH + datetime.timedelta(seconds=30)
    made = probe.cls.make(2020, 5, 6, tzinfo=UTC)
    assert type(made) is REAL and made == REAL(2020, 5, 6, tzinfo=UTC)


def test_install_is_idempotent_and_picks_up_modules_imported_later(
    probe: types.SimpleNamespace,
) -> None:
    patching.install(["ntinv_probe"])
    undo_entries = len(patching._state.undo)
    assert undo_entries == 2  # mod's datetime module, cls's datetime class
    patching.install(["ntinv_probe"])
    patching.install(("ntinv_probe", "ntinv_probe.mod"))
    assert len(patching._state.undo) == undo_entries

    late = importlib.import_module("ntinv_probe.late")
    assert late.dt is REAL
    patching.install(["ntinv_probe"])
    assert late.dt is VirtualDatetime
    assert len(patching._state.undo) == undo_entries + 1

    # a module re-imported under a patched name is a new object: patched again
    sys.modules.pop("ntinv_probe.late")
    again = importlib.import_module("ntinv_probe.late")
    assert again is not late and again.dt is REAL
    patching.install(["ntinv_probe"])
    assert again.dt is VirtualDatetime


def test_prefixes_match_whole_module_names(
    probe: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookalike = types.ModuleType("ntinv_probe_other")
    lookalike.datetime = datetime
    monkeypatch.setitem(sys.modules, "ntinv_probe_other", lookalike)
    patching.install(["ntinv_probe.cls"])
    assert probe.cls.datetime is VirtualDatetime
    assert probe.mod.datetime is datetime
    patching.install(["ntinv_probe"])
    assert probe.mod.datetime is not datetime
    assert lookalike.datetime is datetime


def test_stdlib_pytest_and_the_plugin_are_never_patched(clean: None) -> None:
    # modules of each kind that hold the real module or class as a global
    email_utils = importlib.import_module("email.utils")
    calendar = importlib.import_module("calendar")
    terminal = importlib.import_module("_pytest.terminal")
    pytest_logging = importlib.import_module("_pytest.logging")
    patching.install(["datetime", "email", "calendar", "pytest", "_pytest", "pytest_ntinvariants"])
    patching.install(["", "email.utils", "_pytest.terminal", "pytest_ntinvariants.sim.clock"])
    assert patching._state.undo == []
    assert email_utils.datetime is datetime
    assert calendar.datetime is datetime
    assert terminal.datetime is datetime
    assert pytest_logging.datetime is REAL
    assert vclock.datetime is datetime


def test_uninstall_restores_globals_but_not_ones_rebound_since(
    probe: types.SimpleNamespace,
) -> None:
    patching.install(["ntinv_probe"])
    rebound = object()
    probe.cls.datetime = rebound
    patching.uninstall()
    assert probe.mod.datetime is datetime
    assert probe.cls.datetime is rebound
    probe.cls.datetime = REAL
    # after uninstall, install starts over
    patching.install(["ntinv_probe"])
    assert probe.cls.datetime is VirtualDatetime
    patching.uninstall()
    patching.uninstall()
    assert probe.cls.datetime is REAL


# -- kopf, threads and the event loop -------------------------------------------------


@pytest.fixture
def kopf_events(clean: None) -> types.ModuleType:
    pytest.importorskip("kopf")
    events = importlib.import_module("kopf._cogs.clients.events")
    patching.install(["kopf"])
    return events


def test_kopf_reads_virtual_time_in_the_simulated_world_only(
    kopf_events: types.ModuleType,
) -> None:
    peering = importlib.import_module("kopf._core.engines.peering")
    probing = importlib.import_module("kopf._core.engines.probing")
    for module in (kopf_events, peering, probing):
        assert module.datetime.datetime is VirtualDatetime
        assert module.datetime.timedelta is datetime.timedelta
    # the real module itself is untouched
    assert datetime.datetime is REAL

    clock = VirtualClock(EPOCH, Source())

    def kopf_now() -> REAL:
        dt = kopf_events.datetime
        return dt.datetime.now(dt.UTC)

    assert run_virtual(clock, kopf_now) == EPOCH
    assert is_real_now(kopf_now(), lambda: REAL.now(UTC))


def test_threads_see_virtual_time_only_with_a_copied_context(
    kopf_events: types.ModuleType,
) -> None:
    clock = VirtualClock(EPOCH, Source())
    results: dict[str, REAL] = {}

    def kopf_now() -> REAL:
        dt = kopf_events.datetime
        return dt.datetime.now(dt.UTC)

    def record(key: str) -> None:
        results[key] = kopf_now()

    def world() -> None:
        vclock.activate(clock)
        record("world")
        # an executor-style job run with a copy of the world's context
        copied = threading.Thread(target=contextvars.copy_context().run, args=(record, "copied"))
        # a thread started without one is outside the world
        bare = threading.Thread(target=record, args=("bare",))
        for thread in (copied, bare):
            thread.start()
            thread.join()

    thread = threading.Thread(target=world)
    thread.start()
    thread.join()
    record("pytest")

    assert results["world"] == results["copied"] == EPOCH
    assert is_real_now(results["bare"], lambda: REAL.now(UTC))
    assert is_real_now(results["pytest"], lambda: REAL.now(UTC))


def test_a_loop_time_source_drives_tasks_and_to_thread_jobs(
    kopf_events: types.ModuleType,
) -> None:
    def kopf_now() -> REAL:
        dt = kopf_events.datetime
        return dt.datetime.now(dt.UTC)

    async def main() -> list[REAL]:
        loop = asyncio.get_running_loop()
        vclock.activate(VirtualClock(EPOCH, loop.time))
        start = kopf_now()
        await asyncio.sleep(0.05)
        in_task = await asyncio.create_task(asyncio.to_thread(kopf_now))
        return [start, in_task]

    start, in_task = contextvars.copy_context().run(asyncio.run, main())
    assert start - EPOCH < datetime.timedelta(seconds=1)
    assert datetime.timedelta(seconds=0.05) <= in_task - EPOCH < datetime.timedelta(seconds=5)
    assert vclock.active() is None


def test_world_prefixes_are_kopf_and_the_projects_own_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiohttp  # noqa: F401  (an installed library: never the world's)

    (tmp_path / "ntinv_regular").mkdir()
    (tmp_path / "ntinv_regular" / "__init__.py").write_text("")
    (tmp_path / "ntinv_namespace").mkdir()  # no __init__.py: a namespace package
    (tmp_path / "ntinv_namespace" / "mod.py").write_text("")
    (tmp_path / "test_ntinv_probe_module.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ("ntinv_regular", "ntinv_namespace", "ntinv_namespace.mod", "test_ntinv_probe_module")
    try:
        for name in names:
            importlib.import_module(name)
        prefixes = patching.world_prefixes()
    finally:
        for name in names:
            sys.modules.pop(name, None)
    assert {"kopf", "ntinv_regular", "ntinv_namespace"} <= prefixes
    assert "aiohttp" not in prefixes and "test_ntinv_probe_module" not in prefixes
