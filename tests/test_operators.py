"""Replicas against a real ``FakeApiServer``: kopf in-process, and external processes.

Nothing here sleeps to synchronise: waits are on store changes (``server.store.subscribe``),
``threading.Event``s set by handlers, and joined threads and processes.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from operators_fixtures.gadgets import (
    API_VERSION,
    GADGET_CRD,
    GROUP,
    PLURAL,
    VERSION,
    gadget,
    make_registry,
)

from pytest_ntinvariants.apiserver import FakeApiServer, Interceptor, RequestInfo
from pytest_ntinvariants.ledger import Ledger
from pytest_ntinvariants.operators import (
    KopfReplica,
    ProcessReplica,
    ReplicaError,
    Replicas,
    connection_info,
)

JSON = dict[str, Any]
FIXTURES = Path(__file__).parent / "operators_fixtures"


class Recorder(Interceptor):
    """Every request the server received, in order (``RequestInfo.identity`` says who)."""

    def __init__(self) -> None:
        self.requests: list[RequestInfo] = []

    async def on_request(self, request: RequestInfo) -> None:
        self.requests.append(request)

    def identities(self, **match: Any) -> set[str]:
        """Who sent requests whose fields equal ``match``."""
        return {
            r.identity
            for r in list(self.requests)
            if all(getattr(r, k) == v for k, v in match.items())
        }

    def writes_to(self, name: str) -> list[RequestInfo]:
        """Writes to the Gadget ``name``."""
        return [
            r
            for r in list(self.requests)
            if r.name == name
            and r.verb in ("patch", "update", "delete")
            and r.resource is not None
            and r.resource.plural == PLURAL
        ]


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    """A fake API server serving the Gadget CRD."""
    with FakeApiServer(crds=[GADGET_CRD]) as srv:
        yield srv


@pytest.fixture
def recorder(server: FakeApiServer) -> Iterator[Recorder]:
    """Records every request the server receives."""
    rec = Recorder()
    handle = server.add_interceptor(rec)
    yield rec
    handle.remove()


@pytest.fixture
def ledger() -> Ledger:
    """A ledger for replica lifecycle events."""
    return Ledger()


@pytest.fixture
def no_thread_leaks() -> Iterator[None]:
    """Fail if the test leaves threads behind."""
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


def wait_until(
    server: FakeApiServer, predicate: Callable[[], bool], timeout: float = 10.0, what: str = ""
) -> None:
    """Block until ``predicate()`` holds, re-checking on every store change."""
    __tracebackhide__ = True
    changed = threading.Event()
    # The listener runs under the store's lock: it must only set the event.
    undo = server.store.subscribe(lambda _event: changed.set())
    try:
        deadline = time.monotonic() + timeout
        while True:
            changed.clear()  # before the check, so no change is missed
            if predicate():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (not changed.wait(remaining) and not predicate()):
                pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
    finally:
        undo()


def status_of(server: FakeApiServer, name: str) -> JSON:
    """The Gadget's status (``{}`` if none)."""
    return dict(server.get(API_VERSION, "Gadget", name).get("status") or {})


def annotations_of(server: FakeApiServer, name: str) -> JSON:
    """The Gadget's annotations."""
    return dict(server.get(API_VERSION, "Gadget", name)["metadata"].get("annotations") or {})


# ---------------------------------------------------------------------------- kopf


def test_two_replicas_each_handle_an_object_as_themselves(
    server: FakeApiServer, recorder: Recorder, ledger: Ledger
) -> None:
    with Replicas.kopf(server, make_registry, 2, ledger=ledger) as replicas:
        assert replicas.identities == ["replica-0", "replica-1"]
        server.apply(gadget("g1"))
        wait_until(
            server,
            lambda: status_of(server, "g1") == {"replica-0": "seen", "replica-1": "seen"},
            what="both replicas to mark g1",
        )
        # Each replica's patch carried its own token, so the server knows who wrote.
        patchers = {r.identity for r in recorder.writes_to("g1")}
        assert patchers == {"replica-0", "replica-1"}
        versions = [e for e in server.store.events_since(0) if e.obj["metadata"]["name"] == "g1"]
        assert {e.identity for e in versions if e.verb == "patch"} == patchers
    # Nothing reached the server without a replica identity (no fallback login).
    assert recorder.identities() == {"replica-0", "replica-1"}
    events = [(e.identity, e.action) for e in ledger.replica_events()]
    # Each replica records its start from its own thread: in either order.
    assert sorted(events[:2]) == [("replica-0", "started"), ("replica-1", "started")]
    assert events[2:] == [("replica-0", "stopped"), ("replica-1", "stopped")]


