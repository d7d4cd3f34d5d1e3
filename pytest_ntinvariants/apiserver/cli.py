"""``ntinv-apiserver``: run the fake API server on its own, for any controller in any language.

    ntinv-apiserver --kubeconfig ./kubeconfig --crd crd.yaml
    KUBECONFIG=./kubeconfig ./my-controller

Prints the URL, writes the kubeconfig, serves until SIGINT or SIGTERM, exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from .errors import ApiError
from .hosting import FakeApiServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ntinv-apiserver",
        description="A fake Kubernetes API server on 127.0.0.1 (pytest-ntinvariants).",
    )
    p.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (default: free)")
    p.add_argument("--kubeconfig", type=Path, default=None,
                   help="write a kubeconfig here (default: ./kubeconfig-ntinv.yaml)")
    p.add_argument("--identity", action="append", default=[], metavar="NAME",
                   help="also write KUBECONFIG.NAME for this client identity (repeatable)")
    p.add_argument("--crd", action="append", default=[], type=Path, metavar="FILE",
                   help="install the CustomResourceDefinitions (or any manifests) in FILE")
    p.add_argument("--tls", action="store_true", help="serve https with a generated CA")
    p.add_argument("--seed", type=int, default=0, help="seed for generated names and uids")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit code."""
    args = _parser().parse_args(argv)
    manifests = []
    for path in args.crd:
        try:
            manifests.append(path.read_text())
        except OSError as e:
            print(f"ntinv-apiserver: cannot read --crd {path}: {e.strerror}", file=sys.stderr)
            return 2
    server = FakeApiServer(port=args.port, tls=args.tls, seed=args.seed)
    try:
        for text in manifests:
            server.apply(text, identity="ntinv-apiserver")
        server.start()
    except ApiError as e:
        print(f"ntinv-apiserver: manifest refused: {e.message}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"ntinv-apiserver: cannot listen on 127.0.0.1:{args.port}: {e.strerror}",
              file=sys.stderr)
        return 2
    stop = threading.Event()
    # bash starts background jobs with SIGINT ignored; restore both signals explicitly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        path = args.kubeconfig or Path("kubeconfig-ntinv.yaml")
        server.kubeconfig("default", path)
        for identity in args.identity:
            server.kubeconfig(identity, path.with_name(f"{path.name}.{identity}"))
        print(f"ntinv-apiserver serving at {server.url}", flush=True)
        print(f"kubeconfig: {path.resolve()}", flush=True)
        while not stop.wait(3600):
            pass
    finally:
        server.stop()
    print("ntinv-apiserver stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
