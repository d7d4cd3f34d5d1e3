"""Benchmarks of the fake API server, each judged against a baseline from the same run.

    python benchmarks/bench_apiserver.py            # full run (about a minute)
    python benchmarks/bench_apiserver.py --quick    # CI smoke: a few iterations, < 10 s

Writes ``benchmarks/results/apiserver.json`` and ``apiserver.md`` (see README.md).

What is measured, and against what:

1. Lifecycle: ``FakeApiServer.start()`` (returns once the socket listens) then ``stop()``,
   against the same for a bare aiohttp app in the same kind of background thread (the
   floor) and for KMock's documented ``async with KubernetesEmulator(), Server(...)``.
2. Round trips with the real ``kubernetes`` client (one pooled ``ApiClient`` per server,
   synchronous): GET and merge PATCH of a ConfigMap, GET and status merge PATCH of a
   custom resource, against (a) the fake, (b) the floor: a bare aiohttp app answering the
   same bytes the fake answered for the same method and path, with no logic, and
   (c) KMock 0.8's ``KubernetesEmulator``. Both the typed call (what controllers make:
   pydantic validation and model deserialization included) and the same call with
   ``_preload_content=False`` (client overhead mostly removed, so server cost shows).
3. Write-to-watch latency: a raw aiohttp watch stream read line by line in its own
   thread, and a writer PATCHing the watched ConfigMap one write at a time; latency from
   just before the PATCH is sent to the line being read ("send->read"), and from the
   server's commit (a store listener's timestamp) to the line being read ("commit->read").

Runs of the subjects are interleaved in short blocks whose order rotates, so noise on
this shared 2-core machine hits them alike; ratios are the median of per-round ratios.
``--profile`` additionally runs cProfile in the fake's server thread and writes the top
functions to ``results/apiserver-profile.txt``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import importlib.util
import io
import itertools
import pstats
import queue
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Self

HERE = Path(__file__).resolve().parent
# Runnable as a script from any directory, with or without the project installed.
for _p in (str(HERE.parent), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import urllib3  # noqa: E402
from _harness import (  # noqa: E402
    Report,
    Rounds,
    Section,
    Stats,
    Target,
    clock,
    environment,
    fmt_ms,
    fmt_ratio,
    interleave,
)
from aiohttp import web  # noqa: E402

from pytest_ntinvariants._loopthread import LoopThread  # noqa: E402
from pytest_ntinvariants.apiserver import FakeApiServer  # noqa: E402

JSON = dict[str, Any]
MERGE = "application/merge-patch+json"
NS = "default"
CM_NAME = "bench"
CM_PATH = f"/api/v1/namespaces/{NS}/configmaps/{CM_NAME}"
GROUP, VERSION, PLURAL, KIND = "bench.ntinv.example.com", "v1", "widgets", "Widget"
CR_NAME = "w1"
CR_PATH = f"/apis/{GROUP}/{VERSION}/namespaces/{NS}/{PLURAL}/{CR_NAME}"
WATCH_PATH = f"/api/v1/namespaces/{NS}/configmaps"

# A CRD shaped like the ones controllers ship: a status subresource and a structural
# schema with typed fields, so PATCH pays for pruning, defaulting and validation.
WIDGET_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": KIND, "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {
                                    "replicas": {"type": "integer", "minimum": 0},
                                    "image": {"type": "string"},
                                    "mode": {
                                        "type": "string",
                                        "enum": ["fast", "safe"],
                                        "default": "safe",
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "observedGeneration": {"type": "integer"},
                                    "observedCount": {"type": "integer"},
                                    "conditions": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "type": {"type": "string"},
                                                "status": {"type": "string"},
                                                "reason": {"type": "string"},
                                                "message": {"type": "string"},
                                            },
                                        },
                                    },
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}

# About 1 KiB on the wire, like a typical controller's ConfigMap.
CONFIGMAP: JSON = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": CM_NAME,
        "namespace": NS,
        "labels": {"app.kubernetes.io/name": "bench", "app.kubernetes.io/part-of": "ntinv"},
        "annotations": {"ntinv.example.com/owner": "benchmarks"},
    },
    "data": {f"key{i}": f"value-{i}-" + "x" * 40 for i in range(12)} | {"counter": "0"},
}

WIDGET: JSON = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": KIND,
    "metadata": {"name": CR_NAME, "namespace": NS, "labels": {"app": "bench"}},
    "spec": {"replicas": 3, "image": "registry.example.com/widget:1.2.3"},
}


KMOCK = "KMock 0.8"
# KMock is the ``bench`` extra (``pip install kmock==0.8``); without it, it is left out and
# the report says so, so that the quick run also works where only ``.[test]`` is installed.
HAVE_KMOCK = importlib.util.find_spec("kmock") is not None

# KMock's per-request cost grows with the requests it has logged (see bench_kmock_growth),
# so it is restarted, untimed, once it has served this many since its start.
KMOCK_RESTART_EVERY = 20


@dataclass(frozen=True)
class Config:
    """Iteration counts of one run (blocks are short so that noise hits all alike)."""

    lifecycle_rounds: int
    lifecycle_per_round: int
    rt_warmup: int
    rt_rounds: int
    rt_per_round: int
    watch_warmup: int
    watch_rounds: int
    watch_per_round: int

    @classmethod
    def full(cls) -> Config:
        """About a minute: 50 lifecycles, 600 round trips and 500 watch writes per subject."""
        return cls(25, 2, 30, 150, 4, 20, 100, 5)

    @classmethod
    def quick(cls) -> Config:
        """A smoke run for CI: proves the harness works, says little about speed."""
        return cls(2, 2, 3, 3, 4, 3, 3, 3)


# ------------------------------------------------------------------ the servers


class _ThreadedServer:
    """A baseline server on its own ``LoopThread``: ``url``, ``start()`` and ``stop()``
    as ``FakeApiServer`` has them; subclasses set ``_setup`` and ``_teardown``."""

    def __init__(self, name: str) -> None:
        self.port = 0
        self._thread = LoopThread(name, self._setup, self._teardown)

    async def _setup(self) -> None:
        raise NotImplementedError

    async def _teardown(self) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Serve; returns once listening (idempotent, like ``FakeApiServer.start``)."""
        if not self._thread.running:
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._thread.stop()


