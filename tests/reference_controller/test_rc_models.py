"""The pydantic models and ``crd.yaml`` describe the same API; wire format of the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
import yaml

from reference_controller import crd_manifest
from reference_controller.models import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    ChannelName,
    DeliveryAttempt,
    NotificationSpec,
    NotificationStatus,
    Phase,
    format_time,
    parse_spec,
    parse_status,
    status_to_wire,
)

_KEEP = ("type", "enum", "default", "minimum", "maximum", "minLength", "maxLength")


def _crd() -> dict[str, Any]:
    return yaml.safe_load(crd_manifest())


def _version(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return version


def _root_schema() -> dict[str, Any]:
    return _version(_crd())["schema"]["openAPIV3Schema"]


def normalize_crd(node: dict[str, Any]) -> dict[str, Any]:
    """The parts both sides express: type, enum, default, bounds, fields, required, items."""
    out: dict[str, Any] = {k: node[k] for k in _KEEP if k in node}
    if node.get("format") == "date-time":
        out["format"] = "date-time"
    if "properties" in node:
        out["properties"] = {k: normalize_crd(v) for k, v in node["properties"].items()}
        out["required"] = sorted(node.get("required", []))
    if "items" in node:
        out["items"] = normalize_crd(node["items"])
    if "additionalProperties" in node:
        out["additionalProperties"] = normalize_crd(node["additionalProperties"])
    return out


def normalize_pydantic(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Resolve refs and optionals of a pydantic JSON schema into the same shape."""
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return normalize_pydantic(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o.get("type") != "null"]
        assert len(options) == 1, node
        merged = {**options[0], **{k: v for k, v in node.items() if k != "anyOf"}}
        return normalize_pydantic(merged, defs)
    out: dict[str, Any] = {k: node[k] for k in _KEEP if k in node}
    if node.get("format") == "date-time":
        out["format"] = "date-time"
    if "properties" in node:
        out["properties"] = {k: normalize_pydantic(v, defs) for k, v in node["properties"].items()}
        out["required"] = sorted(node.get("required", []))
    if "items" in node:
        out["items"] = normalize_pydantic(node["items"], defs)
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = normalize_pydantic(node["additionalProperties"], defs)
    return out


def _model_tree(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    return normalize_pydantic(schema, schema.get("$defs", {}))


def _compare(path: str, crd: dict[str, Any], model: dict[str, Any], *, spec: bool) -> list[str]:
    problems: list[str] = []
    for key in ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "format"):
        if crd.get(key) != model.get(key):
            problems.append(f"{path}: {key} crd={crd.get(key)!r} model={model.get(key)!r}")
    if "default" in crd and crd["default"] != model.get("default"):
        problems.append(f"{path}: default crd={crd['default']!r} model={model.get('default')!r}")
    # Under spec, every meaningful model default must be served by the API server too.
    if spec and model.get("default") not in (None, [], {}) and "default" not in crd:
        problems.append(f"{path}: default {model['default']!r} missing from the CRD")
    if "properties" in crd or "properties" in model:
        crd_props, model_props = crd.get("properties", {}), model.get("properties", {})
        for name in sorted(set(crd_props) | set(model_props)):
            if name not in crd_props or name not in model_props:
                where = "CRD" if name not in crd_props else "model"
                problems.append(f"{path}.{name}: missing from the {where}")
                continue
            problems += _compare(f"{path}.{name}", crd_props[name], model_props[name], spec=spec)
        if crd.get("required", []) != model.get("required", []):
            problems.append(
                f"{path}: required crd={crd.get('required')} model={model.get('required')}"
            )
    for key in ("items", "additionalProperties"):
        if (key in crd) != (key in model):
            problems.append(f"{path}: {key} only on one side")
        elif key in crd:
            problems += _compare(f"{path}[{key}]", crd[key], model[key], spec=spec)
    return problems


@pytest.mark.parametrize(
    ("field", "model"), [("spec", NotificationSpec), ("status", NotificationStatus)]
)
def test_model_and_crd_schema_agree(field: str, model: type[pydantic.BaseModel]) -> None:
    crd = normalize_crd(_root_schema()["properties"][field])
    assert _compare(field, crd, _model_tree(model), spec=field == "spec") == []


def test_schema_comparison_detects_a_drift() -> None:
    crd = normalize_crd(_root_schema()["properties"]["spec"])
    crd["properties"]["retryPolicy"]["properties"]["maxAttempts"]["maximum"] = 11
    crd["properties"]["priority"]["enum"].remove("low")
    del crd["properties"]["retentionDays"]
    problems = _compare("spec", crd, _model_tree(NotificationSpec), spec=True)
    assert any("maxAttempts: maximum" in p for p in problems)
    assert any("priority: enum" in p for p in problems)
    assert any("retentionDays: missing from the CRD" in p for p in problems)
    status = normalize_crd(_root_schema()["properties"]["status"])
    status["properties"]["deliveryAttempts"]["items"]["properties"]["status"]["enum"].append("x")
    status["properties"]["claims"]["items"]["required"].remove("holder")
    problems = _compare("status", status, _model_tree(NotificationStatus), spec=False)
    assert any("deliveryAttempts[items].status: enum" in p for p in problems)
    assert any("claims[items]: required" in p for p in problems)


