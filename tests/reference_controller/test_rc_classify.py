"""Classification of HTTP statuses, Retry-After, exceptions, and real TLS failures."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from rc_certs import Authority, self_signed
from rc_http import free_port, serve

from reference_controller.channels import HttpPoster
from reference_controller.classify import (
    PERMANENT_MARKER,
    ErrorKind,
    classify_exception,
    classify_http_status,
    parse_retry_after,
)


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_success(status: int) -> None:
    outcome = classify_http_status("slack", status)
    assert outcome.success and outcome.error is None and outcome.http_status == status


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 508, 599])
def test_408_429_and_5xx_are_retryable(status: int) -> None:
    outcome = classify_http_status("slack", status, body="upstream\n  trouble")
    assert not outcome.success and not outcome.permanent
    assert outcome.kind is ErrorKind.HTTP
    assert outcome.error == f"slack endpoint returned HTTP {status}: upstream trouble"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 413, 422, 301, 100])
def test_other_statuses_are_permanent_with_the_marker(status: int) -> None:
    outcome = classify_http_status("webhook", status)
    assert outcome.permanent and not outcome.success
    assert outcome.error == f"{PERMANENT_MARKER}webhook endpoint returned HTTP {status}"


def test_retry_after_is_parsed_for_retryable_statuses_only() -> None:
    assert classify_http_status("slack", 429, headers={"Retry-After": "7"}).retry_after == 7
    assert classify_http_status("slack", 503, headers={"Retry-After": "2.5"}).retry_after == 2.5
    assert classify_http_status("slack", 400, headers={"Retry-After": "7"}).retry_after is None
    assert classify_http_status("slack", 429).retry_after is None


def test_retry_after_forms() -> None:
    now = datetime(2025, 12, 26, 10, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2025, 12, 26, 10, 0, 30, tzinfo=UTC), usegmt=True)
    earlier = format_datetime(datetime(2025, 12, 26, 9, 0, 0, tzinfo=UTC), usegmt=True)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(later, now=now) == 30
    assert parse_retry_after(earlier, now=now) == 0
    for junk in (None, "", "  ", "soon", "-5", "nan"):
        assert parse_retry_after(junk) is None


def test_exception_classes() -> None:
    timeout = classify_exception("slack", TimeoutError(), timeout=10)
    assert (timeout.kind, timeout.permanent) == (ErrorKind.TIMEOUT, False)
    assert timeout.error == "slack delivery timed out after 10s"
    refused = classify_exception("slack", ConnectionRefusedError(111, "Connection refused"))
    assert (refused.kind, refused.permanent) == (ErrorKind.CONNECTION, False)
    reset = classify_exception("slack", aiohttp.ServerDisconnectedError())
    assert (reset.kind, reset.permanent) == (ErrorKind.CONNECTION, False)
    bad_url = classify_exception("webhook", aiohttp.InvalidURL("nope"))
    assert (bad_url.kind, bad_url.permanent) == (ErrorKind.INVALID_TARGET, True)
    disk = classify_exception("file", OSError(28, "No space left on device"))
    assert (disk.kind, disk.permanent) == (ErrorKind.IO, False)
    verify = classify_exception("slack", ssl.SSLCertVerificationError(1, "certificate has expired"))
    assert (verify.kind, verify.permanent) == (ErrorKind.TLS_CERTIFICATE, True)
    handshake = classify_exception("slack", ssl.SSLError(1, "wrong version number"))
    assert (handshake.kind, handshake.permanent) == (ErrorKind.TLS, True)
    bug = classify_exception("slack", KeyError("blocks"))
    assert (bug.kind, bug.permanent) == (ErrorKind.INTERNAL, False)
    assert bug.error == "slack delivery error: KeyError: 'blocks'"


async def _post(url: str, *, ca: Path | None = None, timeout: float = 5.0):
    poster = HttpPoster(timeout=timeout, ca_bundle=ca)
    try:
        return await poster.post_json("slack", url, {"text": "hi"}, {"X-Test": "1"})
    finally:
        await poster.close()


@pytest.mark.asyncio
async def test_https_with_a_trusted_certificate_delivers(tmp_path: Path) -> None:
    ca = Authority(tmp_path)
    async with serve(ssl_context=ca.issue("good").server_context()) as endpoint:
        outcome = await _post(endpoint.url, ca=ca.pem.cert)
    assert outcome.success
    assert endpoint.requests[0]["headers"]["X-Test"] == "1"


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["self-signed", "expired", "wrong-host", "unknown-ca"])
async def test_tls_certificate_failures_are_permanent(tmp_path: Path, case: str) -> None:
    ca = Authority(tmp_path)
    if case == "self-signed":
        pem = self_signed(tmp_path)
    elif case == "expired":
        pem = ca.issue("expired", expired=True)
    elif case == "wrong-host":
        pem = ca.issue("other", host="other.example")
    else:
        pem = ca.issue("good")
    trust = None if case == "unknown-ca" else ca.pem.cert
    async with serve(ssl_context=pem.server_context()) as endpoint:
        outcome = await _post(endpoint.url, ca=trust)
    assert outcome.permanent and not outcome.success
    assert outcome.kind is ErrorKind.TLS_CERTIFICATE
    assert outcome.error is not None
    assert outcome.error.startswith(f"{PERMANENT_MARKER}TLS certificate validation failed")
    assert endpoint.requests == []  # nothing reached the endpoint


@pytest.mark.asyncio
async def test_tls_handshake_failure_is_permanent() -> None:
    # An HTTPS client talking to a plain-HTTP server: the handshake cannot complete.
    async with serve() as endpoint:
        outcome = await _post(endpoint.url.replace("http://", "https://"))
    assert (outcome.kind, outcome.permanent) == (ErrorKind.TLS, True)


@pytest.mark.asyncio
async def test_connection_refused_is_retryable() -> None:
    outcome = await _post(f"http://127.0.0.1:{free_port()}/hook")
    assert (outcome.kind, outcome.permanent, outcome.success) == (
        ErrorKind.CONNECTION,
        False,
        False,
    )


@pytest.mark.asyncio
async def test_timeout_is_retryable() -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="late")

    async with serve(hang) as endpoint:
        outcome = await _post(endpoint.url, timeout=0.2)
        release.set()
    assert (outcome.kind, outcome.permanent) == (ErrorKind.TIMEOUT, False)
    assert outcome.error == "slack delivery timed out after 0.2s"


@pytest.mark.asyncio
async def test_429_retry_after_over_the_wire() -> None:
    async def throttle(request: web.Request) -> web.StreamResponse:
        return web.Response(status=429, text="slow down", headers={"Retry-After": "3"})

    async with serve(throttle) as endpoint:
        outcome = await _post(endpoint.url)
    assert (outcome.permanent, outcome.retry_after, outcome.http_status) == (False, 3.0, 429)
    assert outcome.error == "slack endpoint returned HTTP 429: slow down"