class FloorServer(_ThreadedServer):
    """The floor: a bare aiohttp app in a ``LoopThread``, set up exactly like the fake's.

    It answers each (method, path) with bytes recorded from the fake, reading the request
    body first as the fake does, and nothing else. A GET with ``watch=true`` opens a
    chunked stream; each PATCH writes one line to every open stream before answering
    (the fastest possible fan-out: no queue, no wake-up of another task), stamping
    ``commits`` just before, as the fake's store listener does.
    """

    def __init__(
        self, responses: dict[tuple[str, str], tuple[int, str, bytes]], watch_object: bytes = b"{}"
    ) -> None:
        self.responses = responses
        self.watch_object = watch_object
        self.streams: list[web.StreamResponse] = []
        self.commits: list[float] = []
        self._runner: web.AppRunner | None = None
        super().__init__("bench-floor")

    async def _setup(self) -> None:
        # Same application options, runner options and socket setup as FakeApiServer.
        app = web.Application(client_max_size=0, handler_args={"max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.25
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        try:
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            raise

    async def _teardown(self) -> None:
        for s in self.streams:
            s.force_close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.method == "GET" and request.query.get("watch") == "true":
            return await self._watch(request)
        if request.method == "PATCH" and self.streams:
            # The patch body rides along so the reader can tell which write a line is for.
            line = b'{"type":"MODIFIED","patch":' + body + b',"object":' + self.watch_object
            self.commits.append(clock())
            for s in list(self.streams):
                await s.write(line + b"}\n")
        found = self.responses.get((request.method, request.path))
        if found is None:
            return web.Response(status=404, body=b"{}", content_type="application/json")
        status, ctype, payload = found
        return web.Response(body=payload, status=status, headers={"Content-Type": ctype})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.streams.append(response)
        try:
            await asyncio.Event().wait()  # until the client goes or the server stops
        finally:
            self.streams.remove(response)
        return response


class KMockServer(_ThreadedServer):
    """KMock 0.8's ``KubernetesEmulator`` served as its pytest fixture serves it.

    ``async with KubernetesEmulator() as kmock, Server(kmock)`` on the loop of a
    ``LoopThread`` (KMock is asyncio-only; the thread gives it the same place the fake
    has). Objects are seeded through ``kmock.objects[resource, namespace, name]``.
    """

    def __init__(self, seed: list[tuple[str, str, str, JSON]] = ()) -> None:  # type: ignore[assignment]
        self.seed = list(seed)
        self._kmock: Any = None
        self._server: Any = None
        super().__init__("bench-kmock")

    async def _setup(self) -> None:
        import kmock

        self._kmock = kmock.KubernetesEmulator()
        await self._kmock.__aenter__()
        self._server = kmock.Server(self._kmock)
        await self._server.__aenter__()
        self.port = self._server.port
        for resource, ns, name, obj in self.seed:
            self._kmock.objects[resource, ns, name] = orjson.loads(orjson.dumps(obj))

    async def _teardown(self) -> None:
        if self._server is not None:
            await self._server.__aexit__(None, None, None)
        if self._kmock is not None:
            await self._kmock.__aexit__(None, None, None)


def _fake(*, crds: bool = True) -> FakeApiServer:
    return FakeApiServer(crds=[WIDGET_CRD] if crds else ())


# ------------------------------------------------------------------ 1. lifecycle


@dataclass
class _Cycle:
    """One subject's construct/start/stop durations, filled by repeated ``run`` calls."""

    factory: Callable[[], Any]
    construct: list[float] = field(default_factory=list)
    start: list[float] = field(default_factory=list)
    stop: list[float] = field(default_factory=list)
    check_ready: bool = True

    def run(self) -> None:
        t0 = clock()
        server = self.factory()
        t1 = clock()
        server.start()
        t2 = clock()
        if self.check_ready:
            # Only on the warm-up run: prove that start() returned a serving server (any
            # HTTP answer will do; a bare connect could leave an accept pending at stop).
            _answers_http(server.port)
            self.check_ready = False
            t2 = clock()  # keep the check out of the figures
        server.stop()
        t3 = clock()
        self.construct.append(t1 - t0)
        self.start.append(t2 - t1)
        self.stop.append(t3 - t2)

    def reset(self) -> None:
        self.construct.clear()
        self.start.clear()
        self.stop.clear()


def _answers_http(port: int) -> None:
    """Raise unless ``port`` answers a plain HTTP request with an HTTP status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = sock.recv(64)
    if not head.startswith(b"HTTP/1.1 "):
        raise RuntimeError(f"port {port} did not answer HTTP right after start(): {head!r}")


def bench_lifecycle(report: Report, cfg: Config) -> None:
    """Median start -> ready -> stop of the fake vs the floor and KMock."""
    cycles = {
        "fake": _Cycle(lambda: _fake(crds=False)),
        "floor (bare aiohttp)": _Cycle(lambda: FloorServer({})),
    }
    if HAVE_KMOCK:
        cycles[KMOCK] = _Cycle(KMockServer)
    for c in cycles.values():  # warm-up: imports, first thread, first socket
        c.run()
        c.run()
        c.reset()
    interleave(
        {k: c.run for k, c in cycles.items()},
        warmup=0,
        rounds=cfg.lifecycle_rounds,
        per_round=cfg.lifecycle_per_round,
    )
    section = report.section(
        "1. Lifecycle: start -> ready -> stop (ms)",
        [
            "server",
            "n",
            "start+stop p50",
            "start+stop p95",
            "start+stop min",
            "start+stop mean",
            "start p50",
            "stop p50",
            "construct p50",
            "vs floor (p50)",
        ],
    )
    floor = [
        a + b
        for a, b in zip(
            cycles["floor (bare aiohttp)"].start, cycles["floor (bare aiohttp)"].stop, strict=True
        )
    ]
    floor_p50 = statistics.median(floor)
    for name, c in cycles.items():
        total = [a + b for a, b in zip(c.start, c.stop, strict=True)]
        st = Stats.of(total)
        section.add(
            **{
                "server": name,
                "n": st.n,
                "start+stop p50": fmt_ms(st.p50),
                "start+stop p95": fmt_ms(st.p95),
                "start+stop min": fmt_ms(st.min),
                "start+stop mean": fmt_ms(st.mean),
                "start p50": fmt_ms(statistics.median(c.start)),
                "stop p50": fmt_ms(statistics.median(c.stop)),
                "construct p50": fmt_ms(statistics.median(c.construct)),
                "vs floor (p50)": fmt_ratio(st.p50 / floor_p50),
            }
        )
        section.data[name] = {
            "start_stop": st.ms(),
            "start": Stats.of(c.start).ms(),
            "stop": Stats.of(c.stop).ms(),
            "construct": Stats.of(c.construct).ms(),
        }
    fake = cycles["fake"]
    fake_p50 = statistics.median([a + b for a, b in zip(fake.start, fake.stop, strict=True)])
    section.notes.append(
        "start = call to return of start(), which returns once the socket listens (checked "
        "with an HTTP request on the warm-up run); stop = stop() until the thread is joined. "
        "construct (FakeApiServer() itself: registry, store, system namespaces) is outside "
        "the target and shown separately."
    )
    section.notes.append(
        "On a loaded machine starting a thread is bimodal (about 0.2 ms, or a few ms when "
        "the new thread waits for a core), for every server alike: compare min and mean as "
        "well as the median, which can land in either mode."
    )
    report.target(
        Target(
            "lifecycle: start -> ready -> stop, median",
            fake_p50 * 1e3,
            10.0,
            "ms",
            "median of start()+stop() of FakeApiServer() (no CRDs), construction excluded",
            baseline=f"floor {floor_p50 * 1e3:.3f} ms in the same run",
        )
    )


# ------------------------------------------------------------------ 2. round trips


@dataclass
class _Clients:
    """One server's pooled kubernetes client and its two APIs."""

    api_client: Any
    core: Any
    custom: Any

    @classmethod
    def for_url(cls, url: str) -> _Clients:
        from kubernetes import client

        conf = client.Configuration()
        conf.host = url
        api = client.ApiClient(conf)
        return cls(api, client.CoreV1Api(api), client.CustomObjectsApi(api))

    def close(self) -> None:
        self.api_client.close()


@dataclass
class _Served:
    """A running server and a client for it; ``restart`` replaces both with fresh ones."""

    make: Callable[[], Any]
    server: Any = None
    clients: Any = None
    cpu_clock: int | None = None
    cpu_mark: float = 0.0
    calls: int = 0  # since the server (re)started

    def __post_init__(self) -> None:
        self.calls = 0
        self.server = self.make().start()
        self.clients = _Clients.for_url(self.server.url)
        # The server thread's own CPU clock: what serving cost, whatever the client did
        # meanwhile. All three servers run on a LoopThread (the fake's is private, but
        # this benchmark lives with it).
        getclock = getattr(time, "pthread_getcpuclockid", None)
        if getclock is not None:
            self.cpu_clock = getclock(self.server._thread.call(threading.get_ident))

    def mark_cpu(self) -> None:
        """Remember the server thread's CPU time (before a block)."""
        if self.cpu_clock is not None:
            self.cpu_mark = time.clock_gettime(self.cpu_clock)

    def cpu_since_mark(self) -> float:
        """Server thread CPU seconds since ``mark_cpu`` (0 where unsupported)."""
        if self.cpu_clock is None:
            return 0.0
        return time.clock_gettime(self.cpu_clock) - self.cpu_mark

    def restart(self) -> None:
        self.close()
        self.__post_init__()

    def close(self) -> None:
        self.clients.close()
        self.server.stop()


def _operations(
    served: Any, counter: itertools.count[int], raw: bool
) -> dict[str, Callable[[], Any]]:
    """The four calls against one server; ``raw`` skips the client's deserialization."""
    opts: JSON = {"_preload_content": False} if raw else {}

    def done(result: Any) -> Any:
        if raw:  # read the body, as a deserializing call would, and give the connection back
            data = result.data
            result.release_conn()
            return data
        return result

    # The client is looked up on every call because KMock's is replaced between blocks.
    return {
        "GET ConfigMap": lambda: done(
            served.clients.core.read_namespaced_config_map(CM_NAME, NS, **opts)
        ),
        "PATCH ConfigMap (merge)": lambda: done(
            served.clients.core.patch_namespaced_config_map(
                CM_NAME, NS, {"data": {"counter": str(next(counter))}}, _content_type=MERGE, **opts
            )
        ),
        "GET custom resource": lambda: done(
            served.clients.custom.get_namespaced_custom_object(
                GROUP, VERSION, NS, PLURAL, CR_NAME, **opts
            )
        ),
        "PATCH custom resource status (merge)": lambda: done(
            served.clients.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                NS,
                PLURAL,
                CR_NAME,
                {"status": {"phase": "Running", "observedCount": next(counter)}},
                _content_type=MERGE,
                **opts,
            )
        ),
    }


def _record_fake_responses(port: int) -> dict[tuple[str, str], tuple[int, str, bytes]]:
    """What the fake answers for each benchmarked request, for the floor to replay."""
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False)
    out: dict[tuple[str, str], tuple[int, str, bytes]] = {}
    requests = [
        ("PATCH", CM_PATH, {"data": {"counter": "1"}}),
        ("GET", CM_PATH, None),
        ("PATCH", CR_PATH + "/status", {"status": {"phase": "Running", "observedCount": 1}}),
        ("GET", CR_PATH, None),
    ]
    for method, path, body in requests:
        r = pool.request(
            method,
            path,
            body=orjson.dumps(body) if body is not None else None,
            headers={"Content-Type": MERGE} if body is not None else {},
        )
        if r.status != 200:
            raise RuntimeError(f"fake answered {r.status} to {method} {path}: {r.data[:300]!r}")
        out[(method, path)] = (r.status, r.headers.get("Content-Type", ""), r.data)
    pool.close()
    return out


