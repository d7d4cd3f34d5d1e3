"""Paths, query numbers and media types are read as kube-apiserver reads them.

Each case once took what kube refuses (Python's number syntax, a ``text/plain`` body, a
write to a discovery document) or read a path differently (an escaped slash as the
collection). They are checked with real clients: kubectl's ``--raw`` verbs send exactly
the path and query given, and the python client escapes its path parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from test_client_kubectl import Kubectl

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

CMS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def kubectl(gizmo_server: FakeApiServer, tmp_path: Path) -> Kubectl:
    """kubectl bound to ``gizmo_server``."""
    return Kubectl(gizmo_server, tmp_path)


@pytest.fixture
def core(gizmo_server: FakeApiServer) -> Iterator[client.CoreV1Api]:
    """The python client's CoreV1Api on ``gizmo_server``."""
    path = gizmo_server.kubeconfig("python")
    with config.new_client_from_config(config_file=str(path), persist_config=False) as api:
        yield client.CoreV1Api(api)


@pytest.mark.parametrize(
    "query",
    [
        "limit=1_0",
        "limit=%201",
        "limit=%D9%A1",  # an Arabic-Indic one: a digit to Python, not to Go
        "limit=99999999999999999999",
        "resourceVersion=1_0",
        "resourceVersion=-1",
        "resourceVersion=%2B1",
        "watch=1&timeoutSeconds=nan",
        "watch=1&timeoutSeconds=inf",
        "watch=1&timeoutSeconds=1e999",
    ],
)
def test_query_numbers_take_gos_syntax_only(kubectl: Kubectl, query: str) -> None:
    result = kubectl("get", "--raw", f"{CMS}?{query}")
    assert result.rc == 1, result
    assert "Error from server (BadRequest)" in result.stderr, result.stderr


def test_query_numbers_kube_takes_still_work(kubectl: Kubectl, gizmo_server: FakeApiServer) -> None:
    for name in ("a", "b"):
        gizmo_server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})
    listed = kubectl("get", "--raw", f"{CMS}?limit=%2B1").ok()
    assert '"continue"' in listed  # "+1" is Go's syntax too
    # kopf sends timeoutSeconds as str(float), so a finite decimal is read (kube: integers).
    assert kubectl("get", "--raw", f"{CMS}?watch=1&timeoutSeconds=0.05").rc == 0


def test_an_escaped_slash_names_no_object(
    core: client.CoreV1Api, api: Api, gizmo_server: FakeApiServer
) -> None:
    """``configmaps/%2F`` once decoded to ``configmaps//`` and answered the list."""
    gizmo_server.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}})
    with pytest.raises(ApiException) as raised:
        core.read_namespaced_config_map("/", "default")  # the client sends %2F
    assert raised.value.status == 404
    with pytest.raises(ApiException) as raised:
        core.delete_namespaced_config_map("a/b", "default")
    assert raised.value.status == 404
    api.get(f"{CMS}/%2F").expect_status(404, "NotFound")
    api.get(f"{CMS}//a").expect_status(404, "NotFound")
    api.delete(f"{CMS}/%2F").expect_status(404, "NotFound")
    assert [i.metadata.name for i in core.list_namespaced_config_map("default").items] == ["a"]
    # Escapes that decode to ordinary characters still name the object.
    assert api.get(f"{CMS}/%61").expect(200)["metadata"]["name"] == "a"


@pytest.mark.parametrize(
    "path", ["/api/v1", "/api", "/apis", "/apis/apps", "/apis/apps/v1", "/version"]
)
def test_discovery_documents_are_read_only(kubectl: Kubectl, api: Api, path: str) -> None:
    result = kubectl("delete", "--raw", path)
    assert result.rc == 1
    assert "Error from server (MethodNotAllowed)" in result.stderr, result.stderr
    api.post(path, {}).expect_status(405, "MethodNotAllowed")
    assert api.get(path).status == 200


@pytest.mark.parametrize("ctype", ["text/plain", "application/octet-stream", "text/html"])
def test_a_body_kube_cannot_decode_is_415(
    api: Api, core: client.CoreV1Api, ctype: str, gizmo_server: FakeApiServer
) -> None:
    rv = gizmo_server.store.resource_version
    body = {"metadata": {"name": "x"}}
    api.post(CMS, body, content_type=ctype).expect_status(415, "UnsupportedMediaType")
    assert gizmo_server.store.resource_version == rv
    # The python client's own content type, and none at all (kube defaults to JSON).
    core.create_namespaced_config_map("default", body)
    api.post(CMS, {"metadata": {"name": "y"}}, content_type=None).expect(201)


@pytest.fixture
def api(gizmo_server: FakeApiServer, make_api: type[Api]) -> Api:
    """A raw HTTP client of ``gizmo_server``."""
    return make_api(gizmo_server)


def test_a_long_label_selector_is_served(kubectl: Kubectl, gizmo_server: FakeApiServer) -> None:
    """aiohttp stops at 8 KiB request lines with a plain-text 400; kube takes 1 MiB."""
    gizmo_server.apply(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"v": "x"}}}
    )
    values = ",".join(f"value-{i:05}" for i in range(2000))  # a 24 KB query
    out = kubectl("get", "configmaps", "-l", f"v in (x,{values})", "-o", "name").ok()
    assert out.split() == ["configmap/a"]


def test_configmap_data_must_be_strings(kubectl: Kubectl) -> None:
    """kube decodes data into map[string]string: a manifest with a number there is refused
    by a real cluster, and was stored by the fake. (The python client refuses to send it.)"""
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {replicas: 3}\n"
    result = kubectl("create", "-f", "-", stdin=manifest)
    assert result.rc == 1, result
    assert (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal '
        "number into Go struct field ConfigMap.data of type string"
    ) in result.stderr
    quoted = manifest.replace("replicas: 3", 'replicas: "3"')
    assert kubectl("create", "-f", "-", stdin=quoted).ok() == "configmap/cm created\n"
