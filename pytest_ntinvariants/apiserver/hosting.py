"""``FakeApiServer``: the fake kube-apiserver in a background thread, usable from plain Python.

    with FakeApiServer() as server:
        path = server.kubeconfig(identity="replica-a")
        ...  # any client with that kubeconfig talks to it over real HTTP

It binds 127.0.0.1 on a free port, returns from ``start()`` only when it is serving,
stops idempotently, and re-raises at ``stop()`` anything that failed in its thread.
Each identity gets its own bearer token in its own kubeconfig, so the server can tell
replicas apart (and the plugin can perturb what one of them sees).

Who may call without a token (``require_auth``): over https, nobody but a health probe,
by default; over plain http, anyone. kubectl and client-go send a kubeconfig's token only
over https (client-go's ``clientcmd`` drops credentials for an http:// server), so over
http an anonymous caller is what every Go client is, and refusing it would lock them out:
the fake then behaves like kube-apiserver's old insecure port, where every request was
allowed. Over https every client can present its token, and tokens are secret, so an
anonymous request is refused with kube's 401, as kube-apiserver with anonymous requests
limited to its health endpoints does (``anonymous.conditions`` in its
AuthenticationConfiguration): ``/healthz``, ``/livez`` and ``/readyz`` still answer, so
probes need no credentials. ``require_auth=True`` or ``False`` overrides either default.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import datetime
import functools
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from .. import _yaml
from .._files import write_private
from .._loopthread import GuestThread, LoopThread
from .connections import ConnectionLimits, GuardedSite
from .errors import NotFound
from .hooks import Gate, Interceptor
from .http import ApiHandler
from .registry import Registry
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import Store, WriteContext
from .watch import WatchHub

__all__ = ["DEFAULT_CERT_VALIDITY", "FakeApiServer", "InterceptorHandle"]

JSON = dict[str, Any]

# The longest request line served: kube-apiserver's MaxHeaderBytes.
MAX_REQUEST_LINE = 1 << 20

#: How long a TLS server's certificate (and the CA made for it) stays valid: a year, as
#: kube-apiserver's self-signed serving certificate does. Both are made at ``start()`` and
#: their keys never leave the process, so a long life costs nothing, and a server that
#: runs for days (``ntinv-apiserver``, a soak test) never presents an expired certificate.
DEFAULT_CERT_VALIDITY = datetime.timedelta(days=365)


@dataclass
class InterceptorHandle:
    """Undo for ``FakeApiServer.add_interceptor``."""

    server: FakeApiServer
    interceptor: Interceptor

    def remove(self) -> None:
        """Detach the interceptor (idempotent)."""
        if self.interceptor in self.server.interceptors:
            self.server.interceptors.remove(self.interceptor)


class FakeApiServer:
    """A kube-apiserver stand-in over real HTTP(S) on 127.0.0.1.

    Parameters: ``port`` (0 picks a free one), ``tls`` (serve https with a generated
    CA; ``ca_path`` is then the bundle clients trust), ``seed`` (generated names and
    uids replay), ``crds`` (CustomResourceDefinition manifests, dicts or YAML text,
    installed before ``start()`` returns), ``bookmark_interval`` and ``watch_timeout``
    in seconds, ``history_limit`` (events kept for watch resume; older ones get 410),
    ``require_auth`` (answer a request without a token with 401, health probes excepted;
    ``None``, the default, means yes over TLS and no over plain http, see the module's
    docstring; a token the server did not issue gets 401 always), ``cert_validity`` (how
    long the TLS certificate is valid from ``start()``), ``limits`` (a
    ``ConnectionLimits``: header, idle and body timeouts and the bound on open connections;
    kube-apiserver's values by default), ``clock`` (the time objects are stamped with;
    the real UTC time by default), ``host`` (serve from another ``LoopThread``'s loop, a
    deterministic world's, instead of a thread of its own).
    """

    def __init__(
        self,
        *,
        port: int = 0,
        tls: bool = False,
        seed: int = 0,
        crds: Iterable[JSON | str] = (),
        bookmark_interval: float = 5.0,
        watch_timeout: float = 1800.0,
        history_limit: int = 100_000,
        require_auth: bool | None = None,
        cert_validity: datetime.timedelta = DEFAULT_CERT_VALIDITY,
        limits: ConnectionLimits | None = None,
        clock: Callable[[], datetime.datetime] | None = None,
        host: LoopThread | None = None,
    ) -> None:
        if cert_validity <= datetime.timedelta(0):
            raise ValueError(f"cert_validity must be positive, not {cert_validity}")
        self.host = "127.0.0.1"
        self.port = port
        self.tls = tls
        self.limits = limits if limits is not None else ConnectionLimits()
        self.store = Store(Registry(), history_limit=history_limit, seed=seed, clock=clock)
        self._tokens: dict[str, str] = {}  # token -> identity
        #: The watches being served: the harness and perturbations reach them here.
        self.hub = WatchHub(self.store)
        self.handler = ApiHandler(
            self.store,
            hub=self.hub,
            tokens=self._tokens,
            bookmark_interval=bookmark_interval,
            watch_timeout=watch_timeout,
            require_auth=tls if require_auth is None else require_auth,
        )
        self.cert_validity = cert_validity
        self._crds = list(crds)
        self._thread: LoopThread = (
            LoopThread("ntinv-apiserver", self._setup, self._teardown)
            if host is None
            else GuestThread(host, "ntinv-apiserver", self._setup, self._teardown)
        )
        self._runner: web.AppRunner | None = None
        self._dir: Path | None = None
        self._ca_pem: bytes | None = None
        self._ssl: Any = None
        self._started = False

    # -------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """The server's base URL (``http://127.0.0.1:PORT``)."""
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def require_auth(self) -> bool:
        """Whether a request without a token is refused (health probes excepted)."""
        return self.handler.require_auth

    @property
    def gate(self) -> Gate | None:
        """What holds requests and watch deliveries for a scheduler (None: nothing)."""
        return self.handler.gate

    @gate.setter
    def gate(self, gate: Gate | None) -> None:
        self.handler.gate = gate

    @property
    def interceptors(self) -> list[Interceptor]:
        """The interceptors consulted on every request and delivery, in order."""
        return self.handler.interceptors

    @property
    def workdir(self) -> Path:
        """A private directory for kubeconfigs and certificates, removed at stop."""
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="ntinv-apiserver-"))
        return self._dir

    @property
    def ca_path(self) -> Path | None:
        """The CA bundle clients must trust (TLS only)."""
        if self._ca_pem is None:
            return None
        path = self.workdir / "ca.crt"
        if not path.exists():
            path.write_bytes(self._ca_pem)
        return path

    def start(self) -> FakeApiServer:
        """Start serving; returns when ready. Installs the given CRDs first."""
        if self._started:
            return self
        self._started = True
        for crd in self._crds:
            self.apply(crd)
        if self.tls:
            from ..tls import CertificateAuthority

            # The CA lives exactly as long as the certificate it signs: it is made for this
            # one certificate and its key is dropped when start() returns.
            until = datetime.datetime.now(datetime.UTC) + self.cert_validity
            ca = CertificateAuthority.generate(name="ntinv-apiserver-ca", not_after=until)
            pair = ca.issue(hosts=("127.0.0.1", "localhost"), not_after=until)
            self._ca_pem = ca.cert_pem
            self._ssl = pair.server_ssl_context()
        try:
            self._thread.start()
        except BaseException:
            self._cleanup_dir()
            raise
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); raise what failed in the server thread."""
        try:
            self._thread.stop()
        finally:
            self._cleanup_dir()

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _setup(self) -> None:
        # Request lines as long as kube-apiserver takes (Go's MaxHeaderBytes, 1 MiB): a
        # long label selector is a URL kube serves, where aiohttp would stop at 8 KiB.
        app = web.Application(
            client_max_size=0,
            handler_args={"max_field_size": 65536, "max_line_size": MAX_REQUEST_LINE},
        )
        # Every path reaches the handler, those holding an escaped newline too.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handler.handle)
        # No access log: it costs more than serving the request does. The shutdown timeout
        # belongs on the runner (aiohttp >= 3.9 deprecates it on the site).
        # aiohttp's keep-alive timer is the idle timeout (its default is an hour).
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=0.25,
            keepalive_timeout=self.limits.idle_timeout,
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self.handler.server_address = f"{self.host}:{self.port}"
        try:
            site = GuardedSite(self._runner, sock, self.limits, ssl_context=self._ssl)
            await site.start()
        except BaseException:
            sock.close()  # a failed start must not leak the bound socket
            raise

    async def _teardown(self) -> None:
        self.handler.closing = True
        self.hub.shutdown()
        if self._runner is not None:
            # A connection accepted in the loop turn that saw the stop request is still being
            # set up (asyncio's _accept_connection2). If the listening server closes first,
            # CPython 3.11 drops it half-made with its socket open (Server._attach asserts,
            # silently), and the ResourceWarning fails a later test under
            # filterwarnings=error. A few turns let it register, so cleanup closes it.
            for _ in range(3):
                await asyncio.sleep(0)
            await self._runner.cleanup()

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # ------------------------------------------------------------- identities

    def token_for(self, identity: str) -> str:
        """The bearer token of ``identity`` (created on first use)."""
        for token, who in self._tokens.items():
            if who == identity:
                return token
        token = f"ntinv-{identity}-{secrets.token_hex(8)}"
        self._tokens[token] = identity
        return token

    def add_interceptor(self, interceptor: Interceptor) -> InterceptorHandle:
        """Consult ``interceptor`` on every request and delivery; returns the undo."""
        self.handler.interceptors.append(interceptor)
        return InterceptorHandle(self, interceptor)

    def kubeconfig_dict(self, identity: str = "default", namespace: str = "default") -> JSON:
        """The kubeconfig document for ``identity``."""
        cluster: JSON = {"server": self.url}
        if self._ca_pem is not None:
            cluster["certificate-authority-data"] = base64.b64encode(self._ca_pem).decode()
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "ntinv", "cluster": cluster}],
            "users": [{"name": identity, "user": {"token": self.token_for(identity)}}],
            "contexts": [
                {
                    "name": identity,
                    "context": {"cluster": "ntinv", "user": identity, "namespace": namespace},
                }
            ],
            "current-context": identity,
            "preferences": {},
        }

    def kubeconfig(
        self, identity: str = "default", path: str | Path | None = None, namespace: str = "default"
    ) -> Path:
        """Write a kubeconfig for ``identity`` (its own token) and return its path.

        The file holds a bearer token, so it is written readable by its owner only (mode
        0600, atomically: see ``write_private``), as kubectl writes its own kubeconfigs.
        """
        target = Path(path) if path is not None else self.workdir / f"kubeconfig-{identity}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = _yaml.dump(self.kubeconfig_dict(identity, namespace))
        return write_private(target, text.encode())

    # ------------------------------------------------------- direct state access

    def resource(self, api_version: str, kind_or_plural: str) -> ResourceType:
        """The served type for ``apiVersion`` and a kind or plural name."""
        group, _, version = api_version.rpartition("/")
        for t in self.store.registry:
            if (
                t.group == group
                and t.version == version
                and kind_or_plural in (t.kind, t.plural, t.singular, *t.short_names)
            ):
                return t
        raise NotFound(f"no resource {kind_or_plural!r} in {api_version!r}")

    def apply(self, manifest: JSON | str, *, identity: str = "test") -> list[JSON]:
        """Create (or update) the objects of a manifest: a dict, or YAML with ``---`` docs."""
        docs = [manifest] if isinstance(manifest, dict) else _documents(manifest)
        out = []
        for doc in docs:
            rt = self.resource(doc["apiVersion"], doc["kind"])
            meta = doc.get("metadata") or {}
            ns = meta.get("namespace", "default") if rt.namespaced else ""
            try:
                current = self.store.get(rt, ns, meta.get("name", ""))
            except NotFound:
                ctx = WriteContext(identity=identity, verb="create")
                out.append(self.store.create(rt, ns, orjson.loads(orjson.dumps(doc)), ctx).obj)
                continue
            body = orjson.loads(orjson.dumps(doc))
            body.setdefault("metadata", {})["resourceVersion"] = current.obj["metadata"][
                "resourceVersion"
            ]
            # An update, and recorded as one (the ledger and the reports name the verb).
            ctx = WriteContext(identity=identity, verb="update")
            out.append(self.store.update(rt, ns, meta["name"], body, ctx).obj)
        return [orjson.loads(orjson.dumps(o)) for o in out]

    def get(self, api_version: str, kind: str, name: str, namespace: str = "default") -> JSON:
        """A private copy of the current object."""
        rt = self.resource(api_version, kind)
        v = self.store.get(rt, namespace if rt.namespaced else "", name)
        return orjson.loads(v.raw)  # type: ignore[no-any-return]

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> builtins.list[JSON]:
        """Private copies of the current objects of a kind, in kube's list order: in one
        namespace or (``None``) all, filtered by selectors written as kube takes them
        (``app=a,tier!=db``; ``metadata.name=x``). A bad selector is a ``BadRequest``."""
        rt = self.resource(api_version, kind)
        labels = LabelSelector.parse(label_selector or None)
        fields = FieldSelector.parse(
            field_selector or None, rt.field_selectors, rt.kind, rt.field_paths
        )
        items, _, _, _ = self.store.list(rt, namespace, labels=labels, fields=fields)
        return [orjson.loads(v.raw) for v in items]


@functools.lru_cache(maxsize=32)
def _documents(text: str) -> tuple[JSON, ...]:
    # A suite applies the same manifest (its CRDs) in every test: parsed once. ``apply``
    # only reads the documents (what it stores is a copy), so they can be shared.
    return tuple(d for d in _yaml.load_all(text) if d)
