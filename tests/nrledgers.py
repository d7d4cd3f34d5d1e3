"""What the ledger-built NotificationRequest tests (the pack's invariants, its attempt
assertions, the failure report) share: the retry policy their requests carry and the
replay command their reports print."""

from __future__ import annotations

#: A NotificationRequest's ``spec.retryPolicy``: three attempts, backoff 1 s doubling to 60 s
#: (short backoffs keep the hand-built clocks readable).
POLICY = {
    "maxAttempts": 3,
    "initialBackoffSeconds": 1,
    "backoffMultiplier": 2,
    "maxBackoffSeconds": 60,
}

#: The replay command a report of the built ledgers carries.
REPLAY = "pytest 'tests/test_nr.py::test_400[seed=1234]' --ntinv-seed=1234"
