"""The operator end to end: kopf, the real HTTP API client, the fake API server, real sinks.

Replicas run with ``run_operator`` in the test's event loop (several at once), in a thread,
or as ``python -m reference_controller`` / ``kopf run -m reference_controller`` processes.
Waiting is driven by the API server's own change notifications, never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from rc_http import Endpoint, serve
from rc_kit import ORDINARY, PLANTED, PLANTED_METADATA, leaks, planted_spec, spec, strings_in
from variants import NoDedupe, TimestampWindowDedupe

from reference_controller import (
    ControllerConfig,
    build_controller,
    build_registry,
    crd_manifest,
    run_operator,
)
from reference_controller.models import API_VERSION, KIND

apiserver = pytest.importorskip("pytest_ntinvariants.apiserver")
operators = pytest.importorskip("pytest_ntinvariants.operators")
sinks = pytest.importorskip("pytest_ntinvariants.sinks")

REPO = Path(__file__).resolve().parents[2]


class Watcher:
    """Wakes the test loop on every change in the API server's store."""

    def __init__(self, server: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self._loop = loop
        self._changed = asyncio.Event()
        self.unsubscribe = server.store.subscribe(self._on_change)

    def _on_change(self, event: Any) -> None:
        self._loop.call_soon_threadsafe(self._changed.set)

    def poke(self) -> None:
        """Wake waiters for something outside the store (e.g. an endpoint call)."""
        self._changed.set()

    async def until(self, predicate: Callable[[], bool], *, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if predicate():
                    return
                await self._changed.wait()

    def status(self, name: str, namespace: str = "default") -> dict[str, Any]:
        obj = self.server.get(API_VERSION, KIND, name, namespace)
        return dict(obj.get("status") or {})

    async def phase(self, name: str, *phases: str) -> dict[str, Any]:
        await self.until(lambda: self.status(name).get("phase") in phases)
        return self.status(name)


@pytest.fixture
def server() -> Iterator[Any]:
    with apiserver.FakeApiServer(crds=[crd_manifest()]) as running:
        yield running


@pytest_asyncio.fixture
async def watcher(server: Any) -> AsyncIterator[Watcher]:
    watch = Watcher(server, asyncio.get_running_loop())
    yield watch
    watch.unsubscribe()


def connection(server: Any, identity: str) -> Any:
    import kopf

    return kopf.ConnectionInfo(server=server.url, token=server.token_for(identity), scheme="Bearer")


def create(server: Any, name: str, body: dict[str, Any]) -> dict[str, Any]:
    (obj,) = server.apply(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"name": name, "namespace": "default"},
            "spec": body,
        }
    )
    return obj


@contextlib.asynccontextmanager
async def replicas(
    server: Any, *identities: str, strategy: Any = None, **config: Any
) -> AsyncIterator[None]:
    """Run one ``run_operator`` per identity in this loop; stop them all at the end."""
    stops, tasks = [], []
    for identity in identities:
        stop, ready = asyncio.Event(), asyncio.Event()
        settings = {"time_scale": 0.001, "seed": 1, **config}
        task = asyncio.create_task(
            run_operator(
                ControllerConfig(identity=identity, **settings),
                connection=connection(server, identity),
                strategy=strategy,
                namespaces=["default"],
                stop_flag=stop,
                ready_flag=ready,
            )
        )
        stops.append(stop)
        tasks.append(task)
        await ready.wait()
    try:
        yield
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)


def calls_by_uid(endpoint: Endpoint) -> Counter[str]:
    return Counter(r["headers"]["X-Notification-Uid"] for r in endpoint.requests)


@pytest.mark.asyncio
async def test_console_notification_is_sent_and_announced(server: Any, watcher: Watcher) -> None:
    async with replicas(server, "replica-a"):
        obj = create(server, "hello", spec("console"))
        status = await watcher.phase("hello", "Sent")
    assert status["totalAttempts"] == 1 and status["successfulDeliveries"] == 1
    assert status["deliveryAttempts"][0]["holder"] == "replica-a"
    events, *_ = server.store.list(server.resource("v1", "events"), "default")
    reasons = [
        e.obj["reason"] for e in events if e.obj["involvedObject"]["uid"] == obj["metadata"]["uid"]
    ]  # listed in name order: compare as a multiset
    assert sorted(reasons) == ["NotificationSent", "PhaseTransition", "PhaseTransition"]


