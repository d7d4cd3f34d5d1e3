"""Redaction of secrets before delivery."""

from __future__ import annotations

import pytest

from reference_controller.redact import REDACTED, Redactor, default_redactor, redact

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