def test_kopf_events_are_posted_by_the_replica_that_emitted_them(
    server: FakeApiServer, recorder: Recorder
) -> None:
    posted = threading.Semaphore(0)

    def factory(identity: str) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()

        @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
        async def greet(body: kopf.Body, **_: Any) -> None:
            # kopf.info finds its queue and settings in context variables: per operator.
            kopf.info(body, reason="Greeting", message=f"hello from {identity}")

        return registry

    class EventPosts(Interceptor):
        def on_response(self, request: RequestInfo, status: int, body: bytes) -> None:
            if (
                request.verb == "create"
                and request.resource
                and request.resource.plural == ("events")
            ):
                posted.release()

    server.add_interceptor(EventPosts())
    with Replicas.kopf(server, factory, 2):
        server.apply(gadget("g1"))
        # One Event from each replica (the handler runs once per watch event, and nothing
        # modifies the Gadget).
        assert posted.acquire(timeout=10) and posted.acquire(timeout=10)
        events = [
            e.obj
            for e in server.store.events_since(0)
            if e.resource.plural == "events" and e.type == "ADDED"
        ]
        for event in events:
            assert event["message"] == f"hello from {event['reportingInstance']}"
        assert len(events) == 2
        posters = {
            r.identity
            for r in recorder.requests
            if r.resource and r.resource.plural == "events" and r.verb == "create"
        }
        assert posters == {e["reportingInstance"] for e in events} == {"replica-0", "replica-1"}


