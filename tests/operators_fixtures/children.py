"""A kopf operator with a classic two-replica race, for the deterministic engine's tests.

Every replica makes sure each Gadget has one child ConfigMap: it lists the Gadget's
children and, when it finds none, creates one with ``generateName``. Two replicas that both
list before either creates make two children; whether they do depends only on the order
the engine releases their requests in.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import kopf

from .gadgets import GROUP, PLURAL, VERSION


def make_registry(identity: str, *, server: Any) -> kopf.OperatorRegistry:
    """A fresh registry for ``identity``; ``server`` is the ``FakeApiServer`` to call."""
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
            child = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"generateName": f"{name}-", "labels": {"gadget": name}},
                "data": {"made-by": identity},
            }
            async with session.post(url, json=child) as r:
                r.raise_for_status()

    return registry
