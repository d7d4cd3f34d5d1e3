"""The delivery channels, each on its own."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from rc_http import serve

from reference_controller.channels import (
    ConsoleChannel,
    DeliveryRequest,
    FileChannel,
    HttpPoster,
    LogChannel,
    SlackChannel,
    UnconfiguredChannel,
    WebhookChannel,
    build_channels,
    slack_blocks,
)
from reference_controller.classify import PERMANENT_MARKER, ErrorKind
from reference_controller.config import ControllerConfig
from reference_controller.models import ChannelName, NotificationSpec


def make_request(channel: ChannelName = ChannelName.SLACK, **spec: Any) -> DeliveryRequest:
    body: dict[str, Any] = {
        "type": "escalation",
        "priority": "critical",
        "subject": "Pod crashlooping",
        "body": "payments-7f9 restarted 12 times",
        "channels": [channel.value],
        "actionLinks": [{"service": "grafana", "url": "https://g.example/d/1", "label": "Dash"}],
        **spec,
    }
    parsed = NotificationSpec.model_validate(body)
    return DeliveryRequest(
        uid="uid-1",
        namespace="team-a",
        name="nr-1",
        channel=channel,
        attempt=2,
        spec=parsed,
        subject=parsed.subject,
        body=parsed.body,
        metadata={"remediationRequestName": "rr-1"},
        holder="replica-a",
        labels={"app": "payments"},
    )


def test_attribution_headers() -> None:
    request = make_request()
    assert request.idempotency_key == "uid-1/slack/2"
    assert request.headers() == {
        "X-Notification-Uid": "uid-1",
        "X-Notification-Namespace": "team-a",
        "X-Notification-Name": "nr-1",
        "X-Notification-Channel": "slack",
        "X-Notification-Attempt": "2",
        "Idempotency-Key": "uid-1/slack/2",
    }


@pytest.mark.asyncio
async def test_console_prints_priority_type_subject_and_body(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcome = await ConsoleChannel().deliver(make_request(ChannelName.CONSOLE))
    assert outcome.success
    assert capsys.readouterr().out == (
        "[critical] [escalation] Pod crashlooping\npayments-7f9 restarted 12 times\n"
    )


@pytest.mark.asyncio
async def test_log_emits_one_json_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="reference_controller.channels.log"):
        outcome = await LogChannel().deliver(make_request(ChannelName.LOG))
    assert outcome.success
    (record,) = caplog.records
    document = json.loads(record.getMessage())
    assert document["notification_name"] == "nr-1"
    assert document["namespace"] == "team-a"
    assert document["priority"] == "critical"
    assert document["labels"] == {"app": "payments"}
    assert document["action_links"] == [
        {"service": "grafana", "url": "https://g.example/d/1", "label": "Dash"}
    ]
    assert document["idempotency_key"] == "uid-1/log/2"


@pytest.mark.asyncio
async def test_file_writes_json_atomically_into_the_base_dir(tmp_path: Path) -> None:
    outcome = await FileChannel(tmp_path).deliver(make_request(ChannelName.FILE))
    assert outcome.success
    (written,) = tmp_path.iterdir()  # no temporary file left behind
    assert written.name.startswith("notification-team-a-nr-1-")
    assert written.name.endswith("-attempt2.json")
    assert json.loads(written.read_text())["subject"] == "Pod crashlooping"


@pytest.mark.asyncio
async def test_file_honours_output_directory_and_yaml(tmp_path: Path) -> None:
    request = make_request(
        ChannelName.FILE, fileDeliveryConfig={"outputDirectory": "team-a/alerts", "format": "yaml"}
    )
    outcome = await FileChannel(tmp_path).deliver(request)
    assert outcome.success
    (written,) = (tmp_path / "team-a" / "alerts").iterdir()
    assert written.suffix == ".yaml"
    assert yaml.safe_load(written.read_text())["body"] == "payments-7f9 restarted 12 times"


@pytest.mark.asyncio
@pytest.mark.parametrize("target", ["../escape", "/etc", "link/inside"])
async def test_file_refuses_directories_outside_the_base(tmp_path: Path, target: str) -> None:
    base = tmp_path / "base"
    base.mkdir()
    (base / "link").symlink_to(tmp_path)  # a symlink pointing out of the base
    request = make_request(ChannelName.FILE, fileDeliveryConfig={"outputDirectory": target})
    outcome = await FileChannel(base).deliver(request)
    assert outcome.permanent and outcome.kind is ErrorKind.INVALID_TARGET
    assert outcome.error is not None and outcome.error.startswith(PERMANENT_MARKER)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


@pytest.mark.asyncio
async def test_file_directory_that_cannot_exist_is_permanent(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file, not a directory")
    request = make_request(ChannelName.FILE, fileDeliveryConfig={"outputDirectory": "blocker/x"})
    outcome = await FileChannel(tmp_path).deliver(request)
    assert outcome.permanent and outcome.kind is ErrorKind.IO


@pytest.mark.asyncio
async def test_file_write_errors_are_retryable_and_leave_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("reference_controller.channels.os.replace", full_disk)
    outcome = await FileChannel(tmp_path).deliver(make_request(ChannelName.FILE))
    assert not outcome.permanent and not outcome.success
    assert outcome.kind is ErrorKind.IO
    assert list(tmp_path.iterdir()) == []


def test_slack_blocks() -> None:
    message = slack_blocks(make_request())
    header, section, actions, context = message["blocks"]
    assert header["text"]["text"] == "\N{POLICE CARS REVOLVING LIGHT} Pod crashlooping"
    assert section["text"] == {"type": "mrkdwn", "text": "payments-7f9 restarted 12 times"}
    assert actions["elements"][0]["url"] == "https://g.example/d/1"
    assert context["elements"][0]["text"] == "*Priority:* critical | *Type:* escalation"
    long = slack_blocks(make_request(subject="x" * 500))
    assert len(long["blocks"][0]["text"]["text"]) == 150


@pytest.mark.asyncio
async def test_slack_posts_block_kit_with_attribution_headers() -> None:
    poster = HttpPoster(timeout=5)
    async with serve() as endpoint:
        outcome = await SlackChannel(endpoint.url, poster).deliver(make_request())
    await poster.close()
    assert outcome.success
    (request,) = endpoint.requests
    assert request["headers"]["Idempotency-Key"] == "uid-1/slack/2"
    assert request["headers"]["X-Notification-Attempt"] == "2"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"])["blocks"][0]["type"] == "header"


@pytest.mark.asyncio
async def test_webhook_posts_the_document_and_classifies_errors() -> None:
    async def bad_gateway(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="bad gateway")

    poster = HttpPoster(timeout=5)
    async with serve(bad_gateway) as endpoint:
        outcome = await WebhookChannel(endpoint.url, poster).deliver(
            make_request(ChannelName.WEBHOOK)
        )
    await poster.close()
    assert not outcome.permanent and outcome.http_status == 502
    assert outcome.error is not None and "502" in outcome.error
    document = json.loads(endpoint.requests[0]["body"])
    assert (document["uid"], document["channel"], document["attempt"]) == ("uid-1", "webhook", 2)
    assert endpoint.requests[0]["headers"]["X-Notification-Channel"] == "webhook"


@pytest.mark.asyncio
async def test_unconfigured_channels_fail_permanently(tmp_path: Path) -> None:
    channels = build_channels(ControllerConfig(), HttpPoster(timeout=1))
    for name in (
        ChannelName.EMAIL,
        ChannelName.TEAMS,
        ChannelName.SMS,
        ChannelName.SLACK,
        ChannelName.WEBHOOK,
        ChannelName.FILE,
    ):
        assert isinstance(channels[name], UnconfiguredChannel), name
        outcome = await channels[name].deliver(make_request(name))
        assert outcome.permanent and outcome.kind is ErrorKind.NOT_CONFIGURED
        assert outcome.error is not None
        assert outcome.error.startswith(f"{PERMANENT_MARKER}channel not configured: {name.value}")
    configured = build_channels(
        ControllerConfig(
            slack_webhook_url="http://x.invalid", webhook_url="http://y.invalid", file_dir=tmp_path
        ),
        HttpPoster(timeout=1),
    )
    assert isinstance(configured[ChannelName.SLACK], SlackChannel)
    assert isinstance(configured[ChannelName.WEBHOOK], WebhookChannel)
    assert isinstance(configured[ChannelName.FILE], FileChannel)
