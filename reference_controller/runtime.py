"""Building and running the operator: fresh registries for in-process replicas.

``build_registry`` returns a new ``kopf.OperatorRegistry`` bound to one controller (one
replica): its login handler returns that replica's own credentials, so replicas in one
process can authenticate as different identities. ``run_operator`` runs such a registry
with ``kopf.spawn_tasks`` in standalone mode and stops only its own tasks, so several
replicas can share one event loop (``kopf.run_tasks`` would cancel every task created in
the loop after it started, i.e. the other replicas' tasks).

Nothing here touches kopf's default registry; ``reference_controller.operator`` does, for
``kopf run``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import signal
import threading
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, TypeAlias

import kopf

from .audit import AuditSink, LoggingAuditSink
from .channels import Channel, HttpPoster, build_channels
from .config import ControllerConfig
from .controller import NotificationController, utc_now
from .events import COMPONENT, ApiEventSink, EventSink
from .kubeapi import (
    ConnectionProvider,
    KubeApi,
    NotificationApi,
    default_connection_provider,
    kubeconfig_provider,
    static_provider,
)
from .models import GROUP, PLURAL, VERSION, ChannelName
from .recording import RecordingStrategy, ReferenceStrategy
from .redact import Redactor

__all__ = [
    "Connection",
    "Flag",
    "build_controller",
    "build_registry",
    "configure_settings",
    "register",
    "run_operator",
]

#: Where a replica's credentials come from: ready credentials, a kubeconfig path, a
#: provider coroutine function, or ``None`` (in-cluster, else ``$KUBECONFIG``).
Connection: TypeAlias = kopf.ConnectionInfo | str | os.PathLike[str] | ConnectionProvider | None

#: What kopf accepts as a stop or ready flag.
Flag: TypeAlias = (
    asyncio.Future[Any] | asyncio.Event | concurrent.futures.Future[Any] | threading.Event
)


def _provider(connection: Connection) -> ConnectionProvider:
    if connection is None:
        return default_connection_provider()
    if isinstance(connection, kopf.ConnectionInfo):
        return static_provider(connection)
    if isinstance(connection, str | os.PathLike):
        return kubeconfig_provider(connection)
    return connection


def build_controller(
    config: ControllerConfig | None = None,
    *,
    identity: str | None = None,
    connection: Connection = None,
    strategy: RecordingStrategy | None = None,
    channels: Mapping[ChannelName, Channel] | None = None,
    audit_sink: AuditSink | None = None,
    event_sink: EventSink | None = None,
    clock: Callable[[], datetime] = utc_now,
    rng: random.Random | None = None,
    redactor: Redactor | None = None,
    api: NotificationApi | None = None,
) -> NotificationController:
    """One replica's controller.

    ``config`` defaults to ``ControllerConfig.from_env()``; ``identity`` overrides
    ``config.identity``; ``channels`` replaces entries of the default channel table.
    ``api`` replaces the API client built from ``connection`` (give one or the other).
    """
    config = config if config is not None else ControllerConfig.from_env()
    if identity is not None:
        config = config.replace(identity=identity)
    if api is not None and connection is not None:
        raise TypeError("pass either api= or connection=, not both")
    if api is None:
        api = KubeApi(_provider(connection))
    poster = HttpPoster(timeout=config.http_timeout, ca_bundle=config.ca_bundle)
    table: dict[ChannelName, Channel] = dict(build_channels(config, poster))
    table.update(channels or {})
    return NotificationController(
        config,
        api=api,
        strategy=strategy
        if strategy is not None
        else ReferenceStrategy(max_conflicts=config.max_conflicts),
        channels=table,
        audit_sink=audit_sink if audit_sink is not None else LoggingAuditSink(),
        event_sink=event_sink
        if event_sink is not None
        else ApiEventSink(api, instance=config.identity),
        clock=clock,
        rng=rng,
        redactor=redactor,
        closers=(poster.close,),
    )


def configure_settings(settings: kopf.OperatorSettings, identity: str, *, embedded: bool) -> None:
    """kopf settings of a replica: standalone, Events attributed to the replica.

    ``persistence.consistency_timeout`` keeps kopf's default (the controller never patches
    through kopf, so kopf never waits for its own writes anyway). ``embedded`` disables kopf's
    "ultimate exit" (a SIGKILL of the thread if stopping hangs), which in an embedding
    process such as a test run would kill the whole process.
    """
    settings.peering.standalone = True
    settings.posting.reporting_component = COMPONENT
    settings.posting.reporting_instance = identity
    if embedded:
        settings.process.ultimate_exiting_timeout = None


def register(registry: kopf.OperatorRegistry, controller: NotificationController) -> None:
    """Register ``controller``'s handlers on ``registry`` (login, event, cleanup)."""

    @kopf.on.login(registry=registry, id="reference-controller-login")
    async def login(**_: Any) -> kopf.ConnectionInfo:
        # The replica's own credentials, shared with its API client (refreshed on 401).
        return await controller.api.connection(refresh=True)

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry, id="notificationrequest-reconcile")
    async def on_event(event: Mapping[str, Any], **_: Any) -> None:
        obj = event.get("object")
        if isinstance(obj, Mapping):
            await controller.on_watch_event(event.get("type"), obj)

    @kopf.on.cleanup(registry=registry, id="reference-controller-cleanup")
    async def cleanup(**_: Any) -> None:
        await controller.close()


