"""Connection limits over real sockets: kube-apiserver's header, idle and body timeouts, and
the bound on open connections that keeps a flood of idle ones from starving real clients.

Timeouts are configured small (0.3 s) so the tests are quick. Every wait for the server is a
read that returns when the server acts (b"" once it closed the connection); the socket
timeouts around those reads only guard against a hung test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import resource
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.web_protocol import RequestHandler
from kubernetes import config

from pytest_ntinvariants.apiserver import ConnectionLimits, FakeApiServer
from pytest_ntinvariants.apiserver.connections import BODY_TIMEOUT_MESSAGE

CMS = "/api/v1/namespaces/default/configmaps"
GUARD = 10.0  # seconds a read may block before the test fails as hung
QUICK = 0.3
HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"


@contextlib.contextmanager
def serving(**limits: Any) -> Iterator[FakeApiServer]:
    with FakeApiServer(limits=ConnectionLimits(**limits), bookmark_interval=0.05) as server:
        yield server


def connect(server: FakeApiServer) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=GUARD)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def is_open(sock: socket.socket) -> bool:
    """True if the server has neither closed the socket nor sent anything on it."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(timeout)
    return False


def response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@contextlib.contextmanager
def fd_limit(needed: int) -> Iterator[None]:
    """Raise the soft open-file limit to ``needed`` (at most the hard limit); restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft >= target:
        yield
        return
    if target < needed:
        pytest.skip(f"needs {needed} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_aiohttp_internals_the_guard_reads_exist() -> None:
    """aiohttp has no public hook for these; a rename must fail here, not disable the limits."""
    fields = {"_request_count", "_messages", "_waiter", "_request_in_progress"}
    assert fields <= set(RequestHandler.__slots__)
    assert callable(RequestHandler.force_close) and callable(RequestHandler.close)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"header_timeout": 0},
        {"idle_timeout": -1},
        {"body_timeout": float("inf")},
        {"body_timeout": float("nan")},
        {"max_connections": 0},
    ],
)
def test_limits_refuse_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ConnectionLimits(**kwargs)


def test_defaults_are_kube_apiservers() -> None:
    limits = ConnectionLimits()
    assert (limits.header_timeout, limits.idle_timeout, limits.body_timeout) == (32, 90, 60)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        assert limits.connection_bound() == soft // 2
    assert ConnectionLimits(max_connections=7).connection_bound() == 7


# --------------------------------------------------------------------------- heads


def test_a_silent_connection_is_closed_after_the_header_timeout() -> None:
    with serving(header_timeout=QUICK) as server, connect(server) as sock:
        started = time.monotonic()
        assert until_closed(sock) == b""  # closed without an answer, as Go does
        # Not before its time (asyncio may fire a timer up to its clock resolution early).
        assert time.monotonic() - started >= QUICK * 0.9


def test_a_half_sent_head_is_closed_unanswered() -> None:
    with serving(header_timeout=QUICK) as server, connect(server) as sock:
        sock.sendall(HEAD)
        assert until_closed(sock) == b""


def test_a_head_trickled_line_by_line_is_closed_all_the_same() -> None:
    """The deadline counts from the connection's start; new bytes do not extend it."""
    with serving(header_timeout=QUICK) as server, connect(server) as sock:
        sock.sendall(HEAD)
        sock.settimeout(0.05)  # paces the trickle: one header line per read that times out
        deadline = time.monotonic() + GUARD
        while True:
            # Fewer lines than aiohttp's limit of 128 headers, which would answer 400.
            assert time.monotonic() < deadline, "a trickled head kept the connection open"
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                assert sock.recv(1) == b"", "the server answered instead of closing"
                break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break


