"""The reconciler of one replica: level-triggered passes, per-object serialisation, requeues.

Every watch event triggers a pass over the object, with the event's body as the starting
view -- a body that may predate this replica's own last write (kopf hands out what the watch
delivered; self-triggered reconciles on stale bodies are the seed's bug class). The pass
never trusts that view for anything with an external effect: deliveries are claimed by a
status write based on the view's resourceVersion, and a 409 sends the pass back to the API
server (``RecordingStrategy.claim``).

A pass runs until nothing is due, so one event normally carries an object from creation to
its terminal phase or to its next backoff; the events of its own writes then arrive as no-op
passes. The replica remembers the resourceVersions its own writes replaced, so such an event
(or a lagging read) is recognised as older than its last write and costs no 409 round trip;
only equality of resourceVersions is used, never their order.

Retries are requeued with a per-object timer at the time stored in ``nextAttemptAt`` (or a
claim's expiry), like controller-runtime's ``RequeueAfter``; a timer pass starts from a fresh
GET. Passes over one object are serialised within a replica by a
lock (kopf already runs one handler per object at a time; timers run beside it). Several
replicas may work on one object concurrently: the claims keep them apart.

Deliveries that were made but not yet recorded wait in a per-object outbox until a record
write succeeds, so an API error after delivering causes a retried *write*, never a second
delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pydantic import ValidationError

from .audit import EVENT_FAILED, EVENT_SENT, AuditRecord, AuditSink, correlation_id
from .backoff import Backoff
from .channels import Channel, DeliveryRequest
from .classify import ErrorKind, Outcome, classify_exception
from .config import ControllerConfig
from .events import EventSink, phase_event
from .kubeapi import ConflictError, NotFoundError, NotificationApi
from .models import (
    AttemptStatus,
    ChannelName,
    DeliveryAttempt,
    NotificationStatus,
    Phase,
    parse_spec,
    parse_status,
    status_to_wire,
)
from .phases import TERMINAL_PHASES, Reason, check_transition, is_terminal
from .recording import (
    ClaimRequest,
    RecordingStrategy,
    StatusPlanner,
    TooManyConflicts,
    resolve_channels,
)
from .redact import Redactor, default_redactor

__all__ = ["NotificationController", "ObjectGone", "ObjectRef", "utc_now"]

#: Steps (writes) one pass may take before it yields and requeues itself.
_MAX_STEPS: Final = 12
#: Cap of the exponential error backoff (seconds, before the time scale).
_MAX_ERROR_BACKOFF: Final = 60.0

_log = logging.getLogger("reference_controller")


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the default clock)."""
    return datetime.now(UTC)


class ObjectGone(Exception):
    """The object was deleted, or replaced by another object with the same name."""


@dataclass(frozen=True)
class ObjectRef:
    """Namespace, name and uid of one object (the uid tells recreated objects apart)."""

    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """The reference of a raw object."""
        meta = obj.get("metadata") or {}
        return cls(
            str(meta.get("namespace") or ""),
            str(meta.get("name") or ""),
            str(meta.get("uid") or ""),
        )


def _slog(level: int, event: str, **fields: Any) -> None:
    """A structured log line: an event name and JSON fields (also in ``record.fields``)."""
    if _log.isEnabledFor(level):
        _log.log(
            level,
            "%s %s",
            event,
            json.dumps(fields, sort_keys=True, default=str),
            extra={"event": event, "fields": fields},
        )


@dataclass(frozen=True)
class _Transition:
    obj: Mapping[str, Any]
    previous: Phase | None
    phase: Phase
    message: str


_TERMINAL_NAMES: Final = frozenset(phase.value for phase in TERMINAL_PHASES)


