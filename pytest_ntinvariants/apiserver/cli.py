"""``ntinv-apiserver``: run the fake API server on its own, for any controller in any language.

    ntinv-apiserver --kubeconfig ./kubeconfig --crd crd.yaml
    KUBECONFIG=./kubeconfig ./my-controller

Prints the URL, writes the kubeconfig, serves until SIGINT or SIGTERM, exits 0.

With ``--tls`` a request without a token is refused (401) except on the health endpoints,
since every client can send the kubeconfig's token over https; ``--anonymous-auth=true``
serves it instead. Over plain http, where kubectl and client-go send no token, anonymous
requests are served unless ``--anonymous-auth=false``.

With ``--tls`` the certificate is valid for ``--cert-validity`` (a year by default, as
kube-apiserver's self-signed one), so a long-running server never presents an expired one.

What it prints is news, not a duty: when whatever read it goes away
(``ntinv-apiserver ... | head -1``), the server goes on serving and still exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from .. import _yaml
from .connections import ConnectionLimits
from .errors import ApiError
from .hosting import DEFAULT_CERT_VALIDITY, FakeApiServer

__all__ = ["main"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def _duration(text: str) -> datetime.timedelta:
    # Go's duration syntax (kube's flags use it: 8760h, 1h30m) plus days, for readability.
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration like 365d, 8760h or 1h30m: {text!r}")
    try:
        total = sum(
            (datetime.timedelta(**{_UNITS[u]: float(n)}) for n, u in parts), datetime.timedelta()
        )
        # A certificate's notAfter is a date before the year 10000 (RFC 5280).
        fits = (datetime.datetime.now(datetime.UTC) + total).year < 9999
    except OverflowError:
        fits = False
    if not fits:
        raise argparse.ArgumentTypeError(f"the duration is too long for a certificate: {text!r}")
    if total <= datetime.timedelta(0):
        raise argparse.ArgumentTypeError(f"the duration must be positive: {text!r}")
    return total


def _boolean(text: str) -> bool:
    # The spellings Go's strconv.ParseBool accepts, as kube-apiserver's boolean flags do.
    if text in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if text in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise argparse.ArgumentTypeError(f"not true or false: {text!r}")


def _say(line: str) -> None:
    """Print ``line`` on stdout; a reader that went away must not end the server."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # Python ignores SIGPIPE, so a closed pipe is an EPIPE here. As Python's docs
        # advise for that case, point stdout's descriptor at /dev/null: the unwritten
        # buffer, every later line and the flush at exit then go nowhere, without error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ntinv-apiserver",
        description="A fake Kubernetes API server on 127.0.0.1 (pytest-ntinvariants).",
    )
    p.add_argument("--port", type=int, default=0, help="port to bind on 127.0.0.1 (default: free)")
    p.add_argument(
        "--kubeconfig",
        type=Path,
        default=None,
        help="write a kubeconfig here (default: ./kubeconfig-ntinv.yaml)",
    )
    p.add_argument(
        "--identity",
        action="append",
        default=[],
        metavar="NAME",
        help="also write KUBECONFIG.NAME for this client identity (repeatable)",
    )
    p.add_argument(
        "--crd",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="install the CustomResourceDefinitions (or any manifests) in FILE",
    )
    p.add_argument("--tls", action="store_true", help="serve https with a generated CA")
    p.add_argument(
        "--anonymous-auth",
        type=_boolean,
        nargs="?",
        const=True,
        default=None,
        metavar="BOOL",
        help="serve requests that carry no token (as system:anonymous); refused with 401 "
        "otherwise, /healthz, /livez and /readyz excepted (default: false with --tls, "
        "true without, as kubectl sends no token over http)",
    )
    p.add_argument(
        "--cert-validity",
        type=_duration,
        default=DEFAULT_CERT_VALIDITY,
        metavar="DURATION",
        help="with --tls, how long the server's certificate is valid from the start, "
        "e.g. 30d, 8760h, 1h30m (default: 365d)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for generated names and uids")
    # Connection limits; the defaults are kube-apiserver's (see ConnectionLimits).
    kube = ConnectionLimits()
    p.add_argument(
        "--header-timeout",
        type=_positive(float),
        default=kube.header_timeout,
        metavar="SECONDS",
        help="close a connection whose request head is not complete in time "
        "(kube's ReadHeaderTimeout; default %(default)g)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_positive(float),
        default=kube.idle_timeout,
        metavar="SECONDS",
        help="close a keep-alive connection idle this long (kube's IdleTimeout; default "
        "%(default)g)",
    )
    p.add_argument(
        "--body-timeout",
        type=_positive(float),
        default=kube.body_timeout,
        metavar="SECONDS",
        help="answer 504 to a request whose body is not complete this long after its head "
        "(kube's --request-timeout; default %(default)g)",
    )
    p.add_argument(
        "--max-connections",
        type=_positive(int),
        default=None,
        metavar="N",
        help="past N open connections, close the longest idle ones (default: half of ulimit -n)",
    )
    return p


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"not a positive finite number: {text}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    """Run the server until SIGINT/SIGTERM; returns the exit code."""
    args = _parser().parse_args(argv)
    # Every file is read and checked before anything starts, and each failure names its
    # file: a typo in a manifest is a usage error (2), not a traceback.
    docs: list[tuple[Path, dict[str, Any]]] = []
    for path in args.crd:
        try:
            loaded = [d for d in _yaml.load_all(path.read_text()) if d is not None]
        except OSError as e:
            print(f"ntinv-apiserver: cannot read --crd {path}: {e.strerror}", file=sys.stderr)
            return 2
        except yaml.YAMLError as e:
            print(f"ntinv-apiserver: cannot parse --crd {path} as YAML: {e}", file=sys.stderr)
            return 2
        for doc in loaded:
            if not (
                isinstance(doc, dict)
                and isinstance(doc.get("apiVersion"), str)
                and isinstance(doc.get("kind"), str)
                and isinstance(doc.get("metadata", {}), dict)
            ):
                print(
                    f"ntinv-apiserver: --crd {path}: not a Kubernetes object (a mapping "
                    f"with apiVersion, kind and metadata): {str(doc)[:80]}",
                    file=sys.stderr,
                )
                return 2
            docs.append((path, doc))
    # The kernel hands a process signal to any thread that does not block it. A handler
    # that only sets an Event leaves the main thread asleep when the server's thread got the
    # signal (seen under load: SIGTERM ignored for good). So both are blocked before any
    # thread starts (threads inherit the mask) and taken synchronously with sigwait below.
    # Handlers are still set: bash starts background jobs with SIGINT ignored, and an
    # ignored signal is discarded even while blocked.
    signals = {signal.SIGINT, signal.SIGTERM}
    for sig in signals:
        signal.signal(sig, lambda *_: None)
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    limits = ConnectionLimits(
        args.header_timeout, args.idle_timeout, args.body_timeout, args.max_connections
    )
    server = FakeApiServer(
        port=args.port,
        tls=args.tls,
        seed=args.seed,
        require_auth=None if args.anonymous_auth is None else not args.anonymous_auth,
        cert_validity=args.cert_validity,
        limits=limits,
    )
    try:
        for path, doc in docs:
            try:
                server.apply(doc, identity="ntinv-apiserver")
            except ApiError as e:
                print(
                    f"ntinv-apiserver: --crd {path}: manifest refused: {e.message}", file=sys.stderr
                )
                return 2
        server.start()
    except OSError as e:
        print(
            f"ntinv-apiserver: cannot listen on 127.0.0.1:{args.port}: {e.strerror}",
            file=sys.stderr,
        )
        return 2
    try:
        path = args.kubeconfig or Path("kubeconfig-ntinv.yaml")
        try:
            server.kubeconfig("default", path)
            for identity in args.identity:
                server.kubeconfig(identity, path.with_name(f"{path.name}.{identity}"))
        except OSError as e:
            print(
                f"ntinv-apiserver: --kubeconfig {path}: cannot write it: {e.strerror}",
                file=sys.stderr,
            )
            return 2
        _say(f"ntinv-apiserver serving at {server.url}")
        _say(f"kubeconfig: {path.resolve()}")
        signal.sigwait(signals)
    finally:
        server.stop()
    _say("ntinv-apiserver stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