def test_registry_factory_forms(server: FakeApiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def no_args() -> kopf.OperatorRegistry:
        calls.append("no-args")
        return kopf.OperatorRegistry()

    with (
        KopfReplica(server, "a", no_args),
        KopfReplica(
            server, "b", "operators_fixtures.gadgets:make_registry", namespaces=["default"]
        ) as b,
    ):
        server.apply(gadget("g1"))
        wait_until(server, lambda: status_of(server, "g1") == {"b": "seen"})
        assert b.namespaces == ["default"]
    assert calls == ["no-args"]


def test_stop_is_clean_idempotent_and_joins_every_thread(
    server: FakeApiServer, ledger: Ledger, no_thread_leaks: None
) -> None:
    synced = threading.Event()

    def factory(identity: str) -> kopf.OperatorRegistry:
        registry = make_registry(identity)

        @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
        def sync_handler(**_: Any) -> None:  # runs in the replica's thread pool
            synced.set()

        return registry

    replica = KopfReplica(server, "solo", factory, ledger=ledger).start()
    server.apply(gadget("g1"))
    assert synced.wait(10)
    thread = replica.thread
    assert thread is not None and thread.is_alive() and replica.running
    assert thread.name.startswith(KopfReplica.THREAD_PREFIX)

    started = time.monotonic()
    replica.stop()
    assert time.monotonic() - started < 2.0, "graceful stop should take milliseconds"
    assert not thread.is_alive() and not replica.running
    assert replica.loop is not None and replica.loop.is_closed()
    replica.stop()  # idempotent
    assert [e.action for e in ledger.replica_events()] == ["started", "stopped"]
    with pytest.raises(RuntimeError, match="not running"):
        replica.crash()


def _gated_registry(
    entered: threading.Event,
    gates: list[asyncio.Event],
    outcomes: list[str],
    server: FakeApiServer,
) -> Callable[[str], kopf.OperatorRegistry]:
    """A create handler that announces itself, then waits for the last of ``gates``; a
    delete handler makes kopf keep a finalizer, so a crash leaves work visibly unfinished."""

    def factory(identity: str) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        gate = gates[-1]  # an asyncio.Event binds to the loop that first waits on it

        @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
        async def create(patch: kopf.Patch, **_: Any) -> None:
            entered.set()
            try:
                await gate.wait()
            except asyncio.CancelledError:
                outcomes.append(f"{identity}: cancelled")
                # What a cleanup would try: it must not reach the server any more.
                try:
                    async with aiohttp.ClientSession() as session:
                        await session.get(f"{server.url}/api/v1/namespaces/from-{identity}")
                except BaseException as e:
                    outcomes.append(f"{identity}: cleanup request failed: {type(e).__name__}")
                raise
            outcomes.append(f"{identity}: done")
            patch.status["done"] = identity

        @kopf.on.delete(GROUP, VERSION, PLURAL, registry=registry)
        async def delete(**_: Any) -> None:
            pass

        return registry

    return factory


def test_crash_mid_handler_leaves_the_object_half_done_and_restart_resumes(
    server: FakeApiServer, recorder: Recorder, ledger: Ledger, no_thread_leaks: None
) -> None:
    entered, gates, outcomes = threading.Event(), [asyncio.Event()], []
    built: list[str] = []
    gated = _gated_registry(entered, gates, outcomes, server)

    def factory(identity: str) -> kopf.OperatorRegistry:
        built.append(identity)
        return gated(identity)

    replica = KopfReplica(server, "replica-0", factory, ledger=ledger).start()
    server.apply(gadget("g1"))
    assert entered.wait(10), "the handler never started"
    thread = replica.thread
    assert thread is not None

    replica.crash()
    assert not thread.is_alive() and not replica.running
    # Interrupted at its await; its "cleanup" request was refused before reaching the server.
    assert outcomes[0] == "replica-0: cancelled"
    assert all("done" not in o for o in outcomes)
    assert not any(r.path.startswith("/api/v1/namespaces/from-") for r in recorder.requests)
    # Half done: kopf's finalizer is on, but no result and no "handled" record.
    obj = server.get(API_VERSION, "Gadget", "g1")
    assert obj["metadata"].get("finalizers"), obj["metadata"]
    assert "done" not in status_of(server, "g1")
    assert not any("last-handled" in k for k in annotations_of(server, "g1"))

    # A fresh generation (new registry, same identity) picks the object up again.
    gates.append(asyncio.Event())
    gates[-1].set()
    replica.restart()
    assert replica.generation == 2 and replica.thread is not thread
    wait_until(server, lambda: status_of(server, "g1").get("done") == "replica-0")
    assert built == ["replica-0", "replica-0"]
    replica.stop()
    assert [e.action for e in ledger.replica_events()] == [
        "started",
        "crashed",
        "restarted",
        "stopped",
    ]
    assert recorder.identities() == {"replica-0"}


def test_crashing_one_replica_leaves_the_other_working(
    server: FakeApiServer, recorder: Recorder, no_thread_leaks: None
) -> None:
    with Replicas.kopf(server, make_registry, 2) as replicas:
        server.apply(gadget("g1"))
        wait_until(server, lambda: len(status_of(server, "g1")) == 2)
        replicas.crash(0)
        assert not replicas[0].running and replicas["replica-1"].running
        before = len(recorder.requests)
        server.apply(gadget("g2"))
        wait_until(server, lambda: status_of(server, "g2") == {"replica-1": "seen"})
        assert recorder.identities() >= {"replica-1"}
        assert "replica-0" not in {r.identity for r in recorder.requests[before:]}
        replicas.restart(0)
        wait_until(server, lambda: len(status_of(server, "g2")) == 2)


def test_crash_from_an_interceptor_on_the_replicas_first_status_write(
    server: FakeApiServer, ledger: Ledger
) -> None:
    """What a "crash after the nth write" perturbation does: crash from the server's side."""
    replicas = Replicas.kopf(server, make_registry, 2, ledger=ledger)
    requested: list[bool] = []

    class CrashOnWrite(Interceptor):
        async def on_request(self, request: RequestInfo) -> None:
            first = not requested
            if first and request.identity == "replica-0" and request.subresource == "status":
                # Never blocks (the server loop must not wait on a replica) and never raises
                # (the replica may already be gone by the next write).
                requested.append(replicas.request_crash("replica-0"))

    server.add_interceptor(CrashOnWrite())
    with replicas:
        server.apply(gadget("g1"))
        wait_until(server, lambda: status_of(server, "g1").get("replica-1") == "seen")
        wait_until(server, lambda: bool(requested), what="replica-0's first status write")
        thread = replicas[0].thread
        assert thread is not None
        thread.join(10)
        assert not thread.is_alive() and replicas[1].running
        assert requested == [True]
        assert replicas.request_crash(0) is False  # already crashed: nothing to do
        # The request that triggered the crash was already received: it is still served,
        # like a write that reached the server just before its client died.
        wait_until(server, lambda: status_of(server, "g1").get("replica-0") == "seen")
        replicas.restart(0)  # reaps the crashed generation first
        assert replicas[0].generation == 2 and replicas[0].running
    actions = [(e.identity, e.action) for e in ledger.replica_events()]
    assert actions.count(("replica-0", "crashed")) == 1
    assert ("replica-0", "restarted") in actions


def test_crash_from_inside_a_handler_lands_at_its_next_await(
    server: FakeApiServer, no_thread_leaks: None
) -> None:
    outcomes: list[str] = []
    replica: KopfReplica

    def factory() -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()

        @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry)
        async def create(patch: kopf.Patch, **_: Any) -> None:
            replica.crash()  # returns at once: the crash lands at the next await
            outcomes.append("after crash()")
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                outcomes.append("cancelled")
                raise

        return registry

    replica = KopfReplica(server, "self-crasher", factory).start()
    server.apply(gadget("g1"))
    thread = replica.thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive()
    assert outcomes == ["after crash()", "cancelled"]
    replica.stop()  # reaps; nothing failed


