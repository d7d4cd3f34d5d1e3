"""The Gadget CRD and a tiny kopf operator for ``tests/test_operators.py``.

Importable as ``operators_fixtures.gadgets`` (pytest's prepend import mode puts ``tests/``
on ``sys.path``), so it doubles as the target of a ``"module:factory"`` registry path.
"""

from __future__ import annotations

from typing import Any

import kopf

JSON = dict[str, Any]

GROUP = "ntinv.test"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "gadgets"

GADGET_CRD: JSON = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def gadget(name: str, **spec: Any) -> JSON:
    """A Gadget manifest in ``default``."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": dict(spec),
    }


def make_registry(identity: str) -> kopf.OperatorRegistry:
    """A fresh registry whose event handler marks every Gadget as seen by ``identity``."""
    registry = kopf.OperatorRegistry()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def seen(patch: kopf.Patch, **_: Any) -> None:
        patch.status[identity] = "seen"

    return registry


def race_module(
    template: str, schedules: int, strategy: str | None, *, fixed: bool, checks: bool
) -> str:
    """A race test module from ``template``: its ``EXPLORE`` (the ``ntinv_explore``
    arguments: ``schedules``, the module's ``SPACE``, the ``strategy`` when given) and
    ``FIXED`` filled in; ``checks=False`` leaves out its lines after ``# checks`` (the
    test's own assertions), so that only the built-in oracles judge."""
    explore = f"schedules={schedules}, space=SPACE"
    if strategy is not None:
        explore += f", strategy={strategy!r}"
    text = template.replace("FIXED", repr(fixed)).replace("EXPLORE", explore)
    return text if checks else text.partition("    # checks")[0]
