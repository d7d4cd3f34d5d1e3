"""``Engine``: the scheduler of a deterministic world.

Everything that reaches an actor (an in-process controller replica) is an ``Action`` held
here until the engine releases it: the server's handling of each of its API requests, each
watch event to each of its streams, each reply of a fake endpoint, each result of a job
it ran in a thread. The parts that produce them (``ApiHandler``, ``Watcher``, ``Sink``,
``WorldLoop``) hold; they never decide.

The engine decides only when the world is quiescent: the ``WorldLoop`` asks it whenever
its ready queue is empty and no socket is readable, with no executor job still running.
Then, while a test waits on it (``run_until``), it either releases one action, chosen by
its ``Strategy`` (by default a random walk seeded from the test's seed) among those that
may go now, or, when none may, moves virtual time to the next timer or the next delayed
action. The index chosen at each step with more than one candidate is recorded
(``decisions``): replayed by ``strategies.Replay``, they walk the same path again. When
the test is not waiting, the world stays paused, so whatever the test body does lands
between two steps, at the same point in every run.

A run's steps (``Step``: number, virtual time, actor, action) are its timeline, and the
same seed, test and code give the same steps.

Actors outside the loop (controllers run as processes, in any language) cannot be
watched at work: for them the engine runs on real time (``quiet``). The server side is
the same (their requests and watch events are held and released one at a time, chosen
by the seed), but quiescence is inferred: the world counts as quiescent once no byte has
reached the loop for ``quiet`` real seconds, and as settled once nothing happened for a
horizon of real seconds. That is inexact (a process that works longer than ``quiet``
without a request is taken for idle), so a seed reproduces such a run only as far as the
processes keep to that pace.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .independence import Footprint, Traced
from .strategies import RandomWalk, Strategy

if TYPE_CHECKING:
    import selectors

    from .loop import Job, WorldLoop

__all__ = ["Action", "DriveResult", "Engine", "Step"]

#: How long, in virtual seconds, nothing may happen before a world counts as settled.
DEFAULT_HORIZON = 600.0

#: How many horizons a run for quiet may last before it gives up (a controller that
#: writes periodically never settles).
SETTLE_HORIZONS = 10

Kind = Literal["request", "event", "call", "job"]


@dataclass(eq=False)
class Action:
    """One thing held for an actor until the engine releases it."""

    seq: int  # arrival order (a job's: when it was handed to its thread)
    actor: str
    kind: Kind
    what: str  # for the timeline: "PATCH widgets/w1/status"
    release: Callable[[], None]
    drop: Callable[[], None]  # the actor crashed: it never happens
    not_before: float = 0.0  # virtual loop time before which it may not go (latency)
    # Actions of one channel (a watch stream) go in order: only the first may go.
    channel: object | None = None
    # What changes the world (writes, events, replies): it keeps the world from settling.
    activity: bool = True
    # A request sent from an executor thread (not the loop): that job waits on it.
    foreign: bool = False
    # False once it no longer applies (its event was superseded, its stream closed).
    valid: Callable[[], bool] | None = None
    # What it touches outside its actor (None: nothing), and what it is with no number
    # that depends on the order of steps (default: ``what``): for the reduction.
    touches: Footprint | None = None
    label: str = ""


@dataclass(frozen=True)
class Step:
    """One released action, as the run's timeline shows it."""

    n: int
    t: float  # virtual seconds since the world began
    actor: str
    kind: str
    what: str

    def describe(self) -> str:
        """``#12  0.105s  replica-1  event  MODIFIED widgets/w1 rv 7``."""
        return f"#{self.n:<4} {self.t:8.3f}s  {self.actor:<12} {self.kind:<7} {self.what}"


@dataclass(frozen=True)
class DriveResult:
    """How a ``run_until`` ended: the condition held, the world settled, time ran out."""

    outcome: Literal["done", "settled", "timeout"]
    steps: int  # steps released during the drive
    elapsed: float  # virtual seconds the drive spanned


@dataclass(eq=False)
class _Drive:
    done: Callable[[], bool] | None
    until: float  # virtual loop time at which it gives up
    wall_deadline: float  # a livelock guard, in real seconds
    started: float
    first_step: int
    future: concurrent.futures.Future[DriveResult]


