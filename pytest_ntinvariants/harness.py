"""``Harness``: one test's fake cluster, as the ``ntinv`` fixture hands it to the test.

It owns the API server's ledger recorder, the perturber, the fake endpoints and the
controller replicas of one test, applies what the markers and the schedule say, and
at the end of the test waits for the system to go quiet and checks the invariants
over everything the ledger saw. Nothing here imports kopf: replicas are started
through ``operators`` only when a test asks for them.
"""

from __future__ import annotations

import asyncio
import builtins
import datetime
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .apiserver import FakeApiServer
from .apiserver.errors import NotFound
from .apiserver.store import Event
from .ledger import Ledger, ReplicaEvent, RequestServed, SideEffect
from .observe import LedgerRecorder, record_sink
from .perturb import Perturber, Target, Trigger
from .perturb.schedule import Schedule

if TYPE_CHECKING:
    from .markers import ItemMarkers
    from .sim import World
    from .sinks import Attribution, Sink, SinkRequest

__all__ = ["Harness", "RunInfo", "SinkPool"]

JSON = dict[str, Any]


@dataclass
class RunInfo:
    """What identifies one run of a test: for reports and replays."""

    nodeid: str
    seed: int
    replay: str  # the shell command that replays this run
    schedule: Schedule | None = None
    #: What packs put in the invariants' ``CheckContext.options`` for this run.
    options: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Path] = field(default_factory=dict)
    #: pytest's hook relay (``config.hook``): packs attribute endpoint calls and add to
    #: reports through it. None: no pack is asked.
    hook: Any = field(default=None, repr=False)


class SinkPool:
    """The fake endpoints of one test, by name, each recorded in the ledger."""

    def __init__(self, ledger: Ledger, *, world: World | None = None, hook: Any = None) -> None:
        self.ledger = ledger
        #: The deterministic world the endpoints live in (None: each its own thread).
        self.world = world
        #: pytest's hook relay: a pack's ``pytest_ntinvariants_attribute_call`` attributes
        #: the calls of endpoints made here (None: the generic headers only).
        self.hook = hook
        self._sinks: dict[str, Sink] = {}
        self._undo: list[Callable[[], None]] = []

    def get(self, name: str = "slack", **options: Any) -> Sink:
        """The started endpoint called ``name``; created with ``options`` (see
        ``pytest_ntinvariants.sinks.Sink``) on first use, the same one afterwards."""
        from .sinks import Sink

        sink = self._sinks.get(name)
        if sink is not None:
            if options:
                raise ValueError(
                    f"endpoint {name!r} already exists; options apply only when it is created"
                )
            return sink
        if self.hook is not None and "identify" not in options:
            options["identify"] = self._identify
        world = self.world
        if world is None:
            sink = Sink(name, **options)
        else:
            sink = Sink(name, host=world.thread, clock=world.wall, **options)
            sink.gate = world.gate
            sink.driver = world.drive
        sink.start()
        if world is not None:
            world.name_port(sink.port, f"endpoint {name}")
        self._sinks[name] = sink
        self._undo.append(record_sink(self.ledger, sink))
        return sink

    def _identify(self, request: SinkRequest) -> Attribution | None:
        # A pack's attribution first; the generic headers when no pack claims the call.
        from .sinks import identify_by_headers

        found = self.hook.pytest_ntinvariants_attribute_call(request=request)
        return found if found is not None else identify_by_headers(request)

    def __getitem__(self, name: str) -> Sink:
        return self._sinks[name]

    def __iter__(self) -> Iterator[Sink]:
        return iter(list(self._sinks.values()))

    def stop(self) -> None:
        """Stop every endpoint; re-raise the first background error."""
        errors: list[BaseException] = []
        for sink in self._sinks.values():
            try:
                sink.stop()
            except BaseException as e:
                errors.append(e)
        while self._undo:
            self._undo.pop()()
        if errors:
            raise errors[0]


