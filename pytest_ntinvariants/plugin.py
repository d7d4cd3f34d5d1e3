"""The pytest entry point (``pytest11``): options, ini settings and fixtures.

Thin on purpose: the machinery lives in ``apiserver/`` and friends, imported lazily
inside fixtures so that merely having the plugin installed costs a test run nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .apiserver import FakeApiServer


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register the plugin's options and ini settings."""
    group = parser.getgroup("ntinvariants", "Kubernetes controller invariants (pytest-ntinvariants)")
    group.addoption(
        "--ntinv-apiserver-tls",
        action="store_true",
        default=None,
        help="serve the fake API server over https with a generated CA.",
    )
    parser.addini(
        "ntinv_apiserver_tls",
        type="bool",
        default=False,
        help="serve the fake API server over https with a generated CA (default: false).",
    )
    parser.addini(
        "ntinv_bookmark_interval",
        default="5.0",
        help="seconds between watch BOOKMARK events the fake API server sends (default: 5.0).",
    )


def _float_ini(config: pytest.Config, name: str) -> float:
    raw = config.getini(name)
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise pytest.UsageError(f"ini option {name} must be a number, got {raw!r}") from None


@pytest.fixture
def ntinv_apiserver(request: pytest.FixtureRequest) -> Iterator[FakeApiServer]:
    """A fake Kubernetes API server for this test, on 127.0.0.1 over real HTTP.

    Started before the test and stopped after it; anything that failed in the server's
    thread fails the test at teardown. It serves discovery, CRDs, built-in kinds and
    watches like kube-apiserver. Use ``.kubeconfig(identity)`` for a client config with
    its own token, ``.apply(manifest)`` to seed objects, ``.get(...)`` to read them.
    """
    from .apiserver import FakeApiServer

    config = request.config
    tls = config.getoption("--ntinv-apiserver-tls")
    if tls is None:
        tls = bool(config.getini("ntinv_apiserver_tls"))
    server = FakeApiServer(tls=tls, bookmark_interval=_float_ini(config, "ntinv_bookmark_interval"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ntinv_kubeconfig_factory(ntinv_apiserver: FakeApiServer) -> Callable[[str], Path]:
    """Make a kubeconfig for a named client identity: ``factory("replica-a") -> Path``.

    Each identity gets its own bearer token, so the server attributes every request
    to it (kubectl over plain http sends no token and is seen as ``anonymous``).
    """
    return ntinv_apiserver.kubeconfig


@pytest.fixture
def ntinv_kubeconfig(
    ntinv_apiserver: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The path of a kubeconfig for identity ``test``; ``KUBECONFIG`` points at it.

    The environment variable is restored after the test. Note that
    ``kubernetes.config`` reads ``KUBECONFIG`` when *loading* a config, not at import,
    so ``config.load_kube_config()`` inside the test picks this one up.
    """
    path = ntinv_apiserver.kubeconfig("test")
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
