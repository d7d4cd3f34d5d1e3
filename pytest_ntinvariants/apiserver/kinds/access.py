"""Who may do what: RBAC's roles and bindings, stored as given, and the access reviews,
created and answered but never stored (``reviews.py`` answers them)."""

from __future__ import annotations

from ..resources import builtin_type
from .base import Builtin

__all__ = ["CLUSTER_ROLES", "CLUSTER_ROLE_BINDINGS", "REVIEWS", "ROLES", "ROLE_BINDINGS"]

_RBAC = "rbac.authorization.k8s.io"

ROLES = Builtin(builtin_type(_RBAC, "v1", "roles", "Role", generation=False))
ROLE_BINDINGS = Builtin(builtin_type(_RBAC, "v1", "rolebindings", "RoleBinding", generation=False))
CLUSTER_ROLES = Builtin(
    builtin_type(_RBAC, "v1", "clusterroles", "ClusterRole", namespaced=False, generation=False)
)
CLUSTER_ROLE_BINDINGS = Builtin(
    builtin_type(
        _RBAC,
        "v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        namespaced=False,
        generation=False,
    )
)
# Only created (the local review is the one namespaced).
REVIEWS = tuple(
    Builtin(
        builtin_type(
            group, "v1", plural, kind, namespaced=plural.startswith("local"), verbs=("create",)
        )
    )
    for group, plural, kind in (
        ("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"),
        ("authorization.k8s.io", "selfsubjectrulesreviews", "SelfSubjectRulesReview"),
        ("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"),
        ("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview"),
        ("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"),
        ("authentication.k8s.io", "tokenreviews", "TokenReview"),
    )
)