def bench_round_trips(report: Report, cfg: Config) -> None:
    """Kubernetes-client round trips: fake vs floor vs KMock, typed and raw."""
    fake_server = _fake().start()
    fake_server.apply(CONFIGMAP)
    fake_server.apply(WIDGET)
    recorded = _record_fake_responses(fake_server.port)
    kmock_seed = [
        ("v1/configmaps", NS, CM_NAME, fake_server.get("v1", "ConfigMap", CM_NAME)),
        (
            f"{GROUP}/{VERSION}/{PLURAL}",
            NS,
            CR_NAME,
            fake_server.get(f"{GROUP}/{VERSION}", KIND, CR_NAME),
        ),
    ]
    served = {
        "fake": _Served(lambda: fake_server),
        "floor": _Served(lambda: FloorServer(recorded)),
    }
    if HAVE_KMOCK:
        served[KMOCK] = _Served(lambda: KMockServer(kmock_seed))
    counter = itertools.count(2)
    try:
        for raw in (False, True):
            mode = "raw (_preload_content=False)" if raw else "typed"
            section = report.section(
                f"2. Round trips, kubernetes client {mode} (ms)",
                [
                    "operation",
                    "server",
                    "n",
                    "p50",
                    "p95",
                    "vs floor p50 (paired)",
                    "vs floor p95",
                    "server CPU/call",
                    "server CPU over floor",
                    "supported",
                ],
            )
            per_op = {name: _operations(s, counter, raw) for name, s in served.items()}
            for op in per_op["fake"]:
                cpu: dict[str, list[float]] = {name: [] for name in served}
                before, after = {}, {}
                for name, s in served.items():
                    before[name] = functools.partial(
                        _before_block,
                        s,
                        per_op[name][op],
                        restart_every=KMOCK_RESTART_EVERY if name == KMOCK else 0,
                    )
                    after[name] = functools.partial(_after_block, s, cpu[name], cfg.rt_per_round)
                rounds = interleave(
                    {name: ops[op] for name, ops in per_op.items()},
                    warmup=cfg.rt_warmup,
                    rounds=cfg.rt_rounds,
                    per_round=cfg.rt_per_round,
                    before_block=before,
                    after_block=after,
                )
                _round_trip_rows(report, section, op, rounds, cpu, raw)
            section.notes.append(
                "floor: bare aiohttp app, same runner options, replaying the fake's recorded "
                "bytes for the same method and path. Ratios are medians over "
                f"{cfg.rt_rounds} rounds of p50(server)/p50(floor) within the round; "
                f"{cfg.rt_per_round} calls per server per round, order rotating. server "
                "CPU/call: the server thread's CPU clock over a block / calls, median of "
                "blocks (includes its event loop and aiohttp; unaffected by the client)."
            )
        if HAVE_KMOCK:
            _note_kmock_semantics(report, served[KMOCK].clients)
        else:
            report.sections[-1].notes.append(_NO_KMOCK)
        # The fake did real work: the last PATCH is what a GET now returns.
        final = served["fake"].clients.core.read_namespaced_config_map(CM_NAME, NS)
        if int(final.data["counter"]) < 2:
            raise RuntimeError("the fake did not apply the benchmark's patches")
    finally:
        for s in served.values():
            s.close()
    if HAVE_KMOCK:
        bench_kmock_growth(report, cfg, kmock_seed)


