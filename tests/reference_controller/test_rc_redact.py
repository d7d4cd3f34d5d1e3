"""Redaction of secrets before delivery."""

from __future__ import annotations

import time

import pytest

from reference_controller.redact import (
    REDACTED,
    Redactor,
    default_redactor,
    is_secret_key,
    redact,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("db login failed: password=hunter2 on prod-app", "hunter2", "password="),
        ("PASSWORD: 'quoted secret' rejected", "quoted secret", "PASSWORD:"),
        ('{"password": "s3cr3t", "user": "bob"}', "s3cr3t", '"user": "bob"'),
        ("retry with token=abc123def456", "abc123def456", "token="),
        ("api_key: AbCdEf0123456789", "AbCdEf0123456789", "api_key:"),
        ("env DB_PASSWORD=foo MY_API_KEY=bar", "foo", "MY_API_KEY="),
        ("client_secret = 'xyz-789'", "xyz-789", "client_secret"),
        (f"Authorization: Bearer {JWT}", JWT, "Authorization:"),
        ("curl -H 'bearer abcdefghijklmnop1234'", "abcdefghijklmnop1234", "curl"),
        ("postgres://admin:SuperSecret@db.example.com:5432/app", "SuperSecret", "db.example.com"),
        ("https://user:pa55@example.com/x", "pa55", "example.com/x"),
        ("key AKIAIOSFODNN7EXAMPLE leaked", "AKIAIOSFODNN7EXAMPLE", "leaked"),
        (
            "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "wJalrXUtnFEMI",
            "aws_secret_access_key=",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "MIIEowIBAAKCAQEA",
            "",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQ\n-----END PRIVATE KEY----- tail",
            "MC4CAQAwBQ",
            "tail",
        ),
        ("slack token xoxb-1234567890-abcdefghij", "xoxb-1234567890", "slack token"),
        ("hook https://hooks.slack.com/services/T000/B000/XXXX", "T000/B000", "hook"),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdef", "gh "),
        ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA123", "google"),
        ("openai sk-proj-abcdefghijklmnopqrstuvwx", "abcdefghijklmnop", "openai"),
        (f"id_token {JWT} end", JWT, "end"),
        # Caught since the hardening:
        ("mysql --password Fl4g --host db-1", "Fl4g", "--host db-1"),
        ("deploy --db-password='two words' --verbose", "two words", "--verbose"),
        ("--token=abc123 --dry-run", "abc123", "--dry-run"),
        ("the password is Pr0se", "Pr0se", "the password is"),
        ("the token for ci-bot was 'T0k en'", "T0k en", "for ci-bot was"),
        ("login with pass=P4ss now", "P4ss", "pass="),
        ("auth=abc123&x=1", "abc123", "&x=1"),
        ("Cookie: sessionid=S1d; csrftoken=C5rf", "S1d", "Cookie:"),
        ("Cookie: sessionid=S1d; csrftoken=C5rf", "C5rf", "Cookie:"),
        ("set-cookie: session=S3ss; Path=/", "S3ss", "set-cookie:"),
        ("sessionid=S1d on host", "S1d", "sessionid="),
        ("password=hunter two", "two", "password="),
        ("password=hunter two\nnext line", "hunter two", "next line"),
        ("password=hunter two, user=bob", "two", ", user=bob"),
        ("next=%2Flogin%3Fpassword%3DEnc0ded%26lang%3Den", "Enc0ded", "%26lang%3Den"),
        ("password%3DEnc0ded", "Enc0ded", "password%3D"),
        ("https://g.example/d?orgId=1&access_token=Acc3ss&from=now", "Acc3ss", "&from=now"),
        ("https://g.example/d?token=T0k&orgId=1", "T0k", "orgId=1"),
        ("https://r.example/login?user=ops&password=Qu3ry", "Qu3ry", "user=ops"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str, kept: str) -> None:
    result = redact(text)
    assert secret not in result
    assert REDACTED in result
    assert kept in result


@pytest.mark.parametrize(
    "text",
    [
        "authentication failed for app-server-1 in prod-app",
        "the token bucket is empty; password reset requested",
        "Disk usage 91% on node-1 (threshold 90%)",
        "see https://grafana.example.com/d/abc?orgId=1",
        '🚀 deploy ✅ 你好 <b>html</b> & "quotes"',
        "secrets rotated successfully",
        "passenger manifest, tokenizer ready, compass heading north",
        "the password is wrong; the token is expired; a password is required",
        "tests pass: 42, fail: 0; auth: ok; session: 3 users",
        "run --no-password --verbose, then --token-file /etc/token",
        "author: alice; keyring unlocked; passport office",
    ],
)
def test_ordinary_text_is_preserved(text: str) -> None:
    assert redact(text) == text


def test_alert_context_survives_redaction() -> None:
    text = "prod-app on app-server-1: authentication failed (password=hunter2, token: abc)"
    result = default_redactor().redact(text)
    for context in ("prod-app", "app-server-1", "authentication failed"):
        assert context in result.text
    assert "hunter2" not in result.text and "abc)" not in result.text
    assert result.count == 2
    assert set(result.rules) == {"secret-assignment"}


def test_rules_are_named_and_ordered() -> None:
    names = Redactor().rule_names
    assert names[0] == "private-key-block"
    assert len(names) == len(set(names)) >= 14


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db_password",
        "DB_PASSWORD",
        "dbPassword",
        "X-Api-Key",
        "APIKey",
        "api_key",
        "authToken",
        "OAuthToken",
        "Authorization",
        "auth",
        "token",
        "example.com/token",
        "example.com/session",
        "Cookie",
        "client-secret",
        "credentials",
        "private_key",
        "privateKey",
        "pass",
        "sessionid",
    ],
)
def test_keys_that_name_a_secret(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "tokenizer",
        "passenger",
        "compass",
        "author",
        "keyring",
        "passport",
        "dsn",
        "cluster",
        "app.kubernetes.io/name",
        "remediationRequestName",
        "apiVersion",
    ],
)
def test_ordinary_keys(key: str) -> None:
    assert not is_secret_key(key)