class Harness:
    """One test's fake cluster: server, ledger, perturbations, endpoints, replicas.

    Attributes: ``server`` (the ``FakeApiServer``), ``ledger`` (everything recorded),
    ``perturb`` (add perturbation rules and triggers), ``replicas`` (the controller
    replicas, once started), ``seed`` and ``run`` (replay information).
    """

    def __init__(
        self,
        server: FakeApiServer,
        ledger: Ledger,
        run: RunInfo,
        sinks: SinkPool | None = None,
        *,
        log_dir: Path | None = None,
        world: World | None = None,
    ) -> None:
        self.server = server
        #: The deterministic world the replicas run in (None: free, on threads).
        self.world = world
        #: Where process replicas write their output when the test does not say (made when
        #: they start). None: each replica makes a temporary directory of its own and
        #: removes it when it stops.
        self.log_dir = log_dir
        self.sinks = sinks if sinks is not None else SinkPool(ledger, world=world, hook=run.hook)
        self._own_sinks = sinks is None
        self.ledger = ledger
        self.run = run
        self.seed = run.seed
        self.perturb = Perturber(server.store, server.hub, ledger, seed=run.seed)
        if world is not None:
            self.perturb.driver = world.drive
            self.perturb.act = world.call
        self._perturb_handle = server.add_interceptor(self.perturb)
        self.replicas: Any = None
        self._finished = False
        self._digest: tuple[int, str | None] = (-1, None)  # (ledger length, its digest)
        # An exploration item's schedule, drawn when its replicas start: their identities
        # are known only then (process replicas are started by the test body).
        self._deferred_draw: Callable[[list[str]], Schedule] | None = None

    # ------------------------------------------------------------- endpoints

    def sink(self, name: str = "slack", **options: Any) -> Sink:
        """The test's fake endpoint called ``name``, started on first use and the same one
        afterwards; every call it receives is recorded in the ledger.

        ``options`` apply when it is created (a ``ValueError`` afterwards) and go to
        ``pytest_ntinvariants.Sink``: ``tls`` (``"valid"``, ``"self-signed"``,
        ``"expired"``, ``"wrong-host"``, or a key pair) and ``ca``, ``strict_json``,
        ``identify`` (how a call names its object and channel) and ``default`` (the
        reply, or status code, when nothing scripted applies). Script its replies with
        ``.script(...)``; read what it received with ``.calls()`` and ``.count(...)``.
        """
        return self.sinks.get(name, **options)

    # --------------------------------------------------------------- replicas

    def start_replicas(
        self,
        operator: Any,
        count: int = 2,
        *,
        prefix: str = "replica",
        namespaces: tuple[str, ...] | list[str] | None = None,
        settings: Any = None,
    ) -> Any:
        """Start ``count`` replicas of a kopf operator (a registry factory, or
        ``"module:factory"``), each with its own identity and token; stopped at the end.

        ``settings``: kopf settings for every replica, as a callable taking
        ``kopf.OperatorSettings`` or a dict of dotted paths to values
        (``{"persistence.consistency_timeout": 5.0}``; a misspelt path is a ValueError).
        """
        from .operators import Replicas, settings_hook

        if self.replicas is not None:
            raise RuntimeError("replicas are already running in this test")
        return self._start(
            Replicas.kopf(
                self.server,
                operator,
                count=count,
                prefix=f"{prefix}-",
                namespaces=list(namespaces) if namespaces is not None else None,
                ledger=self.ledger,
                settings=settings_hook(settings),
                world=self.world,
            )
        )

    def start_process_replicas(
        self, argv: list[str], count: int = 2, *, prefix: str = "replica", **options: Any
    ) -> Any:
        """Start ``count`` replicas of a controller that is an external process (any
        language): each gets ``KUBECONFIG`` for its own identity; stopped at the end.
        ``options`` go to ``pytest_ntinvariants.operators.ProcessReplica``; without a
        ``log_dir``, under the plugin, their output goes to ``ntinv-replica-logs`` in the
        test's ``tmp_path`` (kept or removed as pytest's retention policy says)."""
        from .operators import Replicas

        if self.replicas is not None:
            raise RuntimeError("replicas are already running in this test")
        if options.get("log_dir") is None and self.log_dir is not None:
            options["log_dir"] = self.log_dir
        return self._start(
            Replicas.process(
                self.server,
                argv,
                count=count,
                prefix=f"{prefix}-",
                ledger=self.ledger,
                world=self.world,
                **options,
            )
        )

    def _start(self, replicas: Any) -> Any:
        self.replicas = replicas
        if self._deferred_draw is not None:
            # Before the replicas start, so that their first LIST is perturbed too.
            draw, self._deferred_draw = self._deferred_draw, None
            self.apply_schedule(draw(list(replicas.identities)))
        replicas.start()
        return replicas

    def defer_schedule(self, draw: Callable[[list[str]], Schedule]) -> None:
        """Draw and apply the item's schedule (``draw(identities)``) again when its
        replicas start, for their identities."""
        self._deferred_draw = draw

    @property
    def crashed(self) -> list[str]:
        """The identities of the replicas that crashed so far (by the schedule, by
        ``crash_on`` or by the test), in order: what an at-least-once assertion allows
        for (a replica that crashed right after a call could not record it)."""
        return [e.identity for e in self.ledger.entries(ReplicaEvent) if e.action == "crashed"]

    def crash_on(self, trigger: Trigger, replica: int | str) -> None:
        """Crash a replica (by index or identity) when ``trigger`` fires, e.g.
        ``ntinv.crash_on(ntinv.perturb.after_write("replica-0", nth=2), 0)``."""
        trigger.on_fire(lambda: self._crash(replica))

    def apply_markers(self, markers: ItemMarkers, identities: list[str]) -> None:
        """Turn the item's perturbation markers into rules for the replica identities."""

        def chosen(selection: tuple[int | str, ...] | None) -> list[str | None]:
            if selection is None:
                # Without replicas, a marker perturbs every client of the server.
                return list(identities) or [None]
            out: list[str | None] = []
            for s in selection:
                if isinstance(s, int):
                    if not 0 <= s < len(identities):
                        raise IndexError(
                            f"replica index {s} out of range (there are {len(identities)} replicas)"
                        )
                    out.append(identities[s])
                else:
                    out.append(s)
            return out

        if markers.latency is not None:
            for ident in chosen(markers.latency.replicas):
                self.perturb.watch_latency(markers.latency.delay, identity=ident)
        if markers.stale is not None:
            for ident in chosen(markers.stale.replicas):
                self.perturb.stale_reads(
                    versions=markers.stale.versions, seconds=markers.stale.seconds, identity=ident
                )
        for f in markers.faults:
            for ident in chosen(f.replicas):
                self.perturb.fault(
                    f.code,
                    retry_after=f.retry_after,
                    probability=f.probability,
                    times=f.times,
                    nth=f.nth,
                    target=Target(
                        identity=ident, verb=f.verb, resource=f.resource, subresource=f.subresource
                    ),
                )

    def apply_schedule(self, schedule: Schedule) -> None:
        """Add a drawn schedule's rules; crashes are armed on the replicas' writes, or on
        the calls they make to fake endpoints (``after_calls``)."""
        self.run.schedule = schedule
        _, crashes = schedule.apply(self.perturb)
        for step in crashes:
            params = dict(step.params)
            if "after_calls" in params:
                nth = int(params["after_calls"])
                trigger = self.perturb.trigger(SideEffect, caller=step.identity, nth=nth)
            else:
                trigger = self.perturb.after_write(step.identity, nth=int(params["after_writes"]))
            trigger.on_fire(lambda ident=step.identity: self._crash(ident))

    def _crash(self, identity: int | str) -> None:
        if self.replicas is None:
            return
        # Never blocks or raises: triggers fire on the server's loop, where joining a
        # replica's thread would stall every client, and a replica may already be gone.
        self.replicas.request_crash(identity)

    # ------------------------------------------------------------ objects

    def now(self) -> datetime.datetime:
        """The cluster's current time (aware UTC): what the server stamps objects with. In a
        deterministic world that is its virtual clock, which starts at ``sim.EPOCH``."""
        if self.world is not None:
            return self.world.now()
        return datetime.datetime.now(datetime.UTC)

    def apply(self, manifest: JSON | str) -> list[JSON]:
        """Create or update objects (a dict, or YAML with ``---``), as identity ``test``.

        In a deterministic world the write lands between two steps, the same in every run."""
        if self.world is not None:
            return self.world.call(lambda: self.server.apply(manifest))
        return self.server.apply(manifest)

    def get(self, api_version: str, kind: str, name: str, namespace: str = "default") -> JSON:
        """A private copy of an object's current state."""
        return self.server.get(api_version, kind, name, namespace)

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> builtins.list[JSON]:
        """Private copies of the current objects of a kind (``namespace=None``: every
        namespace), filtered by kube-syntax label and field selectors."""
        return self.server.list(
            api_version,
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
        )

    def wait_for(
        self,
        api_version: str,
        kind: str,
        name: str,
        until: Callable[[JSON], bool],
        *,
        namespace: str = "default",
        timeout: float = 10.0,
    ) -> JSON:
        """Block until the object satisfies ``until`` (checked on every change of it,
        not by polling); returns it. Raises ``TimeoutError`` with the last state.

        In a deterministic world the world runs meanwhile, and ``timeout`` is virtual
        seconds; it gives up at once when the world settles without reaching it."""
        rt = self.server.resource(api_version, kind)
        ns = namespace if rt.namespaced else ""
        if self.world is not None:
            return self._run_for(api_version, kind, rt, ns, name, until, timeout)
        cond = threading.Condition()
        latest: list[JSON | None] = [None]

        def on_event(event: Event) -> None:
            meta = event.obj.get("metadata") or {}
            if (
                event.resource.key == rt.key
                and meta.get("name") == name
                and meta.get("namespace", "") == ns
            ):
                with cond:
                    latest[0] = None if event.type == "DELETED" else event.obj
                    cond.notify_all()

        with self.server.store.lock:
            undo = self.server.store.subscribe(on_event)
            try:
                latest[0] = self.server.store.get(rt, ns, name).obj
            except NotFound:
                latest[0] = None
        deadline = time.monotonic() + timeout
        try:
            with cond:
                while True:
                    current = latest[0]
                    if current is not None and until(current):
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError(
                            f"{kind} {namespace}/{name} did not reach the condition within "
                            f"{timeout}s; last state: "
                            f"{'absent' if current is None else _summary(current)}"
                        )
                    cond.wait(remaining)
            # Read outside ``cond``: the server thread takes the store's lock and then
            # ``cond`` (on_event), so holding ``cond`` while taking the store's lock could
            # deadlock the two threads.
            return self.server.get(api_version, kind, name, namespace)
        finally:
            undo()

    def _run_for(
        self,
        api_version: str,
        kind: str,
        rt: Any,
        ns: str,
        name: str,
        until: Callable[[JSON], bool],
        timeout: float,
    ) -> JSON:
        assert self.world is not None
        latest: list[JSON | None] = [None]

        def reached() -> bool:
            try:
                latest[0] = self.server.store.get(rt, ns, name).obj
            except NotFound:
                latest[0] = None
            return latest[0] is not None and until(latest[0])

        try:
            self.wait_until(reached, timeout=timeout, what=f"{kind} {ns or '-'}/{name}'s condition")
        except TimeoutError as e:
            current = latest[0]
            state = "absent" if current is None else _summary(current)
            raise TimeoutError(f"{e}; last state: {state}") from None
        return self.server.get(api_version, kind, name, ns or "default")

    async def wait_for_async(
        self,
        api_version: str,
        kind: str,
        name: str,
        until: Callable[[JSON], bool],
        *,
        namespace: str = "default",
        timeout: float = 10.0,
    ) -> JSON:
        """``wait_for`` for async tests: waits in a worker thread, so the test's event
        loop (pytest-asyncio's) keeps running meanwhile."""
        return await asyncio.to_thread(
            self.wait_for, api_version, kind, name, until, namespace=namespace, timeout=timeout
        )

    def wait_until(
        self, condition: Callable[[], bool], *, timeout: float = 10.0, what: str = ""
    ) -> None:
        """Block until ``condition()`` holds, or raise ``TimeoutError`` (naming ``what``).

        In a deterministic world the world runs meanwhile and the condition is checked at
        every quiescent point (``timeout`` in virtual seconds); it gives up as soon as the
        world settles. Use it for conditions of your own: a wait on a ``threading`` event
        would wait forever there, as nothing moves unless the test waits through the
        harness. Otherwise it is checked on every ledger entry, and every 50 ms for
        conditions that change outside the ledger."""
        __tracebackhide__ = True
        label = what or getattr(condition, "__name__", "the condition")
        if self.world is not None:
            result = self.world.run_until(condition, timeout=timeout)
            if result.outcome != "done":
                why = "the system settled" if result.outcome == "settled" else "time ran out"
                raise TimeoutError(f"{label} did not hold: {why} after {result.elapsed:.3f}s")
            return
        changed = threading.Event()
        undo = self.ledger.subscribe(lambda _e: changed.set())
        deadline = time.monotonic() + timeout
        try:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{label} did not hold within {timeout}s")
                changed.wait(min(remaining, 0.05))
                changed.clear()
        finally:
            undo()

    def wait_watching(
        self, resource: str, *, identities: Iterable[str] | None = None, timeout: float = 10.0
    ) -> None:
        """Block until every replica (or each of ``identities``) has opened a watch on
        ``resource`` (its plural, or ``group/plural``): from then on, what is written
        reaches them as watch events, not in the LIST they start with. Woken by the
        ledger, not by polling; ``TimeoutError`` names those that never watched."""
        __tracebackhide__ = True
        if identities is None:
            if self.replicas is None:
                raise RuntimeError("no replicas are running: start them, or name identities")
            identities = self.replicas.identities
        waiting = set(identities)

        suffix = f"/{resource}"
        lock = threading.Lock()
        done = threading.Event()

        def seen(entry: object) -> None:  # in the recording thread: one entry at a time
            if not (
                isinstance(entry, RequestServed) and entry.verb == "watch" and entry.status == 200
            ):
                return
            if entry.resource == resource or entry.resource.endswith(suffix):
                with lock:
                    waiting.discard(entry.identity)
                    if not waiting:
                        done.set()

        undo = self.ledger.subscribe(seen)
        try:
            for entry in self.ledger.requests(verb="watch"):  # those opened before
                seen(entry)
            if not waiting:
                return
            if self.world is not None:
                self.world.run_until(done.is_set, timeout=timeout)
            if not done.wait(0 if self.world is not None else timeout):
                with lock:
                    late = ", ".join(sorted(waiting))
                raise TimeoutError(f"not watching {resource} after {timeout}s: {late}")
        finally:
            undo()

    async def wait_watching_async(
        self, resource: str, *, identities: Iterable[str] | None = None, timeout: float = 10.0
    ) -> None:
        """``wait_watching`` for async tests (waits in a worker thread)."""
        await asyncio.to_thread(
            self.wait_watching, resource, identities=identities, timeout=timeout
        )

    def wait_quiet(self, period: float = 0.1, timeout: float = 5.0) -> bool:
        """Block until nothing was recorded for ``period`` seconds, no watch event is
        still on its way to a client (held back by latency) and no request is still held
        back by a rule, or until ``timeout``; returns whether it went quiet.

        In a deterministic world, quiet is exact: the world runs until nothing changes for
        its horizon of virtual time (``period`` and ``timeout`` do not apply)."""
        if self.world is not None:
            return self.world.run_until().outcome == "settled"
        changed = threading.Event()
        undo = self.ledger.subscribe(lambda _e: changed.set())
        undo_delays = self.perturb.on_delay_end(changed.set)
        deadline = time.monotonic() + timeout
        hub = self.server.hub
        try:
            # Only a whole quiet period counts: a shorter wait cut off by the deadline
            # proves nothing (it used to return True then, so a system that never went
            # quiet was reported quiet after ``timeout``). A delayed delivery or request is
            # not in the ledger until it lands, so silence alone would not prove it did:
            # a request held by a latency rule kept sleeping after the rules were removed,
            # and the invariants were judged before its write.
            while time.monotonic() + period <= deadline:
                changed.clear()
                if (
                    not changed.wait(period)
                    and not any(w.pending for w in hub.watchers())
                    and not self.perturb.delaying
                    and not changed.is_set()  # a held request went on as we looked
                ):
                    return True
            return False
        finally:
            undo_delays()
            undo()

    # ------------------------------------------------------------- assertions

    def assert_side_effects(
        self, obj: str | Mapping[str, Any], *, count: int, **kwargs: Any
    ) -> None:
        """Assert fake endpoints received ``count`` calls about ``obj`` (an object, a uid,
        a name or ``"namespace/name"``), of any kind; ``key=``, ``endpoint=``,
        ``successful=``, ``namespace=``, ``kind=`` and attributes narrow what counts (see
        ``pytest_ntinvariants.assert_side_effects``). A failure shows the calls and the
        race."""
        from .invariants.assertions import assert_side_effects

        __tracebackhide__ = True
        assert_side_effects(self.ledger, obj, count=count, ctx=self.check_context(), **kwargs)

    def assert_no_side_effects(
        self, obj: str | Mapping[str, Any] | None = None, **kwargs: Any
    ) -> None:
        """Assert no fake endpoint received a matching call (about ``obj`` when given,
        else about anything; see ``pytest_ntinvariants.assert_no_side_effects``)."""
        from .invariants.assertions import assert_no_side_effects

        __tracebackhide__ = True
        assert_no_side_effects(self.ledger, obj, ctx=self.check_context(), **kwargs)

    def check_context(self, *, quiet: bool = False) -> Any:
        """The context invariants and assertions are judged in (with the options packs
        gave this run, and the hook relay reports ask packs through)."""
        from .invariants import CheckContext

        return CheckContext.from_ledger(
            self.ledger,
            quiet=quiet,
            seed=self.seed,
            replay=self.run.replay,
            schedule=self.run.schedule.describe() if self.run.schedule else None,
            digest=self.digest(),
            options=self.run.options,
            hook=self.run.hook,
        )

    def digest(self) -> str | None:
        """The ledger's digest in a deterministic world (a replay reproduces it), else None."""
        if self.world is None:
            return None
        # The ledger only grows: its length says whether the last digest still holds.
        length = len(self.ledger)
        if self._digest[0] != length:
            self._digest = (length, self.world.digest(self.ledger))
        return self._digest[1]

    def replica_logs(self, lines: int = 40) -> str:
        """The end of each process replica's output, with the path of its log ("" when
        the test runs none): for a failure report, which must not depend on the file
        still being there when someone reads it."""
        from .operators import ProcessReplica

        parts = []
        for replica in self.replicas or ():
            if not isinstance(replica, ProcessReplica):
                continue  # in-process replicas log through ``logging``: pytest captures it
            output = replica.output().splitlines()
            shown = output[-lines:]
            cut = len(shown) < len(output)
            more = f", the last {len(shown)} of {len(output)} lines" if cut else ""
            parts.append(f"{replica.identity}: {replica.log_path}{more}")
            parts.extend(f"  {line}" for line in shown)
        return "\n".join(parts)

    # --------------------------------------------------------------- teardown

    def settle(self, period: float, timeout: float) -> bool:
        """End the schedule (remove every perturbation, releasing holds) and wait for
        quiet; returns whether a controller ran and went quiet (only then can "it
        eventually finishes" be judged)."""
        self.perturb.undo()
        if self.replicas is None:
            return False
        if self.world is not None:
            return self.wait_quiet()
        # Silence only means "done" if it outlasts how long a replica takes to react to
        # what it was sent; on a loaded machine that grows, so the period grows with it.
        return self.wait_quiet(max(period, 2 * self.reaction_time()), timeout)

    def resync(self) -> bool:
        """Make every replica of a deterministic world re-list what it watches (each
        open watch stream ends, and its resumption is answered 410 Expired, as after
        etcd compaction), then wait for quiet again: a converged controller writes
        nothing meanwhile (the ``converges`` oracle). Marks the ledger first; returns
        whether the world went quiet (False, doing nothing, without a world or replicas)."""
        from .invariants.oracles import RESYNC
        from .ledger import PerturbationFired

        if self.world is None or self.replicas is None:
            return False
        self.ledger.record(
            PerturbationFired, rule=RESYNC, action=RESYNC, identity="", detail="every replica"
        )
        # As after a compaction: every resumption is refused (a client that retries from
        # where it was, too) until the client listed afresh; the watch from that list goes on.
        rules = [
            self.perturb.expire_watches(identity=who, until_relisted=True)
            for who in self.replicas.identities
        ]
        try:
            return self.wait_quiet()
        finally:
            for rule in rules:
                rule.remove()

    def reaction_time(self) -> float:
        """The longest a replica took in this test from a watch event reaching it to its
        next request (0 when none reacted): how long a quiet spell must last to mean the
        replicas have handled what they were sent."""
        from .ledger import RequestServed, WatchDelivered

        waiting: dict[str, float] = {}  # identity -> time of its oldest unanswered event
        longest = 0.0
        for entry in self.ledger:
            if isinstance(entry, WatchDelivered):
                waiting.setdefault(entry.identity, entry.t)
            elif isinstance(entry, RequestServed) and entry.identity in waiting:
                gap = entry.t - waiting.pop(entry.identity)
                # A request long after an event answers something else (a timer, another
                # object): not a reaction, and it must not stretch every quiet wait.
                if gap <= _LONGEST_REACTION:
                    longest = max(longest, gap)
        return longest

    def close(self) -> None:
        """Stop replicas and endpoints, detach from the server; re-raise their errors."""
        if self._finished:
            return
        self._finished = True
        errors: list[BaseException] = []
        self.perturb.undo()
        if self.replicas is not None:
            try:
                self.replicas.stop()
            except BaseException as e:
                errors.append(e)
        if self.world is not None:
            # Nobody is left to schedule for: the endpoints shut down on free virtual time.
            self.world.wind_down()
        if self._own_sinks:
            try:
                self.sinks.stop()
            except BaseException as e:
                errors.append(e)
        self._perturb_handle.remove()
        if errors:
            raise errors[0]


# Reactions slower than this are not counted (so quiet waits stay under a second).
_LONGEST_REACTION = 0.25


def _summary(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    status = obj.get("status")
    return f"resourceVersion {meta.get('resourceVersion')}, status {status!r}"


def attach_recorder(server: FakeApiServer, ledger: Ledger) -> LedgerRecorder:
    """Record everything ``server`` does into ``ledger``."""
    return LedgerRecorder(ledger, server).attach()