def _before_block(served: _Served, call: Callable[[], Any], restart_every: int) -> None:
    if restart_every and served.calls >= restart_every:
        served.restart()
        call()  # untimed: opens the new pooled connection
        served.calls += 1
    served.mark_cpu()


def _after_block(served: _Served, into: list[float], calls: int) -> None:
    into.append(served.cpu_since_mark() / calls)
    served.calls += calls


def _round_trip_rows(
    report: Report,
    section: Section,
    op: str,
    rounds: Rounds,
    cpu: dict[str, list[float]],
    raw: bool,
) -> None:
    floor_st = rounds.stats("floor")
    floor_cpu = statistics.median(cpu["floor"])
    for name in rounds.by_subject:
        st = rounds.stats(name)
        ratio = rounds.paired_ratio(name, "floor")
        server_cpu = statistics.median(cpu[name])
        section.add(
            **{
                "operation": op,
                "server": name,
                "n": st.n,
                "p50": fmt_ms(st.p50),
                "p95": fmt_ms(st.p95),
                "vs floor p50 (paired)": fmt_ratio(ratio),
                "vs floor p95": fmt_ratio(st.p95 / floor_st.p95),
                "server CPU/call": fmt_ms(server_cpu) if server_cpu else "n/a",
                "server CPU over floor": (
                    fmt_ms(server_cpu - floor_cpu) if server_cpu and name != "floor" else "—"
                ),
                "supported": _kmock_support(op) if name == KMOCK else "yes",
            }
        )
        section.data.setdefault(op, {})[name] = {
            **st.ms(),
            "paired_ratio_vs_floor": ratio,
            "server_cpu_per_call_ms": server_cpu * 1e3,
        }
    if not raw:
        fake_st = rounds.stats("fake")
        report.target(
            Target(
                f"round trip {op}: fake / floor",
                rounds.paired_ratio("fake", "floor"),
                1.2,
                "x",
                "kubernetes client typed call (sync, pooled ApiClient); median over rounds of "
                "p50(fake) / p50(floor)",
                baseline=f"floor p50 {floor_st.p50 * 1e3:.3f} ms, fake p50 "
                f"{fake_st.p50 * 1e3:.3f} ms",
            )
        )


