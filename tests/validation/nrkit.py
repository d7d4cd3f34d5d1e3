"""Helpers of the validation suite: NotificationRequest manifests, retry policies, waits.

(A uniquely named module: test directories share the module name ``conftest``.)
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest

from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.ledger import ObjectVersion

# Backoff runs 1000x faster than the CRD says (30 s becomes 30 ms); the invariants judge
# retry spacing on the same scale. Modules apply it with ``pytestmark = [NR_INVARIANTS]``.
TIME_SCALE = 0.001
NR_INVARIANTS = pytest.mark.ntinv_notifications(time_scale=TIME_SCALE)
API_VERSION = "kubernaut.ai/v1alpha1"
KIND = "NotificationRequest"
TERMINAL = ("Sent", "PartiallySent", "Failed")


def nr(
    name: str,
    channels: list[str] | None = None,
    *,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A NotificationRequest manifest (``retryPolicy`` etc. as keyword arguments)."""
    body: dict[str, Any] = {
        "type": "simple",
        "priority": "medium",
        "subject": f"subject {name}",
        "body": f"body of {name}",
    }
    if channels is not None:
        body["channels"] = channels
    body.update(spec)
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": body}


def policy(
    max_attempts: int, initial: int = 1, multiplier: int = 2, max_backoff: int = 60
) -> dict[str, int]:
    """A ``retryPolicy`` (seconds, before the time scale)."""
    return {
        "maxAttempts": max_attempts,
        "initialBackoffSeconds": initial,
        "backoffMultiplier": multiplier,
        "maxBackoffSeconds": max_backoff,
    }


def wait_terminal(
    ntinv: Harness, name: str, *, namespace: str = "default", timeout: float = 15.0
) -> dict[str, Any]:
    """Block until the object reaches a terminal phase (on its watch events, no polling)."""
    return ntinv.wait_for(
        API_VERSION,
        KIND,
        name,
        lambda o: (o.get("status") or {}).get("phase") in TERMINAL,
        namespace=namespace,
        timeout=timeout,
    )


# --------------------------------------------------------------------------------------
# Scenario helpers (test_scenarios*.py: the ports of the original integration suite)
# --------------------------------------------------------------------------------------


