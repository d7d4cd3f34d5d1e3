"""Access and identity reviews: answered for the identity that asks, never stored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client

from pytest_ntinvariants.apiserver import FakeApiServer

if TYPE_CHECKING:
    from conftest import Api

AUTHZ = "/apis/authorization.k8s.io/v1"
AUTHN = "/apis/authentication.k8s.io/v1"


def review(kind: str, spec: dict[str, Any] | None = None, group: str = "authorization") -> Any:
    body: dict[str, Any] = {"apiVersion": f"{group}.k8s.io/v1", "kind": kind}
    if spec is not None:
        body["spec"] = spec
    return body


def test_self_subject_access_review_allows_and_stores_nothing(
    server: FakeApiServer, api: Api
) -> None:
    rv = server.store.resource_version
    spec = {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "x"}}
    made = api.post(f"{AUTHZ}/selfsubjectaccessreviews", review("SelfSubjectAccessReview", spec))
    answer = made.expect(201)
    assert answer["kind"] == "SelfSubjectAccessReview" and answer["spec"] == spec
    assert answer["status"]["allowed"] is True and "no RBAC" in answer["status"]["reason"]
    non_resource = {"nonResourceAttributes": {"verb": "get", "path": "/healthz"}}
    body = review("SelfSubjectAccessReview", non_resource)
    assert api.post(f"{AUTHZ}/selfsubjectaccessreviews", body).expect(201)["status"]["allowed"]
    assert server.store.resource_version == rv  # nothing written, nothing to watch
    api.get(f"{AUTHZ}/selfsubjectaccessreviews").expect_status(405, "MethodNotAllowed")


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ({}, ["spec.resourceAttributes"]),
        (
            {"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/"}},
            ["spec.nonResourceAttributes"],
        ),
    ],
)
def test_an_access_review_needs_exactly_one_kind_of_attributes(
    api: Api, spec: dict[str, Any], fields: list[str]
) -> None:
    body = review("SelfSubjectAccessReview", spec)
    reply = api.post(f"{AUTHZ}/selfsubjectaccessreviews", body).expect_status(422, "Invalid")
    assert [c["field"] for c in reply["details"]["causes"]] == fields


def test_subject_access_review_needs_a_user_or_group(api: Api) -> None:
    spec: dict[str, Any] = {"resourceAttributes": {"verb": "get", "resource": "pods"}}
    path = f"{AUTHZ}/subjectaccessreviews"
    reply = api.post(path, review("SubjectAccessReview", spec)).expect_status(422, "Invalid")
    assert [c["field"] for c in reply["details"]["causes"]] == ["spec.user"]
    answer = api.post(path, review("SubjectAccessReview", {**spec, "user": "bob"})).expect(201)
    assert answer["status"]["allowed"] is True


def test_reviews_refuse_a_body_of_another_kind(api: Api) -> None:
    path = f"{AUTHZ}/selfsubjectaccessreviews"
    api.post(path, review("SubjectAccessReview", {})).expect_status(400, "BadRequest")
    api.post(path, [1, 2]).expect_status(400, "BadRequest")


def test_rules_review_grants_everything(api: Api) -> None:
    body = review("SelfSubjectRulesReview", {"namespace": "default"})
    status = api.post(f"{AUTHZ}/selfsubjectrulesreviews", body).expect(201)["status"]
    assert status["resourceRules"] == [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}]
    assert status["incomplete"] is False


def test_whoami_and_token_reviews_know_each_identity(
    server: FakeApiServer, make_api: type[Api]
) -> None:
    alice = make_api(server, server.token_for("alice"))
    me = alice.post(
        f"{AUTHN}/selfsubjectreviews", review("SelfSubjectReview", None, "authentication")
    )
    assert me.expect(201)["status"]["userInfo"] == {
        "username": "alice",
        "groups": ["system:authenticated"],
    }
    anonymous = make_api(server, None)
    who = anonymous.post(
        f"{AUTHN}/selfsubjectreviews", review("SelfSubjectReview", None, "authentication")
    ).expect(201)
    assert who["status"]["userInfo"]["username"] == "system:anonymous"
    # A webhook checks a caller's token: the fake knows the tokens of its kubeconfigs.
    path = f"{AUTHN}/tokenreviews"
    spec = {"token": server.token_for("replica-1")}
    ok = anonymous.post(path, review("TokenReview", spec, "authentication")).expect(201)
    assert ok["status"]["authenticated"] is True
    assert ok["status"]["user"]["username"] == "replica-1"
    bad = anonymous.post(path, review("TokenReview", {"token": "forged"}, "authentication"))
    assert bad.expect(201)["status"] == {"authenticated": False, "error": "invalid bearer token"}


def test_the_python_client_reviews_access(server: FakeApiServer) -> None:
    conf = client.Configuration()
    conf.host = server.url
    conf.api_key = {"authorization": f"Bearer {server.token_for('bob')}"}
    with client.ApiClient(conf) as api_client:
        authz = client.AuthorizationV1Api(api_client)
        body = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb="delete", resource="secrets")
            )
        )
        answer = authz.create_self_subject_access_review(body)
        assert answer.status.allowed is True