def test_crd_identity_matches_the_model_constants() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert crd["spec"]["group"] == GROUP
    assert crd["spec"]["names"]["kind"] == KIND
    assert crd["spec"]["names"]["plural"] == PLURAL
    assert crd["spec"]["names"]["shortNames"] == ["notif", "notifs"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = _version(crd)
    assert f"{GROUP}/{version['name']}" == API_VERSION == f"{GROUP}/{VERSION}"
    assert version["subresources"] == {"status": {}}


def test_crd_printer_columns_and_immutability_rule() -> None:
    version = _version(_crd())
    columns = [(c["name"], c["jsonPath"]) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Type", ".spec.type"),
        ("Priority", ".spec.priority"),
        ("Phase", ".status.phase"),
        ("Attempts", ".status.totalAttempts"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "spec is immutable after creation (DD-NOT-005)"}
    ]


def test_added_status_fields_are_documented_in_the_crd() -> None:
    status = _root_schema()["properties"]["status"]["properties"]
    attempt = status["deliveryAttempts"]["items"]["properties"]
    for described in (status["claims"], attempt["permanent"], attempt["nextAttemptAt"]):
        assert described["description"].startswith("Added")


def test_spec_defaults_and_bounds() -> None:
    spec = parse_spec({"spec": {"type": "simple", "subject": "s", "body": "b"}})
    assert spec.priority.value == "medium"
    assert spec.retention_days == 7
    policy = spec.effective_retry_policy
    assert (policy.max_attempts, policy.initial_backoff_seconds) == (5, 30)
    assert (policy.backoff_multiplier, policy.max_backoff_seconds) == (2, 480)
    partial = parse_spec(
        {"spec": {"type": "simple", "subject": "s", "body": "b", "retryPolicy": {"maxAttempts": 2}}}
    )
    assert partial.effective_retry_policy.initial_backoff_seconds == 30
    for bad in (
        {"subject": "x" * 501},
        {"subject": ""},
        {"priority": "urgent"},
        {"channels": ["pager"]},
        {"retryPolicy": {"maxAttempts": 11}},
        {"retryPolicy": {"maxBackoffSeconds": 59}},
        {"retentionDays": 0},
    ):
        with pytest.raises(pydantic.ValidationError):
            parse_spec({"spec": {"type": "simple", "subject": "s", "body": "b", **bad}})


def test_spec_wire_names_round_trip() -> None:
    wire = {
        "type": "escalation",
        "priority": "critical",
        "recipients": [{"email": "a@b.c", "webhookURL": "https://x"}],
        "subject": "s",
        "body": "b",
        "channels": ["console", "slack"],
        "metadata": {"remediationRequestName": "rr-1"},
        "actionLinks": [{"service": "grafana", "url": "https://g", "label": "Dashboard"}],
        "retryPolicy": {
            "maxAttempts": 5,
            "initialBackoffSeconds": 30,
            "backoffMultiplier": 2,
            "maxBackoffSeconds": 480,
        },
        "fileDeliveryConfig": {"outputDirectory": "out", "format": "yaml"},
        "retentionDays": 14,
    }
    spec = NotificationSpec.model_validate(wire)
    assert spec.recipients[0].webhook_url == "https://x"
    assert spec.model_dump(mode="json", by_alias=True, exclude_none=True) == wire


def test_status_timestamps_have_microseconds_and_utc() -> None:
    moment = datetime(2025, 12, 26, 11, 0, 0, 1234, tzinfo=timezone(timedelta(hours=1)))
    attempt = DeliveryAttempt(
        channel=ChannelName.SLACK, attempt=1, timestamp=moment, status="failed", permanent=True
    )
    status = NotificationStatus(phase=Phase.SENDING, delivery_attempts=(attempt,))
    wire = status_to_wire(status)
    assert wire["deliveryAttempts"][0]["timestamp"] == "2025-12-26T10:00:00.001234Z"
    assert "error" not in wire["deliveryAttempts"][0]  # absent values are omitted
    assert "completionTime" not in wire
    assert parse_status({"status": wire}) == status
    assert format_time(datetime(2025, 1, 1)) == "2025-01-01T00:00:00.000000Z"  # naive = UTC


def test_status_accepts_second_precision_times_and_ignores_unknown_fields() -> None:
    status = parse_status(
        {"status": {"phase": "Sent", "completionTime": "2025-12-26T10:00:00Z", "kopf": {}}}
    )
    assert status.completion_time == datetime(2025, 12, 26, 10, tzinfo=UTC)
    assert parse_status({}) == NotificationStatus()
