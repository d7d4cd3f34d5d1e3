"""A kopf operator with a classic two-replica race, for the deterministic engine's tests.

Every replica makes sure each Gadget has one child ConfigMap: it lists the Gadget's
children and, when it finds none, creates one with ``generateName``. Two replicas that both
list before either creates make two children; whether they do depends only on the order
the engine releases their requests in.

The fixed version names the child after its Gadget (``<gadget>-child``): the second create
of the same name gets 409 AlreadyExists, which means the child is there.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import kopf

from .gadgets import GROUP, PLURAL, VERSION, race_module


def make_registry(identity: str, *, server: Any, fixed: bool = False) -> kopf.OperatorRegistry:
    """A fresh registry for ``identity``; ``server`` is the ``FakeApiServer`` to call;
    ``fixed`` names the child, so that a second create fails."""
    registry = kopf.OperatorRegistry()
    headers = {"Authorization": f"Bearer {server.token_for(identity)}"}

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def ensure_child(name: str, namespace: str, type: str, **_: Any) -> None:
        if type == "DELETED":
            return
        url = f"{server.url}/api/v1/namespaces/{namespace}/configmaps"
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(url, params={"labelSelector": f"gadget={name}"}) as r:
                r.raise_for_status()
                if (await r.json())["items"]:
                    return
            named = {"name": f"{name}-child"} if fixed else {"generateName": f"{name}-"}
            child = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {**named, "labels": {"gadget": name}},
                "data": {"made-by": identity},
            }
            async with session.post(url, json=child) as r:
                if fixed and r.status == 409:
                    return  # another replica made it first
                r.raise_for_status()

    return registry


def race_test(
    schedules: int, *, fixed: bool = False, strategy: str | None = None, checks: bool = True
) -> str:
    """A test module exposing the race: two replicas, one Gadget, ``schedules`` explored
    schedules with every perturbation off (only the engine's order of releases differs
    between them), and an assertion that the Gadget got exactly one child. The test suite
    and ``benchmarks/bench_replay.py`` run it in inner pytest sessions. ``fixed`` runs the
    named-child version; ``strategy`` is the marker's, when given; ``checks=False`` leaves
    the assertion out (the built-in oracles judge alone)."""
    return race_module(_RACE_TEST, schedules, strategy, fixed=fixed, checks=checks)


_RACE_TEST = """
import functools
import pytest
from operators_fixtures import children, gadgets

SPACE = {"watch_latency": None, "stale_reads": 0, "coalesce": 0, "hold": 0}

@pytest.fixture
def ntinv_operator(ntinv_apiserver):
    ntinv_apiserver.apply(gadgets.GADGET_CRD)
    return functools.partial(children.make_registry, server=ntinv_apiserver, fixed=FIXED)

@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_explore(EXPLORE)
def test_one_child(ntinv):
    ntinv.wait_watching("gadgets")
    ntinv.apply(gadgets.gadget("g1"))
    quiet = ntinv.wait_quiet()
    # checks
    assert quiet
    kids = ntinv.list("v1", "ConfigMap", "default", label_selector="gadget=g1")
    assert len(kids) == 1, [k["metadata"]["name"] for k in kids]
"""
