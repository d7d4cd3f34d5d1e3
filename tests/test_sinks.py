"""Fake delivery endpoints, exercised with real HTTP clients (urllib and aiohttp).

Nothing here sleeps to synchronise: ordering comes from ``wait_for_calls`` (a condition
variable), ``Gate``s and joined threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import email.utils
import http.client
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import aiohttp
import orjson
import pytest

from pytest_ntinvariants._loopthread import BackgroundError
from pytest_ntinvariants.packs.notifications.attribution import (
    HEADER_ATTEMPT,
    HEADER_CHANNEL,
    HEADER_NAME,
    HEADER_NAMESPACE,
    HEADER_UID,
    identify_notification,
)
from pytest_ntinvariants.sinks import (
    HEADER_KEY,
    Attribution,
    Gate,
    ObjectKey,
    Reply,
    Sink,
    SinkCall,
    SinkRequest,
    abort,
    empty,
    identify_by_headers,
    malformed_json,
    reply,
    sequence,
)
from pytest_ntinvariants.tls import CertificateAuthority

PAYLOAD = {"text": "Disk full on node-1", "blocks": [{"type": "header"}]}


class Result(NamedTuple):
    status: int
    body: bytes
    headers: Mapping[str, str]


def post(
    url: str,
    payload: Any = PAYLOAD,
    *,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> Result:
    """POST like a webhook client (urllib); HTTP errors are results, not exceptions."""
    body = data if data is not None else orjson.dumps(payload)
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:
            return Result(response.status, response.read(), dict(response.headers))
    except urllib.error.HTTPError as error:
        with error:
            return Result(error.code, error.read(), dict(error.headers))


def about(uid: str, *, channel: str | None = None, attempt: int | None = None) -> dict[str, str]:
    """The attribution headers the reference controller sends."""
    headers = {HEADER_UID: uid, HEADER_NAMESPACE: "team-a", HEADER_NAME: f"notif-{uid}"}
    if channel is not None:
        headers[HEADER_CHANNEL] = channel
    if attempt is not None:
        headers[HEADER_ATTEMPT] = str(attempt)
    return headers


def statuses(sink: Sink, n: int, **kwargs: Any) -> list[int]:
    return [post(sink.url, **kwargs).status for _ in range(n)]


# The fixtures' sinks attribute calls as the NotificationRequest pack does (by the
# reference controller's headers); test_generic_headers_attribute_calls_by_default covers the
# core's own scheme.
@pytest.fixture
def slack() -> Iterator[Sink]:
    with Sink("slack", identify=identify_notification) as sink:
        yield sink


@pytest.fixture
def webhook() -> Iterator[Sink]:
    with Sink("webhook", identify=identify_notification) as sink:
        yield sink


# --------------------------------------------------------------------------- basics


def test_default_reply_is_slack_ok_and_the_call_is_recorded(slack: Sink) -> None:
    before_wall, before_mono = time.time(), time.monotonic()
    result = post(slack.url_for("/services/T0/B0/XYZ?source=test&source=again"), PAYLOAD)
    assert result.status == 200
    assert result.body == b"ok"
    assert result.headers["Content-Type"] == "text/plain; charset=utf-8"

    [call] = slack.calls
    assert isinstance(call, SinkCall)
    assert (call.index, call.sink, call.method, call.path) == (
        0,
        "slack",
        "POST",
        "/services/T0/B0/XYZ",
    )
    assert call.query.getall("source") == ["test", "again"]
    assert call.headers["content-type"] == "application/json"  # case-insensitive
    assert call.body == orjson.dumps(PAYLOAD)
    assert call.json == PAYLOAD and call.is_json and call.text == call.body.decode()
    assert call.remote == "127.0.0.1"
    assert before_wall <= call.wall <= time.time()
    assert before_mono <= call.monotonic <= time.monotonic()
    assert (call.object_key, call.key, call.attributes) == (None, "slack", {})
    assert (call.reply.status, call.reply.body, call.rule) == (200, b"ok", "default")


def test_binds_loopback_on_an_ephemeral_port() -> None:
    with Sink("a") as a, Sink("b") as b:
        for sink in (a, b):
            assert sink.url == f"http://127.0.0.1:{sink.port}/"
            assert sink.port > 0 and sink.running
            assert sink.ca_pem is None and sink.ca_path is None and sink.tls is None
        assert a.port != b.port
        assert a.url_for("hook") == a.url_for("/hook") == f"{a.url}hook"


def test_lifecycle_is_idempotent_and_a_stopped_sink_stays_stopped() -> None:
    sink = Sink("webhook")
    with pytest.raises(RuntimeError, match="not started"):
        _ = sink.url
    assert "not started" in repr(sink)
    assert sink.start() is sink
    assert sink.start() is sink  # no second server
    assert post(sink.url).status == 200
    sink.stop()
    sink.stop()
    assert not sink.running
    with pytest.raises(RuntimeError, match="create a new Sink"):
        sink.start()
    Sink("never-started").stop()  # harmless


# --------------------------------------------------------------------------- attribution


def test_calls_are_attributed_by_the_reference_controller_headers(slack: Sink) -> None:
    post(slack.url, headers=about("u1", attempt=1))
    post(slack.url, headers=about("u1", attempt=2))
    post(slack.url, headers=about("u2", channel="slack-alerts", attempt=1))
    post(slack.url)  # unattributed

    first = slack.calls[0]
    assert first.object_key == ObjectKey(uid="u1", namespace="team-a", name="notif-u1")
    assert (first.uid, first.namespace, first.name) == ("u1", "team-a", "notif-u1")
    # The channel defaults to the sink name; the key is the channel and the attempt.
    assert (first.key, first.attributes) == ("slack #1", {"channel": "slack", "attempt": 1})
    assert [c.attributes["attempt"] for c in slack.calls_for(uid="u1")] == [1, 2]
    assert slack.count(uid="u2") == 1
    assert slack.count(channel="slack-alerts") == slack.count(key="slack-alerts #1") == 1
    assert slack.count(channel="slack") == 2
    assert slack.count(key="slack") == 1  # the unattributed call: the sink's name
    assert slack.count(name="notif-u1", attempt=2) == 1
    assert slack.count(namespace="team-a") == 3
    assert slack.count() == 4
    assert slack.calls_for(uid="nobody") == []
    assert str(first.object_key) == "team-a/notif-u1 (uid u1)"
    assert str(ObjectKey(uid="u9")) == "uid u9" and str(ObjectKey(name="n")) == "n"
    assert first.object_key is not None and first.object_key.name_key == "team-a/notif-u1"
    assert ObjectKey(name="cluster-scoped").name_key == "cluster-scoped"
    assert str(ObjectKey()) == "unknown object"


def test_a_malformed_attempt_header_is_recorded_as_unknown(webhook: Sink) -> None:
    post(webhook.url, headers={HEADER_ATTEMPT: "second"})
    assert webhook.calls[0].attributes["attempt"] is None


def test_custom_identify_overrides_the_headers() -> None:
    def from_body(request: SinkRequest) -> Attribution:
        meta = request.json["meta"]
        return Attribution(ObjectKey(uid=meta["uid"]), meta.get("channel", ""))

    with Sink("webhook", identify=from_body) as sink:
        post(sink.url, {"meta": {"uid": "u9", "channel": "pager"}}, headers=about("ignored"))
        post(sink.url, {"meta": {"uid": "u9"}})
        assert [(c.uid, c.key) for c in sink.calls] == [("u9", "pager"), ("u9", "webhook")]

    request = sink.calls[0]
    assert identify_notification(request) == Attribution(
        ObjectKey("ignored", "team-a", "notif-ignored"),
        "webhook",
        {"channel": "webhook", "attempt": None},
    )
    assert identify_by_headers(request) is None  # no generic header


def test_generic_headers_attribute_calls_by_default() -> None:
    with Sink("hook") as sink:
        post(sink.url, headers={"X-Ntinv-Uid": "u1", "X-Ntinv-Name": "g1", HEADER_KEY: "paint"})
        post(sink.url, headers={"X-Ntinv-Namespace": "ns", "X-Ntinv-Name": "g2"})
        post(sink.url, headers=about("nr"))  # another controller's scheme: not the core's
        calls = sink.calls
    assert [(c.object_key, c.key, c.attributes) for c in calls] == [
        (ObjectKey("u1", None, "g1"), "paint", {}),
        (ObjectKey(None, "ns", "g2"), "hook", {}),
        (None, "hook", {}),
    ]


def test_a_failing_identify_answers_500_and_is_raised_at_stop() -> None:
    def broken(request: SinkRequest) -> Attribution:
        raise LookupError("no uid in this payload")

    sink = Sink("webhook", identify=broken).start()
    result = post(sink.url)
    assert (result.status, result.body) == (500, b"identify failed")
    assert sink.calls[0].rule == "identify_error"
    with pytest.raises(BackgroundError, match="LookupError: no uid in this payload"):
        sink.stop()


# --------------------------------------------------------------------------- validation


def test_slack_rejects_bodies_that_are_not_json(slack: Sink) -> None:
    result = post(slack.url, data=b"text=hello")
    assert (result.status, result.body) == (400, b"invalid_payload")
    assert post(slack.url, data=b"").status == 400
    assert [c.rule for c in slack.calls] == ["strict_json", "strict_json"]
    assert slack.calls[0].json is None and not slack.calls[0].is_json


def test_validation_is_optional(webhook: Sink) -> None:
    assert not webhook.strict_json
    assert post(webhook.url, data=b"not json").status == 200
    with Sink("slack", strict_json=False) as lenient:
        assert post(lenient.url, data=b"not json").status == 200
    with Sink("webhook", strict_json=True) as strict:
        assert post(strict.url, data=b"not json").status == 400


def test_the_default_reply_can_be_replaced() -> None:
    with Sink("webhook", default=reply(204)) as sink:
        assert post(sink.url).status == 204
        with sink.script(500):
            assert post(sink.url).status == 500
        assert post(sink.url).status == 204


def test_oversized_bodies_get_413_and_are_recorded(webhook: Sink) -> None:
    result = post(webhook.url, data=b"x" * (1024**2 + 1))
    assert result.status == 413
    assert webhook.calls[0].rule == "too_large"


# --------------------------------------------------------------------------- scripts


def test_fixed_status_is_undone_by_remove(slack: Sink) -> None:
    handle = slack.script(reply(502))
    assert statuses(slack, 2) == [502, 502]
    assert handle.hits == 2 and not handle.exhausted
    assert slack.scripts == [handle]
    handle.remove()
    handle.remove()  # idempotent
    assert handle.removed and slack.scripts == []
    assert statuses(slack, 1) == [200]
    assert [c.rule for c in slack.calls] == [handle.label, handle.label, "default"]
    assert handle.label == "script#1 502"
    assert "removed" in repr(handle)


def test_a_bare_status_code_is_a_reply(slack: Sink) -> None:
    with slack.script(503, label="outage"):
        assert post(slack.url).status == 503
    assert post(slack.url).status == 200
    assert [c.rule for c in slack.calls] == ["outage", "default"]


def test_later_rules_take_precedence(slack: Sink) -> None:
    first = slack.script(500)
    second = slack.script(404)
    assert statuses(slack, 1) == [404]
    second.remove()
    assert statuses(slack, 1) == [500]
    first.remove()


def test_times_limits_a_rule_then_earlier_rules_answer(slack: Sink) -> None:
    slack.script(500)
    limited = slack.script(503, times=2)
    assert statuses(slack, 3) == [503, 503, 500]
    assert limited.exhausted and limited.hits == 2


def test_a_sequence_plays_in_order_and_its_last_step_repeats(slack: Sink) -> None:
    slack.script(sequence([502, 200]))
    assert statuses(slack, 3) == [502, 200, 200]
    slack.reset()
    slack.script(sequence([500, reply(429, retry_after=2), 201]))
    results = [post(slack.url) for _ in range(4)]
    assert [r.status for r in results] == [500, 429, 201, 201]
    assert results[1].headers["Retry-After"] == "2"


def test_sequences_and_times_can_count_per_object(slack: Sink) -> None:
    slack.script(sequence([502, 200]), per_object=True)
    assert statuses(slack, 2, headers=about("u1")) == [502, 200]
    assert statuses(slack, 2, headers=about("u2")) == [502, 200]
    # The same object on another channel is another key.
    assert statuses(slack, 1, headers=about("u1", channel="other")) == [502]

    slack.reset()
    once = slack.script(410, times=1, per_object=True)
    assert statuses(slack, 2, headers=about("u1")) == [410, 200]
    assert statuses(slack, 2, headers=about("u2")) == [410, 200]
    assert once.hits == 2 and not once.exhausted


def test_rules_can_be_limited_to_an_object_channel_or_attempt(slack: Sink) -> None:
    slack.script(403, uid="u1")
    slack.script(500, channel="escalations")
    slack.script(504, name="notif-u3", namespace="team-a", attempt=2)
    assert post(slack.url, headers=about("u1")).status == 403
    assert post(slack.url, headers=about("u2")).status == 200
    assert post(slack.url, headers=about("u2", channel="escalations")).status == 500
    assert post(slack.url, headers=about("u3", attempt=1)).status == 200
    assert post(slack.url, headers=about("u3", attempt=2)).status == 504
    assert post(slack.url).status == 200  # unattributed calls match no object filter


def test_match_selects_by_request(slack: Sink) -> None:
    # Slack answers 400 "no_text" to a payload without text.
    slack.script(reply(400, body="no_text"), match=lambda r: "text" not in r.json)
    result = post(slack.url, {"blocks": []})
    assert (result.status, result.body) == (400, b"no_text")
    assert post(slack.url, {"text": "hi"}).status == 200


def test_match_may_query_the_sink(slack: Sink) -> None:
    # The lock is reentrant: "fail every call after the first" reads the sink mid-call.
    slack.script(500, match=lambda request: slack.count() > 0)
    assert statuses(slack, 3) == [200, 500, 500]


def test_a_broken_match_is_skipped_and_raised_at_stop() -> None:
    sink = Sink("webhook").start()

    def broken(request: SinkRequest) -> bool:
        raise ZeroDivisionError("bad matcher")

    sink.script(500)
    sink.script(404, match=broken)
    assert post(sink.url).status == 500
    with pytest.raises(BackgroundError, match="ZeroDivisionError: bad matcher"):
        sink.stop()


def test_retry_after_as_seconds_or_http_date(slack: Sink) -> None:
    date = email.utils.formatdate(usegmt=True)
    slack.script(sequence([reply(429, retry_after=3.0), reply(503, retry_after=date)]))
    assert post(slack.url).headers["Retry-After"] == "3"
    assert post(slack.url).headers["Retry-After"] == date
    assert slack.calls[0].reply.describe() == "429 (Retry-After: 3)"


def test_malformed_json_and_empty_bodies(slack: Sink) -> None:
    slack.script(sequence([malformed_json(), empty(), empty(204)]))
    bad = post(slack.url)
    assert bad.status == 200 and bad.headers["Content-Type"] == "application/json"
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(bad.body)
    blank = post(slack.url)
    assert (blank.status, blank.body) == (200, b"")
    assert "Content-Type" not in blank.headers
    assert post(slack.url).status == 204
    assert [c.reply.note for c in slack.calls] == ["malformed-json", "empty", "empty"]


def test_custom_bodies_json_and_headers(webhook: Sink) -> None:
    webhook.script(
        sequence(
            [
                reply(202, json={"accepted": True}, headers={"X-Request-Id": "r1"}),
                reply(409, body=b"\x00\x01", content_type="application/octet-stream"),
                reply(404),
            ]
        )
    )
    accepted = post(webhook.url)
    assert (accepted.status, orjson.loads(accepted.body)) == (202, {"accepted": True})
    assert accepted.headers["Content-Type"] == "application/json"
    assert accepted.headers["X-Request-Id"] == "r1"
    conflict = post(webhook.url)
    assert (conflict.status, conflict.body) == (409, b"\x00\x01")
    assert conflict.headers["Content-Type"] == "application/octet-stream"
    assert post(webhook.url).body == b"Not Found"  # the default body of an error status


def test_abort_closes_the_connection_without_a_reply(slack: Sink) -> None:
    slack.script(abort(), times=1)
    with pytest.raises(http.client.RemoteDisconnected):
        post(slack.url)
    assert post(slack.url).status == 200  # the server itself is fine
    aborted = slack.calls[0]
    assert aborted.reply.aborts and aborted.status is None
    assert slack.calls[1].status == 200
    assert aborted.reply.describe() == "abort"

    async def with_aiohttp() -> None:
        slack.script(abort(delay=0.01), times=1)
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ServerDisconnectedError):
                async with session.post(slack.url, json=PAYLOAD):
                    pass

    asyncio.run(with_aiohttp())


def test_delay_is_awaited_on_the_server(slack: Sink) -> None:
    slack.script(reply(200, delay=0.05))
    started = time.monotonic()
    assert post(slack.url).status == 200
    assert time.monotonic() - started >= 0.05
    assert slack.calls[0].reply.delay == 0.05
    assert slack.calls[0].reply.describe() == "200 after 0.05s"


def test_a_held_reply_waits_for_its_gate_without_blocking_others(slack: Sink) -> None:
    gate = Gate()
    slack.script(reply(201, hold=gate), uid="held")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(post, slack.url, headers=about("held"))
        [held] = slack.wait_for_calls(1, uid="held")  # recorded on arrival, before the reply
        assert held.reply.hold is gate and held.reply.describe() == "201 held"
        assert not pending.done()
        # The server answers other calls while one reply is held.
        assert post(slack.url, headers=about("other")).status == 200
        assert not pending.done()
        gate.open()
        assert pending.result(10).status == 201
    assert gate.is_open and repr(gate) == "Gate(open)"
    assert post(slack.url, headers=about("held")).status == 201  # an open gate stays open


def test_stop_drops_paused_replies_promptly() -> None:
    sink = Sink("slack").start()
    sink.script(reply(200, hold=Gate()))
    sink.script(reply(200, delay=60), uid="slow")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = pool.submit(post, sink.url)
        slow = pool.submit(post, sink.url, headers=about("slow"))
        sink.wait_for_calls(2)
        started = time.monotonic()
        sink.stop()
        # Well under both the 60 s delay and aiohttp's graceful-shutdown wait.
        assert time.monotonic() - started < 4
        for future in (held, slow):
            with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
                future.result(10)


# --------------------------------------------------------------------------- queries


def test_wait_for_calls_returns_when_enough_calls_arrive(slack: Sink) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, slack.url, headers=about(f"u{i % 2}")) for i in range(6)]
        assert len(slack.wait_for_calls(3, uid="u0")) == 3
        assert len(slack.wait_for_calls(6)) == 6
        assert all(f.result(10).status == 200 for f in futures)


def test_wait_for_calls_times_out_with_what_did_arrive(slack: Sink) -> None:
    post(slack.url, headers=about("u1"))
    with pytest.raises(TimeoutError) as info:
        slack.wait_for_calls(2, timeout=0.01, uid="u1")
    message = str(info.value)
    assert "expected 2 call(s) matching (uid='u1'), got 1" in message
    assert "slack#0 POST /" in message


def test_wait_for_calls_gives_up_when_the_sink_stops() -> None:
    sink = Sink("slack").start()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(sink.wait_for_calls, 1, 60.0)
        sink.stop()
        with pytest.raises(TimeoutError, match="the sink stopped"):
            waiting.result(10)


def test_clear_keeps_counting_and_reset_removes_scripts(slack: Sink) -> None:
    handle = slack.script(500)
    post(slack.url)
    slack.clear()
    assert slack.calls == []
    assert post(slack.url).status == 500
    assert [c.index for c in slack.calls] == [1]
    slack.reset()
    assert handle.removed and slack.calls == []
    assert post(slack.url).status == 200


def test_listeners_see_every_call_in_order_until_removed(slack: Sink) -> None:
    seen: list[SinkCall] = []
    handle = slack.on_call(seen.append)
    for i in range(3):
        post(slack.url, headers=about(f"u{i}"))
    handle.remove()
    post(slack.url)
    assert seen == slack.calls[:3]  # the very same records, compared by identity
    assert [c.index for c in seen] == [0, 1, 2]
    assert handle.removed


def test_a_failing_listener_does_not_stop_the_sink_but_fails_stop() -> None:
    sink = Sink("slack").start()
    seen: list[int] = []

    def broken(call: SinkCall) -> None:
        raise ValueError(f"ledger rejected call {call.index}")

    with sink.on_call(broken):
        sink.on_call(lambda call: seen.append(call.index))
        assert post(sink.url).status == 200
    assert seen == [0]  # later listeners still ran
    with pytest.raises(BackgroundError, match="ledger rejected call 0"):
        sink.stop()


def test_calls_are_immutable_records(slack: Sink) -> None:
    post(slack.url, headers=about("u1", attempt=1))
    call = slack.calls[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.key = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        call.headers["X-New"] = "1"  # type: ignore[index]
    call.json["text"] = "changed"
    assert call.json == PAYLOAD  # each access parses afresh
    slack.calls.clear()
    assert len(slack.calls) == 1  # .calls is a copy


def test_to_dict_is_json_ready(slack: Sink) -> None:
    slack.script(reply(503, retry_after=1), label="outage")
    post(slack.url_for("hook?x=1&x=2"), headers=about("u1", attempt=3))
    data = slack.calls[0].to_dict()
    assert orjson.loads(orjson.dumps(data)) == data
    assert data["object_key"] == {"uid": "u1", "namespace": "team-a", "name": "notif-u1"}
    assert (data["key"], data["attributes"], data["rule"]) == (
        "slack #3",
        {"channel": "slack", "attempt": 3},
        "outage",
    )
    assert data["reply"]["status"] == 503 and data["reply"]["headers"] == {"Retry-After": "1"}
    assert data["query"] == {"x": ["1", "2"]}
    assert data["json"] == PAYLOAD and data["path"] == "/hook"
    assert data["headers"][HEADER_UID] == "u1"
    assert "outage" in repr(slack.calls[0]) and "attempt 3" in repr(slack.calls[0])


def test_many_concurrent_calls_are_each_recorded_once(webhook: Sink) -> None:
    n = 200
    indexes: list[int] = []
    webhook.on_call(lambda call: indexes.append(call.index))
    webhook.script(sequence([500, 200]), per_object=True)

    async def burst() -> list[int]:
        connector = aiohttp.TCPConnector(limit=50)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(i: int) -> int:
                async with session.post(webhook.url, json={"i": i}, headers=about(f"u{i}")) as r:
                    await r.read()
                    return r.status

            return await asyncio.gather(*(one(i) for i in range(n)))

    assert asyncio.run(burst()) == [500] * n  # each object's first call
    calls = webhook.calls
    assert len(calls) == n
    assert sorted(c.json["i"] for c in calls) == list(range(n))
    assert [c.index for c in calls] == list(range(n)) == indexes
    assert len({c.uid for c in calls}) == n


# --------------------------------------------------------------------------- TLS


def https_client(sink: Sink) -> ssl.SSLContext:
    """A client that trusts the sink's CA bundle file, as a controller would be configured."""
    assert sink.ca_path is not None
    return ssl.create_default_context(cafile=str(sink.ca_path))