def test_a_bad_factory_fails_start_clearly(server: FakeApiServer, no_thread_leaks: None) -> None:
    def broken(identity: str) -> kopf.OperatorRegistry:
        raise ValueError(f"no registry for {identity}")

    with pytest.raises(ReplicaError, match=r"replica-x: the registry factory .*broken failed") as e:
        KopfReplica(server, "replica-x", broken).start()
    assert isinstance(e.value.__cause__, ValueError)
    assert "no registry for replica-x" in str(e.value)

    with pytest.raises(ReplicaError, match=r"returned dict, not a kopf\.OperatorRegistry"):
        KopfReplica(server, "r", lambda: {}).start()  # type: ignore[arg-type,return-value]
    with pytest.raises(ReplicaError, match=r"ModuleNotFoundError: No module named 'no_such_mod"):
        KopfReplica(server, "r", "no_such_module_here:factory").start()
    with pytest.raises(ReplicaError, match=r"looks like 'pkg\.module:factory'"):
        KopfReplica(server, "r", "no_colon").start()
    with pytest.raises(ReplicaError, match="each replica needs its own"):
        KopfReplica(server, "r", kopf.OperatorRegistry()).start()  # type: ignore[arg-type]

    shared = kopf.OperatorRegistry()
    with (
        KopfReplica(server, "first", lambda: shared),
        pytest.raises(ReplicaError, match="returned a registry that a replica already ran"),
    ):
        KopfReplica(server, "second", lambda: shared).start()

    def bad_settings(settings: kopf.OperatorSettings) -> None:
        raise AttributeError("no such setting")

    with pytest.raises(ReplicaError, match="the settings hook failed: AttributeError"):
        KopfReplica(server, "r", make_registry, settings=bad_settings).start()


def test_a_failing_startup_handler_fails_start(
    server: FakeApiServer, no_thread_leaks: None
) -> None:
    def factory() -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()

        @kopf.on.startup(registry=registry)
        async def startup(**_: Any) -> None:
            raise kopf.PermanentError("refusing to start")

        return registry

    replica = KopfReplica(server, "replica-0", factory)
    with pytest.raises(ReplicaError, match="failed to start") as e:
        replica.start()
    assert "refusing to start" in str(e.value) or "startup" in str(e.value).lower()
    assert replica.thread is not None and not replica.thread.is_alive()
    replica.stop()  # the startup error was raised once, by start(); nothing left