def test_a_later_heads_deadline_counts_from_its_first_byte() -> None:
    """On a keep-alive connection the idle timeout applies until bytes come, then the head's."""
    with serving(header_timeout=QUICK, idle_timeout=GUARD * 3) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=GUARD)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok"
        assert conn.sock is not None
        conn.sock.sendall(HEAD)
        assert until_closed(conn.sock) == b""
        conn.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() -> None:
    with serving(idle_timeout=QUICK, header_timeout=GUARD * 3) as server:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=GUARD)
        for _ in range(2):  # kept alive between requests that come in time
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b"ok"
        assert conn.sock is not None
        assert until_closed(conn.sock) == b""
        conn.close()


def test_a_tls_handshake_that_never_comes_is_closed() -> None:
    with FakeApiServer(tls=True, limits=ConnectionLimits(header_timeout=QUICK)) as server:
        with connect(server) as sock:
            assert until_closed(sock) == b""
        # And one that handshakes, then says nothing, after its head's timeout.
        assert server.ca_path is not None
        ctx = ssl.create_default_context(cafile=str(server.ca_path))
        with connect(server) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert until_closed(tls) == b""


# ---------------------------------------------------------------------------- bodies


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_stalled_body_is_answered_504_and_the_connection_closed(framing: str) -> None:
    with serving(body_timeout=QUICK) as server, connect(server) as sock:
        before = server.store.resource_version
        if framing == "chunked":
            sock.sendall(
                f"POST {CMS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'Transfer-Encoding: chunked\r\n\r\n5\r\n{"met\r\n'.encode()
            )
        else:
            sock.sendall(
                f"POST {CMS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                'Content-Length: 100\r\n\r\n{"metadata":'.encode()
            )
        status, headers, body = response(until_closed(sock))
        assert status == 504
        assert headers["content-type"] == "application/json"
        assert json.loads(body) == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": BODY_TIMEOUT_MESSAGE,
            "reason": "Timeout",
            "code": 504,
        }
        assert server.store.resource_version == before
        # The server goes on serving.
        conn = http.client.HTTPConnection(server.host, server.port, timeout=GUARD)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok"
        conn.close()


def test_a_slow_body_that_keeps_coming_is_served() -> None:
    """A body taking longer than the head's timeout, but within the body's, is not cut."""
    body = json.dumps({"metadata": {"name": "slow"}}).encode()
    with serving(header_timeout=QUICK, body_timeout=GUARD * 3) as server, connect(server) as sock:
        sock.sendall(
            f"POST {CMS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        )
        pieces = [body[i : i + 6] for i in range(0, len(body), 6)]
        started = time.monotonic()
        for piece in pieces:
            sock.sendall(piece)
            # Pacing a slow client (not a synchronisation): it must outlast the head's timeout.
            time.sleep(QUICK * 2 / len(pieces))
        assert time.monotonic() - started > QUICK
        status, _, answer = response(until_closed(sock))
        assert status == 201, answer
        assert server.get("v1", "ConfigMap", "slow")["metadata"]["name"] == "slow"


# ----------------------------------------------------------------- watches and floods


def open_watch(
    server: FakeApiServer, rv: str
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=GUARD)
    conn.request("GET", f"{CMS}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}")
    resp = conn.getresponse()
    assert resp.status == 200
    return conn, resp


def list_rv(server: FakeApiServer) -> str:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=GUARD)
    conn.request("GET", CMS)
    rv: str = json.loads(conn.getresponse().read())["metadata"]["resourceVersion"]
    conn.close()
    return rv


def next_added(resp: http.client.HTTPResponse) -> dict[str, Any]:
    while True:
        line = resp.readline()
        assert line, "the watch ended"
        event: dict[str, Any] = json.loads(line)
        if event["type"] == "ADDED":
            return event


def test_a_live_watch_outlasts_every_timeout() -> None:
    with serving(header_timeout=0.2, idle_timeout=0.2, body_timeout=0.2) as server:
        conn, resp = open_watch(server, list_rv(server))
        # Bookmarks every 0.05 s: read them for five times the longest timeout.
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            line = resp.readline()
            assert line, "the watch was closed"
            assert json.loads(line)["type"] == "BOOKMARK"
        server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
        assert next_added(resp)["object"]["metadata"]["name"] == "late"
        conn.close()


