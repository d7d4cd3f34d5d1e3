"""Retry backoff: ``initial * multiplier**(n-1)``, capped, with bounded seeded jitter.

Same formula as the original (``pkg/shared/backoff``): the base delay for the n-th failed
attempt is ``initialBackoffSeconds * backoffMultiplier**(n-1)`` capped at
``maxBackoffSeconds``; jitter is uniform within +-10 %; the result is clamped to
``[initial, max]``. A ``Retry-After`` from the endpoint is the minimum delay. Everything is
then multiplied by the time scale (``NOTIFY_TIME_SCALE``), so a test suite can run the
default policy in milliseconds without touching the CRD contract.

Jitter comes from an injected ``random.Random``; with ``NOTIFY_SEED`` the sequence of delays
is reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final

from .models import RetryPolicy

__all__ = ["JITTER", "MAX_RETRY_AFTER", "Backoff", "base_delay"]

#: Relative jitter bound: +-10 %.
JITTER: Final = 0.10
#: Upper bound applied to a Retry-After header (seconds, before scaling): an endpoint can
#: ask for a longer wait than the policy, but not park a notification for days.
MAX_RETRY_AFTER: Final = 3600.0


def base_delay(policy: RetryPolicy, failed_attempt: int) -> float:
    """Unjittered, unscaled delay in seconds after the ``failed_attempt``-th failure (1-based)."""
    n = max(failed_attempt, 1)
    delay = float(policy.initial_backoff_seconds) * float(policy.backoff_multiplier) ** (n - 1)
    return min(delay, float(policy.max_backoff_seconds))


@dataclass
class Backoff:
    """Computes retry delays for one replica; ``rng`` supplies the jitter."""

    time_scale: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(
        self,
        policy: RetryPolicy,
        failed_attempt: int,
        *,
        retry_after: float | None = None,
    ) -> float:
        """Scaled delay (seconds) before the attempt that follows ``failed_attempt``."""
        base = base_delay(policy, failed_attempt)
        jittered = base * (1.0 + self.rng.uniform(-JITTER, JITTER))
        low = float(policy.initial_backoff_seconds)
        high = float(max(policy.max_backoff_seconds, policy.initial_backoff_seconds))
        delay = min(max(jittered, low), high)
        if retry_after is not None and retry_after > 0:
            delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
        return delay * self.time_scale

    def unjittered(self, policy: RetryPolicy, failed_attempt: int) -> float:
        """Scaled delay without jitter; used for attempts recorded without ``nextAttemptAt``."""
        return base_delay(policy, failed_attempt) * self.time_scale