def test_an_operator_that_dies_surfaces_at_stop(
    server: FakeApiServer, ledger: Ledger, no_thread_leaks: None
) -> None:
    # login=False and a registry with no login handler: kopf finds no credentials and exits.
    replica = KopfReplica(server, "replica-0", kopf.OperatorRegistry, login=False, ledger=ledger)
    replica.start()
    thread = replica.thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive() and not replica.running
    with pytest.raises(ReplicaError, match="replica-0 failed") as e:
        replica.stop()
    assert "LoginError" in str(e.value)
    assert [e.action for e in ledger.replica_events()] == ["started", "crashed"]
    replica.stop()  # raised once


def test_replicas_start_failure_stops_the_others(
    server: FakeApiServer, no_thread_leaks: None
) -> None:
    def factory(identity: str) -> kopf.OperatorRegistry:
        if identity == "r-1":
            raise RuntimeError("r-1 is broken")
        return make_registry(identity)

    replicas = Replicas.kopf(server, factory, 3, prefix="r-")
    with pytest.raises(ReplicaError, match=r"1 replica\(s\) failed to start") as e:
        replicas.start()
    assert "r-1 is broken" in str(e.value)
    assert not any(r.running for r in replicas)
    with pytest.raises(KeyError, match="no replica 'r-9'"):
        replicas["r-9"]


@pytest.mark.asyncio
async def test_replicas_work_inside_an_async_test(server: FakeApiServer) -> None:
    loop = asyncio.get_running_loop()
    seen: asyncio.Queue[str] = asyncio.Queue()

    def factory(identity: str) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()

        @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
        async def on_event(**_: Any) -> None:
            # The handler runs on the replica's loop; hand the news to the test's loop.
            loop.call_soon_threadsafe(seen.put_nowait, identity)

        return registry

    replicas = Replicas.kopf(server, factory, 2)
    await asyncio.to_thread(replicas.start)
    try:
        assert all(r.loop is not None and r.loop is not loop for r in replicas)
        server.apply(gadget("g1"))
        who: set[str] = set()
        while who != {"replica-0", "replica-1"}:
            who.add(await asyncio.wait_for(seen.get(), 10))
        assert who == {"replica-0", "replica-1"}
    finally:
        await asyncio.to_thread(replicas.stop)
    assert asyncio.get_running_loop() is loop and not loop.is_closed()


def test_connection_info_carries_the_identity_token(server: FakeApiServer) -> None:
    info = connection_info(server, "replica-7")
    assert info.server == server.url and info.token == server.token_for("replica-7")


def test_settings_hook_and_enforced_settings(server: FakeApiServer) -> None:
    def tune(settings: kopf.OperatorSettings) -> None:
        settings.persistence.consistency_timeout = 0.5
        settings.process.ultimate_exiting_timeout = 30  # would SIGKILL the test process

    with KopfReplica(server, "tuned", make_registry, settings=tune) as replica:
        settings = replica.settings
        assert settings is not None
        assert settings.persistence.consistency_timeout == 0.5
        assert settings.process.ultimate_exiting_timeout is None
        assert settings.peering.standalone is True
        assert settings.posting.reporting_instance == "tuned"
    with KopfReplica(server, "default", make_registry) as replica:
        assert replica.settings is not None
        assert replica.settings.persistence.consistency_timeout == 5.0  # kopf's default


# ------------------------------------------------------------------------ processes


def _patcher(server: FakeApiServer, identity: str, tmp_path: Path, **kw: Any) -> ProcessReplica:
    return ProcessReplica(
        server,
        identity,
        [sys.executable, str(FIXTURES / "status_patcher.py")],
        ready=r"^watching from \d+",
        log_dir=tmp_path,
        **kw,
    )


def test_process_replica_handles_objects_as_its_identity(
    server: FakeApiServer, recorder: Recorder, ledger: Ledger, tmp_path: Path
) -> None:
    replica = _patcher(server, "ext-0", tmp_path, ledger=ledger).start(timeout=30)
    try:
        assert replica.running
        server.apply(gadget("g1"))
        wait_until(server, lambda: status_of(server, "g1").get("by") == "ext-0")
        assert {r.identity for r in recorder.writes_to("g1")} == {"ext-0"}
    finally:
        replica.stop()
    assert replica.returncode == -signal.SIGTERM
    output = replica.output()
    assert "watching from" in output and "patching g1" in output
    assert replica.log_path.parent == tmp_path
    assert [e.action for e in ledger.replica_events()] == ["started", "stopped"]


