"""Data specs of the original integration suite: what the API server accepts and refuses,
what survives the round trip, and what the endpoints receive.

Ports of the original controller's integration specs 22, 23, 26, 27,
31 and 37-50 (CRD lifecycle and data validation), 82 (max-size payload), 90-98 (priority)
and 99-106 (skip-reason labels), with two replicas and the built-in invariants on.

The original only checked that such requests reached Sent; here the fake endpoints show
what was actually delivered: the subject and body verbatim (unicode, HTML, 500 characters,
11 KB), and secrets redacted in what Slack and the webhook RECEIVED while the stored spec
keeps them. Creates and updates the API server refuses go through the official
``kubernetes`` client, so the assertions are on the error a client sees.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client import ApiException
from nrkit import (
    API_VERSION,
    GROUP,
    KIND,
    NR_INVARIANTS,
    PLURAL,
    SCENARIO_TIMEOUTS,
    VERSION,
    kube_create,
    nr,
    nr_versions,
    policy,
    status_of,
    wait_terminal,
)

import reference_controller as rc
from pytest_ntinvariants.harness import Harness
from pytest_ntinvariants.packs.notifications import assert_attempts
from pytest_ntinvariants.sinks import Sink

pytestmark = [NR_INVARIANTS, pytest.mark.ntinv_replicas(2)]


@pytest.fixture
def nr_config(nr_config: rc.ControllerConfig) -> rc.ControllerConfig:
    """The suite's configuration with patient deliveries (``nrkit.SCENARIO_TIMEOUTS``)."""
    return nr_config.replace(**SCENARIO_TIMEOUTS)


def _sent(ntinv: Harness, name: str) -> dict[str, Any]:
    """Wait until ``name`` is terminal; assert it is Sent with exactly one attempt per
    channel, all successful; return the object."""
    obj = wait_terminal(ntinv, name)
    status = status_of(obj)
    assert status["phase"] == "Sent", (name, status)
    channels = list(dict.fromkeys(obj["spec"].get("channels", [])))
    assert [a["channel"] for a in status["deliveryAttempts"]] == channels, name
    assert {a["status"] for a in status["deliveryAttempts"]} == {"success"}, name
    return obj