def _rv(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class _Known:
    """What this replica's own writes (and the terminal phases it saw) proved about one object.

    ``latest`` is the response to its last successful status write. ``superseded`` holds
    resourceVersions that are certainly not current: each successful write was based on one.
    A view whose resourceVersion is in ``superseded`` is stale (a watch event of an earlier
    write, a lagging read), and ``latest`` is a better starting point. resourceVersions are
    only compared for equality, never ordered (they are opaque).

    ``terminal`` is a version seen in a terminal phase (from any source). Terminal phases
    never change, so a view that is not terminal is provably older than it.
    """

    latest: Mapping[str, Any] | None = None
    superseded: set[str] = field(default_factory=set)
    terminal: Mapping[str, Any] | None = None

    def freshest(self, view: Mapping[str, Any]) -> Mapping[str, Any]:
        """``view``, or a version this replica knows when ``view`` is provably older."""
        if self.terminal is not None and not _is_terminal_view(view):
            return self.terminal
        if self.latest is not None and _rv(view) in self.superseded:
            return self.latest
        return view

    def saw(self, view: Mapping[str, Any]) -> None:
        """Remember ``view`` if it is terminal."""
        if self.terminal is None and _is_terminal_view(view):
            self.terminal = view


def _is_terminal_view(view: Mapping[str, Any]) -> bool:
    return (view.get("status") or {}).get("phase") in _TERMINAL_NAMES


class _PassIO:
    """``StatusIO`` for one pass over one object."""

    def __init__(
        self,
        api: NotificationApi,
        ref: ObjectRef,
        cached: Mapping[str, Any],
        known: _Known | None = None,
    ) -> None:
        self._api = api
        self._ref = ref
        self._cached = cached
        self._known = known if known is not None else _Known()
        self.transitions: list[_Transition] = []
        self.reads = 0
        self.writes = 0

    @property
    def cached(self) -> Mapping[str, Any]:
        """The body the pass started from."""
        return self._cached

    async def read(self) -> Mapping[str, Any]:
        """GET from the API server; ``ObjectGone`` if deleted or replaced."""
        self.reads += 1
        try:
            obj = await self._api.get_notification(self._ref.namespace, self._ref.name)
        except NotFoundError as exc:
            raise ObjectGone(str(exc)) from exc
        if ObjectRef.of(obj).uid != self._ref.uid:
            raise ObjectGone(f"{self._ref.namespace}/{self._ref.name} was recreated")
        return obj

    def freshest(self, view: Mapping[str, Any]) -> Mapping[str, Any]:
        """``view``, or this replica's last written version when ``view`` is provably older."""
        return self._known.freshest(view)

    async def write(self, base: Mapping[str, Any], status: NotificationStatus) -> Mapping[str, Any]:
        """PUT ``/status`` with ``base``'s resourceVersion; refuses invalid transitions."""
        previous = parse_status(base).phase
        if status.phase != previous:
            if status.phase is None:
                raise ValueError("a status write cannot remove the phase")
            # The planner only produces valid transitions; this guard makes "an invalid
            # transition is never written" hold for every strategy, variants included.
            check_transition(previous, status.phase)
        body = {
            "apiVersion": base.get("apiVersion"),
            "kind": base.get("kind"),
            "metadata": base.get("metadata"),
            "spec": base.get("spec"),
            "status": status_to_wire(status),
        }
        self.writes += 1
        try:
            written = await self._api.replace_notification_status(body)
        except NotFoundError as exc:
            raise ObjectGone(str(exc)) from exc
        if _rv(written) != _rv(base):  # a no-op write keeps the resourceVersion
            self._known.superseded.add(_rv(base))
            self._known.latest = written
        if status.phase is not None and status.phase != previous:
            self.transitions.append(
                _Transition(written, previous, status.phase, status.message or "")
            )
        return written


class NotificationController:
    """One replica's controller state: strategy, channels, sinks, timers, locks, outbox."""

    def __init__(
        self,
        config: ControllerConfig,
        *,
        api: NotificationApi,
        strategy: RecordingStrategy,
        channels: Mapping[ChannelName, Channel],
        audit_sink: AuditSink,
        event_sink: EventSink,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        redactor: Redactor | None = None,
        closers: Sequence[Callable[[], Any]] = (),
    ) -> None:
        self.config = config
        self.identity = config.identity
        self.api = api
        self.strategy = strategy
        self.channels = dict(channels)
        self.audit_sink = audit_sink
        self.event_sink = event_sink
        self.clock = clock
        self.backoff = Backoff(
            time_scale=config.time_scale,
            rng=rng if rng is not None else random.Random(config.seed),
        )
        self.redactor = redactor or default_redactor()
        self.planner = StatusPlanner(
            holder=self.identity,
            claim_timeout=config.effective_claim_timeout,
            clock=clock,
            backoff=self.backoff,
            default_channels=config.default_channels,
        )
        self._closers = tuple(closers)
        self._locks: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, tuple[float, asyncio.Task[None]]] = {}
        self._outbox: dict[str, tuple[DeliveryAttempt, ...]] = {}
        self._errors: dict[str, int] = {}
        self._orphans_seen: dict[str, set[tuple[str, int, datetime]]] = {}
        self._known: dict[str, _Known] = {}
        self._closed = False

    # -- entry points ------------------------------------------------------------------

    async def on_watch_event(self, event_type: str | None, obj: Mapping[str, Any]) -> None:
        """Handle one watch event (kopf's ``on.event``): a pass from the event's body."""
        ref = ObjectRef.of(obj)
        if not ref.uid:
            return
        if event_type == "DELETED":
            self.forget(ref.uid)
            _slog(
                logging.DEBUG, "object.deleted", namespace=ref.namespace, name=ref.name, uid=ref.uid
            )
            return
        await self.reconcile(ref, cached=obj)

    async def reconcile(self, ref: ObjectRef, *, cached: Mapping[str, Any] | None = None) -> None:
        """One pass over ``ref``: from ``cached`` if given (a watch body), else a fresh GET.

        Never raises for per-object problems: they are logged and the object is requeued
        with an exponential error backoff.
        """
        if self._closed:
            return
        lock = self._locks.setdefault(ref.uid, asyncio.Lock())
        async with lock:
            try:
                await self._pass(ref, cached)
            except ObjectGone:
                self.forget(ref.uid)
            except Exception as exc:
                errors = self._errors.get(ref.uid, 0) + 1
                self._errors[ref.uid] = errors
                delay = min(self.config.error_backoff * 2 ** (errors - 1), _MAX_ERROR_BACKOFF)
                delay *= self.config.time_scale
                _log.warning(
                    "reconcile.failed %s",
                    json.dumps(
                        {
                            "namespace": ref.namespace,
                            "name": ref.name,
                            "uid": ref.uid,
                            "error": f"{type(exc).__name__}: {exc}",
                            "retry_in": delay,
                        }
                    ),
                    exc_info=not isinstance(exc, ConflictError | TooManyConflicts),
                )
                self._schedule(ref, delay)
            else:
                self._errors.pop(ref.uid, None)

    def forget(self, uid: str) -> None:
        """Drop all state of an object that is gone (timer, outbox, lock when idle)."""
        entry = self._timers.pop(uid, None)
        if entry is not None and entry[1] is not asyncio.current_task():
            entry[1].cancel()
        self._outbox.pop(uid, None)
        self._errors.pop(uid, None)
        self._orphans_seen.pop(uid, None)
        self._known.pop(uid, None)
        lock = self._locks.get(uid)
        if lock is not None and not lock.locked():
            self._locks.pop(uid, None)

    async def close(self) -> None:
        """Cancel the timers and close the HTTP sessions (idempotent)."""
        self._closed = True
        timers = [task for _, task in self._timers.values()]
        self._timers.clear()
        for task in timers:
            task.cancel()
        for task in timers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for closer in self._closers:
            result = closer()
            if asyncio.iscoroutine(result):
                await result
        await self.api.close()

    @property
    def pending_timers(self) -> dict[str, float]:
        """``uid -> seconds until the requeue`` (for diagnostics and tests)."""
        loop = asyncio.get_running_loop()
        return {uid: max(due - loop.time(), 0.0) for uid, (due, _) in self._timers.items()}

    # -- the pass ----------------------------------------------------------------------

    async def _pass(self, ref: ObjectRef, cached: Mapping[str, Any] | None) -> None:
        known = self._known.setdefault(ref.uid, _Known())
        if cached is None:
            cached = await _PassIO(self.api, ref, {}, known).read()
        io = _PassIO(self.api, ref, cached, known)
        obj: Mapping[str, Any] = cached
        finished = False
        try:
            for _ in range(_MAX_STEPS):
                outbox = self._outbox.get(ref.uid)
                if outbox:
                    # Delivered earlier, not recorded yet (the record write failed): record,
                    # never deliver again.
                    obj = await self.strategy.record(io, self.planner, obj, outbox)
                    self._outbox.pop(ref.uid, None)
                    await self._audit(ref, obj, outbox)
                    continue
                status = parse_status(obj)
                if is_terminal(status.phase):
                    # Remembered, so a later pass from a lagging read (a timer pass queued
                    # before this one) starts from it instead of claiming what is done and
                    # conflicting until the lag ends.
                    known.saw(obj)
                    finished = True
                    break
                meta = obj.get("metadata") or {}
                if meta.get("deletionTimestamp"):
                    finished = True  # being deleted: no new deliveries
                    break
                try:
                    spec = parse_spec(obj)
                except ValidationError as exc:
                    obj = await self._fail(io, obj, Reason.INVALID_SPEC, _short(exc))
                    continue
                if status.phase is None:
                    obj = await self._initialize(io, io.freshest(obj))
                    continue
                if not resolve_channels(spec, self.config.default_channels):
                    obj = await self._fail(
                        io, obj, Reason.NO_CHANNELS, "No delivery channels resolved"
                    )
                    continue
                grant = await self.strategy.claim(io, self.planner, obj)
                obj = grant.obj
                if not grant.granted:
                    finished = True
                    break
                batch = await self._deliver(ref, obj, grant.granted)
                self._outbox[ref.uid] = batch
                obj = await self.strategy.record(io, self.planner, obj, batch)
                self._outbox.pop(ref.uid, None)
                await self._audit(ref, obj, batch)
        finally:
            await self._announce(io)
        if not finished:
            # Too many steps in one pass (e.g. a variant that never converges): yield.
            self._schedule(ref, self.config.error_backoff * self.config.time_scale)
            return
        self._requeue(ref, obj)

    async def _initialize(self, io: _PassIO, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        for _ in range(self.config.max_conflicts):
            if parse_status(obj).phase is not None:
                return obj
            try:
                return await io.write(obj, self.planner.initialized(obj))
            except ConflictError:
                obj = io.freshest(await io.read())
        raise TooManyConflicts("initialize: too many conflicts")

    async def _fail(
        self, io: _PassIO, obj: Mapping[str, Any], reason: str, message: str
    ) -> Mapping[str, Any]:
        for _ in range(self.config.max_conflicts):
            phase = parse_status(obj).phase
            if phase is None:
                return await self._initialize(io, obj)  # Failed is reachable from Pending only
            if is_terminal(phase):
                return obj
            try:
                return await io.write(obj, self.planner.failed(obj, reason, message))
            except ConflictError:
                obj = io.freshest(await io.read())
        raise TooManyConflicts("fail: too many conflicts")

    async def _deliver(
        self, ref: ObjectRef, obj: Mapping[str, Any], granted: Sequence[ClaimRequest]
    ) -> tuple[DeliveryAttempt, ...]:
        spec = parse_spec(obj)
        status = parse_status(obj)
        meta = obj.get("metadata") or {}
        policy = spec.effective_retry_policy

        async def deliver(request: ClaimRequest) -> tuple[Outcome, datetime, float]:
            # The one place every channel's input is made: redacted here, for all of them
            # (built-in, unconfigured or injected), so a channel cannot forget it.
            delivery = DeliveryRequest(
                uid=ref.uid,
                namespace=ref.namespace,
                name=ref.name,
                channel=request.channel,
                attempt=request.attempt,
                spec=spec,
                subject=spec.subject,
                body=spec.body,
                metadata=spec.metadata,
                holder=self.identity,
                labels=dict(meta.get("labels") or {}),
                annotations=dict(meta.get("annotations") or {}),
                phase=status.phase,
                successful_deliveries=status.successful_deliveries,
                failed_deliveries=status.failed_deliveries,
            ).redacted(self.redactor)
            channel = self.channels.get(request.channel)
            # The loop's clock, as kopf measures its own delays and timeouts: the timeout
            # that ends an attempt runs on it, so the duration agrees with that timeout.
            loop = asyncio.get_running_loop()
            started = loop.time()
            if channel is None:
                outcome = Outcome.permanent_failure(
                    ErrorKind.NOT_CONFIGURED, f"channel not configured: {request.channel.value}"
                )
            else:
                try:
                    outcome = await channel.deliver(delivery)
                except Exception as exc:  # a channel bug is a failed attempt, not a lost one
                    outcome = classify_exception(request.channel.value, exc)
            return outcome, self.clock(), loop.time() - started

        results = await asyncio.gather(*(deliver(request) for request in granted))
        batch = []
        # Jitter is drawn in claim order, after all deliveries returned, so a seeded run
        # draws the same numbers regardless of which endpoint answered first.
        for request, (outcome, finished_at, duration) in zip(granted, results, strict=True):
            next_at = None
            if (
                not outcome.success
                and not outcome.permanent
                and request.attempt < policy.max_attempts
            ):
                delay = self.backoff.delay(policy, request.attempt, retry_after=outcome.retry_after)
                next_at = finished_at + timedelta(seconds=delay)
            attempt = DeliveryAttempt(
                channel=request.channel,
                attempt=request.attempt,
                timestamp=finished_at,
                status=AttemptStatus.SUCCESS if outcome.success else AttemptStatus.FAILED,
                error=outcome.error,
                duration_seconds=round(duration, 6),
                permanent=outcome.permanent,
                next_attempt_at=next_at,
                holder=self.identity,
            )
            batch.append(attempt)
            _slog(
                logging.INFO,
                "delivery.attempt",
                namespace=ref.namespace,
                name=ref.name,
                uid=ref.uid,
                channel=request.channel.value,
                attempt=request.attempt,
                outcome="success" if outcome.success else "failure",
                permanent=outcome.permanent,
                error=outcome.error,
                kind=outcome.kind.value if outcome.kind else None,
                takeover_from=request.takeover_from,
                next_attempt_at=next_at.isoformat() if next_at else None,
                holder=self.identity,
            )
        return tuple(batch)

    async def _audit(
        self, ref: ObjectRef, obj: Mapping[str, Any], batch: Sequence[DeliveryAttempt]
    ) -> None:
        """One audit record per attempt, after the batch was recorded.

        After, not before: the claim timeout only has to cover delivering and recording,
        never a slow audit sink (a claim that expires mid-pass could be taken over).
        """
        try:
            spec = parse_spec(obj)
        except ValidationError:
            return
        for attempt in batch:
            ok = attempt.status is AttemptStatus.SUCCESS
            record = AuditRecord(
                event_type=EVENT_SENT if ok else EVENT_FAILED,
                correlation_id=correlation_id(spec.metadata, ref.uid),
                namespace=ref.namespace,
                name=ref.name,
                uid=ref.uid,
                channel=attempt.channel.value,
                attempt=attempt.attempt,
                outcome="success" if ok else "failure",
                timestamp=attempt.timestamp,
                holder=attempt.holder or self.identity,
                idempotency_key=f"{ref.uid}/{attempt.channel.value}/{attempt.attempt}",
                duration_seconds=attempt.duration_seconds or 0.0,
                error=attempt.error,
                error_type=None if ok else ("permanent" if attempt.permanent else "transient"),
                priority=spec.priority.value,
                notification_type=spec.type.value,
            )
            try:
                await self.audit_sink.emit(record)
            except Exception as exc:  # the delivery happened; never fail (and repeat) it
                _log.warning("audit.failed %s", json.dumps({"uid": ref.uid, "error": str(exc)}))

    async def _announce(self, io: _PassIO) -> None:
        for transition in io.transitions:
            _slog(
                logging.INFO,
                "phase.changed",
                namespace=ObjectRef.of(transition.obj).namespace,
                name=ObjectRef.of(transition.obj).name,
                uid=ObjectRef.of(transition.obj).uid,
                previous=transition.previous.value if transition.previous else None,
                phase=transition.phase.value,
                holder=self.identity,
            )
            event = phase_event(
                transition.obj, transition.previous, transition.phase, transition.message
            )
            try:
                await self.event_sink.emit(event)
            except Exception as exc:
                _log.warning(
                    "event.failed %s", json.dumps({"reason": event.reason, "error": str(exc)})
                )
        io.transitions.clear()

    # -- requeues ----------------------------------------------------------------------

    def _requeue(self, ref: ObjectRef, obj: Mapping[str, Any]) -> None:
        status = parse_status(obj)
        if is_terminal(status.phase) or (obj.get("metadata") or {}).get("deletionTimestamp"):
            self._cancel_timer(ref.uid)
            return
        try:
            plan = self.planner.plan(obj)
        except ValidationError:
            return
        soon = self.config.error_backoff * self.config.time_scale
        if plan.requests:
            # Due now but not claimed in this pass (the step budget ran out): come back soon.
            self._schedule(ref, soon)
            return
        if plan.wake_at is not None:
            delay = max((plan.wake_at - self.clock()).total_seconds(), 0.0)
            orphans = {
                (claim.channel.value, claim.attempt, claim.claimed_at)
                for claim in status.claims
                if claim.holder == self.identity
            }
            seen = self._orphans_seen.setdefault(ref.uid, set())
            if orphans - seen:
                # A claim of ours that no pass of ours holds: either this view is stale (a
                # lagging read; our record is already written) or we restarted after a
                # crash. Look again soon -- once per claim; after that, the claim expiry.
                seen |= orphans
                delay = min(delay, soon)
            self._schedule(ref, delay)

    def _schedule(self, ref: ObjectRef, delay: float) -> None:
        """Requeue ``ref`` after ``delay`` seconds unless an earlier requeue is pending."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        existing = self._timers.get(ref.uid)
        if existing is not None and not existing[1].done():
            if existing[0] <= due:
                return
            if existing[1] is not asyncio.current_task():
                existing[1].cancel()
        task = loop.create_task(self._timer(ref, delay), name=f"requeue {ref.namespace}/{ref.name}")
        self._timers[ref.uid] = (due, task)

    def _cancel_timer(self, uid: str) -> None:
        self._orphans_seen.pop(uid, None)
        entry = self._timers.pop(uid, None)
        if entry is not None and entry[1] is not asyncio.current_task():
            entry[1].cancel()

    async def _timer(self, ref: ObjectRef, delay: float) -> None:
        await asyncio.sleep(delay)
        entry = self._timers.get(ref.uid)
        if entry is not None and entry[1] is asyncio.current_task():
            del self._timers[ref.uid]
        await self.reconcile(ref)


def _short(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(item) for item in error.get("loc", ()))
        parts.append(f"spec.{location}: {error.get('msg')}")
    return "; ".join(parts)[:500]