def build_registry(
    config: ControllerConfig | None = None,
    *,
    identity: str | None = None,
    connection: Connection = None,
    strategy: RecordingStrategy | None = None,
    channels: Mapping[ChannelName, Channel] | None = None,
    audit_sink: AuditSink | None = None,
    event_sink: EventSink | None = None,
    clock: Callable[[], datetime] = utc_now,
    rng: random.Random | None = None,
    api: NotificationApi | None = None,
    controller: NotificationController | None = None,
) -> kopf.OperatorRegistry:
    """A fresh ``kopf.OperatorRegistry`` running one replica's controller.

    Pass either ``controller`` or the parts to build one (see ``build_controller``).
    """
    if controller is None:
        controller = build_controller(
            config,
            identity=identity,
            connection=connection,
            strategy=strategy,
            channels=channels,
            audit_sink=audit_sink,
            event_sink=event_sink,
            clock=clock,
            rng=rng,
            api=api,
        )
    elif any(
        part is not None
        for part in (config, identity, connection, strategy, channels, audit_sink, event_sink)
    ) or (rng, api) != (None, None):
        raise TypeError("pass either controller= or the parts to build one, not both")
    registry = kopf.OperatorRegistry()
    register(registry, controller)
    return registry


async def run_operator(
    config: ControllerConfig | None = None,
    *,
    registry: kopf.OperatorRegistry | None = None,
    identity: str | None = None,
    connection: Connection = None,
    strategy: RecordingStrategy | None = None,
    controller: NotificationController | None = None,
    stop_flag: Flag | None = None,
    ready_flag: Flag | None = None,
    namespaces: Collection[str] = (),
    clusterwide: bool | None = None,
    settings: kopf.OperatorSettings | None = None,
    handle_signals: bool = False,
    embedded: bool = True,
    liveness_endpoint: str | None = None,
) -> None:
    """Run one replica until ``stop_flag`` is set (or the task is cancelled).

    Give either ``registry`` (from ``build_registry``), or ``controller``, or the parts
    (``config``, ``identity``, ``connection``, ``strategy``). The operator runs standalone
    (no peering), in ``namespaces`` or cluster-wide when none are given. With
    ``handle_signals=False`` (the default, for embedding) kopf's SIGINT/SIGTERM handlers are
    removed again and the previous handlers restored. Cancelling the calling task is a
    crash-like stop: the root tasks are cancelled and cleanup handlers still run.
    ``liveness_endpoint`` (e.g. ``http://0.0.0.0:8080/healthz``) serves kopf's probe.
    """
    if registry is None:
        if controller is None:
            controller = build_controller(
                config, identity=identity, connection=connection, strategy=strategy
            )
        elif any(x is not None for x in (config, identity, connection, strategy)):
            raise TypeError("pass either controller= or the parts to build one, not both")
        registry = build_registry(controller=controller)
    elif any(x is not None for x in (config, identity, connection, strategy, controller)):
        raise TypeError("pass either registry= or the parts to build one, not both")
    settings = settings if settings is not None else kopf.OperatorSettings()
    replica = controller.identity if controller is not None else settings.posting.reporting_instance
    configure_settings(settings, replica, embedded=embedded)
    namespaces = tuple(namespaces)
    if clusterwide is None:
        clusterwide = not namespaces

    loop = asyncio.get_running_loop()
    in_main = threading.current_thread() is threading.main_thread()
    saved = (
        {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    )
    tasks = await kopf.spawn_tasks(
        registry=registry,
        settings=settings,
        standalone=True,
        clusterwide=clusterwide,
        namespaces=namespaces,
        stop_flag=stop_flag,
        ready_flag=ready_flag,
        liveness_endpoint=liveness_endpoint,
    )
    if in_main and not handle_signals:
        for sig, previous in saved.items():
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
                signal.signal(sig, previous)
    await _run_own_tasks(tasks)


async def _run_own_tasks(tasks: Collection[asyncio.Task[Any]]) -> None:
    """Run kopf's root tasks until one exits; then stop the rest. Only these tasks.

    kopf's root tasks stop their own sub-tasks (watchers, workers) when cancelled, and the
    controller's timers are cancelled by its cleanup handler.
    """
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        await _stop(tasks)
        raise
    await _stop(pending)
    for task in (*done, *pending):
        if task.cancelled():
            continue
        exc = task.exception()
        if exc is not None:
            raise exc


async def _stop(tasks: Collection[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
