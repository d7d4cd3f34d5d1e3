"""``kopf run`` entry: registers the controller on kopf's *default* registry when imported.

Run with ``kopf run -m reference_controller.operator`` (or ``kopf run -m
reference_controller``, which imports this module; see the package docstring). Settings come
from ``NOTIFY_*`` environment variables (``ControllerConfig.from_env``); credentials come
from the in-cluster service account, else ``$KUBECONFIG`` / ``~/.kube/config``, exactly as
for any ``kopf run`` operator.

Importing this module is the only thing in the package that touches the default registry;
embedders use ``build_registry`` / ``run_operator`` instead.
"""

from __future__ import annotations

from typing import Any

import kopf

from .config import ControllerConfig
from .controller import NotificationController
from .runtime import build_controller, configure_settings, register

__all__ = ["controller", "register_default"]

#: The controller behind the default registry (``None`` until ``register_default`` ran).
controller: NotificationController | None = None


def register_default() -> NotificationController:
    """Register on kopf's default registry once; later calls return the same controller."""
    global controller
    if controller is None:
        config = ControllerConfig.from_env()
        built = build_controller(config)
        registry = kopf.get_default_registry()
        register(registry, built)

        @kopf.on.startup(registry=registry, id="reference-controller-settings")
        async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
            configure_settings(settings, built.identity, embedded=False)

        controller = built
    return controller


register_default()