def _refused(kube: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create through the client, expect 422 Invalid; return the Status body."""
    with pytest.raises(ApiException) as info:
        kube_create(kube, manifest)
    assert info.value.status == 422, info.value.body
    body: dict[str, Any] = json.loads(info.value.body)
    assert body["reason"] == "Invalid"
    return body


# -- content delivered verbatim (data_validation_test.go, performance_edge_cases_test.go) ---

UNICODE_SUBJECT = "\N{ROCKET} Deploy 你好 \N{WHITE HEAVY CHECK MARK} finished"
UNICODE_BODY = "Résumé: naïve café \N{ROCKET} 你好 \N{WHITE HEAVY CHECK MARK} — ok"
HTML_SUBJECT = '<script>alert("x")</script> & <b>bold</b>'
HTML_BODY = "<h1>Title</h1>\n<a href=\"https://example.com/?a=1&b=2\">link</a> 'q' \\ %s {{x}}\t€"


def test_content_is_delivered_verbatim(ntinv: Harness, slack: Sink, webhook: Sink) -> None:
    """Specs 37, 38, 39, 44, 46, 82: a 500-character subject (the maximum), an 11 KB
    body, unicode and emoji, HTML and special characters: accepted, Sent, kept in the spec
    and received unchanged by the endpoint (Slack's message text is the subject, its
    section the body; the webhook document carries the whole body)."""
    subject_500 = ("Disk almost full on node-7 " * 20)[:500]
    large_body = "".join(f"line {i:04d}: kubelet reports pressure on /var\n" for i in range(260))
    assert len(large_body) > 11_000
    cases = {
        "nr-subject-500": nr("nr-subject-500", ["slack"], subject=subject_500),
        "nr-large-body": nr("nr-large-body", ["webhook"], body=large_body),
        "nr-unicode": nr("nr-unicode", ["slack"], subject=UNICODE_SUBJECT, body=UNICODE_BODY),
        "nr-html": nr("nr-html", ["slack"], subject=HTML_SUBJECT, body=HTML_BODY),
    }
    for manifest in cases.values():
        ntinv.apply(manifest)
    for name, manifest in cases.items():
        spec = _sent(ntinv, name)["spec"]
        assert (spec["subject"], spec["body"]) == (
            manifest["spec"]["subject"],
            manifest["spec"]["body"],
        ), name
        sink = webhook if spec["channels"] == ["webhook"] else slack
        [call] = sink.calls_for(name=name)
        if sink is webhook:
            assert (call.json["subject"], call.json["body"]) == (spec["subject"], spec["body"])
        else:
            section = call.json["blocks"][1]["text"]["text"]
            assert (call.json["text"], section) == (spec["subject"], spec["body"]), name
    assert len(slack.calls_for(name="nr-subject-500")[0].json["text"]) == 500


# -- redaction (data_validation_test.go) ---------------------------------------------------

SECRETS = {
    # spec 47: a password in the body
    "nr-password": (
        "Database connection failed",
        "psql: connect to db-1 failed: password=hunter2 user=app",
        ["hunter2"],
    ),
    # spec 48: several kinds of secret at once
    "nr-multiple": (
        "Credentials leaked into the alert",
        "api_key=AKIA0123456789ABCDEF token: s3cr3t-t0ken-value "
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlMQ",
        ["AKIA0123456789ABCDEF", "s3cr3t-t0ken-value", "eyJhbGciOiJIUzI1NiJ9"],
    ),
    # spec 49: the alert's context survives the redaction
    "nr-context": (
        "prod-app: authentication failed on app-server-1",
        "prod-app on app-server-1: authentication failed for admin (secret=Zq9-wX!v)",
        ["Zq9-wX!v"],
    ),
    # spec 50: credentials inside a URL
    "nr-url": (
        "Webhook relay down",
        "POST https://relay:pa55w0rd@hooks.example.com/v1/alerts returned 503",
        ["pa55w0rd"],
    ),
}


def test_secrets_are_redacted_in_what_endpoints_receive(
    ntinv: Harness, slack: Sink, webhook: Sink
) -> None:
    """Specs 47-50 (the original asserted only Sent): the secrets never reach Slack or the
    webhook (neither in the subject, the body nor the metadata), the surrounding context
    does (spec 49: "prod-app", "app-server-1", "authentication failed"), and the stored
    spec is unchanged."""
    for name, (subject, body, _) in SECRETS.items():
        metadata = {"dsn": "postgres://app:dbpass99@db-1:5432/alerts"}
        ntinv.apply(nr(name, ["slack", "webhook"], subject=subject, body=body, metadata=metadata))
    for name, (subject, body, secrets) in SECRETS.items():
        spec = _sent(ntinv, name)["spec"]
        assert (spec["subject"], spec["body"]) == (subject, body), name
        assert spec["metadata"]["dsn"] == "postgres://app:dbpass99@db-1:5432/alerts"
        calls = slack.calls_for(name=name) + webhook.calls_for(name=name)
        assert len(calls) == 2, name
        for call in calls:
            for secret in [*secrets, "dbpass99"]:
                assert secret not in call.text, (name, call.sink, secret)
            assert "[REDACTED]" in call.text, (name, call.sink)
        [document] = [c.json for c in calls if c.sink == "webhook"]
        assert document["metadata"]["dsn"] == "postgres://[REDACTED]@db-1:5432/alerts"
    context = webhook.calls_for(name="nr-context")[0].json
    for phrase in ("prod-app", "app-server-1", "authentication failed"):
        assert phrase in context["subject"] and phrase in context["body"], phrase
    url = webhook.calls_for(name="nr-url")[0].json["body"]
    assert "https://[REDACTED]@hooks.example.com/v1/alerts" in url


# -- priority (priority_validation_test.go) ------------------------------------------------

EMOJI = {
    "critical": "\N{POLICE CARS REVOLVING LIGHT}",
    "high": "\N{WARNING SIGN}\N{VARIATION SELECTOR-16}",
    "medium": "\N{INFORMATION SOURCE}\N{VARIATION SELECTOR-16}",
    "low": "\N{SPEECH BALLOON}",
}


def test_all_priorities_are_accepted_preserved_and_delivered(ntinv: Harness, slack: Sink) -> None:
    """Specs 90-98 (BR-NOT-057): critical, high, medium and low are accepted, preserved
    through the lifecycle and Sent (no prioritisation in V1.0); an omitted priority
    defaults to medium (spec 94). Priority is cosmetic: Slack's header carries its emoji
    and the context line names it."""
    for priority in EMOJI:
        ntinv.apply(nr(f"nr-{priority}", ["slack"], priority=priority))
    defaulted = nr("nr-default", ["slack"])
    del defaulted["spec"]["priority"]
    ntinv.apply(defaulted)
    for priority in [*EMOJI, "default"]:
        name = f"nr-{priority}"
        expected = "medium" if priority == "default" else priority
        assert _sent(ntinv, name)["spec"]["priority"] == expected, name
        [call] = slack.calls_for(name=name)
        header = call.json["blocks"][0]["text"]["text"]
        assert header.startswith(EMOJI[expected] + " "), (name, header)
        context = call.json["blocks"][-1]["elements"][0]["text"]
        assert f"*Priority:* {expected}" in context, (name, context)


# -- skip-reason labels (skip_reason_routing_test.go) -------------------------------------

SKIP_REASONS = {
    "PreviousExecutionFailed": "critical",
    "ExhaustedRetries": "high",
    "ResourceBusy": "low",
    "RecentlyRemediated": "low",
}


def test_skip_reason_labels_are_preserved(ntinv: Harness, webhook: Sink) -> None:
    """Specs 99-106 (BR-NOT-065, DD-WE-004): the ``kubernaut.ai/skip-reason`` label for
    each of the 4 reasons (with severity, environment, component), a combination of
    exactly 5 labels, and no label at all: each round-trips unchanged, uses the
    ``kubernaut.ai/`` prefix (never ``kubernaut.io/``), reaches Sent, and the webhook
    document carries the labels."""
    cases: dict[str, dict[str, str]] = {}
    for reason, severity in SKIP_REASONS.items():
        cases[f"nr-skip-{reason.lower()}"] = {
            "kubernaut.ai/skip-reason": reason,
            "kubernaut.ai/severity": severity,
            "kubernaut.ai/environment": "production",
            "kubernaut.ai/component": "workflow-engine",
        }
    cases["nr-five-labels"] = {
        "kubernaut.ai/skip-reason": "ExhaustedRetries",
        "kubernaut.ai/severity": "high",
        "kubernaut.ai/environment": "staging",
        "kubernaut.ai/component": "remediation-orchestrator",
        "kubernaut.ai/notification-type": "escalation",
    }
    cases["nr-no-labels"] = {}
    for name, labels in cases.items():
        ntinv.apply(nr(name, ["webhook"], labels=labels or None))
    for name, labels in cases.items():
        obj = _sent(ntinv, name)
        assert obj["metadata"].get("labels", {}) == labels, name
        assert all(key.startswith("kubernaut.ai/") for key in labels), name
        [call] = webhook.calls_for(name=name)
        assert call.json["labels"] == labels, name
    assert len(cases["nr-five-labels"]) == 5


# -- through the kubernetes client (crd_lifecycle_test.go, data_validation_test.go) --------


def test_invalid_requests_are_refused_by_the_api_server(ntinv: Harness, kube: Any) -> None:
    """Specs 42, 43, 26: a subject over 500 characters (422 naming spec.subject and 500),
    an unknown priority (422 naming priority), names that are not DNS-1123 subdomains
    (422): refused at create, so no object, no version and no delivery exist."""
    long_subject = _refused(kube, nr("nr-long", ["console"], subject="x" * 501))
    assert "spec.subject" in long_subject["message"] and "500" in long_subject["message"]
    assert long_subject["details"]["causes"][0]["field"] == "spec.subject"
    priority = _refused(kube, nr("nr-urgent", ["console"], priority="urgent"))
    assert "priority" in priority["message"]
    for bad in ("Bad_Name", "-leading-dash", "trailing-dash-", "has space", "a" * 254):
        body = _refused(kube, nr(bad, ["console"]))
        assert body["details"]["causes"][0]["field"] == "metadata.name", bad
        assert "RFC 1123" in body["message"] or "must be no more than" in body["message"], bad
    assert ntinv.ledger.versions(kind=KIND) == []


def test_valid_names_are_accepted(ntinv: Harness, kube: Any) -> None:
    """Specs 26, 27: a valid DNS-1123 name (with dots) and a 63-character name are
    accepted and delivered."""
    for name in ("nr.with-dots.example", "n" * 63):
        kube_create(kube, nr(name, ["console"]))
    for name in ("nr.with-dots.example", "n" * 63):
        _sent(ntinv, name)


def test_all_optional_fields_round_trip(ntinv: Harness, kube: Any) -> None:
    """Specs 22, 23: minimal required fields, and all optional fields (labels,
    annotations, metadata, 2 action links, RP{5,30,2,480}, retentionDays 14, a recipient)
    round-trip unchanged through the API server, and the request is Sent. The CRD
    defaults what the minimal one left out (priority medium, retentionDays 7)."""
    minimal: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": "nr-minimal", "namespace": "default"},
        "spec": {"type": "simple", "subject": "s", "body": "b", "channels": ["console"]},
    }
    full = nr(
        "nr-full",
        ["console"],
        labels={"app": "checkout", "kubernaut.ai/severity": "high"},
        type="escalation",
        priority="critical",
        recipients=[{"email": "oncall@example.com", "slack": "#ops"}],
        metadata={"remediationRequestName": "rr-42", "cluster": "prod-eu"},
        actionLinks=[
            {"service": "grafana", "url": "https://grafana.example/d/1", "label": "Dashboard"},
            {"service": "prometheus", "url": "https://prom.example/graph", "label": "Query"},
        ],
        retryPolicy=policy(5, 30, 2, 480),
        retentionDays=14,
    )
    full["metadata"]["annotations"] = {"kubernaut.ai/runbook": "https://runbooks.example/disk"}
    for manifest in (minimal, full):
        kube_create(kube, manifest)
    stored = _sent(ntinv, "nr-full")
    assert stored["spec"] == full["spec"]
    for key in ("labels", "annotations"):
        assert stored["metadata"][key] == full["metadata"][key], key
    minimal_spec = _sent(ntinv, "nr-minimal")["spec"]
    assert minimal_spec == {**minimal["spec"], "priority": "medium", "retentionDays": 7}


def test_spec_is_immutable_after_creation(ntinv: Harness, kube: Any) -> None:
    """Spec 31 (DD-NOT-005): once Sent, a spec update (replace or merge patch) is refused
    with 422 "spec is immutable after creation (DD-NOT-005)"; the spec and generation
    stay as created, and nothing is delivered again."""
    kube_create(kube, nr("nr-1", ["console"]))
    obj = _sent(ntinv, "nr-1")
    changed = {**obj, "spec": {**obj["spec"], "subject": "changed"}}
    attempts = [
        lambda: kube.replace_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "nr-1", changed
        ),
        lambda: kube.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "nr-1", {"spec": {"subject": "patched"}}
        ),
    ]
    for attempt in attempts:
        with pytest.raises(ApiException) as info:
            attempt()
        assert info.value.status == 422
        assert "spec is immutable after creation (DD-NOT-005)" in info.value.body
    current = ntinv.get(API_VERSION, KIND, "nr-1")
    assert current["spec"] == obj["spec"]
    assert current["metadata"]["generation"] == 1
    assert all(v.obj["spec"] == obj["spec"] for v in nr_versions(ntinv, "nr-1"))
    assert_attempts(ntinv, "nr-1", count=1)