@pytest.mark.asyncio
async def test_slack_retry_over_http_with_attribution_headers(
    server: Any, watcher: Watcher
) -> None:
    answers = iter([502, 200])

    async def flaky(request: web.Request) -> web.StreamResponse:
        return web.Response(status=next(answers, 200), text="ok")

    async with serve(flaky) as slack, replicas(server, "replica-a", slack_webhook_url=slack.url):
        obj = create(server, "flaky", spec("slack"))
        status = await watcher.phase("flaky", "Sent")
    uid = obj["metadata"]["uid"]
    assert [a["status"] for a in status["deliveryAttempts"]] == ["failed", "success"]
    assert "502" in status["deliveryAttempts"][0]["error"]
    headers = [r["headers"] for r in slack.requests]
    assert [h["X-Notification-Attempt"] for h in headers] == ["1", "2"]
    assert [h["Idempotency-Key"] for h in headers] == [f"{uid}/slack/1", f"{uid}/slack/2"]
    assert {h["X-Notification-Name"] for h in headers} == {"flaky"}


@pytest.mark.asyncio
async def test_two_replicas_never_deliver_twice(server: Any, watcher: Watcher) -> None:
    names = [f"burst-{i}" for i in range(8)]
    async with (
        serve() as slack,
        replicas(server, "replica-a", "replica-b", slack_webhook_url=slack.url),
    ):
        uids = [create(server, name, spec("slack", "console"))["metadata"]["uid"] for name in names]
        await watcher.until(lambda: all(watcher.status(n).get("phase") == "Sent" for n in names))
    assert calls_by_uid(slack) == Counter({uid: 1 for uid in uids})
    holders = Counter()
    for name in names:
        status = watcher.status(name)
        assert status["totalAttempts"] == 2 == len(status["deliveryAttempts"])
        assert status["claims"] == []
        holders.update(a["holder"] for a in status["deliveryAttempts"])
    assert set(holders) <= {"replica-a", "replica-b"}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("variant", "recorded"),
    [(NoDedupe, 2), (TimestampWindowDedupe, 1)],
    ids=["no-dedupe", "timestamp-window"],
)
async def test_historical_variants_deliver_twice_on_their_own_stale_events(
    server: Any, watcher: Watcher, variant: type, recorded: int
) -> None:
    # No perturbation needed: kopf hands the operator the events of its own earlier writes
    # after it has moved on (the seed's "concurrent reconciles"). Without claims, the
    # Sending body (written before the record) makes a variant deliver again.
    async def answer(request: web.Request) -> web.StreamResponse:
        watcher.poke()  # an endpoint call is not a store change: wake the waiter too
        return web.Response(text="ok")

    async with (
        serve(answer) as slack,
        replicas(server, "replica-a", strategy=variant(), slack_webhook_url=slack.url),
    ):
        obj = create(server, "old-bug", spec("slack"))
        uid = obj["metadata"]["uid"]
        await watcher.until(lambda: calls_by_uid(slack)[uid] == 2)
        await watcher.until(lambda: watcher.status("old-bug").get("totalAttempts") == recorded)
    assert calls_by_uid(slack)[uid] == 2  # the endpoint was called twice...
    assert watcher.status("old-bug")["totalAttempts"] == recorded  # ...recorded as `recorded`


@pytest.mark.asyncio
async def test_the_reference_delivers_once_on_the_same_events(
    server: Any, watcher: Watcher
) -> None:
    async with serve() as slack:
        controller = build_controller(
            ControllerConfig(identity="replica-a", time_scale=0.001, slack_webhook_url=slack.url),
            connection=connection(server, "replica-a"),
        )
        handled: list[str] = []
        reconcile = controller.on_watch_event

        async def counting(event_type: str | None, obj: Any) -> None:
            await reconcile(event_type, obj)
            handled.append(obj["metadata"]["resourceVersion"])
            watcher.poke()

        controller.on_watch_event = counting  # type: ignore[method-assign]
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            run_operator(
                controller=controller, namespaces=["default"], stop_flag=stop, ready_flag=ready
            )
        )
        await ready.wait()
        obj = create(server, "fixed", spec("slack"))
        await watcher.phase("fixed", "Sent")
        final = server.get(API_VERSION, KIND, "fixed")["metadata"]["resourceVersion"]
        # kopf hands one object's events to the handler in order: once the last version
        # was handled, every stale event before it was handled too.
        await watcher.until(lambda: final in handled)
        stop.set()
        await task
    assert len(handled) >= 4  # ADDED, then the bodies of Pending, Sending and Sent
    assert calls_by_uid(slack) == Counter({obj["metadata"]["uid"]: 1})
    assert watcher.status("fixed")["totalAttempts"] == 1