_NO_KMOCK = (
    "KMock is not installed here, so it was left out (`pip install kmock==0.8`, "
    "the project's `bench` extra)."
)


def _kmock_support(op: str) -> str:
    if op.startswith("PATCH custom resource status"):
        return "served, not as a subresource (see note)"
    if op.startswith("PATCH"):
        return "served (merge; no resourceVersion)"
    return "yes"


def _note_kmock_semantics(report: Report, c: _Clients) -> None:
    """Say plainly what KMock did with the operations it was timed on."""
    obj = c.custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, CR_NAME)
    cm = c.core.read_namespaced_config_map(CM_NAME, NS)
    report.sections[-1].notes.append(
        "KMock 0.8 serves all four calls from its KubernetesEmulator fallbacks. A PATCH "
        "(any patch content type) is a recursive dict merge into the stored object that "
        "does not bump metadata.resourceVersion (here it stays "
        f"{cm.metadata.resource_version!r}, the seeded value, after every patch); a PATCH "
        "to .../status merges into the whole object (the status subresource is not "
        "emulated: a spec in that body would be applied too). Final status seen: "
        f"{obj.get('status')!r}. KMock is restarted (untimed) whenever it has served "
        f"{KMOCK_RESTART_EVERY} requests, so its figures are those of a nearly fresh "
        "emulator, its best case: see the KMock growth table for why."
    )


