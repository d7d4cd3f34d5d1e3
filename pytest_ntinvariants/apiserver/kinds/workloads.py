"""Pods and the workloads that make them: their types, and kube-apiserver's defaulting, as
clients read it back.

A controller that compares the Deployment it wants with the one it reads meets these
defaults on a real cluster (``strategy``, ``revisionHistoryLimit``, a container's
``imagePullPolicy``, a pod's ``dnsPolicy`` …): one that does not expect them rewrites its
object forever. The fake sets the same values (``SetDefaults_*`` of k8s.io/kubernetes
pkg/apis/{core,apps,batch}/v1), so such a loop shows here too.

Copy-on-write: a write's object may share values with stored versions, which are never
mutated, so every function returns its argument itself when nothing was missing and a
copy, changed on the way down, when something was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..jsonvalues import copy_json
from ..resources import ResourceType, builtin_type
from ..versions import WriteContext
from .base import BaseStrategy, Builtin
from .columns import Column, int_at, ratio
from .mergekeys import Structs, merge, struct

__all__ = [
    "CRON_JOBS",
    "DAEMON_SETS",
    "DEPLOYMENTS",
    "JOBS",
    "PATCH_STRUCTS",
    "PODS",
    "REPLICA_SETS",
    "STATEFUL_SETS",
    "UNSERVED_PATCH_ROOTS",
    "Pod",
    "Workload",
    "pod_status_on_create",
]

JSON = dict[str, Any]


def _with(obj: JSON, key: str, value: Any) -> JSON:
    if obj.get(key, _ABSENT) is value:
        return obj
    out = dict(obj)
    out[key] = value
    return out


_ABSENT = object()


def _fill(obj: JSON, defaults: JSON) -> JSON:
    """``obj`` with each absent (or null) key of ``defaults`` set (values copied)."""
    missing = {k: v for k, v in defaults.items() if obj.get(k) is None}
    if not missing:
        return obj
    out = dict(obj)
    for key, value in missing.items():
        out[key] = copy_json(value)
    return out


def _each(items: Any, fn: Callable[[JSON], JSON]) -> Any:
    """``items`` (a list) with ``fn`` applied to its objects; itself if none changed."""
    if not isinstance(items, list):
        return items
    out = [fn(i) if isinstance(i, dict) else i for i in items]
    return items if all(a is b for a, b in zip(out, items, strict=True)) else out


def _at(obj: JSON, key: str, fn: Callable[[JSON], JSON]) -> JSON:
    """``obj`` with ``fn`` applied to its object at ``key`` (if it is one)."""
    value = obj.get(key)
    if not isinstance(value, dict):
        return obj
    return _with(obj, key, fn(value))


_PROBE = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def _probe(probe: JSON) -> JSON:
    return _fill(probe, _PROBE)


def _port(port: JSON) -> JSON:
    return _fill(port, {"protocol": "TCP"})


def _strategy(s: JSON, key: str, rolling: JSON) -> JSON:
    """``s`` with its ``key`` strategy defaulted: type RollingUpdate when none is given (an
    empty strategy too), and the rollingUpdate parameters of that type."""
    strategy = s.get(key)
    if not isinstance(strategy, dict):
        return s
    strategy = _fill(strategy, {"type": "RollingUpdate"})
    if strategy["type"] == "RollingUpdate":
        current = strategy.get("rollingUpdate")
        strategy = _with(
            strategy, "rollingUpdate", _fill(current if isinstance(current, dict) else {}, rolling)
        )
    return _with(s, key, strategy)


def _pull_policy(image: Any) -> str:
    # SetDefaults_Container: Always for :latest or no tag (a digest pins: IfNotPresent).
    text = str(image or "")
    if "@" in text:
        return "IfNotPresent"
    last = text.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _container(c: JSON) -> JSON:
    c = _fill(
        c,
        {
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
            "imagePullPolicy": _pull_policy(c.get("image")),
            "resources": {},
        },
    )
    c = _with(c, "ports", _each(c.get("ports"), _port)) if "ports" in c else c
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        c = _at(c, probe, _probe)
    return c


def _pod_spec(spec: JSON) -> JSON:
    spec = _fill(
        spec,
        {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "enableServiceLinks": True,
        },
    )
    for key in ("containers", "initContainers"):
        if key in spec:
            spec = _with(spec, key, _each(spec.get(key), _container))
    return spec


def _template(template: JSON) -> JSON:
    return _at(template, "spec", _pod_spec)


def _pod(obj: JSON) -> JSON:
    return _at(obj, "spec", _pod_spec)


def _deployment(obj: JSON) -> JSON:
    def spec(s: JSON) -> JSON:
        s = _fill(
            s,
            {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate"},
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
            },
        )
        s = _strategy(s, "strategy", {"maxUnavailable": "25%", "maxSurge": "25%"})
        return _at(s, "template", _template)

    return _at(obj, "spec", spec)


def _replica_set(obj: JSON) -> JSON:
    def spec(s: JSON) -> JSON:
        return _at(_fill(s, {"replicas": 1}), "template", _template)

    return _at(obj, "spec", spec)


def _stateful_set(obj: JSON) -> JSON:
    def spec(s: JSON) -> JSON:
        s = _fill(
            s,
            {
                "replicas": 1,
                "podManagementPolicy": "OrderedReady",
                "updateStrategy": {"type": "RollingUpdate"},
                "revisionHistoryLimit": 10,
                "persistentVolumeClaimRetentionPolicy": {
                    "whenDeleted": "Retain",
                    "whenScaled": "Retain",
                },
            },
        )
        s = _strategy(s, "updateStrategy", {"partition": 0})
        return _at(s, "template", _template)

    return _at(obj, "spec", spec)


def _daemon_set(obj: JSON) -> JSON:
    def spec(s: JSON) -> JSON:
        s = _fill(s, {"updateStrategy": {"type": "RollingUpdate"}, "revisionHistoryLimit": 10})
        s = _strategy(s, "updateStrategy", {"maxUnavailable": 1, "maxSurge": 0})
        return _at(s, "template", _template)

    return _at(obj, "spec", spec)


def _job_spec(s: JSON) -> JSON:
    if s.get("completions") is None and s.get("parallelism") is None:
        s = _fill(s, {"completions": 1, "parallelism": 1})
    s = _fill(
        s,
        {
            "parallelism": 1,
            "backoffLimit": 6,
            "completionMode": "NonIndexed",
            "suspend": False,
            "podReplacementPolicy": "TerminatingOrFailed",
        },
    )
    return _at(s, "template", _template)


def _job(obj: JSON) -> JSON:
    return _at(obj, "spec", _job_spec)


def _cron_job(obj: JSON) -> JSON:
    def spec(s: JSON) -> JSON:
        s = _fill(
            s,
            {
                "concurrencyPolicy": "Allow",
                "suspend": False,
                "successfulJobsHistoryLimit": 3,
                "failedJobsHistoryLimit": 1,
            },
        )
        return _at(s, "jobTemplate", lambda t: _at(t, "spec", _job_spec))

    return _at(obj, "spec", spec)


def _qos_class(pod: JSON) -> str:
    """kube's GetPodQOS: Guaranteed when every container limits cpu and memory and
    requests what it limits, BestEffort when none requests or limits anything."""
    spec = pod.get("spec") or {}
    containers = [
        c
        for key in ("containers", "initContainers")
        for c in spec.get(key) or ()
        if isinstance(c, dict)
    ]
    requested = limited = False
    guaranteed = True
    for c in containers:
        resources = c.get("resources") or {}
        requests = resources.get("requests") or {}
        limits = resources.get("limits") or {}
        requested = requested or bool(requests)
        limited = limited or bool(limits)
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if not requested and not limited:
        return "BestEffort"
    return "Guaranteed" if guaranteed and containers else "Burstable"


def pod_status_on_create(pod: JSON) -> JSON:
    """The status kube gives a new Pod (its strategy's PrepareForCreate): Pending, with the
    pod's QoS class."""
    return {"phase": "Pending", "qosClass": _qos_class(pod)}


def _pod_ready(obj: JSON) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    ready = sum(1 for c in statuses if isinstance(c, dict) and c.get("ready"))
    return f"{ready}/{len((obj.get('spec') or {}).get('containers') or [])}"


def _pod_status(obj: JSON) -> str:
    # kube's printPod, in short: a deletion, a waiting or terminated container's reason,
    # else the pod's reason or phase.
    status = obj.get("status") or {}
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for c in status.get("containerStatuses") or []:
        state = c.get("state") or {} if isinstance(c, dict) else {}
        for kind in ("waiting", "terminated"):
            reason = (state.get(kind) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _pod_restarts(obj: JSON) -> int:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return sum(int(c.get("restartCount") or 0) for c in statuses if isinstance(c, dict))


def _job_status(obj: JSON) -> str:
    conditions = (obj.get("status") or {}).get("conditions") or []
    true = {c.get("type") for c in conditions if isinstance(c, dict) and c.get("status") == "True"}
    for kind in ("Failed", "Complete", "SuccessCriteriaMet", "FailureTarget", "Suspended"):
        if kind in true:
            return kind
    return "Running"


# The tags of pods and workloads (k8s.io/api core/v1, apps/v1, batch/v1 types.go).
PATCH_STRUCTS: Structs = {
    "Pod": {
        "metadata": struct("ObjectMeta"),
        "spec": struct("PodSpec"),
        "status": struct("PodStatus"),
    },
    "PodTemplate": {"metadata": struct("ObjectMeta"), "template": struct("PodTemplateSpec")},
    "PodTemplateSpec": {"metadata": struct("ObjectMeta"), "spec": struct("PodSpec")},
    "PodSpec": {
        "volumes": merge("name"),
        "initContainers": merge("name", "Container"),
        "containers": merge("name", "Container"),
        "ephemeralContainers": merge("name", "Container"),
        "imagePullSecrets": merge("name"),
        "hostAliases": merge("ip"),
        "topologySpreadConstraints": merge("topologyKey"),
        "schedulingGates": merge("name"),
        "resourceClaims": merge("name"),
    },
    "Container": {
        "ports": merge("containerPort"),
        "env": merge("name"),
        "volumeMounts": merge("mountPath"),
        "volumeDevices": merge("devicePath"),
    },
    "PodStatus": {
        "conditions": merge("type"),
        "hostIPs": merge("ip"),
        "podIPs": merge("ip"),
        "resourceClaimStatuses": merge("name"),
    },
    # Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job.
    "Workload": {
        "metadata": struct("ObjectMeta"),
        "spec": struct("WorkloadSpec"),
        "status": struct("Conditions"),
    },
    "WorkloadSpec": {"template": struct("PodTemplateSpec")},
    "CronJob": {"metadata": struct("ObjectMeta"), "spec": struct("CronJobSpec")},
    "CronJobSpec": {"jobTemplate": struct("JobTemplateSpec")},
    "JobTemplateSpec": {"metadata": struct("ObjectMeta"), "spec": struct("WorkloadSpec")},
}
# Kinds this server does not serve whose tags strategic merge patch knows all the same.
UNSERVED_PATCH_ROOTS = {
    ("", "PodTemplate"): "PodTemplate",
    ("", "ReplicationController"): "Workload",
}


class Workload(BaseStrategy):
    """A workload (or a pod): kube's defaults filled in on every write."""

    patch_structs = PATCH_STRUCTS

    def __init__(
        self,
        defaulter: Callable[[JSON], JSON],
        columns: tuple[Column, ...] = (),
        patch_root: str = "Workload",
    ) -> None:
        self._defaulter = defaulter
        self.columns = columns
        self.patch_root = patch_root

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The object with kube's defaults."""
        return self._defaulter(obj)

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The object with kube's defaults."""
        return self._defaulter(obj)


class Pod(Workload):
    """A pod: defaulted, and created Pending with its QoS class."""

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The defaulted pod with kube's status of a new one."""
        obj = self._defaulter(obj)
        obj["status"] = pod_status_on_create(obj)
        return obj


# The scale subresource of the workloads that have one (kube's registry/apps scale
# strategies): spec.replicas, status.replicas, and the LabelSelector at spec.selector.
_SCALE = (".spec.replicas", ".status.replicas", None)


def _workload_type(
    group: str, plural: str, kind: str, *, short: str = "", scale: bool = False
) -> ResourceType:
    """A workload's type: namespaced, with status, among "all" (``kubectl get all``)."""
    return builtin_type(
        group,
        "v1",
        plural,
        kind,
        short=(short,) if short else (),
        status=True,
        scale=_SCALE if scale else None,
        categories=("all",),
    )


PODS = Builtin(
    builtin_type(
        "",
        "v1",
        "pods",
        "Pod",
        short=("po",),
        status=True,
        fields=(
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ),
        categories=("all",),
        returns_deleted=True,
    ),
    Pod(
        _pod,
        (
            Column("Ready", "string", _pod_ready),
            Column("Status", "string", _pod_status),
            Column("Restarts", "string", _pod_restarts),
        ),
        patch_root="Pod",
    ),
)
DEPLOYMENTS = Builtin(
    _workload_type("apps", "deployments", "Deployment", short="deploy", scale=True),
    Workload(
        _deployment,
        (
            Column("Ready", "string", ratio(".status.readyReplicas", ".spec.replicas", 1)),
            Column("Up-to-date", "integer", int_at(".status.updatedReplicas")),
            Column("Available", "integer", int_at(".status.availableReplicas")),
        ),
    ),
)
REPLICA_SETS = Builtin(
    _workload_type("apps", "replicasets", "ReplicaSet", short="rs", scale=True),
    Workload(
        _replica_set,
        (
            Column("Desired", "integer", int_at(".spec.replicas")),
            Column("Current", "integer", int_at(".status.replicas")),
            Column("Ready", "integer", int_at(".status.readyReplicas")),
        ),
    ),
)
STATEFUL_SETS = Builtin(
    _workload_type("apps", "statefulsets", "StatefulSet", short="sts", scale=True),
    Workload(
        _stateful_set,
        (Column("Ready", "string", ratio(".status.readyReplicas", ".spec.replicas", 1)),),
    ),
)
DAEMON_SETS = Builtin(
    _workload_type("apps", "daemonsets", "DaemonSet", short="ds"), Workload(_daemon_set)
)
JOBS = Builtin(
    _workload_type("batch", "jobs", "Job"),
    Workload(
        _job,
        (
            Column("Status", "string", _job_status),
            Column("Completions", "string", ratio(".status.succeeded", ".spec.completions", 1)),
        ),
    ),
)
CRON_JOBS = Builtin(
    _workload_type("batch", "cronjobs", "CronJob", short="cj"),
    Workload(_cron_job, patch_root="CronJob"),
)
