"""The media types of request bodies the server reads, and which patch types each kind takes.

The wire (http.py) answers 415 for a type it does not take; the store applies the patch
types only, and is never asked for another.
"""

from __future__ import annotations

from . import errors

__all__ = [
    "APPLY_PATCH",
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_PATCH",
    "patch_types",
    "unsupported_patch",
]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
# Every patch type the server knows, in the order its first 415 lists them.
PATCH_TYPES = (MERGE_PATCH, JSON_PATCH, STRATEGIC_PATCH, APPLY_PATCH)


def patch_types(builtin: bool) -> tuple[str, ...]:
    """The patch types a kind takes, in kube's order: strategic merge only for built-ins
    (a custom resource has no patch strategy to merge by)."""
    if builtin:
        return (JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH, APPLY_PATCH)
    return (JSON_PATCH, MERGE_PATCH, APPLY_PATCH)


def unsupported_patch(builtin: bool) -> errors.UnsupportedMediaType:
    """kube's 415 for a patch type the kind does not take (kubectl and lightkube print it
    verbatim, server-side apply included)."""
    return errors.UnsupportedMediaType(
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(patch_types(builtin))
    )