def bench_kmock_growth(report: Report, cfg: Config, seed: list[tuple[str, str, str, JSON]]) -> None:
    """KMock's GET cost as a function of the requests it has already served."""
    served = _Served(lambda: KMockServer(seed))
    marks = (0, 50, 100, 200) if cfg.rt_rounds > 5 else (0, 20)
    window = 10
    get = _operations(served, itertools.count(), raw=True)["GET ConfigMap"]
    section = report.section(
        "2c. KMock 0.8: GET ConfigMap cost vs requests already served",
        ["requests served before", "p50 ms (of 10)"],
    )
    try:
        done = 0
        for mark in marks:
            while done < mark:
                get()
                done += 1
            times = [_timed_call(get) for _ in range(window)]
            done += window
            section.add(
                **{
                    "requests served before": mark,
                    "p50 ms (of 10)": fmt_ms(statistics.median(times)),
                }
            )
            section.data[str(mark)] = statistics.median(times) * 1e3
    finally:
        served.close()
    section.notes.append(
        "KMock keeps every request and, on each new one, runs its reaction filters over the "
        "whole log, so a request costs O(requests served). The round-trip and watch tables "
        f"therefore restart KMock every {KMOCK_RESTART_EVERY} requests."
    )


def _timed_call(fn: Callable[[], Any]) -> float:
    t0 = clock()
    fn()
    return clock() - t0


# ------------------------------------------------------------------ 3. watch


class WatchReader:
    """A raw aiohttp watch stream in its own thread and loop, stamping each line read."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lines: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()
        self._session: aiohttp.ClientSession | None = None
        self._response: aiohttp.ClientResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = LoopThread("bench-watch-reader", self._setup, self._teardown)

    def start(self) -> WatchReader:
        """Open the stream; returns once the response headers arrived."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the stream."""
        self._thread.stop()

    async def _setup(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        response = self._response = await self._session.get(self.url)
        response.raise_for_status()
        self._task = asyncio.get_running_loop().create_task(self._read(response))

    async def _read(self, response: aiohttp.ClientResponse) -> None:
        put = self.lines.put
        readline = response.content.readline
        while True:
            line = await readline()
            t = clock()  # stamped before anything else touches the line
            if not line:
                return
            put((t, line))

    async def _teardown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self._task
        if self._response is not None:
            self._response.close()
        if self._session is not None:
            await self._session.close()


@dataclass
class _WatchSubject:
    """One server under the write->watch test: its writer, its reader, its latencies.

    ``server`` is started by ``open``; ``commit_of`` maps a watch event to the server's
    commit timestamp (None where the server has no hook). Latencies are kept per block.
    """

    name: str
    make: Callable[[], Any]
    watch_query: Callable[[Any], str]
    commit_of: Callable[[Any, JSON], float | None]
    server: Any = None
    send_read: list[list[float]] = field(default_factory=lambda: [[]])
    commit_read: list[list[float]] = field(default_factory=lambda: [[]])
    seq: itertools.count[int] = field(default_factory=lambda: itertools.count(1_000_000))
    reader: WatchReader | None = None
    pool: urllib3.HTTPConnectionPool | None = None
    writes: int = 0  # since the server (re)started

    def open(self) -> None:
        self.writes = 0
        self.server = self.make().start()
        port = self.server.port
        self.reader = WatchReader(
            f"http://127.0.0.1:{port}{WATCH_PATH}?{self.watch_query(self.server)}"
        ).start()
        self.pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, retries=False)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.stop()
        if self.pool is not None:
            self.pool.close()
        if self.server is not None:
            self.server.stop()

    def new_block(self, restart_every: int = 0) -> None:
        """Begin a block; first restart server and stream (untimed) if asked to (KMock)."""
        if restart_every and self.writes >= restart_every:
            self.close()
            self.open()
            self.write(record=False)  # warms the new connections
        self.send_read.append([])
        self.commit_read.append([])

    def write(self, record: bool = True) -> None:
        """One PATCH; returns once its watch line was read. Records both latencies."""
        assert self.pool is not None and self.reader is not None
        seq = str(next(self.seq))
        body = orjson.dumps({"data": {"seq": seq}})
        headers = {"Content-Type": MERGE}
        self.writes += 1
        t_send = clock()
        r = self.pool.request("PATCH", CM_PATH, body=body, headers=headers)
        if r.status != 200:
            raise RuntimeError(f"{self.name}: PATCH answered {r.status}: {r.data[:300]!r}")
        while True:
            t_read, line = self.reader.lines.get(timeout=10)
            event = orjson.loads(line)
            got = (event.get("patch") or event.get("object") or {}).get("data", {}).get("seq")
            if got == seq:
                break  # earlier lines (initial ADDED events) are skipped
        if not record:
            return
        self.send_read[-1].append(t_read - t_send)
        t_commit = self.commit_of(self.server, event)
        if t_commit is not None:
            self.commit_read[-1].append(t_read - t_commit)