def test_process_replica_crash_is_sigkill_and_restart_resumes(
    server: FakeApiServer, ledger: Ledger, tmp_path: Path
) -> None:
    replica = _patcher(server, "ext-0", tmp_path, ledger=ledger).start(timeout=30)
    first = replica.process
    replica.crash()
    assert replica.returncode == -signal.SIGKILL and not replica.running
    server.apply(gadget("while-down"))
    replica.restart(timeout=30)
    assert replica.process is not first and replica.generation == 2
    wait_until(server, lambda: status_of(server, "while-down").get("by") == "ext-0")
    replica.stop()
    assert [e.action for e in ledger.replica_events()] == [
        "started",
        "crashed",
        "restarted",
        "stopped",
    ]
    assert replica.output().count("--- ntinv: ext-0 generation") == 2


def test_process_replica_environment(server: FakeApiServer, tmp_path: Path) -> None:
    script = (
        "import os; print('KUBECONFIG=' + os.environ['KUBECONFIG']); "
        "print('ID=' + os.environ['NTINV_IDENTITY'] + ' EXTRA=' + os.environ['EXTRA'])"
    )
    replica = ProcessReplica(
        server, "env-0", [sys.executable, "-c", script], env={"EXTRA": "1"}, log_dir=tmp_path
    ).start()
    assert replica.process is not None and replica.process.wait(10) == 0
    replica.stop()  # exit code 0 by itself: not an error
    output = replica.output()
    assert f"KUBECONFIG={server.kubeconfig('env-0')}" in output
    assert "ID=env-0 EXTRA=1" in output


def test_process_replica_nonzero_exit_surfaces_at_stop(
    server: FakeApiServer, tmp_path: Path
) -> None:
    script = "import sys; print('up', flush=True); sys.exit(3)"
    replica = ProcessReplica(
        server, "dies", [sys.executable, "-c", script], ready="up", log_dir=tmp_path
    ).start()
    assert replica.process is not None and replica.process.wait(10) == 3
    with pytest.raises(ReplicaError, match="exited by itself with code 3"):
        replica.stop()


def test_process_replica_exit_before_ready_fails_start(
    server: FakeApiServer, tmp_path: Path
) -> None:
    script = "print('cannot connect'); raise SystemExit(2)"
    replica = ProcessReplica(
        server, "early", [sys.executable, "-c", script], ready="never printed", log_dir=tmp_path
    )
    with pytest.raises(ReplicaError, match=r"exited with code 2 before it was ready") as e:
        replica.start()
    assert "cannot connect" in str(e.value)
    assert not replica.running
    replica.stop()


def test_process_replica_ready_callable(server: FakeApiServer, tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    script = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    replica = ProcessReplica(
        server, "touch", [sys.executable, "-c", script], ready=marker.exists, log_dir=tmp_path
    ).start()
    assert marker.exists()
    replica.stop()


def test_process_replica_ignoring_sigterm_is_killed_and_reported(
    server: FakeApiServer, tmp_path: Path
) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(60)"
    )
    replica = ProcessReplica(
        server, "stubborn", [sys.executable, "-c", script], ready="up", log_dir=tmp_path
    ).start()
    with pytest.raises(ReplicaError, match=r"did not exit within 0.2s of SIGTERM; killed"):
        replica.stop(timeout=0.2)
    assert replica.returncode == -signal.SIGKILL


def test_replicas_of_processes(server: FakeApiServer, tmp_path: Path) -> None:
    argv = [sys.executable, str(FIXTURES / "status_patcher.py")]
    with Replicas.process(
        server, argv, 2, ready=r"^watching from", log_dir=tmp_path, prefix="ext-"
    ) as replicas:
        assert [r.identity for r in replicas] == ["ext-0", "ext-1"] and len(replicas) == 2
        server.apply(gadget("g1"))
        wait_until(server, lambda: status_of(server, "g1").get("by") in ("ext-0", "ext-1"))
        replicas.crash("ext-0")
        assert replicas[0].returncode == -signal.SIGKILL and replicas[1].running
