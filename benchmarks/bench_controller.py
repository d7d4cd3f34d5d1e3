"""Reference controller: create -> Sent with the console channel, on the fake API server.

    python benchmarks/bench_controller.py [--objects N] [--quick] [--out DIR]

One replica of the reference controller (kopf, in-process, its own thread) delivers
NotificationRequests one after another; each is timed from the create request to the
watch event that shows ``status.phase == Sent``. The same run measures a baseline: a
minimal kopf operator on the same server and replica machinery that answers each
object with a single status patch, so the figure shows what the controller's own
protocol (Pending, Sending, claim, record: four status writes, each echoed through the
watch before the next) costs over kopf's floor. Target: median <= 50 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf

import reference_controller as rc
from pytest_ntinvariants.apiserver import Event, FakeApiServer
from pytest_ntinvariants.operators import KopfReplica, connection_info

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0


def _floor_registry(identity: str) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.event(rc.GROUP, rc.VERSION, rc.PLURAL, registry=registry)
    async def answer(body: Any, patch: kopf.Patch, **_: Any) -> None:
        if not (body.get("status") or {}).get("phase"):
            patch.status["phase"] = "Sent"

    return registry


def _measure(
    make: Callable[[FakeApiServer], Callable[[str], kopf.OperatorRegistry]], n: int
) -> list[float]:
    """Seconds from create to the Sent event, for n objects delivered one at a time."""
    with FakeApiServer() as server:
        server.apply(rc.crd_manifest())
        replica = KopfReplica(server, "replica-0", make(server))
        replica.start()
        sent: dict[str, float] = {}
        done = threading.Condition()

        def on_event(event: Event) -> None:
            if (
                event.resource.plural == rc.PLURAL
                and (event.obj.get("status") or {}).get("phase") == "Sent"
            ):
                with done:
                    sent.setdefault(event.obj["metadata"]["name"], time.perf_counter())
                    done.notify_all()

        undo = server.store.subscribe(on_event)
        samples = []
        try:
            for i in range(n):
                name = f"nr-{i}"
                started = time.perf_counter()
                server.apply(
                    {
                        "apiVersion": rc.API_VERSION,
                        "kind": rc.KIND,
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {
                            "type": "simple",
                            "priority": "low",
                            "subject": "s",
                            "body": "b",
                            "channels": ["console"],
                        },
                    }
                )
                with done:
                    if not done.wait_for(lambda name=name: name in sent, timeout=10):
                        raise SystemExit(f"{name} did not reach Sent within 10 s")
                samples.append(sent[name] - started)
        finally:
            undo()
            replica.stop()
    return samples


def _reference(server: FakeApiServer) -> Callable[[str], kopf.OperatorRegistry]:
    config = rc.ControllerConfig(time_scale=0.001)

    def make(identity: str) -> kopf.OperatorRegistry:
        return rc.build_registry(
            config.replace(identity=identity),
            identity=identity,
            connection=connection_info(server, identity),
        )

    return make


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=60)
    parser.add_argument("--quick", action="store_true", help="10 objects (CI smoke)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    n = 10 if args.quick else args.objects
    rounds: dict[str, list[float]] = {"reference": [], "floor": []}
    # Interleaved in blocks, so noise from other tenants hits both alike. The console
    # channel prints every notification; that goes to a buffer, not the report.
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(3):
            rounds["reference"] += _measure(_reference, n // 3 or 1)
            rounds["floor"] += _measure(lambda _s: _floor_registry, n // 3 or 1)
    rows = {}
    for name, samples in rounds.items():
        ordered = sorted(samples)
        rows[name] = {
            "n": len(samples),
            "median_ms": statistics.median(samples) * 1000,
            "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
            "min_ms": ordered[0] * 1000,
        }
    ref, floor = rows["reference"], rows["floor"]
    met = ref["median_ms"] <= TARGET_MS
    ratio = ref["median_ms"] / floor["median_ms"]
    verdict = "met" if met else "NOT met"

    def row(label: str, r: dict[str, float]) -> str:
        return (
            f"| {label} | {r['n']:.0f} | {r['median_ms']:.1f} | {r['p95_ms']:.1f} | "
            f"{r['min_ms']:.1f} |"
        )

    lines = [
        "# Reference controller: create -> Sent (console channel, one replica)",
        "",
        "| subject | n | median ms | p95 ms | min ms |",
        "| --- | --- | --- | --- | --- |",
        row("reference controller", ref),
        row("baseline: kopf operator, one status patch", floor),
        "",
        f"Ratio to the baseline: {ratio:.2f}x. Target: median <= {TARGET_MS:.0f} ms: "
        f"{verdict} ({ref['median_ms']:.1f} ms).",
    ]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "controller.md").write_text(text)
    (args.out / "controller.json").write_text(json.dumps(rows, indent=2))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