def status_of(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj["status"]`` (empty when the controller has not written one)."""
    return obj.get("status") or {}


def parse_rfc3339(value: str) -> datetime:
    """An RFC 3339 timestamp as written by kube (``...Z``, optional fraction) -> aware UTC."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def nr_versions(ntinv: Harness, name: str, *, namespace: str = "default") -> list[ObjectVersion]:
    """Every committed version of the newest NotificationRequest called ``name`` (ledger order,
    the ``DELETED`` one included): what a "Consistently" poll could only sample."""
    versions = ntinv.ledger.versions(kind=KIND, name=name, namespace=namespace)
    if not versions:
        return []
    uid = versions[-1].uid
    return [v for v in versions if v.uid == uid]


def phase_history(ntinv: Harness, name: str, *, namespace: str = "default") -> list[str]:
    """The phases the object went through, version by version, repeats collapsed
    (``""`` for a version without a phase; the ``DELETED`` version is left out)."""
    phases: list[str] = []
    for v in nr_versions(ntinv, name, namespace=namespace):
        if v.type == "DELETED":
            continue
        phase = status_of(v.obj).get("phase") or ""
        if not phases or phases[-1] != phase:
            phases.append(phase)
    return phases


# --------------------------------------------------------------------------------------
# Historical variants as inner pytest runs (test_variants*.py, benchmarks/bench_variants.py)
# --------------------------------------------------------------------------------------

VALIDATION_DIR: Final = Path(__file__).resolve().parent
#: The schedules every variant is judged on (run directly with the reference controller).
VARIANT_SCENARIOS: Final = VALIDATION_DIR / "test_variants_scenarios.py"
#: Its name inside an inner run's directory (unlike the original's, not imported by the
#: outer run: an in-process pytester run would find the module name taken).
INNER_MODULE: Final = "test_schedules.py"
REFERENCE: Final = "reference"
#: Inner runs re-import their plugins (pytester restores sys.modules after each run), so
#: unrelated plugins some machines have are switched off (see tests/test_plugin_markers.py).
INNER_ADDOPTS: Final = (
    "-p no:hypothesispytest -p no:kmock -p no:anyio -p no:benchmark -p no:randomly "
    "-p no:cacheprovider -p pytest_ntinvariants.packs.notifications"
)


@dataclass(frozen=True)
class VariantCase:
    """How one historical variant (``variants.VARIANTS`` key) is caught.

    ``scenario`` is a test of ``test_variants_scenarios.py``; every name in ``invariants``
    fails on it in every run, with a message matching ``message`` (an fnmatch pattern);
    ``perturbation`` says what the schedule needs (for VARIANTS.md).
    """

    variant: str
    scenario: str
    invariants: tuple[str, ...]
    message: str
    perturbation: str


VARIANT_CASES: Final[tuple[VariantCase, ...]] = (
    VariantCase(
        variant="record-twice",
        scenario="test_one_delivery",
        invariants=("nr-no-duplicate-attempt",),
        message="*nr-no-duplicate-attempt: slack attempt 1 is recorded 2 times*",
        perturbation="none: one replica, one delivery",
    ),
    VariantCase(
        variant="lost-attempts",
        scenario="test_one_delivery",
        invariants=("nr-deliveries-match-records",),
        message="*nr-deliveries-match-records: slack endpoint received * but 0 attempts recorded*",
        perturbation="none: one replica, one delivery",
    ),
    VariantCase(
        variant="no-dedupe",
        scenario="test_one_delivery",
        invariants=("nr-no-duplicate-attempt",),
        message="*nr-no-duplicate-attempt: slack attempt 1 is recorded 2 times*",
        perturbation="none beyond kopf's own: one replica reconciles again from the stale "
        "bodies of its own writes",
    ),
    VariantCase(
        variant="timestamp-window",
        scenario="test_one_delivery",
        invariants=("nr-deliveries-match-records",),
        message="*nr-deliveries-match-records: slack endpoint received 2 calls but 1 attempt "
        "recorded*",
        perturbation="none beyond kopf's own: one replica reconciles again from the stale "
        "bodies of its own writes",
    ),
    VariantCase(
        variant="no-attempt-number",
        scenario="test_fast_retries_with_the_same_error",
        invariants=("nr-deliveries-match-records",),
        message="*nr-deliveries-match-records: slack endpoint received * calls but 2 attempts "
        "recorded*",
        perturbation="retries within 1 s that fail with the same error (two 502s, millisecond "
        "backoff)",
    ),
    VariantCase(
        variant="stale-success-count",
        scenario="test_stale_reads",
        invariants=("nr-counters-match-attempts",),
        message="*nr-counters-match-attempts: totalAttempts is 1 but deliveryAttempts has 2 "
        "attempts*",
        perturbation="a retry whose pass starts from a stale read (GETs one version behind)",
    ),
)

_STRATEGIES = '''


# ---- appended by nrkit.variant_suite: the same schedules with other recording strategies
import reference_controller as _rc  # noqa: E402
import variants as _variants  # noqa: E402


# autouse: the ntinv fixture asks for ntinv_operator (and so nr_strategy) dynamically, and
# only fixtures in a test's static closure are parametrized.
@pytest.fixture(autouse=True, params={params!r}, ids={ids!r})
def nr_strategy(request: pytest.FixtureRequest) -> object:
    """The recording strategy named by the parameter ("reference" or a variant)."""
    name = request.param[0]
    return _rc.ReferenceStrategy() if name == "reference" else _variants.VARIANTS[name]()
'''


def variant_suite(
    strategies: Sequence[str] | Mapping[str, int], *, repeats: int = 1
) -> dict[str, str]:
    """The files of a self-contained pytest directory (name -> text) that runs the
    scenarios of ``test_variants_scenarios.py`` with each strategy (a variant name, or
    ``"reference"``): ``repeats`` times each, or as many times as a mapping says. Each run
    is its own item (``test[<strategy>-run<k>]``, or ``test[<strategy>]`` when every
    strategy runs once), so its own seed. The files: this suite's conftest and nrkit, the
    module with an ``nr_strategy`` override appended, and a ``pytest.ini``."""
    runs = (
        dict(strategies) if isinstance(strategies, Mapping) else dict.fromkeys(strategies, repeats)
    )
    if not runs or min(runs.values()) < 1:
        raise ValueError(f"name at least one strategy, each run at least once: {runs}")
    params = [(name, k) for name, count in runs.items() for k in range(count)]
    once = max(runs.values()) == 1
    ids = [name if once else f"{name}-run{k}" for name, k in params]
    module = VARIANT_SCENARIOS.read_text() + _STRATEGIES.format(params=params, ids=ids)
    ini = "\n".join(
        [
            "[pytest]",
            f"pythonpath = {VALIDATION_DIR.parent / 'reference_controller'}",
            f"addopts = {INNER_ADDOPTS}",
            "asyncio_default_fixture_loop_scope = function",
            "filterwarnings = error",
            "",
        ]
    )
    return {
        "pytest.ini": ini,
        "conftest.py": (VALIDATION_DIR / "conftest.py").read_text(),
        "nrkit.py": (VALIDATION_DIR / "nrkit.py").read_text(),
        INNER_MODULE: module,
    }


def strategy_of(nodeid: str, names: Sequence[str]) -> str | None:
    """Which of ``names`` an inner item ran (``test[<strategy>]``, ``test[run<k>-<strategy>]``)."""
    params = nodeid.partition("[")[2].rstrip("]")
    for name in names:
        if params == name or params.startswith(f"{name}-") or params.endswith(f"-{name}"):
            return name
    return None


GROUP = "kubernaut.ai"
VERSION = "v1alpha1"
PLURAL = "notificationrequests"


def kube_create(kube: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create through the ``kubernetes`` client (``kube``: a ``CustomObjectsApi``)."""
    namespace = manifest["metadata"].get("namespace", "default")
    created: dict[str, Any] = kube.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, manifest
    )
    return created


def kube_delete(kube: Any, name: str, *, namespace: str = "default") -> None:
    """Delete through the ``kubernetes`` client (the CRD has no finalizers: gone at once)."""
    kube.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def uid_of(ntinv: Harness, name: str, *, namespace: str = "default") -> str:
    """The uid of the newest NotificationRequest called ``name`` (also after its deletion)."""
    versions = nr_versions(ntinv, name, namespace=namespace)
    if not versions:
        raise LookupError(f"no NotificationRequest {namespace}/{name} in the ledger")
    return versions[-1].uid


def wait_watching(ntinv: Harness, *, timeout: float = 5.0) -> None:
    """Block until every replica has opened its watch of NotificationRequests.

    A replica is ready before kopf has listed and watched the resource; an object created
    and deleted in that gap is never seen at all, and one created during the initial list
    arrives with the list, not as a watch event (which a ``hold`` would not hold).
    """
    ntinv.wait_watching(f"{GROUP}/{PLURAL}", timeout=timeout)


def unexpected_errors(records: Sequence[logging.LogRecord]) -> list[str]:
    """Log records that mean a replica met something it did not expect: an exception the
    controller logged with its traceback, or an ERROR from kopf (a crashed handler)."""
    return [
        f"{r.name}: {r.getMessage()}"
        for r in records
        if (r.name.startswith("reference_controller") and r.exc_info)
        or (r.name.startswith("kopf") and r.levelno >= logging.ERROR)
    ]


class AuditLog(logging.Handler):
    """Collects the reference controller's audit records (one JSON log line per attempt,
    logger ``reference_controller.audit``) and lets a test wait for them."""

    LOGGER = "reference_controller.audit"

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[dict[str, Any]] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's JSON document."""
        document = json.loads(record.getMessage())
        with self._changed:
            self.records.append(document)
            self._changed.notify_all()

    def of(self, uid: str) -> list[dict[str, Any]]:
        """The records about one object, in order."""
        with self._changed:
            return [r for r in self.records if r["uid"] == uid]

    def wait_for(
        self, ntinv: Harness, uid: str, count: int, *, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Block until ``count`` records about ``uid`` arrived (the system runs meanwhile,
        through ``ntinv.wait_until``); return them."""
        ntinv.wait_until(
            lambda: len(self.of(uid)) >= count,
            timeout=timeout,
            what=f"{count} audit record(s) for {uid}",
        )
        return self.of(uid)


#: Delivery and claim timeouts of the scenario modules (``nr_config`` overrides). The
#: endpoints are local, so an answer slower than the suite's 1 s means an overloaded
#: machine (seen at load 11 on 2 cores, other suites running): the delivery then times out
#: and is retried, and the endpoint gets a second call that the exact counts would report
#: as a duplicate. The claim timeout must exceed the delivery timeout; no scenario crashes
#: a replica, so a long one costs nothing.
SCENARIO_TIMEOUTS: dict[str, float] = {"http_timeout": 5.0, "claim_timeout": 10.0}
