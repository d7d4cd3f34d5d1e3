"""Redaction of secrets from everything a channel is given, before any delivery.

Every delivery request is redacted in one place (``DeliveryRequest.redacted``, called by the
controller for every channel) on a copy; the stored spec is never changed (as in the
original, which sanitised a deep copy with 22 patterns in ``pkg/shared/sanitization``).
Redacted are the subject, the body, ``spec.metadata``, the action links (URL, label and
service), recipients' webhook URLs, and the object's labels and annotations.

Two kinds of rule:

* **Text rules** (``Redactor.redact``) find secrets in free text: private-key blocks,
  ``scheme://user:password@`` in URLs, ``Authorization:`` / ``Cookie:`` headers, bearer and
  basic credentials, ``"password": "x"`` fields, ``--password x`` flags, ``key=value`` /
  ``key: value`` assignments (also URL-encoded: ``password%3Dx``, and in query strings:
  ``?token=x&...``), prose (``the password is x``), and known token shapes (AWS, GitHub,
  Slack, Google, Stripe/OpenAI keys, JWTs).
* **Key rules** (``is_secret_key``, used by ``Redactor.redact_fields``): a map entry whose
  key names a secret has its whole value replaced, whatever the value looks like. The key
  is split into words at non-alphanumerics and camelCase humps, and is secret when a word
  (or two adjacent words run together) is one of ``SECRET_KEY_WORDS``: ``db_password``,
  ``X-Api-Key``, ``authToken``, ``example.com/session`` are secret keys; ``tokenizer``,
  ``passenger``, ``compass``, ``author`` are not. Other entries get the text rules.

Where a value ends. A secret introduced by a key (``password=``, ``token:``, ``the
password is``) runs to the end of the line, to a quote, to one of ``, ; &`` (or
URL-encoded ``%26``), or to the next ``key=`` / ``key:`` field -- so the second word of
``password=hunter two`` is redacted, while ``password=x user=bob`` keeps ``user=bob``. The
price: ordinary words after a secret on the same line are redacted too (``token: x on
prod`` loses "on prod"); put context before the secret or after a comma. A quoted value
ends at its closing quote. A ``--flag value`` takes one shell word (or a quoted string).

Patterns are deliberately conservative around ordinary words: "authentication failed",
"token bucket", "password reset requested", "the password is wrong", "passenger",
"tokenizer" and "compass" stay. The short key words ``pass``, ``auth`` and ``session``
count in text only with ``=`` (``pass=x``, ``auth=x``), as ``pass: 3`` or ``session: 42``
are ordinary; as map keys they always count.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "REDACTED",
    "SECRET_KEY_WORDS",
    "Redaction",
    "Redactor",
    "default_redactor",
    "is_secret_key",
    "redact",
]

REDACTED: Final = "[REDACTED]"
# The placeholder inside a URL: `[` and `]` are not allowed in a URL's path or query.
_REDACTED_IN_URL: Final = "%5BREDACTED%5D"

# Key names whose value is a secret in `key=value`, `key: value`, `"key": "value"` and
# `--key value` forms (optionally prefixed: `DB_PASSWORD`, `aws.secret_key`).
_SECRET_KEYS: Final = (
    r"password|passwd|pwd|passphrase|passcode|secret|client[_-]?secret|secret[_-]?key"
    r"|token|access[_-]?token|refresh[_-]?token|auth[_-]?token|id[_-]?token|session[_-]?token"
    r"|api[_-]?key|apikey|x-api-key|access[_-]?key|access[_-]?key[_-]?id|private[_-]?key"
    r"|aws[_-]?secret[_-]?access[_-]?key|aws[_-]?access[_-]?key[_-]?id|credentials?"
    r"|connection[_-]?string|conn[_-]?str|signature|sig"
    r"|cookie|session[_-]?id|sessionid|session[_-]?key|auth[_-]?key"
)
# Short key names that are ordinary words after a colon ("pass: 3", "session: 42"): secret
# in text only when assigned with `=` (`pass=x`, `auth=x`, `?session=x`).
_ASSIGNED_ONLY_KEYS: Final = r"pass|auth|session"

# Where a key-introduced value ends (see the module docstring): a quoted string, or words
# up to the end of the line, a quote, `, ; &` / `%26`, or the next `key=` / `key:` field.
_WORD: Final = r"(?:(?!%26)[^\s\"'`,;&])+"
_NEXT_FIELD: Final = r"[\w.-]+[ \t]*(?:[:=]|%3[aAdD])"
# Never a value that an earlier rule already replaced: `--password=x y` is redacted by the
# flag rule as `--password=[REDACTED] y`, and the assignment rule must not then take `y`.
_VALUE: Final = (
    rf"(?!{re.escape(REDACTED)})"
    rf"(?:\"[^\"\r\n]*\"|'[^'\r\n]*'|[\"']?{_WORD}(?:[ \t]+(?!{_NEXT_FIELD}){_WORD})*)"
)
# `=` or `:`, plain or URL-encoded (%3D, %3A).
_ASSIGN: Final = r"\s*(?:[:=]|%3[aAdD])\s*"
_ASSIGN_EQ: Final = r"\s*(?:=|%3[dD])\s*"
# A key is not preceded by a letter or digit: it starts a word or follows a separator of a
# longer name (`DB_PASSWORD`, `aws.secret_key`, `x-token`), or a URL-encoded `?`, `&` or
# space (`%3Fpassword%3D...`). A lookbehind, not a `[\w.-]*` prefix in the match: with the
# prefix, every position of a long dotted word rescanned the rest of it (30 s for 24 KB).
_KEY_START: Final = r"(?:(?<![A-Za-z0-9])|(?<=%3[fF]|%26|%20))"

# Words that follow "the password is" in ordinary sentences, never a secret.
_PROSE_NOT_A_VALUE: Final = (
    r"not|no|wrong|incorrect|invalid|expired|expiring|required|missing|empty|blank|unset"
    r"|set|correct|valid|too|being|still|now|none|null|ok|fine|rejected|revoked|changed"
    r"|reset|weak|strong|short|long|stale|locked|unknown|needed|stored|managed|rotated"
    r"|the|a|an|in|on|at|for|from|of|to|about|due|shown|hidden|case|sensitive"
)

#: Words that make a map key secret (``is_secret_key``); two adjacent words run together
#: count too (``api`` + ``key`` is ``apikey``).
SECRET_KEY_WORDS: Final = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "passcode",
        "pwd",
        "pass",
        "secret",
        "secrets",
        "token",
        "tokens",
        "auth",
        "authorization",
        "credential",
        "credentials",
        "cookie",
        "cookies",
        "session",
        "sessionid",
        "apikey",
        "privatekey",
        "accesskey",
        "secretkey",
        "signature",
        "bearer",
        "jwt",
    }
)

# camelCase humps: "dbPassword" -> "db Password", "OAuthToken" -> "OAuth Token".
_HUMP: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_ALNUM: Final = re.compile(r"[^A-Za-z0-9]+")


def is_secret_key(key: str) -> bool:
    """Whether a map entry named ``key`` holds a secret (see ``SECRET_KEY_WORDS``).

    ``db_password``, ``X-Api-Key``, ``authToken``, ``Cookie`` and ``example.com/token`` do;
    ``tokenizer``, ``passenger``, ``compass`` and ``author`` do not.
    """
    words = [word.lower() for word in _NOT_ALNUM.split(_HUMP.sub(" ", key)) if word]
    pairs = (a + b for a, b in itertools.pairwise(words))
    return any(word in SECRET_KEY_WORDS for word in (*words, *pairs))


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
        # (a scheme is short: bounded, so a long dotted word is not rescanned from each dot)
        re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.\-]{0,31}://)[^\s/@:]+:[^\s/@]+@"),
        lambda m: f"{m.group(1)}{REDACTED}@",
    ),
    _Rule(
        "authorization-header",
        re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?:\w+\s+)?[^\s\"',;]+"),
        _keep_group(1),
    ),
    _Rule(
        # Cookie: a=b; c=d -- every cookie is a credential; the header runs to the line end.
        "cookie-header",
        re.compile(r"(?im)(?<![\w-])((?:set-)?cookie[ \t]*:[ \t]*)[^\r\n\"']+"),
        _keep_group(1),
    ),
    _Rule("bearer-token", re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*"), _keep_group(1)),
    _Rule("basic-credentials", re.compile(r"\b(Basic\s+)[A-Za-z0-9+/]{12,}={0,2}"), _keep_group(1)),
    _Rule(
        # JSON / YAML quoted: "password": "x" or 'token': 'x'
        "quoted-secret-field",
        re.compile(
            rf"(?i)([\"'](?:{_SECRET_KEYS}|{_ASSIGNED_ONLY_KEYS})[\"']\s*:\s*)([\"'])(?:\\.|(?!\2).)*\2",
        ),
        lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(2)}",
    ),
    _Rule(
        # --password x, --db-password "x y", --token=x (one shell word, or a quoted string);
        # not --no-password (a switch: the next word is something else).
        "secret-flag",
        re.compile(
            rf"(?i)(?<![\w-])(--(?!no-|skip-|disable-|without-)(?:[\w-]*[_-])?"
            rf"(?:{_SECRET_KEYS}|{_ASSIGNED_ONLY_KEYS})(?:[ \t]+|=))"
            r"(?!-)(\"[^\"]*\"|'[^']*'|[^\s\"']+)"
        ),
        _keep_group(1),
    ),
    _Rule(
        # key=value, key: value, KEY = "value", ?token=x&, password%3Dx (the value as in
        # _VALUE: to the end of the line, a quote, a separator or the next field)
        "secret-assignment",
        re.compile(
            rf"(?i){_KEY_START}"
            rf"((?:{_SECRET_KEYS}){_ASSIGN}|(?:{_ASSIGNED_ONLY_KEYS}){_ASSIGN_EQ})"
            rf"({_VALUE})"
        ),
        _keep_group(1),
    ),
    _Rule(
        # the password is x, the token for bob was "x y" (not: the password is wrong)
        "secret-in-prose",
        re.compile(
            r"(?i)\b((?:password|passphrase|passwd|passcode|pwd|secret|token|credentials?"
            r"|api[ _-]?key|access[ _-]?key|private[ _-]?key)"
            r"(?:[ \t]+for[ \t]+[\w.@/-]+)?[ \t]+(?:is|was|will[ \t]+be)[ \t]*:?[ \t]+)"
            rf"(?!(?:{_PROSE_NOT_A_VALUE})\b)({_VALUE})"
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

    def text(self, text: str) -> str:
        """``text`` with every secret replaced (``redact(text).text``)."""
        return self.redact(text).text

    def url(self, url: str) -> str:
        """``url`` with every secret replaced by ``%5BREDACTED%5D``.

        The placeholder is percent-encoded so the result is still a valid URL (a Slack
        button refuses the message otherwise); it decodes to ``[REDACTED]``.
        """
        return self.text(url).replace(REDACTED, _REDACTED_IN_URL)

    def redact_fields(self, fields: Mapping[str, str]) -> dict[str, str]:
        """A copy of ``fields`` (labels, annotations, metadata) with the secrets replaced.

        An entry whose key names a secret (``is_secret_key``) has its whole value replaced;
        the others have their values redacted as text. Keys are kept: they are names.
        """
        return {
            key: (REDACTED if value else value) if is_secret_key(key) else self.text(value)
            for key, value in fields.items()
        }


_DEFAULT = Redactor()


def default_redactor() -> Redactor:
    """The shared redactor with the built-in rules."""
    return _DEFAULT


def redact(text: str) -> str:
    """``text`` with secrets replaced by ``[REDACTED]`` (built-in rules)."""
    return _DEFAULT.redact(text).text
