"""Access and identity reviews: the create-only kinds that are answered, never stored.

``kubectl auth can-i`` creates a SelfSubjectAccessReview, ``kubectl auth can-i --list`` a
SelfSubjectRulesReview and ``kubectl auth whoami`` a SelfSubjectReview; webhook servers
and controllers that delegate authentication create TokenReviews and SubjectAccessReviews.
kube-apiserver answers each with the object it was sent plus a ``status``, and keeps
nothing (no resourceVersion, no watch event).

The fake has no RBAC: every identity may do everything, and the answers say so, with the
identity the request came as (its kubeconfig's token, or anonymous). The one exception is
authentication's, in ``ApiHandler.identify``: over https an anonymous TokenReview gets
kube's 403 before it reaches this module.
"""

from __future__ import annotations

from typing import Any

from .errors import BadRequest, Cause, invalid
from .resources import ResourceType

__all__ = ["REVIEW_KEYS", "answer", "user_info"]

JSON = dict[str, Any]

_ALLOWED = "the fake API server has no RBAC: every request is allowed"

_SAR = "authorization.k8s.io/subjectaccessreviews"
_LOCAL_SAR = "authorization.k8s.io/localsubjectaccessreviews"
_SELF_SAR = "authorization.k8s.io/selfsubjectaccessreviews"
_SELF_RULES = "authorization.k8s.io/selfsubjectrulesreviews"
_SELF_REVIEW = "authentication.k8s.io/selfsubjectreviews"
_TOKEN_REVIEW = "authentication.k8s.io/tokenreviews"
# The storage keys of the kinds this module answers.
REVIEW_KEYS = frozenset((_SAR, _LOCAL_SAR, _SELF_SAR, _SELF_RULES, _SELF_REVIEW, _TOKEN_REVIEW))


def user_info(identity: str) -> JSON:
    """The ``UserInfo`` kube's authenticators give an identity of this server."""
    if identity == "anonymous":
        return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
    return {"username": identity, "groups": ["system:authenticated"]}


def answer(rt: ResourceType, body: Any, identity: str, tokens: dict[str, str]) -> JSON:
    """The created review: ``body`` with the ``status`` kube would fill in.

    ``tokens`` (token -> identity) is what a TokenReview checks its token against.
    Raises ``BadRequest`` for a body that is no object of this kind and ``Invalid``
    where kube's validation refuses the spec.
    """
    if not isinstance(body, dict):
        raise BadRequest(f"the body of the request must be a {rt.kind} object")
    for key, expected in (("apiVersion", rt.api_version), ("kind", rt.kind)):
        if body.get(key) not in (None, "", expected):
            raise BadRequest(
                f"the {key} in the data ({body.get(key)}) does not match the expected "
                f"{key} ({expected})"
            )
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise BadRequest(f"{rt.kind}.spec must be an object")
    if rt.key in (_SAR, _LOCAL_SAR, _SELF_SAR):
        _check_attributes(rt, spec)
        status: JSON = {"allowed": True, "reason": _ALLOWED}
    elif rt.key == _SELF_RULES:
        status = {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    elif rt.key == _SELF_REVIEW:
        status = {"userInfo": user_info(identity)}
    else:  # a TokenReview
        who = tokens.get(str(spec.get("token") or ""))
        status = (
            {"authenticated": True, "user": user_info(who), "audiences": spec.get("audiences")}
            if who is not None
            else {"authenticated": False, "error": "invalid bearer token"}
        )
        status = {k: v for k, v in status.items() if v is not None}
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return {
        "kind": rt.kind,
        "apiVersion": rt.api_version,
        "metadata": meta,
        "spec": spec,
        "status": status,
    }


def _check_attributes(rt: ResourceType, spec: JSON) -> None:
    # kube's ValidateSubjectAccessReviewSpec (the self and local kinds share its first two).
    causes = []
    if spec.get("resourceAttributes") and spec.get("nonResourceAttributes"):
        causes.append(
            Cause(
                "spec.nonResourceAttributes",
                'Invalid value: "object": cannot be specified in combination with '
                "resourceAttributes",
            )
        )
    if not spec.get("resourceAttributes") and not spec.get("nonResourceAttributes"):
        causes.append(
            Cause(
                "spec.resourceAttributes",
                'Invalid value: "null": exactly one of nonResourceAttributes or '
                "resourceAttributes must be specified",
            )
        )
    if rt.key == _SAR and not (spec.get("user") or spec.get("groups")):
        causes.append(
            Cause("spec.user", 'Invalid value: "": at least one of user or group must be specified')
        )
    if causes:
        raise invalid(rt.kind, rt.group, "", causes)
