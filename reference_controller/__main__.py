"""``python -m reference_controller [run|crd|deploy]``.

``run`` (the default) runs the operator against the in-cluster service account or the
current kubeconfig, with settings from ``NOTIFY_*`` variables; ``--namespace`` (repeatable)
limits it to namespaces, otherwise it is cluster-wide; ``--liveness URL`` serves kopf's
liveness probe. ``crd`` prints the CRD manifest; ``deploy`` prints the CRD followed by the
RBAC and Deployment manifests (``kubectl apply -f -``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from . import crd_manifest, deploy_manifest
from .config import ControllerConfig
from .runtime import run_operator

__all__ = ["JsonFormatter", "main"]


class JsonFormatter(logging.Formatter):
    """One JSON object per log record, with the controller's structured ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as JSON."""
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
        }
        event = getattr(record, "event", None)
        if event is not None:
            data["event"] = event
            data.update(getattr(record, "fields", {}))
        else:
            data["message"] = record.getMessage()
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    # The package's own name: ``reference_controller`` in a checkout, and
    # ``pytest_ntinvariants.reference_controller`` where a wheel installed it.
    parser = argparse.ArgumentParser(
        prog=f"python -m {__package__ or 'reference_controller'}", description=__doc__
    )
    parser.add_argument("command", nargs="?", choices=("run", "crd", "deploy"), default="run")
    parser.add_argument("-n", "--namespace", action="append", default=[], dest="namespaces")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig path (default: standard)")
    parser.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    if args.command == "crd":
        sys.stdout.write(crd_manifest())
        return 0
    if args.command == "deploy":
        sys.stdout.write(crd_manifest())
        sys.stdout.write("---\n")
        sys.stdout.write(deploy_manifest())
        return 0

    config = ControllerConfig.from_env()
    handler = logging.StreamHandler()
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])

    namespaces = tuple(args.namespaces) or config.namespaces
    try:
        asyncio.run(
            run_operator(
                config,
                connection=args.kubeconfig,
                namespaces=namespaces,
                handle_signals=True,
                embedded=False,
                liveness_endpoint=args.liveness,
            )
        )
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
