"""``ntinv-apiserver``: the server as a process, the way a non-Python controller uses it."""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cryptography import x509

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.toys.example.org}
spec:
  group: toys.example.org
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"""
COMMAND = [sys.executable, "-m", "pytest_ntinvariants.apiserver.cli"]


def read_line(proc: subprocess.Popen[str], guard: float = 20.0) -> str:
    """The next stdout line. The timer only kills a hung server; it does not synchronise."""
    assert proc.stdout is not None
    watchdog = threading.Timer(guard, proc.kill)
    watchdog.start()
    try:
        line = proc.stdout.readline()
    finally:
        watchdog.cancel()
    assert line, "ntinv-apiserver ended without printing"
    return line


@contextlib.contextmanager
def launch(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """Run ``ntinv-apiserver --kubeconfig KC args...``; yield it, its URL and KC once serving."""
    kubeconfig = tmp_path / "kc.yaml"
    proc = subprocess.Popen(
        [*COMMAND, "--kubeconfig", str(kubeconfig), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = read_line(proc)
        assert first.startswith("ntinv-apiserver serving at http"), first
        url = first.rsplit(" ", 1)[1].strip()
        assert read_line(proc).strip() == f"kubeconfig: {kubeconfig.resolve()}"
        yield proc, url, kubeconfig
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=20)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    crd = tmp_path / "crd.yaml"
    crd.write_text(CRD)
    with launch(tmp_path, "--crd", str(crd), "--identity", "ctl") as running:
        assert running[1].startswith("http://127.0.0.1:")
        yield running


def get(url: str, token: str) -> dict[str, object]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_the_crd_and_exits_0_on_signal(
    started: tuple[subprocess.Popen[str], str, Path], sig: signal.Signals
) -> None:
    proc, url, kubeconfig = started
    cfg = yaml.safe_load(kubeconfig.read_text())
    assert cfg["clusters"][0]["cluster"]["server"] == url
    token = cfg["users"][0]["user"]["token"]
    listed = get(f"{url}/apis/toys.example.org/v1/namespaces/default/gadgets", token)
    assert listed["kind"] == "GadgetList"
    other = yaml.safe_load(Path(f"{kubeconfig}.ctl").read_text())
    assert other["users"][0]["user"]["token"] != token
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "ntinv-apiserver stopped" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read --crd"),
        ("kind: [unclosed", "cannot parse"),
        ("- just\n- a list\n", "not a Kubernetes object"),
        ("metadata: {name: x}\n", "not a Kubernetes object"),
        ("apiVersion: v1\nkind: Gizmo\nmetadata: {name: x}\n", "Gizmo"),
        (CRD.replace("scope: Namespaced", "scope: Everywhere"), "spec.scope"),
    ],
)
def test_bad_crd_file_exits_2_with_a_clear_message(
    tmp_path: Path, content: str | None, message: str
) -> None:
    crd = tmp_path / "crd.yaml"
    if content is not None:
        crd.write_text(content)
    done = subprocess.run(
        [*COMMAND, "--crd", str(crd), "--kubeconfig", str(tmp_path / "kc")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("ntinv-apiserver: "), done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert str(crd) in done.stderr
    assert not (tmp_path / "kc").exists()


def test_an_unwritable_kubeconfig_exits_2(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    target = tmp_path / "a-file" / "kubeconfig"  # (root may write anywhere else)
    done = subprocess.run(
        [*COMMAND, "--kubeconfig", str(target)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"--kubeconfig {target}: cannot write it" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_exits_2(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*COMMAND, "--port", str(port), "--kubeconfig", str(tmp_path / "k")],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def tls_context(kubeconfig: Path) -> ssl.SSLContext:
    """A client context trusting only the CA in ``kubeconfig``."""
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    return ssl.create_default_context(cadata=ca)


def status_of(url: str, context: ssl.SSLContext | None = None, token: str | None = None) -> int:
    """The HTTP status of GET ``url`` (with ``token`` as bearer, if given)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=10, context=context
        ) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as e:
        e.close()
        return e.code