def test_fields_lose_secret_values_by_key_and_by_text() -> None:
    fields = {
        "token": "plain-looking",  # the key says it: the whole value goes
        "X-Api-Key": "k",
        "note": "retry with token=abc123",  # an ordinary key: its value is text
        "tokenizer": "bpe",
        "empty_password": "",  # nothing to hide: stays empty
    }
    assert default_redactor().redact_fields(fields) == {
        "token": REDACTED,
        "X-Api-Key": REDACTED,
        "note": f"retry with token={REDACTED}",
        "tokenizer": "bpe",
        "empty_password": "",
    }


def test_redaction_is_idempotent() -> None:
    # Redacting twice changes nothing more (an earlier rule's [REDACTED] is never taken as
    # the start of a value that swallows what follows it).
    for text in (
        "run --db-password='a b' --verbose",
        "password=hunter two, user=bob",
        "Cookie: a=b\nnext",
        "the password is x and more",
    ):
        once = redact(text)
        assert redact(once) == once


def test_urls_stay_valid_urls() -> None:
    redactor = default_redactor()
    assert (
        redactor.url("https://admin:pw@g.example/d?orgId=1&token=abc&x=1")
        == "https://%5BREDACTED%5D@g.example/d?orgId=1&token=%5BREDACTED%5D&x=1"
    )
    assert redactor.url("https://g.example/d/1?orgId=1") == "https://g.example/d/1?orgId=1"


@pytest.mark.parametrize("unit", ["a.", "a.b-c_", "--a-", "a=", "https:/"])
def test_redaction_time_is_linear_in_adversarial_text(unit: str) -> None:
    # A body is user input, redacted on the controller's event loop. 12 KB of "a." or
    # "a.b-c_" took 20 and 6 s when a key's optional `[\w.-]*` prefix rescanned the word from
    # every separator (the other units probe the other rules' starting points); linear
    # matching takes milliseconds, so 2 s is far from both.
    text = unit * (12_000 // len(unit))
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 2.0
