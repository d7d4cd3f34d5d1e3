"""A kopf operator that derives ``status.doubled`` from ``spec.size``, with a two-replica race.

Every replica keeps ``status.doubled == 2 * spec.size``. The buggy version does what a
controller reading through a cache does: it acts only on events whose
``metadata.generation`` it has not handled yet (status writes do not bump it, so its own
writes do not wake it, as controller-runtime's ``GenerationChangedPredicate`` has it),
then reads the Gadget and writes ``2 * spec.size`` of what it read with a plain merge patch.
In the race tests replica-1 reads through a view ``STALE`` versions behind (a lagging
cache), so its read after the spec changed still has the old size; when its write lands
after replica-0 wrote the new value, the old value overwrites it, and nothing wakes either
replica again. Whether that happens depends only on the order the engine releases the two
replicas' requests in: the lag is the same in every schedule.

The fixed version computes from the body of the event it handles and writes with that
body's resourceVersion as a precondition, recording the generation it computed from in
``status.observedGeneration``: a write computed from anything but the latest version gets
409 Conflict, and the newer version's own event brings the handler back to compute again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import kopf

from .gadgets import GROUP, PLURAL, VERSION, race_module

_MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}

#: How many versions behind the race tests serve replica-1's reads: a lagging cache.
STALE = 2


def make_registry(identity: str, *, server: Any, fixed: bool = False) -> kopf.OperatorRegistry:
    """A fresh registry for ``identity``; ``server`` is the ``FakeApiServer`` to call;
    ``fixed`` computes from the event's body and writes conditionally."""
    registry = kopf.OperatorRegistry()
    headers = {"Authorization": f"Bearer {server.token_for(identity)}"}
    # The buggy version's predicate: the generation it last handled, per Gadget uid.
    handled: dict[str, int] = {}

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def double(
        body: Mapping[str, Any], name: str, namespace: str | None, uid: str, type: str, **_: Any
    ) -> None:
        if type == "DELETED" or namespace is None:  # (Gadgets are namespaced: never None)
            return
        url = f"{server.url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        async with aiohttp.ClientSession(headers=headers) as session:
            if fixed:
                await _reconcile_fixed(session, url, body)
                return
            generation = int(body["metadata"].get("generation", 1))
            if handled.get(uid) == generation:
                return  # a status-only change: nothing to recompute, as far as it knows
            handled[uid] = generation
            async with session.get(url) as r:
                if r.status == 404:
                    return
                r.raise_for_status()
                gadget = await r.json()
            doubled = 2 * int(gadget["spec"]["size"])
            # No precondition: whatever was written since the read is overwritten.
            patch = {"status": {"doubled": doubled}}
            async with session.patch(f"{url}/status", json=patch, headers=_MERGE_PATCH) as r:
                r.raise_for_status()

    return registry


async def _reconcile_fixed(
    session: aiohttp.ClientSession, url: str, body: Mapping[str, Any]
) -> None:
    """Write ``2 * spec.size`` of ``body``, only if ``body`` is still the latest version."""
    meta, status = body["metadata"], body.get("status") or {}
    generation = int(meta.get("generation", 1))
    doubled = 2 * int(body["spec"]["size"])
    if status.get("observedGeneration") == generation and status.get("doubled") == doubled:
        return
    # The resourceVersion it computed from is the precondition: a write computed from an
    # older version than the stored one gets 409 and never moves the value backwards.
    patch = {
        "metadata": {"resourceVersion": meta["resourceVersion"]},
        "status": {"doubled": doubled, "observedGeneration": generation},
    }
    async with session.patch(f"{url}/status", json=patch, headers=_MERGE_PATCH) as r:
        if r.status in (404, 409):
            # 409: the Gadget changed since this body; that change's own watch event runs
            # this handler again with the newer body, which is the re-read.
            return
        r.raise_for_status()


def race_test(
    schedules: int, *, fixed: bool = False, strategy: str | None = None, checks: bool = True
) -> str:
    """A test module exposing the race: two replicas, replica-1 reading ``STALE`` versions
    behind, one Gadget whose size goes from 1 to 5 once status shows 2, ``schedules``
    explored schedules with every drawn perturbation off (only the engine's order of
    releases differs between them), and an assertion that status ends at ``2 * 5``.
    ``fixed`` runs the conditional-write version; ``strategy`` is the marker's, when given;
    ``checks=False`` leaves the assertions out (the built-in oracles judge alone).
    """
    module = race_module(_RACE_TEST, schedules, strategy, fixed=fixed, checks=checks)
    return module.replace("STALE", str(STALE))


_RACE_TEST = """
import functools
import pytest
from operators_fixtures import gadgets, stale_spec

SPACE = {"watch_latency": None, "stale_reads": 0, "coalesce": 0, "hold": 0}

@pytest.fixture
def ntinv_operator(ntinv_apiserver):
    ntinv_apiserver.apply(gadgets.GADGET_CRD)
    return functools.partial(stale_spec.make_registry, server=ntinv_apiserver, fixed=FIXED)

@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_stale_reads(STALE, replicas=[1])
@pytest.mark.ntinv_explore(EXPLORE)
def test_doubled_follows_the_spec(ntinv):
    ntinv.wait_watching("gadgets")
    ntinv.apply(gadgets.gadget("g1", size=1))
    ntinv.wait_for(gadgets.API_VERSION, "Gadget", "g1",
                   lambda g: g.get("status", {}).get("doubled") == 2)
    ntinv.apply(gadgets.gadget("g1", size=5))
    quiet = ntinv.wait_quiet()
    # checks
    assert quiet
    g1 = ntinv.get(gadgets.API_VERSION, "Gadget", "g1")
    assert g1["spec"]["size"] == 5
    assert g1["status"]["doubled"] == 2 * g1["spec"]["size"], g1["status"]
"""