@pytest.mark.parametrize(
    ("args", "anonymous"),
    [
        (["--tls"], 401),
        (["--tls", "--anonymous-auth=true"], 200),
        (["--tls", "--anonymous-auth"], 200),
        ([], 200),
        (["--anonymous-auth=false"], 401),
        (["--anonymous-auth", "0"], 401),
    ],
)
def test_anonymous_auth_flag(tmp_path: Path, args: list[str], anonymous: int) -> None:
    with launch(tmp_path, *args, "--identity", "ctl") as (_, url, kubeconfig):
        context = tls_context(kubeconfig) if "--tls" in args else None
        token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        assert status_of(f"{url}/api/v1/namespaces", context) == anonymous
        assert status_of(f"{url}/api/v1/namespaces", context, token) == 200
        assert status_of(f"{url}/healthz", context) == 200  # probes need no token
        assert status_of(f"{url}/healthz", context, "forged") == 401
        # Both kubeconfigs hold a token: only their owner may read them.
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(f"{kubeconfig}.ctl").stat().st_mode) == 0o600


def served_certificate(url: str, kubeconfig: Path) -> x509.Certificate:
    """The certificate the server at ``url`` presents in its TLS handshake."""
    host, port = urllib.parse.urlsplit(url).hostname, urllib.parse.urlsplit(url).port
    assert host is not None and port is not None
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        tls_context(kubeconfig).wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.mark.parametrize(
    ("args", "validity"),
    [
        ([], datetime.timedelta(days=365)),
        (["--cert-validity", "90m"], datetime.timedelta(minutes=90)),
        (["--cert-validity=2d12h"], datetime.timedelta(days=2, hours=12)),
        (["--cert-validity", "87600h"], datetime.timedelta(days=3650)),
    ],
)
def test_the_certificate_lives_as_long_as_cert_validity(
    tmp_path: Path, args: list[str], validity: datetime.timedelta
) -> None:
    # notAfter has whole seconds: a second of slack on either side of the launch.
    second = datetime.timedelta(seconds=1)
    before = datetime.datetime.now(datetime.UTC)
    with launch(tmp_path, "--tls", *args) as (_, url, kubeconfig):
        after = datetime.datetime.now(datetime.UTC)
        served = served_certificate(url, kubeconfig)
    assert before + validity - second <= served.not_valid_after_utc <= after + validity + second
    assert served.not_valid_before_utc <= before  # valid from the start, clock skew allowed
    ca = x509.load_pem_x509_certificate(
        base64.b64decode(
            yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"][
                "certificate-authority-data"
            ]
        )
    )
    assert ca.not_valid_after_utc >= served.not_valid_after_utc  # the chain outlives neither


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cert-validity", "0s"], "must be positive"),
        (["--cert-validity", "soon"], "not a duration"),
        (["--cert-validity", "5"], "not a duration"),
        (["--cert-validity", "9999999d"], "too long"),
        (["--anonymous-auth=maybe"], "not true or false"),
    ],
)
def test_bad_flag_values_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [*COMMAND, "--tls", "--kubeconfig", str(tmp_path / "kc"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "kc").exists()


def test_keeps_serving_when_stdout_closes_and_exits_0(tmp_path: Path) -> None:
    # ntinv-apiserver ... | head -1: head reads the first line and exits, after which
    # every write to the pipe fails with EPIPE (the server's next line, or at the latest
    # its "stopped" line).
    kubeconfig = tmp_path / "kc.yaml"
    server = subprocess.Popen(
        [*COMMAND, "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        head = subprocess.Popen(
            ["head", "-1"], stdin=server.stdout, stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        server.stdout.close()  # head is the pipe's only reader now
        first, _ = head.communicate(timeout=20)  # head has exited: the pipe has no reader
        assert head.returncode == 0
        assert first.startswith("ntinv-apiserver serving at http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        assert status_of(f"{url}/healthz") == 200
        token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
        assert status_of(f"{url}/api/v1/namespaces", token=token) == 200
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=20)
        assert server.returncode == 0, err
        assert "Traceback" not in err, err
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=20)


def test_a_broken_stdout_goes_to_devnull(monkeypatch: pytest.MonkeyPatch) -> None:
    # The unit under the test above, deterministic: the pipe's reader is gone before the
    # first line, so that line is the one that breaks, and the next ones must not raise.
    from pytest_ntinvariants.apiserver.cli import _say

    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        monkeypatch.setattr(sys, "stdout", stream)
        _say("ntinv-apiserver serving at http://127.0.0.1:1")
        _say("kubeconfig: /dev/null")
        target = os.fstat(write_end)
        monkeypatch.undo()
    assert stat.S_ISCHR(target.st_mode) and target.st_rdev == os.stat(os.devnull).st_rdev