def flood(server: FakeApiServer, n: int) -> list[socket.socket]:
    """``n`` connections: every other one silent, the rest with half a request head."""
    socks = []
    try:
        for i in range(n):
            sock = connect(server)
            socks.append(sock)
            if i % 2:
                sock.sendall(HEAD)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def real_clients_are_answered(server: FakeApiServer) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=GUARD)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"ok"
    conn.close()
    from kubernetes import client

    path = server.kubeconfig("flooded")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api:
        listed = client.CoreV1Api(api).list_namespaced_config_map("default", _request_timeout=GUARD)
        assert listed.kind == "ConfigMapList"


def test_a_thousand_idle_and_half_open_connections_do_not_stop_real_clients() -> None:
    with fd_limit(4096), serving() as server:
        socks = flood(server, 1100)
        try:
            real_clients_are_answered(server)
        finally:
            for sock in socks:
                sock.close()


def test_over_the_bound_the_longest_idle_connections_are_closed_first() -> None:
    with fd_limit(4096), serving(max_connections=50) as server:
        # Keep-alive connections that have been answered, oldest first, and a watch.
        pooled = []
        for _ in range(5):
            conn = http.client.HTTPConnection(server.host, server.port, timeout=GUARD)
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b"ok"
            pooled.append(conn)
        watch, resp = open_watch(server, list_rv(server))
        socks = flood(server, 1100)
        try:
            real_clients_are_answered(server)
            for conn in pooled:  # idle longest: closed first
                assert conn.sock is not None and until_closed(conn.sock) == b""
            assert until_closed(socks[0]) == b""
            assert is_open(socks[-1])  # the most recent stay
            # The watch serves a request: never closed for the bound.
            server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}})
            assert next_added(resp)["object"]["metadata"]["name"] == "w"
        finally:
            for sock in socks:
                sock.close()
            for conn in pooled:
                conn.close()
            watch.close()


def test_when_every_connection_serves_a_request_a_new_client_is_served_past_the_bound() -> None:
    with serving(max_connections=2) as server:
        rv = list_rv(server)
        watches = [open_watch(server, rv) for _ in range(2)]
        try:
            real_clients_are_answered(server)
            server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w"}})
            for _, resp in watches:
                assert next_added(resp)["object"]["metadata"]["name"] == "w"
        finally:
            for conn, _ in watches:
                conn.close()


def test_the_cli_flags_and_a_flood_past_the_file_limit(tmp_path: Path) -> None:
    """The measured failure: with ``ulimit -n`` below the flood, accept() ran out of files
    and nothing, /healthz included, was answered. Now idle connections make room."""
    kubeconfig = tmp_path / "kc.yaml"
    command = [
        sys.executable,
        "-m",
        "pytest_ntinvariants.apiserver.cli",
        "--kubeconfig",
        str(kubeconfig),
        "--header-timeout",
        "0.5",
    ]
    shell = "ulimit -n 512 && exec " + " ".join(f"'{arg}'" for arg in command)
    proc = subprocess.Popen(
        ["sh", "-c", shell], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(60, proc.kill)  # only kills a hung server
    watchdog.start()
    socks: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("ntinv-apiserver serving at http://127.0.0.1:"), first
        port = int(first.rsplit(":", 1)[1])
        with fd_limit(4096):
            for i in range(700):
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=GUARD))
                if i % 2:
                    socks[-1].sendall(HEAD)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GUARD)
            conn.request("GET", "/healthz")
            assert conn.getresponse().read() == b"ok"
            conn.close()
            # --header-timeout reached the server: the newest connections close soon, not
            # after kube's 32 s.
            assert until_closed(socks[-1]) == b""
            for sock in socks:
                sock.close()
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        # accept() never failed: asyncio would have reported it, and stop() raised it.
        assert proc.returncode == 0, err
    finally:
        watchdog.cancel()
        for sock in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
