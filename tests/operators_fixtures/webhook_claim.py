"""A kopf operator that calls a webhook once per Gadget, with a two-replica race.

Every replica, on each event of a Gadget, reads the Gadget afresh and, when its status
says the webhook was not called yet, calls it and records ``status.called``. The buggy
version calls first and records afterwards: two replicas that both read the Gadget before
either record lands both call. Whether they do depends only on the order the engine
releases their requests in.

The fixed version claims the call first, with an optimistic-concurrency write of
``status.claimedBy`` that carries the resourceVersion it read: of two replicas that read
the same version, the second claimer gets 409 Conflict and stops, and only the replica
whose claim landed calls the webhook. A claim is a lease: a replica that sees another's
claim waits ``LEASE`` seconds and, if the Gadget is still that version (the claimer
neither called nor recorded anything), takes the call over with a claim of its own. So a
replica that crashes after claiming leaves no Gadget uncalled; one that crashes between
calling and recording makes the survivor call again: the call is made at least once, and
exactly once unless a replica crashed (the race test asserts that).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kopf

from .gadgets import GROUP, PLURAL, VERSION, race_module

#: The name of the fake endpoint the race tests give the operator.
SINK = "hook"

#: Seconds (virtual, in a deterministic world) a claim holds before another replica may
#: take the call over.
LEASE = 30.0

_MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}


def make_registry(
    identity: str, *, server: Any, webhook: str, fixed: bool = False
) -> kopf.OperatorRegistry:
    """A fresh registry for ``identity``; ``server`` is the ``FakeApiServer`` to call and
    ``webhook`` the URL to call once per Gadget; ``fixed`` claims before calling."""
    registry = kopf.OperatorRegistry()
    headers = {"Authorization": f"Bearer {server.token_for(identity)}"}

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def call_once(name: str, namespace: str | None, type: str, **_: Any) -> None:
        if type == "DELETED" or namespace is None:  # (Gadgets are namespaced: never None)
            return
        url = f"{server.url}/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"
        async with aiohttp.ClientSession(headers=headers) as session:
            # Read afresh rather than trust the event's body, which may predate another
            # replica's record: that narrows the race's window, but cannot close it.
            gadget = await _read(session, url)
            if gadget is None or (gadget.get("status") or {}).get("called"):
                return
            if fixed:
                claimant = gadget["status"].get("claimedBy")
                if claimant and claimant != identity:
                    # Another replica's lease: wait it out. Any write meanwhile (its record)
                    # brings an event of its own, handled afresh.
                    await asyncio.sleep(LEASE)
                    again = await _read(session, url)
                    if again is None or _rv(again) != _rv(gadget):
                        return
                if not await _claim(session, url, gadget, identity):
                    return  # another replica's claim landed first: the call is theirs
            await _call(webhook, gadget)
            await _patch_status(session, url, {"status": {"called": identity}})

    return registry


async def _read(session: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    """The Gadget as stored now (None: it is gone)."""
    async with session.get(url) as r:
        if r.status == 404:
            return None
        r.raise_for_status()
        gadget: dict[str, Any] = await r.json()
        gadget.setdefault("status", {})
        return gadget


def _rv(gadget: dict[str, Any]) -> str:
    return str(gadget["metadata"]["resourceVersion"])


async def _claim(
    session: aiohttp.ClientSession, url: str, gadget: dict[str, Any], identity: str
) -> bool:
    """Write ``status.claimedBy = identity`` only if the Gadget is still the version read;
    whether the claim landed."""
    # The resourceVersion makes the merge patch conditional: of two replicas that read the
    # same version, the second one to write gets 409 Conflict instead of overwriting.
    body = {"metadata": {"resourceVersion": _rv(gadget)}, "status": {"claimedBy": identity}}
    async with session.patch(f"{url}/status", json=body, headers=_MERGE_PATCH) as r:
        if r.status == 409:
            return False
        r.raise_for_status()
        return True


async def _call(webhook: str, gadget: dict[str, Any]) -> None:
    """POST to the webhook, naming the Gadget in the headers the fake endpoint counts by."""
    meta = gadget["metadata"]
    attribution = {
        "X-Notification-Uid": meta["uid"],
        "X-Notification-Namespace": meta["namespace"],
        "X-Notification-Name": meta["name"],
    }
    # A session of its own: the API server's bearer token is not the webhook's business.
    payload = {"gadget": meta["name"]}
    async with (
        aiohttp.ClientSession() as hook,
        hook.post(webhook, json=payload, headers=attribution) as r,
    ):
        r.raise_for_status()


async def _patch_status(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> None:
    """An unconditional merge patch of the Gadget's status."""
    async with session.patch(f"{url}/status", json=body, headers=_MERGE_PATCH) as r:
        r.raise_for_status()


def race_test(
    schedules: int, *, fixed: bool = False, strategy: str | None = None, checks: bool = True
) -> str:
    """A test module exposing the race: two replicas, one Gadget, ``schedules`` explored
    schedules with every perturbation off (only the engine's order of releases differs
    between them), and an assertion that the webhook was called exactly once for it (or,
    after a crash, a second time by the replica that took over). ``fixed`` runs the
    claiming version; ``strategy`` is the marker's, when given; ``checks=False`` leaves the
    assertion out (the built-in oracles judge alone)."""
    return race_module(_RACE_TEST, schedules, strategy, fixed=fixed, checks=checks)


_RACE_TEST = """
import functools
import pytest
from operators_fixtures import gadgets, webhook_claim

SPACE = {"watch_latency": None, "stale_reads": 0, "coalesce": 0, "hold": 0}

@pytest.fixture
def ntinv_operator(ntinv_apiserver, ntinv_sinks):
    ntinv_apiserver.apply(gadgets.GADGET_CRD)
    return functools.partial(
        webhook_claim.make_registry,
        server=ntinv_apiserver,
        webhook=ntinv_sinks.get(webhook_claim.SINK).url,
        fixed=FIXED,
    )

@pytest.mark.ntinv_replicas(2)
@pytest.mark.ntinv_explore(EXPLORE)
def test_one_call(ntinv):
    ntinv.wait_watching("gadgets")
    ntinv.apply(gadgets.gadget("g1"))
    quiet = ntinv.wait_quiet()
    # checks
    assert quiet
    hook = ntinv.sink(webhook_claim.SINK)
    assert hook.count(name="g1") in ((1, 2) if ntinv.crashed else (1,)), hook.calls
"""