def test_valid_tls_verifies_with_the_sinks_ca() -> None:
    with Sink("slack", tls="valid") as sink:
        assert sink.url.startswith("https://127.0.0.1:") and sink.scheme == "https"
        assert sink.tls == "valid" and sink.ca is not None and sink.keypair is not None
        assert sink.ca_path is not None and sink.ca_path.read_bytes() == sink.ca_pem
        assert post(sink.url, context=https_client(sink)).status == 200

        async def with_aiohttp() -> int:
            assert sink.ca_pem is not None
            context = ssl.create_default_context(cadata=sink.ca_pem.decode())
            async with (
                aiohttp.ClientSession() as session,
                session.post(sink.url, json=PAYLOAD, ssl=context) as response,
            ):
                return response.status

        assert asyncio.run(with_aiohttp()) == 200
        assert sink.count() == 2
        ca_file = sink.ca_path
    assert not ca_file.exists()  # removed at stop
    with pytest.raises(RuntimeError, match="removed"):
        _ = sink.ca_path


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("self-signed", "self-signed certificate"),
        ("expired", "certificate has expired"),
        ("wrong-host", "IP address mismatch"),
    ],
)
def test_broken_certificates_fail_verification(mode: Any, reason: str) -> None:
    with Sink("slack", tls=mode) as sink:
        assert sink.tls == mode
        with pytest.raises(urllib.error.URLError) as info:
            post(sink.url, context=https_client(sink))
        assert isinstance(info.value.reason, ssl.SSLCertVerificationError)
        assert reason in str(info.value.reason)

        async def with_aiohttp() -> None:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(aiohttp.ClientConnectorCertificateError) as failure:
                    async with session.post(sink.url, json=PAYLOAD, ssl=https_client(sink)):
                        pass
                assert isinstance(failure.value.certificate_error, ssl.SSLCertVerificationError)

        asyncio.run(with_aiohttp())
        assert sink.calls == []  # the request never arrived


def test_a_shared_ca_and_a_custom_certificate() -> None:
    ca = CertificateAuthority.generate(name="cluster CA")
    with Sink("slack", tls="valid", ca=ca) as sink:
        assert sink.ca is ca and sink.ca_pem == ca.cert_pem
        assert post(sink.url, context=ca.client_ssl_context()).status == 200
    with Sink("webhook", tls=ca.issue(("localhost",))) as custom:
        assert custom.tls == "custom" and custom.ca_pem == ca.cert_pem
        # The certificate names only localhost, so connect by that name.
        by_name = f"https://localhost:{custom.port}/x"
        assert post(by_name, context=ca.client_ssl_context()).status == 200


def test_bad_arguments_are_rejected(slack: Sink) -> None:
    with pytest.raises(ValueError, match="tls must be one of"):
        Sink("slack", tls="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="status"):
        reply(42)
    with pytest.raises(ValueError, match="delay"):
        Reply(delay=-1)
    with pytest.raises(ValueError, match="not both"):
        reply(200, body="x", json={})
    with pytest.raises(ValueError, match="at least one step"):
        sequence([])
    with pytest.raises(TypeError, match="HTTP status code"):
        sequence(["502"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="times"):
        slack.script(500, times=0)
