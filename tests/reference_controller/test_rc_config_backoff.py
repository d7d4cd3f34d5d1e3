"""``ControllerConfig`` from the environment; backoff formula, jitter, seeding, time scale."""

from __future__ import annotations

import random
from pathlib import Path

import pydantic
import pytest

from reference_controller.backoff import JITTER, MAX_RETRY_AFTER, Backoff, base_delay
from reference_controller.config import ControllerConfig
from reference_controller.models import ChannelName, RetryPolicy

DEFAULT = RetryPolicy()


def test_config_reads_every_notify_variable() -> None:
    env = {
        "NOTIFY_SLACK_WEBHOOK_URL": "https://hooks.example/slack",
        "NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook",
        "NOTIFY_FILE_DIR": "/var/notifications",
        "NOTIFY_CA_BUNDLE": "/etc/ca.pem",
        "NOTIFY_TIME_SCALE": "0.001",
        "NOTIFY_HTTP_TIMEOUT": "2.5",
        "NOTIFY_CLAIM_TIMEOUT": "5",
        "NOTIFY_SEED": "42",
        "NOTIFY_IDENTITY": "replica-7",
        "NOTIFY_DEFAULT_CHANNELS": "console, log",
        "NOTIFY_NAMESPACES": "team-a,team-b",
        "NOTIFY_ERROR_BACKOFF": "0.5",
        "NOTIFY_MAX_CONFLICTS": "4",
        "NOTIFY_LOG_FORMAT": "json",
        "UNRELATED": "ignored",
    }
    config = ControllerConfig.from_env(env)
    assert config.slack_webhook_url == "https://hooks.example/slack"
    assert config.webhook_url == "http://127.0.0.1:9/hook"
    assert config.file_dir == Path("/var/notifications")
    assert config.ca_bundle == Path("/etc/ca.pem")
    assert (config.time_scale, config.http_timeout, config.claim_timeout) == (0.001, 2.5, 5.0)
    assert (config.seed, config.identity) == (42, "replica-7")
    assert config.default_channels == (ChannelName.CONSOLE, ChannelName.LOG)
    assert config.namespaces == ("team-a", "team-b")
    assert (config.error_backoff, config.max_conflicts, config.log_format) == (0.5, 4, "json")


def test_config_defaults_overrides_and_empty_values() -> None:
    config = ControllerConfig.from_env({"NOTIFY_SEED": "", "NOTIFY_TIME_SCALE": "0.5"}, seed=3)
    assert config.seed == 3  # keyword arguments win over the environment
    assert config.time_scale == 0.5
    assert config.slack_webhook_url is None and config.file_dir is None
    assert (config.http_timeout, config.claim_timeout) == (10.0, 60.0)
    assert config.identity  # <hostname>-<pid>
    assert config.replace(time_scale=0.01).time_scale == 0.01


def test_config_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_TIME_SCALE", "0.25")
    assert ControllerConfig.from_env().time_scale == 0.25


@pytest.mark.parametrize(
    "bad",
    [
        {"NOTIFY_TIME_SCALE": "0"},
        {"NOTIFY_TIME_SCALE": "fast"},
        {"NOTIFY_SLACK_WEBHOOK_URL": "hooks.slack.com/x"},
        {"NOTIFY_DEFAULT_CHANNELS": "console,pager"},
        {"NOTIFY_LOG_FORMAT": "xml"},
        {"NOTIFY_CLAIM_TIMEOUT": "5", "NOTIFY_HTTP_TIMEOUT": "10"},
        {"NOTIFY_UNKNOWN_SETTING_IS_IGNORED": "1", "NOTIFY_SEED": "x"},
    ],
)
def test_config_rejects_invalid_values(bad: dict[str, str]) -> None:
    with pytest.raises(pydantic.ValidationError):
        ControllerConfig.from_env(bad)


def test_config_is_immutable_and_rejects_unknown_fields() -> None:
    config = ControllerConfig()
    with pytest.raises(pydantic.ValidationError):
        config.time_scale = 2.0  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        ControllerConfig(retries=3)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        config.replace(claim_timeout=1.0)  # validated: must exceed http_timeout


