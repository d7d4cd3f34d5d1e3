"""``ControllerConfig``: the operator's settings, read from ``NOTIFY_*`` environment variables.

Plain pydantic (no pydantic-settings dependency): ``ControllerConfig.from_env()`` reads the
environment, keyword arguments override it, and everything is validated the same way as
``ControllerConfig(...)`` built in code.

====================================  ===========================  ==========================
field                                 environment variable         default
====================================  ===========================  ==========================
``slack_webhook_url``                 ``NOTIFY_SLACK_WEBHOOK_URL`` unset: slack not configured
``webhook_url``                       ``NOTIFY_WEBHOOK_URL``       unset: webhook not configured
``file_dir``                          ``NOTIFY_FILE_DIR``          unset: file not configured
``ca_bundle``                         ``NOTIFY_CA_BUNDLE``         system trust store
``time_scale``                        ``NOTIFY_TIME_SCALE``        1.0
``http_timeout``                      ``NOTIFY_HTTP_TIMEOUT``      10 s (the original's)
``claim_timeout``                     ``NOTIFY_CLAIM_TIMEOUT``     60 s, scaled (see below)
``seed``                              ``NOTIFY_SEED``              unset: unseeded jitter
``identity``                          ``NOTIFY_IDENTITY``          ``<hostname>-<pid>``
``default_channels``                  ``NOTIFY_DEFAULT_CHANNELS``  none (comma-separated)
``namespaces``                        ``NOTIFY_NAMESPACES``        none: cluster-wide
``error_backoff``                     ``NOTIFY_ERROR_BACKOFF``     1 s
``max_conflicts``                     ``NOTIFY_MAX_CONFLICTS``     16
``log_format``                        ``NOTIFY_LOG_FORMAT``        ``text`` (or ``json``)
====================================  ===========================  ==========================

Time scale. ``time_scale`` multiplies the durations of the notification protocol: every
retry delay (backoff, ``Retry-After``, error backoff) and the claim timeout, so 0.001 turns
the default policy's seconds into milliseconds. ``http_timeout`` is not scaled: it bounds a
real HTTP call to a real endpoint, which takes as long as it takes at any scale.

Claim timeout. A claim (a delivery announced in status before it is made) may be taken over
by another replica once it is older than ``effective_claim_timeout``, which is real seconds::

    max(claim_timeout * time_scale, min(claim_timeout, 2 * http_timeout))

The first term is the claim timeout scaled like a backoff (60 s become 60 ms at
``time_scale=0.001``). The second is a floor in real time: a claim must not expire while its
holder may still be delivering (up to ``http_timeout``) and then recording the result
(allowed as long again), or the healthy holder and the replica taking over would both
deliver. The floor never exceeds ``claim_timeout``, so a time scale never lengthens a claim,
and at ``time_scale=1`` the effective timeout is ``claim_timeout`` itself.

Validation compares real seconds with real seconds: ``effective_claim_timeout`` must exceed
``http_timeout`` (for ``time_scale <= 1`` that is ``claim_timeout > http_timeout``). So a
quick takeover under a small time scale needs a small ``http_timeout`` as well: at
``time_scale=0.001`` with the defaults a crashed replica's claim is taken over after 20 s
(the floor), with ``http_timeout=1.0`` (local test endpoints) after 2 s, with
``http_timeout=0.02`` after the scaled 60 ms.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .models import ChannelName

__all__ = ["ENV_PREFIX", "ControllerConfig", "default_identity"]

ENV_PREFIX = "NOTIFY_"

# Fields given as comma-separated lists in the environment.
_LIST_FIELDS = frozenset({"default_channels", "namespaces"})


def default_identity() -> str:
    """A replica identity unique enough for one host: ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class ControllerConfig(BaseModel):
    """Settings of one controller replica; immutable once built."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    slack_webhook_url: str | None = Field(
        default=None, description="Slack incoming-webhook URL; unset means slack is not configured."
    )
    webhook_url: str | None = Field(
        default=None, description="URL the webhook channel POSTs to; unset means not configured."
    )
    file_dir: Path | None = Field(
        default=None,
        description="Base directory of the file channel; spec.fileDeliveryConfig.outputDirectory "
        "must resolve inside it. Unset means the file channel is not configured.",
    )
    ca_bundle: Path | None = Field(
        default=None,
        description="PEM CA bundle that HTTPS deliveries trust instead of the system's.",
    )
    time_scale: float = Field(
        default=1.0,
        gt=0,
        description="Multiplies every retry delay (backoff, Retry-After, error backoff) and "
        "the claim timeout; 0.001 turns seconds into milliseconds for test suites. The CRD "
        "contract is unchanged. Never applied to http_timeout.",
    )
    http_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Total timeout of one HTTP delivery, in real seconds (not scaled).",
    )
    claim_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Age after which another replica may take over an unrecorded claim "
        "(a crash between claim and record), scaled by time_scale like a backoff but never "
        "below min(claim_timeout, 2 * http_timeout) real seconds: see effective_claim_timeout.",
    )
    seed: int | None = Field(default=None, description="Seed of the backoff jitter generator.")
    identity: str = Field(
        default_factory=default_identity,
        min_length=1,
        description="Replica identity: claim holder, event reporting instance.",
    )
    default_channels: tuple[ChannelName, ...] = Field(
        default=(),
        description="Channels used when spec.channels is empty (stands in for the original's "
        "routing rules); none means such a notification fails with NoChannelsResolved.",
    )
    namespaces: tuple[str, ...] = Field(
        default=(), description="Namespaces to serve when run as a program; none means all."
    )
    error_backoff: float = Field(
        default=1.0, gt=0, description="Delay before retrying a reconcile that hit an API error."
    )
    max_conflicts: int = Field(
        default=16, ge=1, description="409 Conflicts one status write may retry before giving up."
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log format of `python -m reference_controller`."
    )

    @field_validator("slack_webhook_url", "webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def effective_claim_timeout(self) -> float:
        """Real seconds after which a claim may be taken over (see the module docstring).

        ``claim_timeout * time_scale``, but never below ``min(claim_timeout,
        2 * http_timeout)``: the holder's delivery (real time, up to ``http_timeout``) and its
        record write must fit in the claim at any scale.
        """
        floor = min(self.claim_timeout, 2 * self.http_timeout)
        return max(self.claim_timeout * self.time_scale, floor)

    @model_validator(mode="after")
    def _claims_outlive_deliveries(self) -> Self:
        # A claim may be taken over once it is older than the effective claim timeout; if a
        # delivery could still be in flight by then, a healthy replica and its successor
        # would both deliver. Both sides are real seconds: the scaled claim timeout (with
        # its floor) against the HTTP timeout, which no time scale shortens.
        if self.effective_claim_timeout <= self.http_timeout:
            raise ValueError(
                f"the claim timeout ({self.effective_claim_timeout:g}s of real time: "
                f"claim_timeout {self.claim_timeout:g}s at time_scale {self.time_scale:g}) "
                f"must exceed http_timeout ({self.http_timeout:g}s), or a slow delivery could "
                "be taken over and repeated"
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Build from ``NOTIFY_*`` variables of ``environ`` (default ``os.environ``).

        Keyword arguments win over the environment. Empty variables count as unset;
        list-valued variables are comma-separated.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None or not raw.strip():
                continue
            if name in _LIST_FIELDS:
                values[name] = tuple(part.strip() for part in raw.split(",") if part.strip())
            else:
                values[name] = raw.strip()
        values.update(overrides)
        return cls.model_validate(values)

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied (``model_copy`` would skip validation)."""
        return type(self).model_validate({**self.model_dump(), **changes})
