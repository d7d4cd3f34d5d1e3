"""A small asynchronous Kubernetes API client: exactly the calls the controller makes.

Why not kopf's internal client or ``kubernetes.aio``: kopf's client is private API, and
the controller needs precise control of what the claim-before-deliver design rests on --
a ``PUT .../status`` carrying the ``resourceVersion`` the decision was based on (409 when
stale), and a ``GET`` straight from the API server after a conflict. A few aiohttp calls
with the replica's own ``kopf.ConnectionInfo`` (server, CA, token or client certificate)
do that, cost no extra dependency, and let every replica in one process use its own
credentials.

Credentials come from a *connection provider*, a coroutine returning a
``kopf.ConnectionInfo``; the same provider answers kopf's login, so kopf and this client
always talk to the same server as the same identity. On 401 the provider is asked again
once (rotated service-account tokens).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol, runtime_checkable
from urllib.parse import quote

import aiohttp
import kopf

from .models import API_VERSION, PLURAL

__all__ = [
    "ApiError",
    "ConflictError",
    "ConnectionProvider",
    "KubeApi",
    "NotFoundError",
    "NotificationApi",
    "connection_from_kubeconfig",
    "default_connection_provider",
    "kubeconfig_provider",
    "static_provider",
]

#: A coroutine function returning the credentials to use.
ConnectionProvider = Callable[[], Awaitable[kopf.ConnectionInfo]]

_DEFAULT_TIMEOUT: Final = 30.0


class ApiError(Exception):
    """The API server answered with an error status (``status`` is the HTTP code)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class ConflictError(ApiError):
    """409: the write was based on a stale resourceVersion (optimistic concurrency)."""


class NotFoundError(ApiError):
    """404: the object (or the resource) does not exist."""


def static_provider(info: kopf.ConnectionInfo) -> ConnectionProvider:
    """A provider that always returns ``info``."""

    async def provide() -> kopf.ConnectionInfo:
        return info

    return provide


def connection_from_kubeconfig(
    path: str | os.PathLike[str], *, context: str | None = None
) -> kopf.ConnectionInfo:
    """Read credentials from the kubeconfig at ``path`` (any auth the official client supports).

    Uses ``kubernetes.config`` with a private ``Configuration`` object, so neither the
    client library's global default nor ``$KUBECONFIG`` is touched.
    """
    from kubernetes import client, config  # imported lazily: slow, and only needed here

    configuration = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=os.fspath(path),
        context=context,
        client_configuration=configuration,
        persist_config=False,
    )
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    scheme: str | None = None
    token: str | None = None
    if header:
        parts = header.split(" ", 1)
        if len(parts) == 2:
            scheme, token = parts
        else:
            token = parts[0]
    return kopf.ConnectionInfo(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        username=configuration.username or None,
        password=configuration.password or None,
        scheme=scheme,
        token=token,
        certificate_path=configuration.cert_file or None,
        private_key_path=configuration.key_file or None,
    )


def kubeconfig_provider(
    path: str | os.PathLike[str], *, context: str | None = None
) -> ConnectionProvider:
    """A provider that (re-)reads the kubeconfig at ``path`` on every call."""
    target = Path(path)

    async def provide() -> kopf.ConnectionInfo:
        return await asyncio.to_thread(connection_from_kubeconfig, target, context=context)

    return provide


def default_connection_provider(
    settings: kopf.OperatorSettings | None = None,
) -> ConnectionProvider:
    """In-cluster service account, else ``$KUBECONFIG`` / ``~/.kube/config`` (like ``kopf run``)."""

    async def provide() -> kopf.ConnectionInfo:
        def login() -> kopf.ConnectionInfo | None:
            import logging

            return kopf.login_via_client(
                logger=logging.getLogger("reference_controller.login"),
                settings=settings or kopf.OperatorSettings(),
            )

        info = await asyncio.to_thread(login)
        if info is None:
            raise kopf.LoginError("no credentials: neither in-cluster nor a kubeconfig")
        return info

    return provide