def test_base_delay_formula_and_cap() -> None:
    assert [base_delay(DEFAULT, n) for n in range(1, 7)] == [30, 60, 120, 240, 480, 480]
    assert base_delay(DEFAULT, 0) == 30  # n < 1 is the base
    custom = RetryPolicy(initial_backoff_seconds=1, backoff_multiplier=3, max_backoff_seconds=60)
    assert [base_delay(custom, n) for n in range(1, 6)] == [1, 3, 9, 27, 60]
    flat = RetryPolicy(initial_backoff_seconds=5, backoff_multiplier=1)
    assert {base_delay(flat, n) for n in range(1, 10)} == {5}


def test_jitter_stays_within_ten_percent_and_the_policy_bounds() -> None:
    backoff = Backoff(rng=random.Random(1))
    for n in range(1, 8):
        base = base_delay(DEFAULT, n)
        for _ in range(200):
            delay = backoff.delay(DEFAULT, n)
            assert base * (1 - JITTER) <= delay <= base * (1 + JITTER)
            assert DEFAULT.initial_backoff_seconds <= delay <= DEFAULT.max_backoff_seconds


def test_jitter_actually_varies() -> None:
    backoff = Backoff(rng=random.Random(2))
    assert len({backoff.delay(DEFAULT, 2) for _ in range(20)}) > 10


def test_seeded_backoff_is_reproducible() -> None:
    first = [Backoff(rng=random.Random(99)).delay(DEFAULT, n) for n in range(1, 6)]
    second = [Backoff(rng=random.Random(99)).delay(DEFAULT, n) for n in range(1, 6)]
    other = [Backoff(rng=random.Random(100)).delay(DEFAULT, n) for n in range(1, 6)]
    assert first == second
    assert first != other


def test_time_scale_multiplies_every_delay() -> None:
    real = Backoff(rng=random.Random(5))
    fast = Backoff(time_scale=0.001, rng=random.Random(5))
    for n in range(1, 6):
        assert fast.delay(DEFAULT, n) == pytest.approx(real.delay(DEFAULT, n) * 0.001)
    assert fast.unjittered(DEFAULT, 3) == pytest.approx(0.120)
    assert fast.delay(DEFAULT, 1, retry_after=100) == pytest.approx(0.1)


def test_retry_after_is_a_minimum_and_capped() -> None:
    backoff = Backoff(rng=random.Random(3))
    assert backoff.delay(DEFAULT, 1, retry_after=200) == 200
    assert backoff.delay(DEFAULT, 1, retry_after=1) < 40  # shorter than backoff: ignored
    assert backoff.delay(DEFAULT, 1, retry_after=10**9) == MAX_RETRY_AFTER
    assert backoff.delay(DEFAULT, 1, retry_after=0) <= 33


@pytest.mark.parametrize(
    ("settings", "effective"),
    [
        ({}, 60.0),  # time scale 1: the configured value itself
        ({"time_scale": 2.0}, 120.0),  # a slower scale lengthens it, as it does a backoff
        ({"time_scale": 0.001, "http_timeout": 0.02}, 0.06),  # scaled like a backoff
        ({"time_scale": 0.001, "http_timeout": 1.0}, 2.0),  # floor: delivery + as long again
        ({"time_scale": 0.001}, 20.0),  # the default HTTP timeout keeps its floor
        ({"time_scale": 0.001, "http_timeout": 1.0, "claim_timeout": 1.5}, 1.5),  # floor <= it
        ({"time_scale": 0.5, "claim_timeout": 30.0}, 20.0),
    ],
)
def test_claim_timeout_scales_like_the_backoff_above_the_delivery_floor(
    settings: dict[str, float], effective: float
) -> None:
    config = ControllerConfig(**settings)
    assert config.effective_claim_timeout == pytest.approx(effective)
    # However it is scaled, a claim outlives the real HTTP timeout of its holder's delivery.
    assert config.effective_claim_timeout > config.http_timeout


def test_claim_timeout_is_validated_in_real_seconds_against_the_http_timeout() -> None:
    # Equal to the HTTP timeout: a delivery still in flight could be taken over.
    with pytest.raises(
        pydantic.ValidationError,
        match=r"\(10s of real time: .* at time_scale 0\.001\) must exceed http_timeout \(10s\)",
    ):
        ControllerConfig(time_scale=0.001, claim_timeout=10.0, http_timeout=10.0)
    # At a time scale above 1 the claim lasts claim_timeout x time_scale real seconds.
    assert ControllerConfig(time_scale=3.0, claim_timeout=5.0).effective_claim_timeout == 15.0
    with pytest.raises(pydantic.ValidationError, match=r"\(7\.5s of real time"):
        ControllerConfig(time_scale=1.5, claim_timeout=5.0)
