"""The reference controller: a kopf operator delivering ``NotificationRequest`` objects.

It re-implements the contract of the notification controller from the seed's project
(``kubernaut.ai/v1alpha1``) and fixes that project's bug class properly: every delivery is
claimed in status, by a write carrying the resourceVersion it was based on, before it is
made; all attempts of a pass are recorded in one such write; an attempt is identified by
``(channel, attempt)`` exactly, never by a time window (see ``recording``).

Ways to run it:

* ``python -m reference_controller`` -- the operator against the current kubeconfig (or
  in-cluster); ``python -m reference_controller crd`` prints the CRD manifest.
* ``kopf run -m reference_controller`` or ``kopf run -m reference_controller.operator``.
* In-process replicas: ``build_registry(config, identity=..., connection=..., strategy=...)``
  and ``await run_operator(registry=..., stop_flag=..., ready_flag=...)``, or simply
  ``await run_operator(config, identity=..., connection=...)``.

Importing this package registers nothing on kopf's default registry, with one exception:
when the importer is kopf's own module loader (``kopf run -m reference_controller``), the
package imports ``reference_controller.operator``, which registers there. That is detected
by looking for kopf's loader on the import's call stack, so ``import reference_controller``
anywhere else stays side-effect free.

The controller never imports the test plugin; the plugin observes it from outside.
"""

from __future__ import annotations

import sys
from importlib import resources

from .audit import AuditRecord, AuditSink, LoggingAuditSink, MemoryAuditSink
from .channels import Channel, DeliveryRequest
from .classify import ErrorKind, Outcome
from .config import ControllerConfig
from .controller import NotificationController, ObjectRef
from .events import ApiEventSink, EventSink, K8sEvent, MemoryEventSink
from .kubeapi import ApiError, ConflictError, KubeApi, NotFoundError
from .models import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ChannelName,
    DeliveryAttempt,
    NotificationSpec,
    NotificationStatus,
    Phase,
)
from .recording import (
    ClaimGrant,
    ClaimRequest,
    RecordingStrategy,
    ReferenceStrategy,
    StatusIO,
    StatusPlanner,
)
from .runtime import build_controller, build_registry, run_operator

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ApiError",
    "ApiEventSink",
    "AuditRecord",
    "AuditSink",
    "Channel",
    "ChannelName",
    "ClaimGrant",
    "ClaimRequest",
    "ConflictError",
    "ControllerConfig",
    "DeliveryAttempt",
    "DeliveryRequest",
    "ErrorKind",
    "EventSink",
    "K8sEvent",
    "KubeApi",
    "LoggingAuditSink",
    "MemoryAuditSink",
    "MemoryEventSink",
    "NotFoundError",
    "NotificationController",
    "NotificationSpec",
    "NotificationStatus",
    "ObjectRef",
    "Outcome",
    "Phase",
    "RecordingStrategy",
    "ReferenceStrategy",
    "StatusIO",
    "StatusPlanner",
    "build_controller",
    "build_registry",
    "crd_manifest",
    "deploy_manifest",
    "run_operator",
]

_KOPF_LOADER = "kopf._cogs.helpers.loaders"


def crd_manifest() -> str:
    """The ``CustomResourceDefinition`` YAML shipped in the package (``crd.yaml``)."""
    return resources.files(__name__).joinpath("crd.yaml").read_text(encoding="utf-8")


def deploy_manifest() -> str:
    """Namespace, RBAC and Deployment YAML shipped in the package (``deploy.yaml``)."""
    return resources.files(__name__).joinpath("deploy.yaml").read_text(encoding="utf-8")


def _imported_by_kopf_loader() -> bool:
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == _KOPF_LOADER:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


if _imported_by_kopf_loader():  # `kopf run -m reference_controller`
    from . import operator as _operator  # noqa: F401  (registers on the default registry)
