"""Hooks that other plugins and conftest files can implement.

Implement them in a ``conftest.py`` or plugin with ``@pytest.hookimpl(optionalhook=True)``
so that your code still loads when pytest-ntinvariants is not installed::

    @pytest.hookimpl(optionalhook=True)
    def pytest_ntinvariants_register(registry, config):
        registry.register(MyInvariant())
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from .invariants import InvariantRegistry, ObjectHistory, Violation
    from .ledger import Ledger, ObjectVersion, SideEffect
    from .perturb.schedule import Schedule, Space
    from .sinks import Attribution, SinkRequest

__all__ = ["hook_relay"]


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


@pytest.hookspec(firstresult=True)
def pytest_ntinvariants_attribute_call(request: SinkRequest) -> Attribution | None:
    """Say what a call a fake endpoint of the test (``ntinv.sink(...)``) received is about.

    :param request: the request as the sink received it (``request.sink`` is its name,
        ``request.headers``, ``request.json``...).
    :returns: an ``Attribution`` (the object, the side effect's ``key``, free
        ``attributes``), or None to let the next implementation (finally the generic
        ``X-Ntinv-*`` headers, ``pytest_ntinvariants.sinks.identify_by_headers``) decide.

    ``firstresult``. Runs on the endpoint's server thread: it must not block.
    """


@pytest.hookspec
def pytest_ntinvariants_context_options(item: pytest.Item) -> Mapping[str, Any] | None:
    """Options for the invariants of one test (``CheckContext.options``).

    :param item: the test item (its markers, ``item.config``'s ini options).
    :returns: a mapping merged into the options (keys namespaced by the pack, e.g.
        ``"mypack.threshold"``), or None.

    Not ``firstresult``: every mapping is merged, later plugins' keys winning.
    """


@pytest.hookspec(firstresult=True)
def pytest_ntinvariants_object_state(history: ObjectHistory) -> str | None:
    """A short state of an object for the header of its report (``Failed``, ``Ready``).

    :param history: every version of the object (``history.last`` is the latest).
    :returns: the text shown in parentheses after the header, or None (not mine).

    ``firstresult``.
    """


@pytest.hookspec
def pytest_ntinvariants_object_sections(
    history: ObjectHistory, ledger: Ledger
) -> Sequence[str] | None:
    """Report lines about one object, printed after its violations and before its
    endpoint calls and timeline (a table of what its status recorded, say).

    :param history: every version of the object.
    :param ledger: the test's ledger.
    :returns: lines, each indented by two spaces (a title) or four (its content), or None.

    Not ``firstresult``: every plugin's lines are printed, in hook order.
    """


@pytest.hookspec(firstresult=True)
def pytest_ntinvariants_describe_write(
    version: ObjectVersion, prev: ObjectVersion | None
) -> str | None:
    """What a write changed, as a timeline shows it after ``wrote rv N (verb):``.

    :param version: the version the write committed.
    :param prev: the object's version before it (None for a create).
    :returns: the text, or None for the generic field-by-field description
        (``pytest_ntinvariants.report.field_changes``).

    ``firstresult``.
    """


@pytest.hookspec(firstresult=True)
def pytest_ntinvariants_describe_call(call: SideEffect) -> str | None:
    """What an endpoint call was, as a timeline shows it after ``call``
    (``slack attempt 2``).

    :param call: the ledger's record of the call.
    :returns: the text, or None for the generic one (its key, then the attributes its
        key does not show).

    ``firstresult``.
    """


@pytest.hookspec
def pytest_ntinvariants_object_json(history: ObjectHistory) -> Mapping[str, Any] | None:
    """Keys to add to an object's entry in the JSON report (``report.to_json``).

    :param history: every version of the object.
    :returns: a JSON-able mapping merged into the entry, or None.

    Not ``firstresult``.
    """


@pytest.hookspec(firstresult=True)
def pytest_ntinvariants_repeated_side_effects(
    history: ObjectHistory, calls: Sequence[SideEffect]
) -> tuple[int, str] | None:
    """How many successful calls beyond the first the controller's own contract allows one
    group of side effects (one endpoint, one object, one key), and why.

    ``side-effects-once`` promises at most one call per object and key, one more per crash
    of a caller. An at-least-once controller documents other ways to deliver twice (a
    claim taken over after its holder was slower than the claim timeout): a pack that
    can see them in the object's history says so here, and the oracle allows the larger
    of the two counts (a crash usually causes the takeover: they are not added up).

    :param history: every version of the object the calls are about.
    :param calls: the group's successful calls, in ledger order (two or more).
    :returns: ``(extra, why)``, e.g. ``(1, "slack #1: replica-0's claim taken over by
        replica-1 in rv 12")``, or None to let the next implementation decide (none: no
        extra call is allowed).

    ``firstresult``.
    """


def hook_relay(*plugins: object) -> Any:
    """A relay of the plugin's hooks with only ``plugins`` registered, for code that runs
    outside pytest (scripts, unit tests of a pack): pass it as ``CheckContext(hook=...)``
    or ``hook=`` of the report functions, as pytest passes ``config.hook``.

    Each of ``plugins`` is a module or object with ``pytest_ntinvariants_*`` functions.
    """
    import pluggy

    pm = pluggy.PluginManager("pytest")
    pm.add_hookspecs(sys.modules[__name__])
    for plugin in plugins:
        pm.register(plugin, name=plugin.__name__ if isinstance(plugin, ModuleType) else None)
    return pm.hook