def bench_watch(report: Report, cfg: Config) -> None:
    """Write -> watch delivery latency: fake vs floor vs KMock."""
    commits: dict[int, float] = {}

    def on_event(event: Any) -> None:
        if event.resource.plural == "configmaps":
            commits[event.rv] = clock()

    def make_fake() -> FakeApiServer:
        fake = _fake(crds=False)
        fake.apply(CONFIGMAP)
        # Registered after the watch hub's listener: the stamp follows the event's
        # queueing for the watcher by microseconds, on the server thread, inside the write.
        fake.store.subscribe(on_event)
        return fake

    cm = make_fake().get("v1", "ConfigMap", CM_NAME)
    subjects = {
        "fake": _WatchSubject(
            "fake",
            make_fake,
            lambda srv: f"watch=true&resourceVersion={srv.store.resource_version}",
            lambda _srv, e: commits.get(int(e["object"]["metadata"]["resourceVersion"])),
        ),
        "floor": _WatchSubject(
            "floor",
            lambda: FloorServer(
                {("PATCH", CM_PATH): (200, "application/json", orjson.dumps(cm))},
                watch_object=orjson.dumps(cm),
            ),
            lambda _srv: "watch=true",
            # One write at a time: the floor's latest stamp is this write's.
            lambda srv, _e: srv.commits[-1],
        ),
    }
    if HAVE_KMOCK:
        subjects[KMOCK] = _WatchSubject(
            KMOCK,
            lambda: KMockServer([("v1/configmaps", NS, CM_NAME, cm)]),
            lambda _srv: "watch=true",
            lambda _srv, _e: None,
        )
    before: dict[str, Callable[[], object]] = {
        name: functools.partial(s.new_block, KMOCK_RESTART_EVERY if name == KMOCK else 0)
        for name, s in subjects.items()
    }
    try:
        for s in subjects.values():
            s.open()
        interleave(
            {k: s.write for k, s in subjects.items()},
            warmup=cfg.watch_warmup,
            rounds=cfg.watch_rounds,
            per_round=cfg.watch_per_round,
            before_block=before,
        )
    finally:
        for s in subjects.values():
            s.close()
    _report_watch(report, cfg, subjects)


