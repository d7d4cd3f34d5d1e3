"""Hooks that other plugins and conftest files can implement.

Implement them in a ``conftest.py`` or plugin with ``@pytest.hookimpl(optionalhook=True)``
so that your code still loads when pytest-ntinvariants is not installed::

    @pytest.hookimpl(optionalhook=True)
    def pytest_ntinvariants_register(registry, config):
        registry.register(MyInvariant())
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .invariants import InvariantRegistry, Violation
    from .perturb.schedule import Schedule, Space


@pytest.hookspec
def pytest_ntinvariants_register(registry: InvariantRegistry, config: pytest.Config) -> None:
    """Add invariants to the session's registry (called once, at configure time).

    :param registry: the ``InvariantRegistry``; call ``registry.register(invariant)``.
    :param config: the pytest config.

    Not ``firstresult``: every implementation is called.
    """


@pytest.hookspec(firstresult=True)
def pytest_ntinvariants_draw_schedule(
    space: Space, seed: int, identities: Sequence[str], item: pytest.Item
) -> Schedule | None:
    """Draw the perturbation schedule of one exploration item.

    :param space: the ``Space`` declared by ``@pytest.mark.ntinv_explore``.
    :param seed: the item's seed (printed in its id and in failure reports).
    :param identities: the replica identities the schedule may target.
    :param item: the test item.

    ``firstresult``: the first non-None ``Schedule`` wins; the default draws
    ``Schedule.draw(space, seed, identities)``. A schedule must depend only on its
    arguments, or replays will not reproduce it.
    """


@pytest.hookspec
def pytest_ntinvariants_checked(
    item: pytest.Item, checked: Sequence[str], violations: Sequence[Violation]
) -> None:
    """Called after the invariants of one test were checked.

    :param item: the test item.
    :param checked: the names of the invariants that were checked.
    :param violations: what failed (empty when all held).

    Not ``firstresult``; the return value is ignored.
    """


@pytest.hookspec
def pytest_ntinvariants_report(item: pytest.Item, report: dict[str, Any]) -> None:
    """Called with each test's JSON report entry before it is written; may add keys.

    :param item: the test item.
    :param report: the entry (nodeid, seed, schedule, invariants, violations, files).

    Not ``firstresult``.
    """