@pytest.mark.asyncio
async def test_a_crashed_replicas_claim_is_taken_over_after_the_scaled_claim_timeout(
    server: Any, watcher: Watcher
) -> None:
    # The default 60 s claim timeout at time scale 0.01 is 0.6 s; the real-time floor
    # min(60, 2 x http_timeout) = 0.5 s is below it, so the scaled value is what counts.
    config = ControllerConfig(time_scale=0.01, http_timeout=0.25, seed=1)
    assert config.effective_claim_timeout == pytest.approx(0.6)
    release = asyncio.Event()
    arrivals: list[datetime] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        arrivals.append(datetime.now(UTC))
        watcher.poke()  # an endpoint call is not a store change: wake the waiter too
        if len(arrivals) == 1:
            await release.wait()  # replica-a's delivery never returns: it dies mid-call
        return web.Response(text="ok")

    async with serve(answer) as slack:
        settings = config.replace(slack_webhook_url=slack.url)

        def registry(identity: str) -> Any:
            return build_registry(
                settings.replace(identity=identity),
                connection=connection(server, identity),
            )

        # A real crash (kopf's tasks cancelled, its connections cut) between claim and record.
        doomed = operators.KopfReplica(server, "replica-a", registry, namespaces=["default"])
        await asyncio.to_thread(doomed.start)
        try:
            create(server, "orphaned", spec("slack"))
            await watcher.until(lambda: len(slack.requests) == 1)
            await asyncio.to_thread(doomed.crash)
        finally:
            release.set()
            if doomed.running:  # the crash did not happen: do not leave the thread behind
                await asyncio.to_thread(doomed.stop)
        (claim,) = watcher.status("orphaned")["claims"]
        assert claim["holder"] == "replica-a" and watcher.status("orphaned")["phase"] == "Sending"

        async with replicas(server, "replica-b", **settings.model_dump(exclude={"identity"})):
            # Unscaled, the claim would block the object for a minute: far beyond this wait.
            status = await watcher.phase("orphaned", "Sent")
    claimed_at = datetime.fromisoformat(claim["claimedAt"])
    waited = (arrivals[1] - claimed_at).total_seconds()
    assert 0.6 <= waited < 10  # the claim was respected until it expired, and no longer
    (attempt,) = status["deliveryAttempts"]  # the takeover delivered and recorded it once
    assert (attempt["attempt"], attempt["holder"]) == (1, "replica-b")
    assert status["claims"] == []
    keys = [r["headers"]["Idempotency-Key"] for r in slack.requests]
    assert len(keys) == 2 and len(set(keys)) == 1  # the one allowed repeat, recognisable


@pytest.mark.asyncio
async def test_no_planted_secret_reaches_any_endpoint(
    server: Any,
    watcher: Watcher,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Every kind of secret of rc_kit.PLANTED in one object: in the subject, the body, the
    # metadata, the action links, the labels and the annotations; delivered by kopf over
    # real HTTP to the fake Slack and webhook endpoints, to files, to stdout and to the log.
    caplog.set_level(logging.INFO, logger="reference_controller.channels.log")
    outbox = tmp_path / "files"
    with sinks.Sink("slack") as slack, sinks.Sink("webhook") as webhook:
        async with replicas(
            server,
            "replica-a",
            slack_webhook_url=slack.url,
            webhook_url=webhook.url,
            file_dir=outbox,
        ):
            server.apply(
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "metadata": {"name": "leaky", "namespace": "default", **PLANTED_METADATA},
                    "spec": planted_spec("console", "log", "file", "slack", "webhook"),
                }
            )
            status = await watcher.phase("leaky", "Sent", "PartiallySent", "Failed")
        assert status["phase"] == "Sent", status
        (slack_call,) = slack.calls
        (webhook_call,) = webhook.calls
    # What each endpoint received: raw (the bytes on the wire, headers too) and as a reader
    # sees it (the strings of the JSON document, unescaped).
    raw: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, call in (("slack", slack_call), ("webhook", webhook_call)):
        raw[name] = call.text + json.dumps(dict(call.headers))
        seen[name] = "\n".join(strings_in(call.json))
    (written,) = outbox.iterdir()
    raw["file"] = written.read_text()
    seen["file"] = "\n".join(strings_in(json.loads(raw["file"])))
    (line,) = [r.getMessage() for r in caplog.records if r.name.endswith("channels.log")]
    raw["log"], seen["log"] = line, "\n".join(strings_in(json.loads(line)))
    raw["console"] = seen["console"] = capsys.readouterr().out

    found = {endpoint: leaks(raw[endpoint] + seen[endpoint]) for endpoint in raw}
    assert found == {endpoint: [] for endpoint in raw}
    # The ordinary text around every secret arrives wherever its place is delivered:
    # console prints subject and body, Slack adds the links, the others send everything.
    carries = {
        "console": {"subject", "body"},
        "slack": {"subject", "body", "link"},
        "webhook": {"subject", "body", "link", "fields"},
        "file": {"subject", "body", "link", "fields"},
        "log": {"subject", "body", "link", "fields"},
    }
    missing = {
        endpoint: [
            kept
            for planted in PLANTED
            if planted.where in places
            for kept in planted.kept
            if kept not in seen[endpoint]
        ]
        for endpoint, places in carries.items()
    }
    assert missing == {endpoint: [] for endpoint in carries}
    for endpoint in carries:
        assert ORDINARY in seen[endpoint], endpoint  # "passenger", "tokenizer", "compass"...
    assert webhook_call.json["labels"] == {
        "token": "[REDACTED]",
        "db_password": "[REDACTED]",
        "app": "payments",
    }
    # The stored object keeps what was written: redaction works on copies.
    assert server.get(API_VERSION, KIND, "leaky")["spec"]["metadata"]["token"] == "MetaTokZk21"


