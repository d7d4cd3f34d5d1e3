"""The seam through which the API server is observed and perturbed.

The server knows nothing of pytest, ledgers or perturbation rules; it calls the
``Interceptor`` objects it is given at fixed points of every request and every watch
delivery. The plugin's ledger and perturbation engine are interceptors; so is
anything a user wants to add (like moto's ``responses`` callbacks, but per phase).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .resources import ResourceType
    from .watch import Delivery, Watcher

__all__ = ["Gate", "Interceptor", "RequestInfo"]


@dataclass
class RequestInfo:
    """What the server understood of one request, before it is served."""

    seq: int
    identity: str
    method: str
    path: str
    # get, list, watch, create, update, patch, delete, deletecollection; "" for non-resource
    verb: str
    resource: ResourceType | None = None
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    query: Mapping[str, str] = field(default_factory=dict)
    content_type: str = ""
    body: bytes = b""
    started: float = 0.0  # the server loop's time() when received
    served_at: int | None = None  # set when a read was served from an older resourceVersion
    # The resourceVersion of what the response carries: the object's (as its metadata says:
    # none for a dry-run create) or the list's; None for a response with neither.
    served_rv: str | None = None


class Interceptor:
    """Base class with no-op hooks; override what you need.

    Hooks run on the server's event loop and must not block it.
    """

    async def on_request(self, request: RequestInfo) -> None:
        """Before the request is served. Raise an ``ApiError`` to answer with a fault, or
        await to add latency."""

    def read_at(self, request: RequestInfo) -> int | None:
        """For GET and LIST: serve as of this older resourceVersion (a stale view)."""
        return None

    def expire_watch(self, request: RequestInfo) -> bool:
        """For a watch resuming from a resourceVersion: answer with an in-stream 410
        Expired (forcing this client to relist) as if its history were compacted."""
        return False

    def on_response(self, request: RequestInfo, status: int, body: bytes) -> None:
        """After the response (for watches: when the stream is opened)."""

    def on_watch_open(self, request: RequestInfo, watcher: Watcher) -> None:
        """A watch stream was opened for ``watcher``."""

    def on_watch_close(self, watcher: Watcher) -> None:
        """A watch stream ended."""

    def on_delivery(self, watcher: Watcher, delivery: Delivery) -> list[Delivery]:
        """Decide what of one event reaches one watcher: ``[delivery]`` delivers it
        (set ``not_before`` to delay it), ``[]`` holds or drops it."""
        return [delivery]

    def on_delivered(self, watcher: Watcher, delivery: Delivery) -> None:
        """An event was written to the watcher's stream."""


class Gate:
    """Holds what reaches a client until a scheduler lets it go (a deterministic engine).

    The server asks its gate (``ApiHandler.gate``, None by default) before serving a
    request and before queueing a watch event; the gate decides for whom it holds. The
    base class holds nothing.
    """

    def holds(self, identity: str) -> bool:
        """Whether requests and watch events of ``identity`` are held."""
        return False

    async def hold_request(self, request: RequestInfo, peer_port: int | None) -> None:
        """Return when ``request`` may be served (``peer_port``: the client's port)."""

    def hold_delivery(
        self, watcher: Watcher, delivery: Delivery, release: Callable[[], None]
    ) -> None:
        """Call ``release()`` when ``delivery`` may be written to ``watcher``'s stream."""
        release()
