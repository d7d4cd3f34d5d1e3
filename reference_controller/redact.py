"""Redaction of secrets from notification text before any delivery.

Subject and body are redacted on a copy before every delivery (as in the original, which
sanitised a deep copy with 22 patterns in ``pkg/shared/sanitization``); the stored spec is
never changed. Patterns are deliberately conservative around ordinary words: "authentication
failed" or "token bucket" stay, ``password=hunter2`` and ``Bearer eyJ...`` do not.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["REDACTED", "Redaction", "Redactor", "default_redactor", "redact"]

REDACTED: Final = "[REDACTED]"

# Key names whose value is a secret in `key=value`, `key: value` and `"key": "value"` forms.
_SECRET_KEYS: Final = (
    r"password|passwd|pwd|passphrase|secret|client[_-]?secret|secret[_-]?key"
    r"|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|id[_-]?token|session[_-]?token"
    r"|api[_-]?key|apikey|x-api-key|access[_-]?key|access[_-]?key[_-]?id|private[_-]?key"
    r"|aws[_-]?secret[_-]?access[_-]?key|aws[_-]?access[_-]?key[_-]?id|credentials?"
    r"|connection[_-]?string|conn[_-]?str|signature|sig"
)


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    replace: Callable[[re.Match[str]], str]


def _keep_group(group: int) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        return match.group(group) + REDACTED

    return replace


def _whole(_: re.Match[str]) -> str:
    return REDACTED


_RULES: Final[tuple[_Rule, ...]] = (
    _Rule(
        "private-key-block",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
            re.DOTALL,
        ),
        _whole,
    ),
    _Rule(
        # scheme://user:password@host -> scheme://[REDACTED]@host
        "url-credentials",
        re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/@:]+:[^\s/@]+@"),
        lambda m: f"{m.group(1)}{REDACTED}@",
    ),
    _Rule(
        "authorization-header",
        re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?:\w+\s+)?[^\s\"',;]+"),
        _keep_group(1),
    ),
    _Rule("bearer-token", re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*"), _keep_group(1)),
    _Rule("basic-credentials", re.compile(r"\b(Basic\s+)[A-Za-z0-9+/]{12,}={0,2}"), _keep_group(1)),
    _Rule(
        # JSON / YAML quoted: "password": "x" or 'token': 'x'
        "quoted-secret-field",
        re.compile(
            rf"(?i)([\"'](?:{_SECRET_KEYS})[\"']\s*:\s*)([\"'])(?:\\.|(?!\2).)*\2",
        ),
        lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}",
    ),
    _Rule(
        # key=value, key: value, key = "value" (value up to whitespace or a separator)
        "secret-assignment",
        re.compile(
            rf"(?i)(?<![\w-])((?:[\w.-]*[_.-])?(?:{_SECRET_KEYS})\s*[:=]\s*)"
            r"(\"[^\"]*\"|'[^']*'|[^\s\"',;&]+)"
        ),
        _keep_group(1),
    ),
    _Rule("aws-access-key-id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"), _whole),
    _Rule(
        "github-token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})"), _whole
    ),
    _Rule("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), _whole),
    _Rule(
        "slack-webhook-url",
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]+"),
        _whole,
    ),
    _Rule("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b"), _whole),
    _Rule(
        "stripe-or-openai-key",
        re.compile(r"\b(?:sk|rk|pk)[-_](?:live|test|proj)?[-_]?[A-Za-z0-9]{20,}"),
        _whole,
    ),
    _Rule(
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
        _whole,
    ),
)


@dataclass(frozen=True)
class Redaction:
    """The redacted text and which rules fired (names only, never the secrets)."""

    text: str
    rules: tuple[str, ...]

    @property
    def count(self) -> int:
        """How many secrets were replaced."""
        return len(self.rules)


class Redactor:
    """Applies an ordered list of redaction rules."""

    def __init__(self, rules: Sequence[_Rule] = _RULES) -> None:
        self._rules = tuple(rules)

    @property
    def rule_names(self) -> tuple[str, ...]:
        """Names of the rules, in the order they are applied."""
        return tuple(rule.name for rule in self._rules)

    def redact(self, text: str) -> Redaction:
        """Replace every secret in ``text`` with ``[REDACTED]``."""
        fired: list[str] = []
        for rule in self._rules:
            text, count = rule.pattern.subn(rule.replace, text)
            fired.extend([rule.name] * count)
        return Redaction(text=text, rules=tuple(fired))


_DEFAULT = Redactor()


def default_redactor() -> Redactor:
    """The shared redactor with the built-in rules."""
    return _DEFAULT


def redact(text: str) -> str:
    """``text`` with secrets replaced by ``[REDACTED]`` (built-in rules)."""
    return _DEFAULT.redact(text).text
