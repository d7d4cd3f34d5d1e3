"""Fake external delivery endpoints: stand-ins for Slack incoming webhooks and plain webhooks.

A ``Sink`` is a real HTTP (or HTTPS) server on 127.0.0.1 that records every call it
receives and answers from a script. It is the plugin's view of "what the outside world
received": the seed's final fix made the *recorded* attempt count right while the webhook
was still called twice, so the invariants compare the controller's status against these
records, call by call (README.md, "The hidden duplicate").

Usable from plain Python::

    with Sink("slack") as slack:
        handle = slack.script(sequence([502, 200]), uid=obj_uid)
        ...  # run the controller against slack.url
        slack.wait_for_calls(2, uid=obj_uid)
        handle.remove()

Each call is attributed to the object it is about, a key (what the call is, e.g. a
delivery and its attempt) and free attributes, by the sink's ``identify=`` callable
(``Attribution``). The default reads a documented generic header scheme
(``X-Ntinv-Uid``, ``-Namespace``, ``-Name``, ``-Key``; see ``identify_by_headers``); a pack
gives a controller's own scheme through the ``pytest_ntinvariants_attribute_call`` hook.

Replies are scripted with undoable rules (``Sink.script`` returns a ``ScriptHandle``);
later rules take precedence over earlier ones, and the default reply is Slack's: 200 with
the ``text/plain`` body ``ok``. The sink answers from its own event loop in a
``LoopThread``; anything that goes wrong there (a failing listener or ``identify``) is
re-raised by ``stop()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, Self, TypeAlias

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy, MultiMapping

from ._loopthread import GuestThread, LoopThread
from .tls import CertificateAuthority, KeyPair, self_signed

__all__ = [
    "HEADER_KEY",
    "HEADER_NAME",
    "HEADER_NAMESPACE",
    "HEADER_UID",
    "Attribution",
    "Gate",
    "Identify",
    "ObjectKey",
    "Reply",
    "ReplySequence",
    "ScriptHandle",
    "Sink",
    "SinkCall",
    "SinkRequest",
    "TlsMode",
    "UndoHandle",
    "abort",
    "empty",
    "identify_by_headers",
    "malformed_json",
    "reply",
    "sequence",
]

#: The generic attribution headers ``identify_by_headers`` reads: a controller that sends
#: them with each outside call gets its calls attributed with no code of the test's own.
HEADER_UID = "X-Ntinv-Uid"
HEADER_NAMESPACE = "X-Ntinv-Namespace"
HEADER_NAME = "X-Ntinv-Name"
HEADER_KEY = "X-Ntinv-Key"

#: How a sink serves: a valid certificate from its CA, or one of the broken kinds the
#: seed's TLS suite probed (each must be classified as a permanent failure, BR-NOT-058).
TlsMode: TypeAlias = Literal["valid", "self-signed", "expired", "wrong-host"]
_TLS_MODES: tuple[str, ...] = ("valid", "self-signed", "expired", "wrong-host")

_TEXT_PLAIN = "text/plain; charset=utf-8"
_JSON = "application/json"
# A JSON document cut short: what a proxy that truncates a reply delivers.
_MALFORMED_JSON = b'{"ok": true, "channel": "C0'
# How long stop() lets a reply that is being written finish; paused replies never wait.
_SHUTDOWN_GRACE = 5.0


# --------------------------------------------------------------------------- gates


class Gate:
    """A one-shot barrier that holds scripted replies until ``open()`` is called.

    ``reply(200, hold=gate)`` makes the sink receive (and record) a call but withhold the
    answer: the controller is "in the middle of a delivery" for exactly as long as the
    test wants, with no sleeps (a gate, unlike timing, is deterministic). Opening is
    thread-safe and wakes every held reply; a gate stays open once opened.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def is_open(self) -> bool:
        """Whether ``open()`` has been called."""
        return self._open

    def open(self) -> None:
        """Release every reply held by this gate, now and in the future."""
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        """Wait (on any event loop) until the gate is open."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._open:
                return
            self._waiters.append((loop, future))
        try:
            await future
        finally:
            with self._lock:
                if (loop, future) in self._waiters:
                    self._waiters.remove((loop, future))

    def __repr__(self) -> str:
        return f"Gate({'open' if self._open else 'closed'})"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with ``reply()``, ``abort()``, ``empty()`` or
    ``malformed_json()`` rather than directly.

    ``status`` None means "close the connection without answering"; ``note`` names a
    deliberately odd reply in reports. ``delay`` (seconds) and then ``hold`` (a ``Gate``)
    are awaited on the server before answering; the call is recorded on arrival, before
    either.
    """

    status: int | None = 200
    body: bytes = b"ok"
    content_type: str | None = _TEXT_PLAIN
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0
    hold: Gate | None = field(default=None, compare=False)
    note: str = ""

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 999:
            raise ValueError(f"status must be an HTTP status code, got {self.status!r}")
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {self.delay!r}")

    @property
    def aborts(self) -> bool:
        """Whether this reply closes the connection instead of answering."""
        return self.status is None

    def describe(self) -> str:
        """A short human-readable form, e.g. ``502 (Retry-After: 3) after 0.5s``."""
        text = "abort" if self.status is None else str(self.status)
        if self.note:
            text += f" {self.note}"
        extras = [f"{k}: {v}" for k, v in self.headers if k.lower() == "retry-after"]
        if extras:
            text += f" ({', '.join(extras)})"
        if self.delay:
            text += f" after {self.delay:g}s"
        if self.hold is not None:
            text += " held"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for reports."""
        return {
            "status": self.status,
            "aborted": self.aborts,
            "content_type": self.content_type,
            "headers": dict(self.headers),
            "body": _body_text(self.body),
            "delay": self.delay,
            "held": self.hold is not None,
            "note": self.note,
        }


@dataclass(frozen=True)
class ReplySequence:
    """Replies given in turn, one per matching call; the last one repeats."""

    steps: tuple[Reply, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a reply sequence needs at least one step")

    def at(self, position: int) -> Reply:
        """The reply for the ``position``-th matching call (0-based)."""
        return self.steps[min(position, len(self.steps) - 1)]

    def describe(self) -> str:
        """A short human-readable form, e.g. ``[502, 200...]``."""
        return "[" + ", ".join(step.describe() for step in self.steps) + "...]"


def reply(
    status: int = 200,
    *,
    body: bytes | str | None = None,
    json: Any = None,
    content_type: str | None = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    retry_after: float | str | None = None,
    delay: float = 0.0,
    hold: Gate | None = None,
) -> Reply:
    """A reply with ``status``; by default a ``text/plain`` body like Slack's.

    The default body is ``ok`` for a 2xx status and the status phrase otherwise. ``json``
    (any JSON-serializable value) replaces the body and sets ``application/json``;
    ``retry_after`` adds a ``Retry-After`` header (seconds, or an HTTP date as a string).
    """
    if body is not None and json is not None:
        raise ValueError("give body or json, not both")
    pairs = list(headers.items() if isinstance(headers, Mapping) else (headers or ()))
    if retry_after is not None:
        if isinstance(retry_after, float) and retry_after.is_integer():
            retry_after = int(retry_after)
        pairs.append(("Retry-After", str(retry_after)))
    if json is not None:
        data = orjson.dumps(json)
        kind: str | None = content_type or _JSON
    elif body is not None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        kind = content_type or _TEXT_PLAIN
    else:
        data = b"ok" if 200 <= status < 300 else _phrase(status).encode("ascii")
        kind = content_type or _TEXT_PLAIN
    return Reply(
        status=status, body=data, content_type=kind, headers=tuple(pairs), delay=delay, hold=hold
    )


def malformed_json(status: int = 200, *, delay: float = 0.0, hold: Gate | None = None) -> Reply:
    """A reply that claims ``application/json`` but carries a truncated document.

    The seed's Slack mock had this failure mode ("malformed-json", status 200).
    """
    return Reply(
        status=status,
        body=_MALFORMED_JSON,
        content_type=_JSON,
        delay=delay,
        hold=hold,
        note="malformed-json",
    )


def empty(status: int = 200, *, delay: float = 0.0, hold: Gate | None = None) -> Reply:
    """A reply with no body and no ``Content-Type`` (the seed mock's "empty-response")."""
    return Reply(status=status, body=b"", content_type=None, delay=delay, hold=hold, note="empty")


def abort(*, delay: float = 0.0, hold: Gate | None = None) -> Reply:
    """Close the connection without a reply (after ``delay`` / ``hold``, if given).

    Clients see a connection reset or a server disconnect: a retryable transport error.
    """
    return Reply(status=None, body=b"", content_type=None, delay=delay, hold=hold)


def sequence(steps: Iterable[Reply | int]) -> ReplySequence:
    """Replies in turn, the last repeating: ``sequence([502, 200])`` is "502 once, then 200"."""
    return ReplySequence(tuple(_as_reply(step) for step in steps))


def _as_reply(value: Reply | int) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a Reply or an HTTP status code, got {value!r}")
    return reply(value)


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return f"status {status}"


def _body_text(body: bytes) -> str:
    return body.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class ObjectKey:
    """The Kubernetes object a call is about (any part may be unknown)."""

    uid: str | None = None
    namespace: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        where = self.name_key
        uid = f"uid {self.uid}" if self.uid else ""
        return f"{where} ({uid})" if where and uid else where or uid or "unknown object"

    @property
    def name_key(self) -> str:
        """``namespace/name``, or ``name`` without a namespace (client-go's cache key)."""
        return f"{self.namespace}/{self.name or ''}" if self.namespace else self.name or ""

    def to_dict(self) -> dict[str, str | None]:
        """A JSON-ready form."""
        return {"uid": self.uid, "namespace": self.namespace, "name": self.name}


@dataclass(frozen=True, eq=False, kw_only=True)
class SinkRequest:
    """A request as the sink received it; what ``identify`` and ``match`` callables see.

    ``headers`` and ``query`` are read-only multidicts (headers case-insensitive).
    """

    sink: str = ""
    """The name of the sink that received it (a pack's default key, say)."""
    method: str
    path: str
    query: MultiMapping[str]
    headers: CIMultiDictProxy[str]
    body: bytes
    remote: str | None

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return _body_text(self.body)

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None if it is not JSON.

        Parsed afresh on each access, so a caller can never change a record through it.
        """
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None

    @property
    def is_json(self) -> bool:
        """Whether the body is a well-formed JSON document."""
        try:
            orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return False
        return True


@dataclass(frozen=True, eq=False, kw_only=True)
class SinkCall(SinkRequest):
    """One call the sink received: the request, when, about what, and what it answered.

    ``index`` counts calls over the sink's life from 0 (``clear()`` does not reset it);
    ``monotonic`` is the sink loop's ``time()`` (``time.monotonic()``, or a deterministic
    world's virtual time) and ``wall`` the sink's clock (``time.time()``), both taken on
    arrival. ``reply`` is the answer chosen on arrival and ``rule`` names what chose it:
    ``"default"``, ``"strict_json"``, ``"identify_error"``, ``"too_large"`` or a script's label.
    ``caller`` is the identity of the controller replica that made the call, when the
    sink's gate can tell (a deterministic world knows whose connection it was).
    Calls compare by identity.
    """

    index: int
    monotonic: float
    wall: float
    object_key: ObjectKey | None
    key: str
    attributes: Mapping[str, Any]
    reply: Reply
    rule: str
    caller: str | None = None

    @property
    def status(self) -> int | None:
        """The HTTP status answered, or None if the connection was closed instead."""
        return self.reply.status

    @property
    def uid(self) -> str | None:
        """The object's uid, if known."""
        return self.object_key.uid if self.object_key else None

    @property
    def name(self) -> str | None:
        """The object's name, if known."""
        return self.object_key.name if self.object_key else None

    @property
    def namespace(self) -> str | None:
        """The object's namespace, if known."""
        return self.object_key.namespace if self.object_key else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form for reports and the ledger."""
        # str(): multidict keys are str subclasses (istr), which JSON encoders refuse.
        headers: dict[str, str] = {}
        for key, value in self.headers.items():
            name = str(key)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        query: dict[str, list[str]] = {}
        for key, value in self.query.items():
            query.setdefault(str(key), []).append(value)
        return {
            "sink": self.sink,
            "index": self.index,
            "monotonic": self.monotonic,
            "wall": self.wall,
            "method": self.method,
            "path": self.path,
            "query": query,
            "headers": headers,
            "remote": self.remote,
            "body": _body_text(self.body),
            "json": self.json,
            "object_key": self.object_key.to_dict() if self.object_key else None,
            "key": self.key,
            "attributes": dict(self.attributes),
            "reply": self.reply.to_dict(),
            "rule": self.rule,
            "caller": self.caller,
        }

    def __repr__(self) -> str:
        about = f" {self.object_key}" if self.object_key else ""
        attrs = "".join(f" {k} {v}" for k, v in self.attributes.items() if v is not None)
        return (
            f"<SinkCall {self.sink}#{self.index} {self.method} {self.path}{about}"
            f" [{self.key}{attrs}] -> {self.reply.describe()} by {self.rule}>"
        )


@dataclass(frozen=True)
class Attribution:
    """What a call is about: the object (``object_key``), a ``key`` naming the side effect
    (at most one successful call per object and key is expected; "" means the sink's
    name), and free ``attributes`` that scripts, queries and packs filter and report on."""

    object_key: ObjectKey | None = None
    key: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)


#: ``identify(request) -> Attribution`` (None: nothing known; the key is the sink's name).
Identify: TypeAlias = Callable[[SinkRequest], "Attribution | None"]


class ReplyGate(Protocol):
    """Holds each call a sink receives until a scheduler lets it in (a deterministic
    world's engine); the call is then recorded and answered."""

    async def hold_call(self, sink: str, method: str, path: str, peer: Any) -> None:
        """Return when the call from ``peer`` (the client's address) may go on."""

    def caller(self, peer: Any) -> str | None:
        """The identity of the replica calling from ``peer`` (None: not one it knows)."""


def identify_by_headers(request: SinkRequest) -> Attribution | None:
    """The default attribution, by the generic headers ``X-Ntinv-Uid``, ``X-Ntinv-Namespace``,
    ``X-Ntinv-Name`` (the object) and ``X-Ntinv-Key`` (the side effect; the sink's name
    when absent). None when the call carries none of them."""
    uid = request.headers.get(HEADER_UID)
    namespace = request.headers.get(HEADER_NAMESPACE)
    name = request.headers.get(HEADER_NAME)
    key = request.headers.get(HEADER_KEY) or ""
    ref = ObjectKey(uid, namespace, name) if uid or namespace or name else None
    if ref is None and not key:
        return None
    return Attribution(ref, key)


# --------------------------------------------------------------------------- handles


class UndoHandle:
    """Undoes one registration (``Sink.on_call``): ``remove()`` is idempotent, and the
    handle is a context manager that removes on exit (``_pytest/monkeypatch.py`` style).
    """

    def __init__(self, remove: Callable[[], None]) -> None:
        self._remove: Callable[[], None] | None = remove

    def remove(self) -> None:
        """Undo the registration; later calls do nothing."""
        remove, self._remove = self._remove, None
        if remove is not None:
            remove()

    @property
    def removed(self) -> bool:
        """Whether ``remove()`` was called."""
        return self._remove is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


@dataclass(frozen=True)
class _Filter:
    uid: str | None = None
    namespace: str | None = None
    name: str | None = None
    key: str | None = None
    attributes: tuple[tuple[str, Any], ...] = ()

    def __str__(self) -> str:
        given = [
            f"{k}={v!r}"
            for k, v in [*vars(self).items(), *self.attributes]
            if v is not None and k != "attributes"
        ]
        return ", ".join(given) if given else "anything"

    def accepts(self, ref: ObjectKey | None, key: str, attributes: Mapping[str, Any]) -> bool:
        if self.key is not None and key != self.key:
            return False
        # An attribute filter matches the value the attribution gave (None: it gave none).
        if any(attributes.get(k) != v for k, v in self.attributes if v is not None):
            return False
        if self.uid is None and self.namespace is None and self.name is None:
            return True
        if ref is None:
            return False
        return (
            (self.uid is None or ref.uid == self.uid)
            and (self.namespace is None or ref.namespace == self.namespace)
            and (self.name is None or ref.name == self.name)
        )


class ScriptHandle(UndoHandle):
    """Undo handle of ``Sink.script``: ``remove()`` withdraws the rule; ``hits`` counts
    the calls it answered. Also a context manager that removes the rule on exit.
    """

    def __init__(
        self,
        remove: Callable[[], None],
        *,
        label: str,
        replies: ReplySequence,
        where: _Filter,
        match: Callable[[SinkRequest], bool] | None,
        times: int | None,
        per_object: bool,
    ) -> None:
        super().__init__(remove)
        self.label = label
        """The name recorded as ``SinkCall.rule`` for the calls this rule answered."""
        self._replies = replies
        self._where = where
        self._match = match
        self._times = times
        self._per_object = per_object
        self._hits = 0
        self._hits_by_key: dict[tuple[ObjectKey | None, str], int] = {}

    @property
    def hits(self) -> int:
        """How many calls this rule has answered."""
        return self._hits

    @property
    def exhausted(self) -> bool:
        """Whether ``times`` is used up (never, for a ``per_object`` rule)."""
        return not self._per_object and self._times is not None and self._hits >= self._times

    def _take(
        self, request: SinkRequest, ref: ObjectKey | None, name: str, attributes: Mapping[str, Any]
    ) -> Reply | None:
        # Runs under the sink's lock, on the server thread.
        if not self._where.accepts(ref, name, attributes):
            return None
        key = (ref, name)
        used = self._hits_by_key.get(key, 0) if self._per_object else self._hits
        if self._times is not None and used >= self._times:
            return None
        if self._match is not None and not self._match(request):
            return None
        self._hits += 1
        if self._per_object:
            self._hits_by_key[key] = used + 1
        return self._replies.at(used)

    def __repr__(self) -> str:
        state = "removed" if self.removed else f"{self._hits} hit(s)"
        return f"<ScriptHandle {self.label}: {state}>"


# --------------------------------------------------------------------------- the sink


class Sink:
    """A fake delivery endpoint on 127.0.0.1 with recorded calls and scripted replies.

    ``name`` is the key of calls whose attribution gives none. ``identify`` attributes
    each call (``Attribution``); the default is ``identify_by_headers``.
    ``tls`` serves HTTPS with a certificate from ``ca`` (a fresh CA by default): "valid",
    or "self-signed", "expired" or "wrong-host" to make clients fail verification, or a
    ``KeyPair`` of your own. ``ca_path`` / ``ca_pem`` are the bundle clients should trust
    in every TLS mode, so the same client configuration meets each broken certificate.
    ``strict_json`` (default: on for a sink named "slack") answers 400
    ``invalid_payload`` to bodies that are not JSON, as Slack does. ``default`` replaces the
    200 ``ok`` reply given when no script matches. ``host`` serves from another
    ``LoopThread``'s loop (a deterministic world's) and ``clock`` gives the wall time calls
    are stamped with (``time.time`` by default).

    Start and stop are idempotent; as a context manager the sink starts on entry and
    stops on exit. ``stop()`` raises ``BackgroundError`` for errors on the server thread.
    """

    host = "127.0.0.1"
    """Where every sink listens: loopback only, never a public interface."""

    def __init__(
        self,
        name: str = "slack",
        *,
        tls: TlsMode | KeyPair | None = None,
        ca: CertificateAuthority | None = None,
        strict_json: bool | None = None,
        identify: Identify | None = None,
        default: Reply | int = 200,
        host: LoopThread | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        """The sink's name, and the key of calls whose attribution names none."""
        self.strict_json = name == "slack" if strict_json is None else strict_json
        """Whether bodies that are not JSON are answered 400 ``invalid_payload``."""
        self._identify = identify or identify_by_headers
        self._default = _as_reply(default)
        self._ca, self._keypair, tls_mode = _tls_setup(name, tls, ca)
        self.tls: str | None = tls_mode
        """The TLS mode ("valid", "self-signed", ..., "custom" for a KeyPair) or None."""

        # Reentrant: a match= callable runs under the lock and may query the sink.
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._calls: list[SinkCall] = []
        self._next_index = 0
        self._rules: list[ScriptHandle] = []
        self._labels = itertools.count(1)
        self._listeners: list[Callable[[SinkCall], None]] = []

        self._thread: LoopThread | None = None
        self._host = host
        self._clock = clock
        #: Holds each call until a scheduler lets it in (a deterministic world); None: never.
        self.gate: ReplyGate | None = None
        #: Runs that world until ``done()`` or ``timeout`` (see ``wait_for_calls``).
        self.driver: Callable[[Callable[[], bool], float], object] | None = None
        self._stopped = False
        self._port: int | None = None
        self._runner: web.ServerRunner | None = None
        self._closing: asyncio.Event | None = None
        self._workdir: Path | None = None
        self._cleanup_workdir: weakref.finalize[Any, Any] | None = None

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving (idempotent); returns the sink. A stopped sink cannot restart."""
        if self._thread is not None:
            if self._stopped:
                raise RuntimeError(f"sink {self.name!r} was stopped; create a new Sink")
            return self
        name = f"ntinvariants-sink-{self.name}"
        self._thread = (
            LoopThread(name, self._serve, self._shutdown)
            if self._host is None
            else GuestThread(self._host, name, self._serve, self._shutdown)
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (idempotent) and raise ``BackgroundError`` for background errors.

        Replies still paused (``delay`` or ``hold``) are dropped: their clients see the
        connection close.
        """
        with self._lock:
            already, self._stopped = self._stopped, True
            self._changed.notify_all()  # wake wait_for_calls() so it can give up now
        try:
            if not already and self._thread is not None:
                self._thread.stop()
        finally:
            if self._cleanup_workdir is not None:
                self._cleanup_workdir()

    @property
    def running(self) -> bool:
        """Whether the sink is serving."""
        return self._thread is not None and self._thread.running and not self._stopped

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not started"
        return f"<Sink {self.name!r} {where} calls={len(self._calls)}>"

    # -- addresses and trust ----------------------------------------------------------

    @property
    def scheme(self) -> str:
        """``https`` when serving TLS, else ``http``."""
        return "https" if self._keypair is not None else "http"

    @property
    def port(self) -> int:
        """The port the sink listens on (chosen by the OS at start)."""
        if self._port is None:
            raise RuntimeError(f"sink {self.name!r} is not started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:PORT/``; every path on it is served."""
        return f"{self.scheme}://{self.host}:{self.port}/"

    def url_for(self, path: str) -> str:
        """The URL of ``path`` on this sink, e.g. ``url_for("services/T0/B0/X")``."""
        return self.url + path.lstrip("/")

    @property
    def ca(self) -> CertificateAuthority | None:
        """The CA behind the sink's certificate (None for plain HTTP or a given KeyPair)."""
        return self._ca

    @property
    def keypair(self) -> KeyPair | None:
        """The certificate the sink serves (None for plain HTTP)."""
        return self._keypair

    @property
    def ca_pem(self) -> bytes | None:
        """The CA bundle clients should trust (PEM), or None for plain HTTP."""
        if self._keypair is None:
            return None
        if self._ca is not None:
            return self._ca.cert_pem
        return self._keypair.chain_pem or None

    @property
    def ca_path(self) -> Path | None:
        """``ca_pem`` written to a file (removed at ``stop()``), or None for plain HTTP."""
        pem = self.ca_pem
        if pem is None:
            return None
        if self._stopped:
            raise RuntimeError(f"sink {self.name!r} is stopped; its CA file was removed")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"ntinv-sink-{self.name}-"))
            # Also removed if the sink is never stopped (at collection or interpreter exit).
            self._cleanup_workdir = weakref.finalize(
                self, shutil.rmtree, str(self._workdir), ignore_errors=True
            )
        path = self._workdir / "ca.crt"
        if not path.exists():
            path.write_bytes(pem)
        return path

    # -- scripting ----------------------------------------------------------------------

    def script(
        self,
        replies: Reply | ReplySequence | int,
        *,
        times: int | None = None,
        uid: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        key: str | None = None,
        match: Callable[[SinkRequest], bool] | None = None,
        per_object: bool = False,
        label: str | None = None,
        **attributes: Any,
    ) -> ScriptHandle:
        """Answer matching calls with ``replies``; return a handle that undoes it.

        Rules are tried newest first; the first that matches and is not used up answers.
        A call matches when it carries the given ``uid`` / ``namespace`` / ``name`` /
        ``key``, every given attribute (``**attributes``, compared with the attribution's,
        e.g. ``channel="slack"`` under a pack that attributes channels) and
        ``match(request)`` (if given) is true. ``times`` limits the rule to that many
        calls, counted per (object, key) when ``per_object`` is set, as are a sequence's
        positions: ``script(sequence([502, 200]), per_object=True)`` fails every object's
        first call with each key once.
        """
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1, got {times!r}")
        steps = replies if isinstance(replies, ReplySequence) else sequence([replies])
        shown = steps.describe() if len(steps.steps) > 1 else steps.steps[0].describe()
        handle = ScriptHandle(
            lambda: self._unscript(handle),
            label=label or f"script#{next(self._labels)} {shown}",
            replies=steps,
            where=_Filter(uid, namespace, name, key, tuple(attributes.items())),
            match=match,
            times=times,
            per_object=per_object,
        )
        with self._lock:
            self._rules.append(handle)
        return handle

    def _unscript(self, handle: ScriptHandle) -> None:
        with self._lock:
            if handle in self._rules:
                self._rules.remove(handle)

    @property
    def scripts(self) -> list[ScriptHandle]:
        """The active rules, oldest first."""
        with self._lock:
            return list(self._rules)

    def reset(self) -> None:
        """Remove every script and clear the recorded calls."""
        for handle in self.scripts:
            handle.remove()
        self.clear()

    # -- listeners -----------------------------------------------------------------------

    def on_call(self, callback: Callable[[SinkCall], None]) -> UndoHandle:
        """Call ``callback(call)`` for each call from now on, in order; undo with the handle.

        Runs on the sink's server thread after the call is recorded and before it is
        answered, so it must not block; an exception it raises is re-raised by ``stop()``.
        """
        with self._lock:
            self._listeners.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return UndoHandle(remove)

    # -- queries ---------------------------------------------------------------------------

    @property
    def calls(self) -> list[SinkCall]:
        """A copy of the recorded calls, in arrival order."""
        with self._lock:
            return list(self._calls)

    def calls_for(
        self,
        *,
        uid: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        key: str | None = None,
        **attributes: Any,
    ) -> list[SinkCall]:
        """The recorded calls about the given object / key / attributes, in order."""
        where = _Filter(uid, namespace, name, key, tuple(attributes.items()))
        with self._lock:
            return [c for c in self._calls if where.accepts(c.object_key, c.key, c.attributes)]

    def count(
        self,
        *,
        uid: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        key: str | None = None,
        **attributes: Any,
    ) -> int:
        """How many recorded calls match (see ``calls_for``)."""
        return len(self.calls_for(uid=uid, namespace=namespace, name=name, key=key, **attributes))

    def clear(self) -> None:
        """Forget the recorded calls (indexes keep counting; scripts stay)."""
        with self._lock:
            self._calls.clear()

    def wait_for_calls(
        self,
        n: int = 1,
        timeout: float = 5.0,
        *,
        uid: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        key: str | None = None,
        **attributes: Any,
    ) -> list[SinkCall]:
        """Block until at least ``n`` matching calls are recorded; return them.

        Raises ``TimeoutError`` (naming what did arrive) after ``timeout`` seconds, or at
        once if the sink stops first.
        """
        __tracebackhide__ = True
        where = _Filter(uid, namespace, name, key, tuple(attributes.items()))

        def matching() -> list[SinkCall]:
            return [c for c in self._calls if where.accepts(c.object_key, c.key, c.attributes)]

        if self.driver is not None:  # a deterministic world: it runs while we wait
            self.driver(lambda: len(matching()) >= n or self._stopped, timeout)
            timeout = 0.0

        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = matching()
                if len(found) >= n:
                    return found
                remaining = deadline - time.monotonic()
                if self._stopped or remaining <= 0:
                    seen = "\n".join(f"  {c!r}" for c in self._calls[-20:]) or "  (none)"
                    why = "the sink stopped" if self._stopped else f"{timeout}s passed"
                    raise TimeoutError(
                        f"sink {self.name!r}: expected {n} call(s) matching ({where}), "
                        f"got {len(found)} before {why}; last calls:\n{seen}"
                    )
                self._changed.wait(remaining)

    # -- the server (runs on the LoopThread) ------------------------------------------------

    async def _serve(self) -> None:
        ssl_context = self._keypair.server_ssl_context() if self._keypair else None
        self._closing = asyncio.Event()
        # access_log=None: no log record per request (it costs more than the handler).
        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=_SHUTDOWN_GRACE)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, 0, ssl_context=ssl_context)
            await site.start()
        except BaseException:
            # LoopThread runs no teardown after a failed setup: clean up here.
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def _shutdown(self) -> None:
        if self._closing is not None:
            self._closing.set()  # paused replies give up rather than hold up the stop
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        caller = None
        if self.gate is not None:
            peer = request.transport.get_extra_info("peername") if request.transport else None
            caller = self.gate.caller(peer)
            await self.gate.hold_call(self.name, request.method, request.path, peer)
        arrived, wall = asyncio.get_running_loop().time(), self._clock()
        try:
            try:
                body = await request.read()
                too_large = False
            except web.HTTPRequestEntityTooLarge:  # over aiohttp's 1 MiB; Slack allows less
                body, too_large = b"", True
            info = SinkRequest(
                sink=self.name,
                method=request.method,
                path=request.path,
                query=request.query,
                headers=request.headers,
                body=body,
                remote=request.remote,
            )
            call, listeners = self._record(info, arrived, wall, too_large, caller)
        except Exception as error:  # a bug here must fail the test, not only log a 500
            self._report(error)
            return web.Response(status=500, text="sink error", content_type="text/plain")
        for listener in listeners:
            try:
                listener(call)
            except Exception as error:
                self._report(error)
        return await self._answer(request, call.reply)

    def _record(
        self,
        info: SinkRequest,
        arrived: float,
        wall: float,
        too_large: bool,
        caller: str | None = None,
    ) -> tuple[SinkCall, tuple[Callable[[SinkCall], None], ...]]:
        failed = False
        try:
            found = self._identify(info) or Attribution()
        except Exception as error:
            self._report(error)
            found, failed = Attribution(), True
        ref, key, attributes = found.object_key, found.key or self.name, dict(found.attributes)
        with self._lock:
            if failed:
                answer, rule = reply(500, body="identify failed"), "identify_error"
            elif too_large:
                answer, rule = reply(413), "too_large"
            elif self.strict_json and not info.is_json:
                answer, rule = reply(400, body="invalid_payload"), "strict_json"
            else:
                answer, rule = self._choose(info, ref, key, attributes)
            call = SinkCall(
                method=info.method,
                path=info.path,
                query=info.query,
                headers=info.headers,
                body=info.body,
                remote=info.remote,
                sink=self.name,
                index=self._next_index,
                monotonic=arrived,
                wall=wall,
                object_key=ref,
                key=key,
                attributes=attributes,
                reply=answer,
                rule=rule,
                caller=caller,
            )
            self._next_index += 1
            self._calls.append(call)
            self._changed.notify_all()
            return call, tuple(self._listeners)

    def _choose(
        self, info: SinkRequest, ref: ObjectKey | None, key: str, attributes: Mapping[str, Any]
    ) -> tuple[Reply, str]:
        for rule in reversed(self._rules):
            try:
                answer = rule._take(info, ref, key, attributes)
            except Exception as error:  # a broken match= callable: report, skip the rule
                self._report(error)
                continue
            if answer is not None:
                return answer, rule.label
        return self._default, "default"

    async def _answer(self, request: web.BaseRequest, answer: Reply) -> web.StreamResponse:
        if (answer.delay or answer.hold is not None) and not await self._pause(answer):
            return _drop(request)  # the sink is stopping
        if answer.status is None:
            return _drop(request)
        response = web.Response(status=answer.status, body=answer.body)
        for key, value in answer.headers:
            response.headers.add(key, value)
        if answer.content_type is not None:
            response.headers["Content-Type"] = answer.content_type
        return response

    async def _pause(self, answer: Reply) -> bool:
        """Wait out the reply's delay and gate; False if the sink began stopping first."""
        assert self._closing is not None

        async def pause() -> None:
            if answer.delay:
                await asyncio.sleep(answer.delay)
            if answer.hold is not None:
                await answer.hold.wait()

        paused = asyncio.ensure_future(pause())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((paused, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (paused, closing):
                task.cancel()
            await asyncio.gather(paused, closing, return_exceptions=True)
        return paused.done() and not paused.cancelled() and not self._closing.is_set()

    def _report(self, error: BaseException) -> None:
        if self._thread is not None:
            self._thread.report(error)


def _drop(request: web.BaseRequest) -> web.StreamResponse:
    # Abort rather than close: buffered output is discarded and the socket shut at once,
    # so the client sees the connection end with no reply, as when an endpoint crashes
    # mid-request. aiohttp finds the transport gone and sends nothing of this response.
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=500)


def _tls_setup(
    name: str, tls: TlsMode | KeyPair | None, ca: CertificateAuthority | None
) -> tuple[CertificateAuthority | None, KeyPair | None, str | None]:
    if tls is None:
        return ca, None, None
    if isinstance(tls, KeyPair):
        return ca, tls, "custom"
    if tls not in _TLS_MODES:
        raise ValueError(f"tls must be one of {', '.join(_TLS_MODES)} or a KeyPair, got {tls!r}")
    authority = ca or CertificateAuthority.generate(f"pytest-ntinvariants {name} sink CA")
    if tls == "valid":
        pair = authority.issue()
    elif tls == "self-signed":
        pair = self_signed()
    elif tls == "expired":
        pair = authority.issue_expired()
    else:
        pair = authority.issue_wrong_host()
    return authority, pair, tls
