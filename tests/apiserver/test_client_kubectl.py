"""kubectl v1.32 against the fake, as a subprocess, with validation left on.

Each test has its own server (a fresh random port) and its own ``--cache-dir`` under
``tmp_path``, so kubectl's discovery and OpenAPI caches never carry over between tests.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from crds import GIZMO_API_VERSION, GIZMO_CRD, GIZMO_GROUP, gizmo

from pytest_ntinvariants.apiserver import FakeApiServer, WriteContext

if TYPE_CHECKING:
    from conftest import StoreWaiter

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")

JSON = dict[str, Any]
GIZMO_RESOURCE = f"gizmos.{GIZMO_GROUP}"


@dataclass
class Result:
    """A finished kubectl run."""

    rc: int
    stdout: str
    stderr: str

    def ok(self) -> str:
        """Assert success with nothing on stderr (no warnings either); return stdout."""
        __tracebackhide__ = True
        assert self.rc == 0, f"kubectl failed ({self.rc}):\n{self.stderr}\n{self.stdout}"
        assert self.stderr == "", f"kubectl wrote to stderr:\n{self.stderr}"
        return self.stdout


@dataclass
class Kubectl:
    """Runs kubectl against one server with a private cache directory."""

    server: FakeApiServer
    workdir: Path

    def __post_init__(self) -> None:
        self.kubeconfig = self.server.kubeconfig("kubectl", self.workdir / "kubeconfig")
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),  # nothing from the user's ~/.kube
            "KUBECONFIG": str(self.kubeconfig),
        }

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``kubectl args...``."""
        assert KUBECTL is not None
        return [KUBECTL, f"--cache-dir={self.workdir / 'cache'}", *args]

    def __call__(self, *args: str, stdin: str | None = None, timeout: float = 30) -> Result:
        proc = subprocess.run(
            self.argv(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def apply(self, manifest: JSON | str, *args: str) -> Result:
        """``kubectl apply -f -`` with a manifest (dict or YAML)."""
        text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
        return self("apply", "-f", "-", *args, stdin=text)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start ``kubectl args...`` in the background (stdout and stderr piped)."""
        return subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )


@pytest.fixture
def kubectl(gizmo_server: FakeApiServer, tmp_path: Path) -> Kubectl:
    """kubectl bound to ``gizmo_server`` (Gizmo CRD installed)."""
    return Kubectl(gizmo_server, tmp_path)


class Lines:
    """The stdout of a background process, line by line, with a guard timeout per line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.seen: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._reader.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def until(self, predicate: Callable[[str], bool], timeout: float = 10.0) -> str:
        """Read lines until one satisfies ``predicate``; return it."""
        __tracebackhide__ = True
        while True:
            try:
                line = self._q.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no matching line within {timeout}s; got {self.seen!r}")
            if line is None:
                pytest.fail(f"the process ended before a matching line; got {self.seen!r}")
            self.seen.append(line)
            if predicate(line):
                return line


@pytest.fixture
def background() -> Iterator[Callable[[subprocess.Popen[str]], Lines]]:
    """Track background processes; each is terminated (if needed) and reaped at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def track(proc: subprocess.Popen[str]) -> Lines:
        procs.append(proc)
        return Lines(proc)

    yield track
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=10)


def columns(line: str) -> list[str]:
    """The whitespace-separated cells of a kubectl table line."""
    return line.split()


# --------------------------------------------------------------------------------------- tests


def test_apply_crd_then_custom_resource(
    make_gizmo_server: Callable[..., FakeApiServer], tmp_path: Path
) -> None:
    """Strict validation needs OpenAPI v3 for apiextensions too; the new kind is usable at once."""
    kubectl = Kubectl(make_gizmo_server(crds=[]), tmp_path)
    # Warm the discovery cache before the CRD exists: kubectl must notice the new group.
    assert "gizmos" not in kubectl("api-resources").ok()
    assert kubectl.apply(GIZMO_CRD).ok() == (
        f"customresourcedefinition.apiextensions.k8s.io/{GIZMO_RESOURCE} created\n"
    )
    assert kubectl.apply(gizmo("g1", size=2)).ok() == "gizmo.clients.ntinv.example.com/g1 created\n"
    stored = kubectl.server.get(GIZMO_API_VERSION, "Gizmo", "g1")
    assert stored["spec"] == {"size": 2, "color": "red"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    # Re-applying the CRD unchanged is a no-op, as on a real server.
    assert kubectl.apply(GIZMO_CRD).ok().endswith(" unchanged\n")


def test_apply_invalid_custom_resource_shows_422(kubectl: Kubectl) -> None:
    result = kubectl.apply(gizmo("bad", size=0, color="purple"))
    assert result.rc == 1
    assert 'The Gizmo "bad" is invalid' in result.stderr
    assert "spec.size" in result.stderr and "spec.color" in result.stderr
    assert "purple" in result.stderr


@pytest.mark.parametrize("flag", ["--validate=strict", "--validate=true"])
def test_unknown_field_with_strict_validation_fails(kubectl: Kubectl, flag: str) -> None:
    result = kubectl.apply(gizmo("g1", bogus="x"), flag)
    assert result.rc == 1, result
    assert result.stderr == (
        'Error from server (BadRequest): error when creating "STDIN": Gizmo in version "v1" '
        'cannot be handled as a Gizmo: strict decoding error: unknown field "spec.bogus"\n'
    )
    assert kubectl("get", "gizmos", "-o", "name").ok() == ""
    # On an existing object apply patches; kube's patch handler words it as a 422 about
    # the field "patch", quoting the patched object, and kubectl prints it as a request error.
    kubectl.apply(gizmo("g1")).ok()
    result = kubectl.apply(gizmo("g1", bogus="x"), flag)
    assert result.rc == 1, result
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('The request is invalid: patch: Invalid value: "{'), last
    assert last.endswith('}": strict decoding error: unknown field "spec.bogus"'), last


def test_unknown_field_with_warn_validation_prunes(kubectl: Kubectl) -> None:
    result = kubectl.apply(gizmo("g1", bogus="x"), "--validate=warn")
    assert result.rc == 0, result
    assert 'unknown field "spec.bogus"' in result.stderr  # a Warning: header, printed
    assert "bogus" not in kubectl.server.get(GIZMO_API_VERSION, "Gizmo", "g1")["spec"]


def test_apply_configures_existing_objects_without_openapi_warning(kubectl: Kubectl) -> None:
    """A second apply computes a patch client-side; it must not trip over the OpenAPI spec.

    kubectl uses the OpenAPI v3 document to build a strategic merge patch only when the
    PATCH operation lists ``application/strategic-merge-patch+json``; then it needs real
    schemas (metadata and all). Otherwise it builds the patch from its compiled-in types
    (built-ins) or sends a JSON merge patch (custom resources), as against a real server.
    """
    cm: JSON = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg", "labels": {"a": "1"}},
        "data": {"x": "1", "y": "2"},
    }
    assert kubectl.apply(cm).ok() == "configmap/cfg created\n"
    cm["data"] = {"x": "10"}
    cm["metadata"]["labels"] = {"b": "2"}
    assert kubectl.apply(cm).ok() == "configmap/cfg configured\n"
    stored = kubectl.server.get("v1", "ConfigMap", "cfg")
    assert stored["data"] == {"x": "10"}  # y removed: it was in the last applied config
    assert stored["metadata"]["labels"] == {"b": "2"}
    assert kubectl.apply(cm).ok() == "configmap/cfg unchanged\n"

    g = gizmo("g1", size=2)
    assert kubectl.apply(g).ok() == "gizmo.clients.ntinv.example.com/g1 created\n"
    g["spec"] = {"size": 4, "color": "blue"}
    assert kubectl.apply(g).ok() == "gizmo.clients.ntinv.example.com/g1 configured\n"
    assert kubectl.server.get(GIZMO_API_VERSION, "Gizmo", "g1")["spec"] == {
        "size": 4,
        "color": "blue",
    }


def test_diff_shows_the_server_side_dry_run(kubectl: Kubectl) -> None:
    """``kubectl diff`` patches with ``dryRun=All`` and compares; nothing is stored."""
    before = kubectl.server.apply(gizmo("g1", size=2))[0]
    result = kubectl("diff", "-f", "-", stdin=yaml.safe_dump(gizmo("g1", size=5)))
    assert result.rc == 1, result  # 1: differences found
    changed = [
        line
        for line in result.stdout.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == ["-  generation: 1", "+  generation: 2", "-  size: 2", "+  size: 5"]
    assert kubectl.server.get(GIZMO_API_VERSION, "Gizmo", "g1") == before
    same = kubectl("diff", "-f", "-", stdin=yaml.safe_dump(gizmo("g1", size=2)))
    assert (same.rc, same.stdout) == (0, "")


def test_create_get_table_yaml_json(kubectl: Kubectl) -> None:
    manifest = yaml.safe_dump_all([gizmo("g1", size=2), gizmo("g2", size=7, color="green")])
    out = kubectl("create", "-f", "-", stdin=manifest).ok()
    assert out.splitlines() == [
        "gizmo.clients.ntinv.example.com/g1 created",
        "gizmo.clients.ntinv.example.com/g2 created",
    ]
    again = kubectl("create", "-f", "-", stdin=manifest)
    assert (
        again.rc == 1 and "AlreadyExists" in again.stderr and '"g1" already exists' in again.stderr
    )

    rows = kubectl("get", "gizmos").ok().splitlines()
    assert columns(rows[0]) == ["NAME", "SIZE", "PHASE", "AGE"]
    assert [columns(r)[:2] for r in rows[1:]] == [["g1", "2"], ["g2", "7"]]
    by_short_name = kubectl("get", "gz", "g2").ok().splitlines()
    assert columns(by_short_name[1])[:2] == ["g2", "7"]

    doc = yaml.safe_load(kubectl("get", "gizmo", "g1", "-o", "yaml").ok())
    assert doc["kind"] == "Gizmo" and doc["spec"] == {"size": 2, "color": "red"}
    assert isinstance(doc["metadata"]["resourceVersion"], str)
    listed = json.loads(kubectl("get", "gizmos", "-o", "json").ok())
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["g1", "g2"]
    assert listed["items"][1]["spec"]["color"] == "green"
    names = kubectl("get", "gizmos", "-o", "jsonpath={.items[*].spec.size}").ok()
    assert names == "2 7"

    missing = kubectl("get", "gizmo", "nope")
    assert missing.rc == 1
    assert missing.stderr.strip() == (
        f'Error from server (NotFound): {GIZMO_RESOURCE} "nope" not found'
    )


def test_builtin_tables_have_kube_columns(kubectl: Kubectl) -> None:
    manifests: list[JSON] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s1"},
            "stringData": {"p": "x", "q": "z"},  # (a bare y is a YAML 1.1 boolean to kubectl)
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cm1"},
            "data": {"a": "1"},
            "binaryData": {"b": "AA=="},
        },
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "l1"},
            "spec": {"holderIdentity": "me"},
        },
    ]
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(manifests)).ok()
    tables = [
        [columns(line)[:-1] for line in block.splitlines()]  # without the AGE cells
        for block in kubectl("get", "cm,secret,lease").ok().split("\n\n")
    ]
    assert tables == [
        [["NAME", "DATA"], ["configmap/cm1", "2"]],
        [["NAME", "TYPE", "DATA"], ["secret/s1", "Opaque", "2"]],
        [["NAME", "HOLDER"], ["lease.coordination.k8s.io/l1", "me"]],
    ]
    namespaces = [columns(line) for line in kubectl("get", "ns").ok().splitlines()]
    assert namespaces[0] == ["NAME", "STATUS", "AGE"]
    assert ["default", "Active"] in [row[:2] for row in namespaces[1:]]
    crds = kubectl("get", "crd").ok().splitlines()
    assert columns(crds[0]) == ["NAME", "CREATED", "AT"]
    assert columns(crds[1])[0] == GIZMO_RESOURCE


def test_workload_and_service_tables_have_kube_columns(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3").ok()
    kubectl("create", "service", "nodeport", "web", "--tcp=80:8080", "--node-port=30080").ok()
    pod: JSON = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p1"},
        "spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]},
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump(pod)).ok()
    kubectl.server.store.patch(
        kubectl.server.resource("v1", "Pod"),
        "default",
        "p1",
        "application/merge-patch+json",
        {
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {"name": "a", "ready": True, "restartCount": 2, "state": {"running": {}}},
                    {
                        "name": "b",
                        "ready": False,
                        "restartCount": 1,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    },
                ],
            }
        },
        subresource="status",
    )
    deploy = [columns(line)[:-1] for line in kubectl("get", "deploy").ok().splitlines()]
    assert deploy == [["NAME", "READY", "UP-TO-DATE", "AVAILABLE"], ["web", "0/3", "0", "0"]]
    service = [columns(line)[:-1] for line in kubectl("get", "svc", "web").ok().splitlines()]
    assert service == [
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)"],
        ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP"],
    ]
    pods = [columns(line)[:-1] for line in kubectl("get", "pod", "p1").ok().splitlines()]
    assert pods == [["NAME", "READY", "STATUS", "RESTARTS"], ["p1", "1/2", "CrashLoopBackOff", "3"]]


def test_patch_merge_json_and_default_strategic(kubectl: Kubectl) -> None:
    kubectl.server.apply(gizmo("g1", size=1))
    out = kubectl("patch", "gizmo", "g1", "--type", "merge", "-p", '{"spec":{"size":5}}').ok()
    assert out == "gizmo.clients.ntinv.example.com/g1 patched\n"
    ops = '[{"op":"replace","path":"/spec/color","value":"blue"}]'
    assert kubectl("patch", "gizmo", "g1", "--type", "json", "-p", ops).ok().endswith(" patched\n")
    assert kubectl.server.get(GIZMO_API_VERSION, "Gizmo", "g1")["spec"] == {
        "size": 5,
        "color": "blue",
    }
    # A no-op patch is reported as such and bumps nothing.
    noop = kubectl("patch", "gizmo", "g1", "--type", "merge", "-p", '{"spec":{"size":5}}').ok()
    assert noop == "gizmo.clients.ntinv.example.com/g1 patched (no change)\n"

    # kubectl patch defaults to a strategic merge patch, which custom resources refuse;
    # kubectl 1.32 wraps the server's 415 message in its own.
    strategic = kubectl("patch", "gizmo", "g1", "-p", '{"spec":{"size":6}}')
    assert strategic.rc == 1
    assert strategic.stderr.strip() == (
        "error: application/strategic-merge-patch+json is not supported by "
        f"{GIZMO_API_VERSION}, Kind=Gizmo: the body of the request was in an unknown "
        "format - accepted media types include: application/json-patch+json, "
        "application/merge-patch+json, application/apply-patch+yaml"
    )
    # Built-ins do take it.
    kubectl.server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}})
    assert kubectl("patch", "configmap", "c", "-p", '{"data":{"k":"v"}}').ok() == (
        "configmap/c patched\n"
    )
    # An invalid patch shows the 422 with the field path.
    invalid = kubectl("patch", "gizmo", "g1", "--type", "merge", "-p", '{"spec":{"size":99}}')
    assert invalid.rc == 1 and 'The Gizmo "g1" is invalid' in invalid.stderr
    assert "spec.size" in invalid.stderr


def test_patches_that_kube_refuses_change_nothing(
    kubectl: Kubectl, state: Callable[[FakeApiServer], tuple[int, list[bytes]]]
) -> None:
    """A JSON patch taking the metadata or the whole document away, and a patch changing the
    uid, get kube's errors as kubectl prints them; the store is left as it was."""
    kubectl("create", "configmap", "a", "--from-literal=k=v").ok()
    before = state(kubectl.server)
    refused = {
        '[{"op":"remove","path":"/metadata"}]': "Error from server (BadRequest): the name of "
        "the object (a based on URL) was undeterminable: name must be provided",
        '[{"op":"replace","path":"","value":{"metadata":{"name":"b"}}}]': "Error from server "
        "(BadRequest): the name of the object (b) does not match the name on the URL (a)",
    }
    for ops, message in refused.items():
        result = kubectl("patch", "configmap", "a", "--type=json", "-p", ops)
        assert (result.rc, result.stderr) == (1, message + "\n")
    result = kubectl("patch", "configmap", "a", "--type=merge", "-p", '{"metadata":{"uid":"x"}}')
    assert (result.rc, result.stderr) == (
        1,
        'The ConfigMap "a" is invalid: metadata.uid: Invalid value: "x": field is immutable\n',
    )
    assert state(kubectl.server) == before


def test_a_future_resource_version_is_too_large(kubectl: Kubectl) -> None:
    """An exact list at a resourceVersion the server has not reached: kube's 504."""
    current = kubectl.server.store.resource_version
    path = f"/api/v1/namespaces/default/configmaps?resourceVersion={current + 3}"
    result = kubectl("get", "--raw", f"{path}&resourceVersionMatch=Exact")
    assert (result.rc, result.stderr) == (
        1,
        f"Error from server (Timeout): Timeout: Too large resource version: {current + 3}, "
        f"current: {current}\n",
    )


def test_a_get_at_a_future_resource_version_is_too_large(kubectl: Kubectl) -> None:
    """A GET's resourceVersion is a minimum (kube serves it from its watch cache once fresh
    enough): one the server has not reached is the same 504."""
    kubectl("create", "configmap", "a").ok()
    current = kubectl.server.store.resource_version
    result = kubectl(
        "get", "--raw", f"/api/v1/namespaces/default/configmaps/a?resourceVersion={current + 1}"
    )
    assert (result.rc, result.stderr) == (
        1,
        f"Error from server (Timeout): Timeout: Too large resource version: {current + 1}, "
        f"current: {current}\n",
    )


def test_delete_waits_for_finalizers(
    kubectl: Kubectl,
    store_waiter: StoreWaiter,
    background: Callable[[subprocess.Popen[str]], Lines],
) -> None:
    server = kubectl.server
    body = gizmo("g1")
    body["metadata"]["finalizers"] = ["example.com/hold"]
    server.apply(body)
    server.apply(gizmo("g2"))
    assert kubectl("delete", "gizmo", "g2").ok() == 'gizmo.clients.ntinv.example.com "g2" deleted\n'

    proc = kubectl.popen("delete", "gizmo", "g1")  # --wait=true by default
    lines = background(proc)
    store_waiter.until(
        lambda: "deletionTimestamp" in server.get(GIZMO_API_VERSION, "Gizmo", "g1")["metadata"],
        what="the deletion to start",
    )
    lines.until(lambda line: line == 'gizmo.clients.ntinv.example.com "g1" deleted')
    assert proc.poll() is None  # still waiting for the finalizer
    rt = server.resource(GIZMO_API_VERSION, "Gizmo")
    server.store.patch(
        rt,
        "default",
        "g1",
        "application/merge-patch+json",
        {"metadata": {"finalizers": None}},
        WriteContext(identity="controller"),
    )
    assert proc.wait(timeout=10) == 0
    assert kubectl("get", "gizmos", "-o", "name").ok() == ""


def test_get_watch_prints_rows_as_objects_change(
    kubectl: Kubectl, background: Callable[[subprocess.Popen[str]], Lines]
) -> None:
    server = kubectl.server
    server.apply(gizmo("g1", size=1))
    proc = kubectl.popen("get", "gizmos", "-w")
    lines = background(proc)
    assert columns(lines.until(lambda line: line.startswith("NAME"))) == [
        "NAME",
        "SIZE",
        "PHASE",
        "AGE",
    ]
    lines.until(lambda line: columns(line)[:2] == ["g1", "1"])
    server.apply(gizmo("g2", size=3))
    lines.until(lambda line: columns(line)[:2] == ["g2", "3"])
    rt = server.resource(GIZMO_API_VERSION, "Gizmo")
    server.store.patch(
        rt, "default", "g1", "application/merge-patch+json", {"spec": {"size": 9}}, WriteContext()
    )
    server.store.patch(
        rt,
        "default",
        "g1",
        "application/merge-patch+json",
        {"status": {"phase": "Ready"}},
        WriteContext(),
        subresource="status",
    )
    lines.until(lambda line: columns(line)[:3] == ["g1", "9", "Ready"])
    proc.terminate()
    proc.wait(timeout=10)


def test_api_resources_and_explain(kubectl: Kubectl) -> None:
    rows = [columns(r) for r in kubectl("api-resources").ok().splitlines()]
    assert ["gizmos", "gz", GIZMO_API_VERSION, "true", "Gizmo"] in rows
    assert ["configmaps", "cm", "v1", "true", "ConfigMap"] in rows
    assert ["namespaces", "ns", "v1", "false", "Namespace"] in rows
    names = kubectl("api-resources", "--api-group", GIZMO_GROUP, "-o", "name").ok()
    assert names == f"{GIZMO_RESOURCE}\n"

    explained = kubectl("explain", "gizmos.spec").ok()
    assert "KIND:       Gizmo" in explained
    assert "size\t<integer> -required-" in explained
    assert "color\t<string>" in explained


def test_describe_custom_resource_with_events(kubectl: Kubectl) -> None:
    server = kubectl.server
    g = server.apply(gizmo("g1", size=2))[0]
    server.apply(
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "g1.ev", "namespace": "default"},
            "involvedObject": {
                "apiVersion": GIZMO_API_VERSION,
                "kind": "Gizmo",
                "name": "g1",
                "namespace": "default",
                "uid": g["metadata"]["uid"],
            },
            "reason": "Tuned",
            "message": "size set to 2",
            "type": "Normal",
            "count": 1,
            "firstTimestamp": g["metadata"]["creationTimestamp"],
            "lastTimestamp": g["metadata"]["creationTimestamp"],
            "source": {"component": "gizmo-controller"},
        }
    )
    out = kubectl("describe", "gizmo", "g1").ok()
    fields = dict(
        (k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in out.splitlines())
    )
    assert fields["Name"] == "g1"
    assert fields["Namespace"] == "default"
    assert fields["API Version"] == GIZMO_API_VERSION
    assert fields["Kind"] == "Gizmo"
    assert fields["Size"] == "2"
    event_line = next(line for line in out.splitlines() if "Tuned" in line)
    assert columns(event_line)[:2] == ["Normal", "Tuned"]
    assert "size set to 2" in event_line