@runtime_checkable
class NotificationApi(Protocol):
    """The API calls the controller makes (``KubeApi`` is the real one; tests may fake it)."""

    async def connection(self, *, refresh: bool = False) -> kopf.ConnectionInfo:
        """Credentials (also returned to kopf's login handler)."""

    async def get_notification(self, namespace: str, name: str) -> dict[str, Any]:
        """GET one object from the API server; ``NotFoundError`` if absent."""

    async def replace_notification_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``/status`` with ``obj``'s resourceVersion as precondition; ``ConflictError``."""

    async def create_event(self, namespace: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """POST a ``core/v1`` Event."""

    async def close(self) -> None:
        """Release connections."""


class KubeApi:
    """Namespaced ``NotificationRequest`` reads and status writes, and Event creation."""

    def __init__(self, provider: ConnectionProvider, *, timeout: float = _DEFAULT_TIMEOUT) -> None:
        self._provider = provider
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._info: kopf.ConnectionInfo | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock: asyncio.Lock | None = None

    async def connection(self, *, refresh: bool = False) -> kopf.ConnectionInfo:
        """The current credentials; ``refresh`` asks the provider again."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._info is None or refresh:
                info = await self._provider()
                if self._info is not None and info != self._info and self._session is not None:
                    await self._session.close()
                    self._session = None
                self._info = info
            return self._info

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def notification_path(namespace: str, name: str, *, subresource: str | None = None) -> str:
        """URL path of one NotificationRequest (or its subresource)."""
        path = (
            f"/apis/{API_VERSION}/namespaces/{quote(namespace, safe='')}/{PLURAL}/"
            f"{quote(name, safe='')}"
        )
        return f"{path}/{subresource}" if subresource else path

    async def get_notification(self, namespace: str, name: str) -> dict[str, Any]:
        """GET the object from the API server (never from a cache)."""
        return await self._request("GET", self.notification_path(namespace, name))

    async def replace_notification_status(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        """PUT ``obj`` to ``/status``; its ``metadata.resourceVersion`` is the precondition.

        Raises ``ConflictError`` (409) when the object changed since that version.
        """
        metadata = obj.get("metadata") or {}
        if not metadata.get("resourceVersion"):
            raise ValueError(
                "a status write needs metadata.resourceVersion (optimistic concurrency)"
            )
        path = self.notification_path(metadata["namespace"], metadata["name"], subresource="status")
        return await self._request("PUT", path, body=obj)

    async def create_event(self, namespace: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """POST a ``core/v1`` Event."""
        return await self._request(
            "POST", f"/api/v1/namespaces/{quote(namespace, safe='')}/events", body=event
        )

    async def _request(
        self, method: str, path: str, *, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        for refreshed in (False, True):
            info = await self.connection(refresh=refreshed)
            session = self._ensure_session(info)
            headers = {"Accept": "application/json", **info.as_http_headers()}
            if body is not None:
                headers["Content-Type"] = "application/json"
            url = info.server.rstrip("/") + path
            async with session.request(method, url, json=body, headers=headers) as response:
                if response.status == 401 and not refreshed:
                    continue
                payload = await self._payload(response)
                if response.status >= 400:
                    raise self._error(response.status, payload)
                return payload
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure_session(self, info: kopf.ConnectionInfo) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl: Any = None
            if info.server.startswith("https://"):
                ssl = False if info.insecure else info.as_ssl_context()
            connector = aiohttp.TCPConnector(ssl=ssl if ssl is not None else True)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trust_env=info.trust_env
            )
        return self._session

    @staticmethod
    async def _payload(response: aiohttp.ClientResponse) -> dict[str, Any]:
        try:
            data = await response.json(content_type=None)
        except ValueError:
            text = await response.text()
            return {"message": text[:500]}
        return data if isinstance(data, dict) else {"message": str(data)[:500]}

    @staticmethod
    def _error(status: int, payload: Mapping[str, Any]) -> ApiError:
        reason = str(payload.get("reason") or "")
        message = str(payload.get("message") or "")
        if status == 409:
            return ConflictError(status, reason or "Conflict", message)
        if status == 404:
            return NotFoundError(status, reason or "NotFound", message)
        return ApiError(status, reason or "Error", message)