def _report_watch(report: Report, cfg: Config, subjects: dict[str, _WatchSubject]) -> None:
    section = report.section(
        "3. Write -> watch delivery latency (ms)",
        [
            "server",
            "n",
            "send->read p50",
            "send->read p95",
            "commit->read p50",
            "commit->read p95",
            "send->read vs floor (paired)",
        ],
    )
    # Block 0 holds the warm-up writes; every later block is one round's.
    floor_blocks = subjects["floor"].send_read[1:]
    stats: dict[str, tuple[Stats, Stats | None]] = {}
    for name, s in subjects.items():
        blocks = s.send_read[1:]
        sr = Stats.of([d for b in blocks for d in b])
        commit = [d for b in s.commit_read[1:] for d in b]
        cr = Stats.of(commit) if commit else None
        stats[name] = (sr, cr)
        ratio = statistics.median(
            statistics.median(b) / statistics.median(f)
            for b, f in zip(blocks, floor_blocks, strict=True)
        )
        section.add(
            **{
                "server": name,
                "n": sr.n,
                "send->read p50": fmt_ms(sr.p50),
                "send->read p95": fmt_ms(sr.p95),
                "commit->read p50": fmt_ms(cr.p50) if cr else "n/a (no commit hook)",
                "commit->read p95": fmt_ms(cr.p95) if cr else "n/a",
                "send->read vs floor (paired)": fmt_ratio(ratio),
            }
        )
        section.data[name] = {
            "send_read": sr.ms(),
            "commit_read": cr.ms() if cr else None,
            "paired_ratio_vs_floor": ratio,
        }
    section.notes.extend(
        [
            "send->read: from just before the PATCH is handed to urllib3 (pooled keep-alive "
            "connection, main thread) to readline() returning the line on a raw aiohttp watch "
            "stream in another thread. It includes the server reading and applying the PATCH.",
            "commit->read: from the fake's store listener (called inside the write, on the "
            "server thread, just after the event was queued for the watcher) to the same "
            "readline(); for the floor, from just before its handler writes the line. KMock "
            "has no commit hook, so only send->read.",
            "One write at a time: the next PATCH goes out only after the previous write's line "
            f"was read (unloaded latency); {cfg.watch_rounds} rounds of {cfg.watch_per_round} "
            f"writes per server, order rotating. KMock restarts every {KMOCK_RESTART_EVERY} "
            "writes.",
        ]
    )
    if not HAVE_KMOCK:
        section.notes.append(_NO_KMOCK)
    fake_sr, fake_cr = stats["fake"]
    floor_sr, floor_cr = stats["floor"]
    report.target(
        Target(
            "write -> watch p50, send->read",
            fake_sr.p50 * 1e3,
            1.0,
            "ms",
            "from just before the PATCH is sent to the watch line read by the client",
            baseline=f"floor {floor_sr.p50 * 1e3:.3f} ms in the same run",
        )
    )
    if fake_cr is not None:
        report.target(
            Target(
                "write -> watch p50, commit->read",
                fake_cr.p50 * 1e3,
                1.0,
                "ms",
                "from the store's commit (listener timestamp) to the watch line read",
                baseline=f"floor {floor_cr.p50 * 1e3:.3f} ms in the same run" if floor_cr else "",
            )
        )


# ------------------------------------------------------------------ profiling


def profile_fake(out: Path, cfg: Config) -> Path:
    """cProfile of the fake's server thread, the client load coming from another process.

    With the client in this process, the server thread's profile is mostly time spent
    waiting for the GIL inside ``socket.send`` while the client parses the response; a
    client process leaves the server thread's own work. The profiler roughly doubles the
    cost of Python calls, so shares matter here, not absolute times.
    """
    fake = _fake().start()
    fake.apply(CONFIGMAP)
    fake.apply(WIDGET)
    text = io.StringIO()
    n = 2000 if cfg.rt_rounds > 5 else 50
    try:
        for op in _operations(SimpleNamespace(clients=None), itertools.count(), raw=True):
            prof = cProfile.Profile()
            # cProfile profiles the thread that enables it: enable it on the server's.
            fake._thread.call(prof.enable)
            t0 = clock()
            subprocess.run(
                [sys.executable, __file__, "--client-load", fake.url, op, str(n)], check=True
            )
            elapsed = clock() - t0
            fake._thread.call(prof.disable)
            stats = pstats.Stats(prof, stream=text)
            text.write(
                f"\n===== {op}: {n} calls from a client process, "
                f"{elapsed / n * 1e3:.3f} ms/call wall under the profiler =====\n"
            )
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(45)
    finally:
        fake.stop()
    path = out / "apiserver-profile.txt"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(text.getvalue(), encoding="utf-8")
    return path


def client_load(url: str, op: str, n: int) -> None:
    """``--client-load``: make ``n`` calls of one operation (raw) against ``url``."""
    holder = SimpleNamespace(clients=_Clients.for_url(url))
    fn = _operations(holder, itertools.count(10_000), raw=True)[op]
    for _ in range(n):
        fn()
    holder.clients.close()


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark, write the results, print the markdown; 0 unless it broke."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a few iterations only (CI smoke test, < 10 s)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "results",
        help="directory for apiserver.json and apiserver.md",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also write a cProfile of the fake's server thread"
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 if a target is missed (never used by the test suite)",
    )
    parser.add_argument(
        "--client-load", nargs=3, metavar=("URL", "OP", "N"), help=argparse.SUPPRESS
    )  # the client process of --profile
    args = parser.parse_args(argv)
    if args.client_load:
        url, op, n = args.client_load
        client_load(url, op, int(n))
        return 0
    cfg = Config.quick() if args.quick else Config.full()
    command = "python benchmarks/bench_apiserver.py" + (" --quick" if args.quick else "")
    report = Report(
        "apiserver",
        "quick" if args.quick else "full",
        command,
        env=environment(["aiohttp", "kubernetes", "kmock", "urllib3", "orjson"]),
    )
    bench_lifecycle(report, cfg)
    bench_round_trips(report, cfg)
    bench_watch(report, cfg)
    json_path, md_path = report.write(args.out)
    print(report.markdown())
    print(f"wrote {json_path} and {md_path}")
    if args.profile:
        print(f"wrote {profile_fake(args.out, cfg)}")
    return 1 if args.strict and not all(t.met for t in report.targets) else 0


if __name__ == "__main__":
    raise SystemExit(main())
