"""An "external controller" for ``ProcessReplica`` tests: the official kubernetes client.

It reads ``$KUBECONFIG``, lists and then watches Gadgets in ``default``, and patches
``status.by`` with ``$NTINV_IDENTITY`` on each Gadget that has none. It prints
``watching from <rv>`` once the list is done (the watch resumes from that list's
resourceVersion, so nothing created after the line is missed), and lists again when its
watch expires (410), as a controller must after a compaction.
"""

from __future__ import annotations

import os
from typing import Any

from kubernetes import client, config, watch

GROUP, VERSION, PLURAL, NAMESPACE = "ntinv.test", "v1", "gadgets", "default"


def main() -> None:
    config.load_kube_config()
    api = client.CustomObjectsApi()
    identity = os.environ["NTINV_IDENTITY"]

    def handle(obj: dict[str, Any]) -> None:
        if (obj.get("status") or {}).get("by"):
            return
        name = obj["metadata"]["name"]
        print(f"patching {name}", flush=True)
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, NAMESPACE, PLURAL, name, {"status": {"by": identity}}
        )

    while True:  # a watch that expired (410 Gone, as after a compaction) lists again
        listing = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        for obj in listing["items"]:
            handle(obj)
        rv = listing["metadata"]["resourceVersion"]
        print(f"watching from {rv}", flush=True)
        stream = watch.Watch().stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            resource_version=rv,
            allow_watch_bookmarks=True,
        )
        try:
            for event in stream:
                if event["type"] in ("ADDED", "MODIFIED"):  # BOOKMARKs come too
                    handle(event["object"])
        except client.ApiException as e:
            if e.status != 410:
                raise


if __name__ == "__main__":
    main()
