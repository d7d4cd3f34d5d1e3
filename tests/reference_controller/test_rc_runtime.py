"""Registries, settings, the CLI pieces and the API client, without an API server."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import kopf
import pytest
import yaml
from aiohttp import web
from rc_http import serve
from rc_memapi import MemoryApi

from reference_controller import ControllerConfig, build_registry, crd_manifest, run_operator
from reference_controller.__main__ import JsonFormatter, main
from reference_controller.kubeapi import (
    ApiError,
    ConflictError,
    KubeApi,
    NotFoundError,
    connection_from_kubeconfig,
    static_provider,
)
from reference_controller.runtime import build_controller, configure_settings

REPO = Path(__file__).resolve().parents[2]


def _handler_ids(registry: kopf.OperatorRegistry) -> dict[str, list[str]]:
    return {
        "activities": sorted(h.id for h in registry._activities.get_all_handlers()),
        "watching": sorted(h.id for h in registry._watching.get_all_handlers()),
    }


def test_build_registry_gives_fresh_registries_with_the_handlers() -> None:
    config = ControllerConfig(identity="replica-a")
    first = build_registry(config, connection=kopf.ConnectionInfo(server="http://x"))
    second = build_registry(config, connection=kopf.ConnectionInfo(server="http://y"))
    assert first is not second
    expected = {
        "activities": ["reference-controller-cleanup", "reference-controller-login"],
        "watching": ["notificationrequest-reconcile"],
    }
    assert _handler_ids(first) == _handler_ids(second) == expected
    default = _handler_ids(kopf.get_default_registry())
    assert "notificationrequest-reconcile" not in default["watching"]


def test_build_registry_takes_a_controller_or_parts_not_both() -> None:
    controller = build_controller(ControllerConfig(identity="a"), api=MemoryApi())
    assert _handler_ids(build_registry(controller=controller))["watching"]
    with pytest.raises(TypeError, match="not both"):
        build_registry(ControllerConfig(), controller=controller)
    with pytest.raises(TypeError, match="api= or connection="):
        build_controller(ControllerConfig(), api=MemoryApi(), connection="kubeconfig")


@pytest.mark.asyncio
async def test_run_operator_refuses_a_registry_together_with_parts() -> None:
    registry = kopf.OperatorRegistry()
    with pytest.raises(TypeError, match="not both"):
        await run_operator(ControllerConfig(), registry=registry)
    with pytest.raises(TypeError, match="not both"):
        await run_operator(registry=registry, identity="x")


def test_configure_settings() -> None:
    settings = kopf.OperatorSettings()
    default_timeout = settings.persistence.consistency_timeout
    configure_settings(settings, "replica-a", embedded=True)
    assert settings.peering.standalone is True
    assert settings.posting.reporting_component == "notification-controller"
    assert settings.posting.reporting_instance == "replica-a"
    assert settings.process.ultimate_exiting_timeout is None
    assert settings.persistence.consistency_timeout == default_timeout  # kept at kopf's default
    process = kopf.OperatorSettings()
    configure_settings(process, "replica-b", embedded=False)
    assert process.process.ultimate_exiting_timeout is not None


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def test_importing_the_package_registers_nothing_globally_but_the_kopf_entry_does() -> None:
    code = (
        "import kopf, reference_controller\n"
        "r = kopf.get_default_registry()\n"
        "print(len(r._watching.get_all_handlers()))\n"
        "import reference_controller.operator as op\n"
        "op.register_default(); op.register_default()\n"
        "print(len(r._watching.get_all_handlers()))\n"
        "print(sorted(h.id for h in r._activities.get_all_handlers() if 'reference' in h.id))\n"
    )
    assert _python(code).splitlines() == [
        "0",
        "1",  # registered once, however often register_default() runs
        "['reference-controller-cleanup', 'reference-controller-login', "
        "'reference-controller-settings']",
    ]


def test_crd_command_prints_the_shipped_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    out = capsys.readouterr().out
    assert out == crd_manifest()
    assert yaml.safe_load(out)["kind"] == "CustomResourceDefinition"


def test_deploy_command_prints_crd_rbac_and_deployment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
    ]
    rules = {
        (group, resource): set(rule["verbs"])
        for rule in docs[3]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    # Exactly what the controller does: read and watch requests, PUT their status, post Events.
    assert rules[("kubernaut.ai", "notificationrequests")] == {"get", "list", "watch"}
    assert rules[("kubernaut.ai", "notificationrequests/status")] == {"get", "update"}
    assert "create" in rules[("", "events")]
    container = docs[5]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["python", "-m", "reference_controller"]
    env = {e["name"] for e in container["env"]}
    assert {"NOTIFY_IDENTITY", "NOTIFY_SLACK_WEBHOOK_URL", "NOTIFY_FILE_DIR"} <= env


def test_json_formatter_renders_structured_fields() -> None:
    record = logging.LogRecord(
        "reference_controller", logging.INFO, __file__, 1, "x %s", ("y",), None
    )
    assert json.loads(JsonFormatter().format(record))["message"] == "x y"
    record.event = "delivery.attempt"
    record.fields = {"channel": "slack", "attempt": 2}
    rendered = json.loads(JsonFormatter().format(record))
    assert (rendered["event"], rendered["channel"], rendered["attempt"]) == (
        "delivery.attempt",
        "slack",
        2,
    )


def test_connection_from_kubeconfig(tmp_path: Path) -> None:
    ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {
                    "server": "https://127.0.0.1:6443",
                    "certificate-authority-data": base64.b64encode(ca).decode(),
                },
            }
        ],
        "users": [{"name": "u", "user": {"token": "secret-token"}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    info = connection_from_kubeconfig(path)
    assert info.server == "https://127.0.0.1:6443"
    assert info.as_http_headers() == {"Authorization": "Bearer secret-token"}
    assert info.ca_path is not None and Path(os.fsdecode(info.ca_path)).read_bytes() == ca
    assert info.insecure is False


@pytest.mark.asyncio
async def test_kube_api_errors_preconditions_and_credential_refresh() -> None:
    tokens = iter(["old", "new"])
    seen: list[str] = []

    async def provider() -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=endpoint.url.rsplit("/hook", 1)[0], token=next(tokens))

    async def apiserver(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") == "Bearer old":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        if request.path.endswith("/missing"):
            return web.json_response({"reason": "NotFound", "message": "gone"}, status=404)
        if request.method == "PUT":
            body = await request.json()
            if body["metadata"]["resourceVersion"] != "7":
                return web.json_response({"reason": "Conflict", "message": "modified"}, status=409)
            return web.json_response(
                {**body, "metadata": {**body["metadata"], "resourceVersion": "8"}}
            )
        if request.method == "POST":
            return web.json_response({"reason": "Forbidden", "message": "no"}, status=403)
        return web.json_response({"metadata": {"name": "n", "resourceVersion": "7"}})

    async with serve(apiserver) as endpoint:
        api = KubeApi(provider)
        try:
            assert (await api.get_notification("default", "n"))["metadata"][
                "resourceVersion"
            ] == "7"
            assert seen[:2] == ["Bearer old", "Bearer new"]  # 401: asked the provider again
            with pytest.raises(NotFoundError):
                await api.get_notification("default", "missing")
            stale = {"metadata": {"name": "n", "namespace": "default", "resourceVersion": "6"}}
            with pytest.raises(ConflictError):
                await api.replace_notification_status(stale)
            fresh = {"metadata": {"name": "n", "namespace": "default", "resourceVersion": "7"}}
            written = await api.replace_notification_status(fresh)
            assert written["metadata"]["resourceVersion"] == "8"
            with pytest.raises(ValueError, match="resourceVersion"):
                await api.replace_notification_status({"metadata": {"name": "n"}})
            with pytest.raises(ApiError) as error:
                await api.create_event("default", {"reason": "x"})
            assert error.value.status == 403
        finally:
            await api.close()
    assert KubeApi.notification_path("team a", "n/1", subresource="status") == (
        "/apis/kubernaut.ai/v1alpha1/namespaces/team%20a/notificationrequests/n%2F1/status"
    )
    assert (await static_provider(kopf.ConnectionInfo(server="http://z"))()).server == "http://z"


def test_default_identity_is_host_and_pid() -> None:
    assert ControllerConfig().identity.endswith(f"-{os.getpid()}")