@pytest.mark.asyncio
async def test_permanent_failure_and_invalid_requests(server: Any, watcher: Watcher) -> None:
    async def forbidden(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403, text="no")

    async with (
        serve(forbidden) as slack,
        replicas(server, "replica-a", slack_webhook_url=slack.url),
    ):
        create(server, "denied", spec("slack", "console"))
        create(server, "nowhere", spec())
        create(server, "emailed", spec("email"))
        denied = await watcher.phase("denied", "PartiallySent")
        nowhere = await watcher.phase("nowhere", "Failed")
        emailed = await watcher.phase("emailed", "Failed")
    assert len(slack.requests) == 1 and denied["failedDeliveries"] == 1
    assert nowhere["reason"] == "NoChannelsResolved" and nowhere["totalAttempts"] == 0
    assert emailed["deliveryAttempts"][0]["error"].startswith(
        "permanent failure: channel not configured: email"
    )
    # The CRD's schema is enforced by the API server.
    with pytest.raises(Exception, match="subject"):
        create(server, "too-long", spec("console", subject="x" * 501))


@pytest.mark.asyncio
async def test_replica_from_a_kubeconfig_file(server: Any, watcher: Watcher) -> None:
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        run_operator(
            ControllerConfig(identity="replica-k", time_scale=0.001),
            connection=str(server.kubeconfig("replica-k")),
            namespaces=["default"],
            stop_flag=stop,
            ready_flag=ready,
        )
    )
    await ready.wait()
    create(server, "via-kubeconfig", spec("log"))
    status = await watcher.phase("via-kubeconfig", "Sent")
    stop.set()
    await task
    assert status["deliveryAttempts"][0]["holder"] == "replica-k"


@pytest.mark.asyncio
async def test_replica_in_its_own_thread(server: Any, watcher: Watcher) -> None:
    stop, ready = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(
                run_operator(
                    ControllerConfig(identity="replica-t", time_scale=0.001),
                    connection=connection(server, "replica-t"),
                    namespaces=["default"],
                    stop_flag=stop,
                    ready_flag=ready,
                )
            )
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    thread = threading.Thread(target=main, name="replica-t")
    thread.start()
    try:
        await asyncio.to_thread(ready.wait, 20)
        create(server, "threaded", spec("console"))
        status = await watcher.phase("threaded", "Sent")
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 20)
    assert not thread.is_alive() and errors == []
    assert status["deliveryAttempts"][0]["holder"] == "replica-t"


def _process_env(server: Any, identity: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "KOPF_"))}
    env.update(
        KUBECONFIG=str(server.kubeconfig(identity, path=tmp_path / f"{identity}.yaml")),
        PYTHONPATH=str(REPO),
        NOTIFY_IDENTITY=identity,
        NOTIFY_TIME_SCALE="0.001",
    )
    return env


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "command",
    [
        ["-m", "reference_controller", "--namespace", "default"],
        ["-m", "kopf", "run", "-m", "reference_controller", "--standalone", "-n", "default"],
    ],
    ids=["python-m", "kopf-run"],
)
async def test_operator_as_a_process(
    server: Any, watcher: Watcher, tmp_path: Path, command: list[str]
) -> None:
    identity = f"process-{command[1]}"
    log = tmp_path / "operator.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, *command],
            env=_process_env(server, identity, tmp_path),
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            create(server, "from-process", spec("console"))
            status = await watcher.phase("from-process", "Sent", "Failed")
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(process.wait, 30)
    output_text = log.read_text(errors="replace")
    assert status["phase"] == "Sent", output_text
    assert status["deliveryAttempts"][0]["holder"] == identity
    assert "[medium] [simple] Disk almost full" in output_text  # the console delivery
    assert code in (0, -signal.SIGTERM), output_text