class Engine:
    """Hold what reaches the actors of a ``WorldLoop``; release it one step at a time.

    ``seed`` seeds every choice; ``horizon`` is how long (virtual seconds) nothing may
    happen before the world counts as settled; ``strategy`` picks among the actions that
    may go (default: ``RandomWalk(seed)``). ``quiet`` (real seconds) runs the world on
    real time instead, for actors outside the loop: quiescent means no byte arrived for
    ``quiet`` seconds, and ``horizon`` is in real seconds too.
    """

    def __init__(
        self,
        loop: WorldLoop,
        seed: int,
        *,
        horizon: float = DEFAULT_HORIZON,
        strategy: Strategy | None = None,
        quiet: float | None = None,
    ) -> None:
        self.loop = loop
        #: Real seconds without a byte that count as quiescence (None: exact, virtual time).
        self.quiet = quiet
        self._io_at = 0.0  # loop time of the last byte (or release), on real time
        self.seed = seed
        self.horizon = horizon
        self.strategy = strategy if strategy is not None else RandomWalk(seed)
        #: The index chosen at each step that had more than one candidate, the number of
        #: that step, and how many candidates it had.
        self.decisions: list[int] = []
        self.decision_steps: list[int] = []
        self.choices: list[int] = []
        #: The arrival-order seqs of each decision's candidates, and every released
        #: action: what tells which orders are equivalent (``independence``).
        self.candidates: list[tuple[int, ...]] = []
        self.trace: list[Traced] = []
        self.actors: set[str] = set()
        self.held: dict[int, Action] = {}
        self.steps: list[Step] = []
        self._seq = itertools.count()
        self._foreign: dict[str, int] = {}  # actor -> held requests sent from its threads
        self._drive: _Drive | None = None
        self._quiet_waiters: list[Callable[[], None]] = []
        self.t0 = 0.0
        self.last_activity = 0.0
        #: Wall seconds spent deciding (quiescence checks and releases), for benchmarks.
        self.decide_time = 0.0

    def attach(self) -> None:
        """Take over the loop: its clock goes virtual (unless the engine runs on real
        time). Call on the loop's thread."""
        if self.quiet is None:
            self.loop.go_virtual()
        self.loop.engine = self
        self.t0 = self.last_activity = self._io_at = self.loop.time()

    def now(self) -> float:
        """Virtual seconds since the world began."""
        return self.loop.time() - self.t0

    # ------------------------------------------------------------ holding (loop)

    def holds(self, actor: str | None) -> bool:
        """Whether what reaches ``actor`` is held (it is one of the world's actors)."""
        return actor is not None and actor in self.actors

    def next_seq(self) -> int:
        """A place in the arrival order (reserved ahead by jobs)."""
        return next(self._seq)

    def hold(self, action: Action) -> None:
        """Keep ``action`` until it is released or dropped."""
        self.held[action.seq] = action
        if action.foreign:
            self._foreign[action.actor] = self._foreign.get(action.actor, 0) + 1

    async def hold_request(
        self,
        actor: str,
        kind: Kind,
        what: str,
        *,
        activity: bool,
        foreign: bool,
        touches: Footprint | None = None,
    ) -> None:
        """Wait until the engine releases this request (its server then handles it);
        ``touches``: what it reads or writes outside its actor."""
        future: asyncio.Future[None] = self.loop.create_future()

        def release() -> None:
            if not future.done():
                future.set_result(None)

        action = Action(
            self.next_seq(),
            actor,
            kind,
            what,
            release=release,
            drop=future.cancel,  # type: ignore[arg-type]  # its bool is not used
            activity=activity,
            foreign=foreign,
            touches=touches,
        )
        self.hold(action)
        try:
            await future
        finally:
            self._forget(action)  # a handler cancelled while held

    def hold_job(self, job: Job, release: Callable[[], None]) -> None:
        """Hold a thread job's result, in the order the jobs were started."""
        self.hold(
            Action(
                job.seq,
                job.actor or "",
                "job",
                job.name,
                release=release,
                drop=release,  # a crashed actor's task is cancelled; the result goes nowhere
                activity=False,
            )
        )

    def _forget(self, action: Action) -> None:
        if self.held.pop(action.seq, None) is not None and action.foreign:
            self._foreign[action.actor] -= 1

    def forget(self, actor: str) -> None:
        """Drop everything held for ``actor`` (it crashed: none of it happens)."""
        for action in [a for a in self.held.values() if a.actor == actor]:
            self._forget(action)
            action.drop()

    # --------------------------------------------------------------- deciding

    def idle(self, timeout: float | None, selector: selectors.BaseSelector) -> list[Any]:
        """Called by the loop when it would block: decide, or wait for the outside."""
        if self._waiting_for_threads():
            # A thread job runs: its end, or its request, wakes the selector.
            return selector.select(None)
        if self._wake_quiet_waiters():
            return []
        drive = self._drive
        if drive is None:
            # Paused: only a thread-safe call or a client outside the world can change
            # anything, and each wakes the selector.
            return selector.select(None)
        self._timed_decide(drive)
        return []

    def idle_real(self, timeout: float | None, selector: selectors.BaseSelector) -> list[Any]:
        """``idle`` on real time: every select comes here, and only ``quiet`` seconds
        without a byte count as quiescence."""
        events = selector.select(0)
        if events:
            self._io_at = self.loop.time()
            return events
        if timeout == 0 or self._waiting_for_threads():
            return self._select(selector, timeout)
        wait = self._io_at + (self.quiet or 0.0) - self.loop.time()
        if wait > 0:
            return self._select(selector, wait if timeout is None else min(wait, timeout))
        if self._wake_quiet_waiters():
            return []
        drive = self._drive
        if drive is None:
            return self._select(selector, timeout)
        pause = self._timed_decide(drive)
        if pause is None:
            return []
        return self._select(selector, pause if timeout is None else min(pause, timeout))

    def _wake_quiet_waiters(self) -> bool:
        """Call what waits for the next quiescent point; whether anything did."""
        if not self._quiet_waiters:
            return False
        waiters, self._quiet_waiters = self._quiet_waiters, []
        for callback in waiters:
            callback()
        return True

    def _timed_decide(self, drive: _Drive) -> float | None:
        started = time.perf_counter()
        try:
            return self._decide(drive)
        finally:
            self.decide_time += time.perf_counter() - started

    def _select(self, selector: selectors.BaseSelector, timeout: float | None) -> list[Any]:
        events = selector.select(timeout)
        if events:
            self._io_at = self.loop.time()
        return events

    def _decide(self, drive: _Drive) -> float | None:
        """Release one action or move time; on real time, return how long to wait for
        (None: something happened)."""
        try:
            done = drive.done is not None and drive.done()
        except Exception as e:  # the test's condition failed: that is the test's error
            self._finish_error(e)
            return None
        if done:
            self._finish("done")
            return None
        if time.monotonic() > drive.wall_deadline:
            self._finish_error(
                RuntimeError(
                    f"the world made {len(self.steps) - drive.first_step} steps in "
                    f"{time.monotonic() - drive.wall_deadline + _WALL_LIMIT:.0f}s of wall time "
                    f"without settling (virtual time {self.now():.3f}s): a livelock?"
                )
            )
            return None
        action = self._next_action()
        if action is not None:
            self._release(action)
            return None
        if self.quiet is not None:
            return self._wait_real(drive)
        upcoming = self._upcoming()
        quiet_until = max(self.last_activity, drive.started) + self.horizon
        if upcoming is None or upcoming > quiet_until:
            self._finish("settled")
        elif upcoming > drive.until:
            self.loop.advance(drive.until)
            self._finish("timeout")
        else:
            self.loop.advance(upcoming)
        return None

    def _wait_real(self, drive: _Drive) -> float | None:
        # Time cannot jump: wait for the next delayed action, the end of the horizon or
        # the drive's end, whichever comes first (a byte that arrives first wakes it).
        now = self.loop.time()
        delayed = [a.not_before for a in self.held.values() if a.not_before > now]
        upcoming = min(delayed) if delayed else None
        quiet_until = max(self.last_activity, self._io_at, drive.started) + self.horizon
        if now >= quiet_until and (upcoming is None or upcoming > quiet_until):
            self._finish("settled")
            return None
        if now >= drive.until:
            self._finish("timeout")
            return None
        ends = [quiet_until, drive.until] + ([upcoming] if upcoming is not None else [])
        return max(min(ends) - now, 0.0)

    def _waiting_for_threads(self) -> bool:
        for actor, running in self.loop.running_jobs().items():
            # A job that sent a request which is held waits for it: that is quiescent.
            if actor is None or self._foreign.get(actor, 0) < running:
                return True
        return False

    def _next_action(self) -> Action | None:
        now = self.loop.time()
        busy: set[int] = set()
        candidates: list[Action] = []
        for action in sorted(self.held.values(), key=_by_seq) if self.held else ():
            if action.valid is not None and not action.valid():
                self._forget(action)
                continue
            if action.channel is not None:
                if id(action.channel) in busy:
                    continue
                busy.add(id(action.channel))
            if action.not_before > now:
                continue
            candidates.append(action)
        if not candidates:
            return None
        # Asked even with one candidate: a strategy may count the steps (PCT's change
        # points); only real choices are decisions.
        index = self.strategy.choose(candidates, len(self.steps))
        if len(candidates) > 1:
            self.decisions.append(index)
            self.decision_steps.append(len(self.steps) + 1)
            self.choices.append(len(candidates))
            self.candidates.append(tuple(a.seq for a in candidates))
        return candidates[index]

    def _upcoming(self) -> float | None:
        times = [a.not_before for a in self.held.values() if a.not_before > self.loop.time()]
        timer = self.loop.next_timer()
        if timer is not None:
            times.append(timer)
        return min(times) if times else None

    def _release(self, action: Action) -> None:
        self._forget(action)
        now = self.loop.time()
        if action.activity:
            self.last_activity = now
        self._io_at = now  # on real time, its answer is awaited from here
        self.steps.append(
            Step(len(self.steps) + 1, now - self.t0, action.actor, action.kind, action.what)
        )
        self.trace.append(
            Traced(
                action.seq,
                action.actor,
                f"{action.kind} {action.label or action.what}",
                action.touches,
            )
        )
        action.release()

    def _finish(self, outcome: Literal["done", "settled", "timeout"]) -> None:
        drive, self._drive = self._drive, None
        assert drive is not None
        result = DriveResult(
            outcome, len(self.steps) - drive.first_step, self.loop.time() - drive.started
        )
        drive.future.set_result(result)

    def _finish_error(self, error: BaseException) -> None:
        drive, self._drive = self._drive, None
        assert drive is not None
        drive.future.set_exception(error)

    # ------------------------------------------------------------ driving (test)

    def run_until(
        self, done: Callable[[], bool] | None = None, *, timeout: float | None = None
    ) -> DriveResult:
        """Let the world run until ``done()`` holds at a quiescent point, the world
        settles (nothing happens for ``horizon`` virtual seconds), or ``timeout`` virtual
        seconds pass (default: ten horizons, for a world that never settles, like a
        controller that writes periodically). ``done`` runs on the loop's thread. Call
        from outside the loop."""
        if timeout is None:
            timeout = SETTLE_HORIZONS * self.horizon
        future: concurrent.futures.Future[DriveResult] = concurrent.futures.Future()

        def begin() -> None:
            if self._drive is not None:
                future.set_exception(RuntimeError("the world is already being run"))
                return
            now = self.loop.time()
            self._drive = _Drive(
                done, now + timeout, time.monotonic() + _WALL_LIMIT, now, len(self.steps), future
            )

        self.loop.call_soon_threadsafe(begin)
        return future.result(_WALL_LIMIT + 30.0)

    def when_quiet(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the loop) at the next quiescent point."""
        self._quiet_waiters.append(callback)

    def detach(self) -> None:
        """Stop deciding (call on the loop's thread): release everything held, in
        arrival order, and leave the loop's virtual clock to run freely."""
        if self._drive is not None:
            self._finish("settled")
        self.loop.engine = None
        self._wake_quiet_waiters()
        for action in sorted(self.held.values(), key=_by_seq):
            self._forget(action)
            action.release()


# Real seconds one drive may take before it is called a livelock.
_WALL_LIMIT = 120.0


def _by_seq(action: Action) -> int:
    return action.seq
