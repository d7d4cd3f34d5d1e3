"""Who may call the fake without a token, and what a caller learns from a TokenReview.

Over https a request without a token gets kube's 401 (health probes excepted), because
every client can send its kubeconfig's token there; over plain http, where kubectl and
client-go send none, it is served as ``system:anonymous``. Each behaviour is checked on
the wire, and where a real client sees it, with that client (kubectl, ``kubernetes``).
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from cryptography import x509
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from test_client_kubectl import KUBECTL, Kubectl

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

JSON = dict[str, Any]
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed")
CMS = "/api/v1/namespaces/default/configmaps"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
# kube-apiserver's answer to a request it cannot authenticate, byte for byte in content.
UNAUTHORIZED: JSON = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
# What kube's RBAC answers system:anonymous creating a TokenReview.
ANONYMOUS_TOKEN_REVIEW_FORBIDDEN: JSON = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": 'tokenreviews.authentication.k8s.io is forbidden: User "system:anonymous" '
    'cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the '
    "cluster scope",
    "reason": "Forbidden",
    "details": {"group": "authentication.k8s.io", "kind": "tokenreviews"},
    "code": 403,
}


def token_review(token: str) -> JSON:
    """A TokenReview asking about ``token``."""
    return {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token},
    }


@pytest.fixture
def tls_server() -> Any:
    """A started https server with the default authentication (anonymous refused)."""
    with FakeApiServer(tls=True) as s:
        yield s


def test_the_default_depends_on_tls_and_can_be_overridden() -> None:
    assert FakeApiServer().require_auth is False
    assert FakeApiServer(tls=True).require_auth is True
    assert FakeApiServer(require_auth=True).require_auth is True
    assert FakeApiServer(tls=True, require_auth=False).require_auth is False


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", CMS),
        ("POST", CMS),
        ("GET", "/api"),
        ("GET", "/apis"),
        ("GET", "/version"),
        ("GET", "/openapi/v3"),
        ("GET", "/no/such/path"),
        ("POST", TOKEN_REVIEWS),
    ],
)
def test_over_tls_a_request_without_a_token_gets_kubes_401(
    tls_server: FakeApiServer, make_api: type[Api], method: str, path: str
) -> None:
    before = tls_server.store.resource_version
    reply = make_api(tls_server).request(method, path, {"metadata": {"name": "x"}})
    assert reply.expect(401) == UNAUTHORIZED
    assert reply.headers["Content-Type"] == "application/json"
    assert tls_server.store.resource_version == before  # nothing was written


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz"])
@pytest.mark.parametrize("tls", [True, False])
def test_health_probes_need_no_token(make_api: type[Api], path: str, tls: bool) -> None:
    with FakeApiServer(tls=tls, require_auth=True) as server:
        reply = make_api(server).get(path)
        assert (reply.status, reply.raw) == (200, b"ok")
        # An unknown token is refused even there, as kube refuses it on every path.
        assert make_api(server, "forged").get(path).expect(401) == UNAUTHORIZED


def test_the_kubeconfigs_token_is_served_over_tls(
    tls_server: FakeApiServer, make_api: type[Api]
) -> None:
    cfg = yaml.safe_load(tls_server.kubeconfig("alice").read_text())
    token = cfg["users"][0]["user"]["token"]
    make_api(tls_server, token).post(CMS, {"metadata": {"name": "a"}}).expect(201)
    # kube's bearer authenticator takes the scheme in any case.
    lower = make_api(tls_server).get(f"{CMS}/a", headers={"Authorization": f"bearer {token}"})
    assert lower.expect(200)["metadata"]["name"] == "a"


@pytest.mark.parametrize("header", ["Bearer ", "Bearer", "Basic YTpi", "Negotiate x"])
def test_a_header_without_a_bearer_token_is_anonymous(make_api: type[Api], header: str) -> None:
    # As kube: no credentials, so anonymous: served over plain http, 401 where refused.
    with FakeApiServer() as http_server:
        make_api(http_server).get(CMS, headers={"Authorization": header}).expect(200)
    with FakeApiServer(require_auth=True) as strict:
        reply = make_api(strict).get(CMS, headers={"Authorization": header})
        assert reply.expect(401) == UNAUTHORIZED


def test_over_http_anonymous_is_served_unless_refused(make_api: type[Api]) -> None:
    with FakeApiServer() as server:
        make_api(server).post(CMS, {"metadata": {"name": "a"}}).expect(201)
        assert make_api(server, "forged").get(CMS).expect(401) == UNAUTHORIZED
    with FakeApiServer(require_auth=True) as strict:
        assert make_api(strict).get(CMS).expect(401) == UNAUTHORIZED
        make_api(strict, strict.token_for("me")).get(CMS).expect(200)


# ------------------------------------------------------------------------------ TokenReview


def test_a_token_review_over_tls_tells_anonymous_nothing(make_api: type[Api]) -> None:
    # Anonymous allowed on purpose: it may read and write, but not test tokens.
    with FakeApiServer(tls=True, require_auth=False) as server:
        anonymous = make_api(server)
        anonymous.get(CMS).expect(200)
        valid = anonymous.post(TOKEN_REVIEWS, token_review(server.token_for("victim")))
        forged = anonymous.post(TOKEN_REVIEWS, token_review("forged"))
        # The same answer for a valid token and a forged one: nothing to learn from.
        assert valid.expect(403) == forged.expect(403) == ANONYMOUS_TOKEN_REVIEW_FORBIDDEN
        # An identity of the server may ask, as a webhook with its own token does.
        webhook = make_api(server, server.token_for("webhook"))
        ok = webhook.post(TOKEN_REVIEWS, token_review(server.token_for("victim"))).expect(201)
        assert ok["status"]["authenticated"] is True
        assert ok["status"]["user"]["username"] == "victim"
        bad = webhook.post(TOKEN_REVIEWS, token_review("forged")).expect(201)
        assert bad["status"] == {"authenticated": False, "error": "invalid bearer token"}


def test_a_token_review_needs_a_token_where_auth_is_required(
    tls_server: FakeApiServer, make_api: type[Api]
) -> None:
    for server in (tls_server, FakeApiServer(require_auth=True).start()):
        try:
            anonymous = make_api(server)
            valid = anonymous.post(TOKEN_REVIEWS, token_review(server.token_for("victim")))
            assert valid.expect(401) == UNAUTHORIZED
            assert anonymous.post(TOKEN_REVIEWS, token_review("forged")).expect(401) == (
                UNAUTHORIZED
            )
            caller = make_api(server, server.token_for("caller"))
            answer = caller.post(TOKEN_REVIEWS, token_review(server.token_for("victim")))
            assert answer.expect(201)["status"]["user"]["username"] == "victim"
        finally:
            server.stop()


def test_over_plain_http_anonymous_may_review_tokens(make_api: type[Api]) -> None:
    # Over http tokens cross the wire in the clear and Go clients send none: a webhook that
    # loads its kubeconfig with client-go is anonymous there, and must still work.
    with FakeApiServer() as server:
        ok = make_api(server).post(TOKEN_REVIEWS, token_review(server.token_for("replica-1")))
        assert ok.expect(201)["status"]["user"]["username"] == "replica-1"


# ------------------------------------------------------------------------------ real clients


def test_the_python_client_is_refused_without_a_token_and_served_with_one(
    tls_server: FakeApiServer,
) -> None:
    path = tls_server.kubeconfig("python")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api:
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert "default" in names
        # The same configuration without its token.
        api.configuration.api_key = {}
        refused: tuple[int, JSON] | None = None
        # Not pytest.raises: its ExceptionInfo, a local, would make a reference cycle with
        # this frame that keeps the client's TLS connection open past the server's stop.
        try:
            client.CoreV1Api(api).list_namespace()
        except ApiException as e:
            refused = (e.status, json.loads(e.body))
    assert refused == (401, UNAUTHORIZED)


def without_token(server: FakeApiServer, path: Path, user: JSON) -> Path:
    """Write a kubeconfig for ``server`` whose user is ``user`` instead of a token."""
    cfg = server.kubeconfig_dict("nobody")
    cfg["users"][0]["user"] = user
    path.write_text(yaml.safe_dump(cfg))
    return path


@needs_kubectl
def test_kubectl_over_tls_needs_the_kubeconfigs_token(
    tls_server: FakeApiServer, tmp_path: Path
) -> None:
    kubectl = Kubectl(tls_server, tmp_path)
    assert "No resources found" in kubectl("get", "configmaps").stderr
    assert ["Username", "kubectl"] in [
        line.split() for line in kubectl("auth", "whoami").ok().splitlines()
    ]
    # A kubeconfig left from an earlier server: its token was never issued here.
    with FakeApiServer(tls=True) as earlier:
        stale = earlier.kubeconfig_dict("kubectl")
    stale["clusters"] = tls_server.kubeconfig_dict("kubectl")["clusters"]
    kubectl.kubeconfig.write_text(yaml.safe_dump(stale))
    refused = kubectl("get", "configmaps")
    assert refused.rc == 1 and "error: You must be logged in to the server" in refused.stderr
    # No token at all (kubectl prompts when a user has no credentials, so it gets
    # basic ones, which kube ignores): anonymous, refused too, and served health checks.
    without_token(tls_server, kubectl.kubeconfig, {"username": "a", "password": "b"})
    refused = kubectl("get", "configmaps")
    assert refused.rc == 1 and "error: You must be logged in to the server" in refused.stderr
    assert kubectl("get", "--raw", "/healthz").ok() == "ok"
    kubectl.kubeconfig = tls_server.kubeconfig("kubectl", kubectl.kubeconfig)
    assert kubectl("get", "--raw", "/api/v1/namespaces/default").rc == 0


@needs_kubectl
def test_kubectl_over_tls_without_a_token_is_served_when_anonymous_is_allowed(
    tmp_path: Path,
) -> None:
    with FakeApiServer(tls=True, require_auth=False) as server:
        kubectl = Kubectl(server, tmp_path)
        without_token(server, kubectl.kubeconfig, {"username": "a", "password": "b"})
        rows = [line.split() for line in kubectl("auth", "whoami").ok().splitlines()]
        assert ["Username", "system:anonymous"] in rows


# ------------------------------------------------------------------------------ file modes


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def test_kubeconfigs_are_written_for_their_owner_only(
    tls_server: FakeApiServer, tmp_path: Path
) -> None:
    assert mode(tls_server.kubeconfig("a")) == 0o600
    # Over an existing world-readable file, and whatever the umask: the mode is the new
    # file's own, set when it was created, before the token was in it.
    old = tmp_path / "kubeconfig"
    old.write_text("old")
    old.chmod(0o644)
    previous = os.umask(0)
    try:
        written = tls_server.kubeconfig("b", old)
    finally:
        os.umask(previous)
    assert written == old and mode(old) == 0o600
    assert yaml.safe_load(old.read_text())["users"][0]["user"]["token"] == (
        tls_server.token_for("b")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]  # no temporary left


# ------------------------------------------------------------------------------ the certificate


def served_not_after(server: FakeApiServer) -> datetime.datetime:
    """The notAfter of the certificate ``server`` presents in its handshake."""
    context = ssl.create_default_context(cafile=str(server.ca_path))
    with (
        socket.create_connection((server.host, server.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server.host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).not_valid_after_utc


@pytest.mark.parametrize(
    "validity", [None, datetime.timedelta(minutes=3), datetime.timedelta(days=800)]
)
def test_the_certificate_is_valid_for_cert_validity(validity: datetime.timedelta | None) -> None:
    expected = validity if validity is not None else datetime.timedelta(days=365)
    kwargs = {} if validity is None else {"cert_validity": validity}
    second = datetime.timedelta(seconds=1)  # notAfter has whole seconds
    before = datetime.datetime.now(datetime.UTC)
    with FakeApiServer(tls=True, **kwargs) as server:
        after = datetime.datetime.now(datetime.UTC)
        assert before + expected - second <= served_not_after(server) <= after + expected


def test_a_certificate_validity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cert_validity must be positive"):
        FakeApiServer(tls=True, cert_validity=datetime.timedelta(0))
