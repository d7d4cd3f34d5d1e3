"""The NotificationRequest pack (``kubernaut.ai/v1alpha1``): an opt-in pytest plugin.

Enable it with ``-p pytest_ntinvariants.packs.notifications`` (command line, ``addopts``
or ``pytest_plugins``). It is the worked example of a pack for your own CRD: everything
it knows about NotificationRequests reaches the generic core through public hooks and
names only, as a user's pack would:

- ``pytest_ntinvariants_register``: the ``nr-*`` invariants (``invariants``);
- ``pytest_ntinvariants_attribute_call``: endpoint calls attributed by the reference
  controller's ``X-Notification-*`` headers, keyed by channel (``attribution``);
- ``pytest_ntinvariants_context_options``: the backoff time scale the retry-spacing rule
  judges on, from ``@pytest.mark.ntinv_notifications(time_scale=...)`` or the
  ``ntinv_time_scale`` ini option;
- ``pytest_ntinvariants_object_state`` / ``_object_sections`` / ``_describe_write`` /
  ``_describe_call`` / ``_object_json``: the phase, the attempts table, a write's and a
  delivery's summary in reports (``report``).

Tests assert on attempts with ``assert_attempts(ntinv, ...)`` and
``assert_deliveries(ntinv, ...)`` (``assertions``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from .assertions import assert_attempts, assert_deliveries
from .attribution import identify_notification
from .builder import NotificationBuilder, NotificationLedgerBuilder
from .invariants import KIND, NR_INVARIANTS, SINK_CHANNELS, TIME_SCALE

if TYPE_CHECKING:
    from pytest_ntinvariants.invariants import InvariantRegistry, ObjectHistory
    from pytest_ntinvariants.ledger import Ledger, ObjectVersion, SideEffect
    from pytest_ntinvariants.sinks import Attribution, SinkRequest

__all__ = [
    "KIND",
    "MARKER",
    "NR_INVARIANTS",
    "SINK_CHANNELS",
    "TIME_SCALE",
    "NotificationBuilder",
    "NotificationLedgerBuilder",
    "assert_attempts",
    "assert_deliveries",
    "default_registry",
    "identify_notification",
    "time_scale_of",
]

#: The pack's marker, as ``pytest --markers`` lists it.
MARKER = (
    "ntinv_notifications(*, time_scale=None): the NotificationRequest pack's options for "
    "this test: time_scale is the factor the controller's backoff runs at "
    "(NOTIFY_TIME_SCALE), which nr-retry-spacing judges retries on (default: the "
    "ntinv_time_scale ini option)."
)


def default_registry() -> InvariantRegistry:
    """The core's default registry plus this pack's invariants (what a pytest run with the
    pack enabled checks), for code that runs outside pytest."""
    from pytest_ntinvariants.invariants import default_registry as core_registry

    registry = core_registry()
    for cls in NR_INVARIANTS:
        registry.register(cls())
    return registry


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``ntinv_time_scale`` ini option."""
    parser.addini(
        "ntinv_time_scale",
        default="1.0",
        help="the NotificationRequest controller's backoff time scale, for nr-retry-spacing "
        "(the notifications pack).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``ntinv_notifications`` marker."""
    config.addinivalue_line("markers", MARKER)


def time_scale_of(item: pytest.Item) -> float:
    """The time scale of one test: its ``ntinv_notifications(time_scale=)``, else the
    ``ntinv_time_scale`` ini option. A bad value is a ``ValueError`` naming it."""
    mark = item.get_closest_marker("ntinv_notifications")
    if mark is not None:
        if mark.args or set(mark.kwargs) - {"time_scale"}:
            raise ValueError(
                "@pytest.mark.ntinv_notifications takes only time_scale=, got "
                f"args {mark.args!r} kwargs {sorted(mark.kwargs)!r}"
            )
        scale = mark.kwargs.get("time_scale")
        if scale is not None:
            if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
                raise ValueError(
                    f"@pytest.mark.ntinv_notifications: time_scale must be > 0, got {scale!r}"
                )
            return float(scale)
    raw = item.config.getini("ntinv_time_scale")
    try:
        scale = float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(
            f"ini option ntinv_time_scale must be a number, got {raw!r}"
        ) from None
    if not scale > 0:
        raise pytest.UsageError(f"ini option ntinv_time_scale must be > 0, got {raw!r}")
    return scale


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A wrong ``ntinv_notifications`` is an error at the setup of its test, before any
    fixture starts."""
    try:
        time_scale_of(item)
    except ValueError as e:
        error = str(e)
    else:
        return
    pytest.fail(error, pytrace=False)  # outside the except: no "during handling" chain


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_register(registry: InvariantRegistry, config: pytest.Config) -> None:
    """Register the ``nr-*`` invariants."""
    for cls in NR_INVARIANTS:
        registry.register(cls())


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_attribute_call(request: SinkRequest) -> Attribution | None:
    """Attribute a delivery by its ``X-Notification-*`` headers."""
    return identify_notification(request)


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_context_options(item: pytest.Item) -> Mapping[str, Any] | None:
    """The time scale ``nr-retry-spacing`` judges on."""
    return {TIME_SCALE: time_scale_of(item)}


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_object_state(history: ObjectHistory) -> str | None:
    """A NotificationRequest's phase."""
    from .report import state

    return state(history)


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_object_sections(
    history: ObjectHistory, ledger: Ledger
) -> Sequence[str] | None:
    """A NotificationRequest's attempts table."""
    from .report import sections

    return sections(history)


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_describe_write(
    version: ObjectVersion, prev: ObjectVersion | None
) -> str | None:
    """A NotificationRequest write's phase, attempts and counters."""
    from .report import describe_write

    return describe_write(version, prev)


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_describe_call(call: SideEffect) -> str | None:
    """A delivery as ``slack attempt 2``."""
    from .report import describe_call

    return describe_call(call)


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_object_json(history: ObjectHistory) -> Mapping[str, Any] | None:
    """A NotificationRequest's attempts, for the JSON report."""
    from .report import attempts_json

    return attempts_json(history)


@pytest.hookimpl(optionalhook=True)
def pytest_ntinvariants_repeated_side_effects(
    history: ObjectHistory, calls: Sequence[SideEffect]
) -> tuple[int, str] | None:
    """One more delivery per claim of the calls' (channel, attempt) taken over."""
    from .invariants import repeated_deliveries

    return repeated_deliveries(history, calls)