def test_server_side_apply(kubectl: Kubectl) -> None:
    """``kubectl apply --server-side``: create, change, a conflict kubectl explains, force."""
    cm: JSON = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cfg"},
        "data": {"x": "1", "y": "2"},
    }
    assert kubectl.apply(cm, "--server-side").ok() == "configmap/cfg serverside-applied\n"
    cm["data"] = {"x": "10"}
    assert kubectl.apply(cm, "--server-side").ok() == "configmap/cfg serverside-applied\n"
    stored = kubectl.server.get("v1", "ConfigMap", "cfg")
    assert stored["data"] == {"x": "10"}  # y: applied before, not now, owned by nobody else
    # Another manager (kubectl patch, an Update) takes x; applying x again conflicts.
    kubectl("patch", "configmap", "cfg", "-p", '{"data":{"x":"patched"}}').ok()
    cm["data"] = {"x": "11"}
    result = kubectl.apply(cm, "--server-side")
    assert result.rc == 1, result
    assert "Apply failed with 1 conflict" in result.stderr
    assert 'conflict with "kubectl-patch" using v1: .data.x' in result.stderr
    assert "--force-conflicts" in result.stderr  # kubectl's advice, shown for a 409 conflict
    assert kubectl.server.get("v1", "ConfigMap", "cfg")["data"] == {"x": "patched"}
    forced = kubectl.apply(cm, "--server-side", "--force-conflicts")
    assert forced.ok() == "configmap/cfg serverside-applied\n"
    shown = yaml.safe_load(
        kubectl("get", "configmap", "cfg", "-o", "yaml", "--show-managed-fields").ok()
    )
    assert shown["data"] == {"x": "11"}
    owners = {
        (e["manager"], e["operation"]): e["fieldsV1"] for e in shown["metadata"]["managedFields"]
    }
    assert owners == {("kubectl", "Apply"): {"f:data": {"f:x": {}}}}
    hidden = yaml.safe_load(kubectl("get", "configmap", "cfg", "-o", "yaml").ok())
    assert "managedFields" not in hidden["metadata"]  # kubectl hides them by default


def test_a_crd_whose_schema_kube_refuses_is_a_422(kubectl: Kubectl) -> None:
    """The schema checks of a CRD's creation are kube's: a non-structural schema (an object
    field without a type) is refused, and its resource is never served."""
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.ex.example.com"},
        "spec": {
            "group": "ex.example.com",
            "scope": "Namespaced",
            "names": {"plural": "things", "singular": "thing", "kind": "Thing"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"properties": {"a": {"type": "string"}}}},
                        }
                    },
                }
            ],
        },
    }
    result = kubectl.apply(crd)
    assert result.rc == 1, result
    assert result.stderr.strip() == (
        'The CustomResourceDefinition "things.ex.example.com" is invalid: '
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: "
        "Required value: must not be empty for specified object fields"
    )
    assert "things" not in kubectl("api-resources", "-o", "name").ok()
