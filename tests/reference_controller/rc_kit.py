"""Helpers of the reference controller's tests: scripted channels, outcomes, specs.

(A uniquely named module: test directories share the module name ``conftest``, so
``from conftest import ...`` picks whichever directory's conftest was imported first when
several test directories run in one session.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from reference_controller import NotificationController, Outcome
from reference_controller.channels import DeliveryRequest


class ScriptedChannel:
    """A channel answering from a script; can hold deliveries in flight behind a gate."""

    def __init__(self, outcomes: Iterable[Outcome] = (), *, default: Outcome | None = None) -> None:
        self.script = list(outcomes)
        self.default = default if default is not None else Outcome.ok()
        self.calls: list[DeliveryRequest] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def deliver(self, request: DeliveryRequest) -> Outcome:
        self.calls.append(request)
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return self.script.pop(0) if self.script else self.default

    def attempts(self, uid: str | None = None) -> list[int]:
        """Attempt numbers of the calls (optionally for one object)."""
        return [c.attempt for c in self.calls if uid is None or c.uid == uid]


def retryable(detail: str = "slack endpoint returned HTTP 503", **kw: Any) -> Outcome:
    from reference_controller.classify import ErrorKind

    return Outcome.retryable(ErrorKind.HTTP, detail, **kw)


def permanent(detail: str = "slack endpoint returned HTTP 400") -> Outcome:
    from reference_controller.classify import ErrorKind

    return Outcome.permanent_failure(ErrorKind.HTTP, detail)


def spec(*channels: str, **extra: Any) -> dict[str, Any]:
    """A valid spec with ``channels``; fast retries by default."""
    body: dict[str, Any] = {
        "type": "simple",
        "priority": "medium",
        "subject": "Disk almost full",
        "body": "node-1 /var at 91%",
        "channels": list(channels),
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoffSeconds": 1,
            "backoffMultiplier": 2,
            "maxBackoffSeconds": 60,
        },
    }
    body.update(extra)
    return body


ControllerFactory = Callable[..., NotificationController]


# -- planted secrets -----------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@dataclass(frozen=True)
class Planted:
    """One kind of secret, planted in a NotificationRequest: ``secrets`` must never reach
    an endpoint; ``kept`` (its surrounding, ordinary text) must."""

    kind: str
    secrets: tuple[str, ...]
    kept: tuple[str, ...] = ()
    caught_before: bool = True  # whether redact.py caught it before this hardening
    #: Where it is planted: "body", "subject", "link" (action links) or "fields"
    #: (metadata, labels, annotations) -- which endpoints can show its ``kept`` text.
    where: str = "body"


# One line of the body each; the context word comes first (a secret's value runs to the end
# of its line). Every value is unique, so finding it anywhere means it leaked.
BODY_LINES: tuple[tuple[str, Planted], ...] = (
    (
        "ctx-assign: password=Hunter2Zk01",
        Planted("key=value", ("Hunter2Zk01",), ("ctx-assign: password=",)),
    ),
    (
        'ctx-json: {"password": "JsonZk02", "user": "bob"}',
        Planted('"key": "value" (JSON)', ("JsonZk02",), ('"user": "bob"',)),
    ),
    (
        "ctx-env: DB_PASSWORD=EnvZk03 MY_API_KEY=EnvZk04",
        Planted("prefixed keys (DB_PASSWORD=, MY_API_KEY=)", ("EnvZk03", "EnvZk04"), ("ctx-env",)),
    ),
    (
        "ctx-quoted: client_secret = 'Quoted Zk05' rejected",
        Planted("quoted value", ("Quoted Zk05",), ("ctx-quoted", "rejected")),
    ),
    (
        f"ctx-bearer: Authorization: Bearer {JWT}",
        Planted("Authorization: Bearer", (JWT, "dozjgNryP4J3"), ("ctx-bearer",)),
    ),
    (
        "ctx-dsn: postgres://admin:DsnZk06@db.example.com:5432/app",
        Planted("user:password@ in a URL", ("DsnZk06",), ("db.example.com:5432/app",)),
    ),
    (
        "ctx-aws: key AKIAIOSFODNN7EXAMPLE leaked",
        Planted("AWS access key id", ("AKIAIOSFODNN7EXAMPLE",), ("ctx-aws: key", "leaked")),
    ),
    (
        "ctx-github: ghp_abcdefghijklmnopqrstuvwxyz0123456789 end",
        Planted("GitHub token", ("ghp_abcdefghijklmnop",), ("ctx-github",)),
    ),
    (
        "ctx-slack: xoxb-1234567890-abcdefghij and https://hooks.slack.com/services/T0/B0/XYZ",
        Planted("Slack token and webhook URL", ("xoxb-1234567890", "T0/B0/XYZ"), ("ctx-slack",)),
    ),
    (
        "ctx-keys: AIzaSyA1234567890abcdefghijklmnopqrstuv sk-proj-abcdefghijklmnopqrstuvwx",
        Planted(
            "Google and OpenAI keys", ("AIzaSyA1234567890", "sk-proj-abcdefghijkl"), ("ctx-keys",)
        ),
    ),
    (
        "ctx-pem: -----BEGIN RSA PRIVATE KEY-----\nMIIEowPemZk07\n-----END RSA PRIVATE KEY-----",
        Planted("private key block", ("MIIEowPemZk07",), ("ctx-pem",)),
    ),
    (
        "ctx-flag: mysql --password FlagZk08 --host db-1",
        Planted(
            "--password X", ("FlagZk08",), ("ctx-flag: mysql --password", "--host db-1"), False
        ),
    ),
    (
        "ctx-prose: the password is ProseZk09",
        Planted('"the password is X"', ("ProseZk09",), ("ctx-prose: the password is",), False),
    ),
    (
        "ctx-pass: pass=PassZk10",
        Planted("pass=X", ("PassZk10",), ("ctx-pass: pass=",), False),
    ),
    (
        "ctx-browser: Cookie: sessionid=CookieZk11; csrftoken=CsrfZk12",
        Planted(
            "Cookie: sessionid=X", ("CookieZk11", "CsrfZk12"), ("ctx-browser: Cookie:",), False
        ),
    ),
    (
        "ctx-words: password=hunter TwoZk13",
        Planted(
            "second word of password=hunter two", ("TwoZk13", "=hunter"), ("ctx-words",), False
        ),
    ),
    (
        "ctx-encoded: https://sso.example.com/cb?next=%2Flogin%3Fpassword%3DEncZk14%26lang%3Den",
        Planted(
            "password%3DX", ("EncZk14",), ("https://sso.example.com/cb?next=", "lang%3Den"), False
        ),
    ),
)

ORDINARY = (
    "Ordinary: passenger manifest, tokenizer ready, compass heading north; "
    "the token bucket is empty; authentication failed; the password is wrong"
)
SUBJECT = "Disk full on prod-app: token=SubjZk15"

ACTION_LINKS = (
    {
        "service": "grafana",
        "url": "https://admin:LinkPassZk16@grafana.example.com/d/one?orgId=1",
        "label": "Dashboard one",
    },
    {
        "service": "grafana",
        "url": "https://grafana.example.com/d/two?token=QueryTokZk17&orgId=2",
        "label": "Dashboard two",
    },
    {
        "service": "grafana",
        "url": "https://grafana.example.com/d/three?orgId=3&access_token=AccessZk18",
        "label": "Dashboard three",
    },
    {
        "service": "runbook",
        "url": "https://runbooks.example.com/login?user=ops&password=QueryPassZk19",
        "label": "Runbook (password=LabelPassZk20)",
    },
)
METADATA = {
    "token": "MetaTokZk21",
    "db_password": "MetaPassZk22",
    "cluster": "prod-east",
    "tokenizer": "bpe",
    "passenger": "ok",
}
LABELS = {"token": "labeltokzk23", "db_password": "labelpasszk24", "app": "payments"}
ANNOTATIONS = {
    "token": "AnnTokZk25",
    "X-Api-Key": "AnnKeyZk26",
    "example.com/session": "AnnSessZk27",
    "example.com/compass": "north",
}

STRUCTURED: tuple[Planted, ...] = (
    Planted(
        "secret in the subject",
        ("SubjZk15",),
        ("Disk full on prod-app: token=",),
        where="subject",
    ),
    Planted(
        "user:password@ in an action link URL",
        ("LinkPassZk16",),
        ("grafana.example.com/d/one?orgId=1",),
        caught_before=False,
        where="link",
    ),
    Planted(
        "?token=X in an action link URL",
        ("QueryTokZk17",),
        ("https://grafana.example.com/d/two?token=",),
        caught_before=False,
        where="link",
    ),
    Planted(
        "&access_token=X in an action link URL",
        ("AccessZk18",),
        ("d/three?orgId=3&access_token=",),
        caught_before=False,
        where="link",
    ),
    Planted(
        "&password=X in an action link URL",
        ("QueryPassZk19",),
        ("login?user=ops&password=",),
        caught_before=False,
        where="link",
    ),
    Planted(
        "secret in an action link label",
        ("LabelPassZk20",),
        ("Runbook (password=",),
        caught_before=False,
        where="link",
    ),
    Planted(
        "metadata, label and annotation under the key `token`",
        ("MetaTokZk21", "labeltokzk23", "AnnTokZk25"),
        (),
        caught_before=False,
        where="fields",
    ),
    Planted(
        "entries whose key names a secret (db_password, X-Api-Key, example.com/session)",
        ("MetaPassZk22", "labelpasszk24", "AnnKeyZk26", "AnnSessZk27"),
        ("prod-east", "bpe", "payments", "north"),
        caught_before=False,
        where="fields",
    ),
)

#: Every planted kind: the body's lines and the structured places.
PLANTED: tuple[Planted, ...] = tuple(planted for _, planted in BODY_LINES) + STRUCTURED


def planted_spec(*channels: str) -> dict[str, Any]:
    """A spec carrying every planted secret (labels and annotations: ``PLANTED_METADATA``)."""
    return spec(
        *channels,
        subject=SUBJECT,
        body="\n".join([*(line for line, _ in BODY_LINES), ORDINARY]),
        metadata=dict(METADATA),
        actionLinks=[dict(link) for link in ACTION_LINKS],
    )


#: ``metadata`` of the planted object: labels and annotations with secrets.
PLANTED_METADATA: dict[str, Any] = {"labels": LABELS, "annotations": ANNOTATIONS}


def leaks(text: str) -> list[str]:
    """The planted secret values found in ``text``."""
    return [secret for planted in PLANTED for secret in planted.secrets if secret in text]


def strings_in(value: Any) -> list[str]:
    """Every string in a JSON value, keys included: what a receiver reads, unescaped."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *strings_in(item)]]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []
