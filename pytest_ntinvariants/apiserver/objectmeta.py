"""Object metadata as kube-apiserver reads, fills in and validates it, for every kind.

The decoding checks (what kube's JSON decoding refuses with 400 before any validation),
ObjectMeta validation (names, labels, annotations, finalizers, ownerReferences), the label
selectors kinds hold (ValidateLabelSelector, beside ValidateLabels, and FormatLabelSelector,
as kubectl's columns and a Scale show one), what an update may do to the fields the system
owns (rest.BeforeUpdate), and the omission of empty collections (ObjectMeta's omitempty).
Pure functions of the metadata: no store, no kind.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from . import errors
from .errors import Cause
from .gotext import field_forbidden, field_invalid, field_required, go_json, go_json_type, go_quote
from .resources import ResourceType

__all__ = [
    "VALIDATED_META",
    "as_meta_time",
    "bad_label_value",
    "bad_meta_key",
    "bad_name",
    "check_type_meta",
    "drop_empty_meta",
    "format_label_selector",
    "immutable",
    "label_selector_causes",
    "now_rfc3339",
    "object_meta",
    "settle_namespace",
    "system_meta_update",
    "validate_meta",
]

JSON = dict[str, Any]

_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# The metadata fields validate_meta reads besides the name.
VALIDATED_META = ("labels", "annotations", "finalizers", "ownerReferences")


def now_rfc3339(clock: Callable[[], datetime]) -> str:
    """The clock's time as kube writes a metav1.Time: RFC 3339 in UTC, to the second."""
    return clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_META_STRINGS = (
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "selfLink",
)


def object_meta(obj: JSON) -> JSON:
    """The body's metadata (made empty if absent), refused (400) where kube's decoding
    would refuse it."""
    meta = obj.get("metadata")
    if meta is None:
        meta = obj["metadata"] = {}
    if not isinstance(meta, dict):
        raise errors.BadRequest("metadata must be an object")
    # What kube's JSON decoding refuses (400) before any validation: a number for a name
    # would otherwise be stored and served as a number, and a string of ownerReferences
    # would break the garbage collector on every later delete.
    for key in _META_STRINGS:
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            raise errors.BadRequest(
                f"json: cannot unmarshal {go_json_type(value)} into Go "
                f"struct field ObjectMeta.metadata.{key} of type string"
            )
    refs = meta.get("ownerReferences")
    if refs is not None and not (isinstance(refs, list) and all(isinstance(r, dict) for r in refs)):
        raise errors.BadRequest(
            "json: cannot unmarshal into Go struct field ObjectMeta.metadata.ownerReferences "
            "of type []v1.OwnerReference"
        )
    return meta


def bad_meta_key(key: str) -> bool:
    """Whether a label or annotation key is not a qualified name (optional DNS prefix)."""
    prefix, _, local = key.rpartition("/")
    return (
        not local
        or len(local) > 63
        or not _QUALIFIED.match(local)
        or bool(prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)))
    )


def bad_label_value(value: str) -> bool:
    """Whether a label value is not a valid one (at most 63 characters, qualified-name shaped)."""
    return len(value) > 63 or not _LABEL_VALUE.match(value)


def bad_name(name: str, label_named: bool) -> bool:
    """Whether a name is not a DNS-1123 label (``label_named``) or subdomain."""
    return not (_DNS1123_LABEL if label_named else _DNS1123_SUBDOMAIN).match(name)


# Every write re-validates the whole metadata, and the same names, label and annotation keys
# and label values come back write after write: the regex checks above are pure functions of
# the string, so their results are cached (exact ``str`` only, so a str subclass with its own
# equality can never hit another string's entry).
_bad_meta_key_cached = functools.lru_cache(maxsize=16384)(bad_meta_key)
_bad_label_value_cached = functools.lru_cache(maxsize=16384)(bad_label_value)
_bad_name_cached = functools.lru_cache(maxsize=16384)(bad_name)


_SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def label_selector_causes(path: str, selector: Any) -> list[Cause]:
    """kube's ValidateLabelSelector: label keys and values, and each requirement's operator
    with the values it takes."""
    if not isinstance(selector, dict):
        return []
    causes = []
    labels = selector.get("matchLabels")
    for key, value in (labels or {}).items() if isinstance(labels, dict) else ():
        if bad_meta_key(str(key)):
            causes.append(
                field_invalid(
                    f"{path}.matchLabels",
                    str(key),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character",
                )
            )
        if isinstance(value, str) and bad_label_value(value):
            causes.append(
                field_invalid(
                    f"{path}.matchLabels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character",
                )
            )
    expressions = selector.get("matchExpressions")
    for i, req in enumerate(expressions if isinstance(expressions, list) else ()):
        if not isinstance(req, dict):
            continue
        at = f"{path}.matchExpressions[{i}]"
        operator, values = req.get("operator"), req.get("values") or []
        if operator in ("In", "NotIn") and not values:
            causes.append(
                field_required(
                    f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"
                )
            )
        elif operator in ("Exists", "DoesNotExist") and values:
            causes.append(
                field_forbidden(
                    f"{at}.values",
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )
        elif operator not in _SELECTOR_OPERATORS:
            causes.append(
                field_invalid(f"{at}.operator", operator, "not a valid selector operator")
            )
        if bad_meta_key(str(req.get("key") or "")):
            causes.append(
                field_invalid(
                    f"{at}.key",
                    str(req.get("key") or ""),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character",
                )
            )
    return causes


def format_label_selector(selector: Any) -> str:
    """A LabelSelector as kube prints it (``metav1.FormatLabelSelector``): requirements
    sorted by key, ``k=v``, ``k in (a,b)``, ``k notin (a)``, ``k``, ``!k``."""
    if not isinstance(selector, dict):
        return ""
    terms: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        terms.append((str(key), f"{key}={value}"))
    for expr in selector.get("matchExpressions") or ():
        if not isinstance(expr, dict):
            continue
        key, op = str(expr.get("key", "")), expr.get("operator")
        values = ",".join(sorted(str(v) for v in expr.get("values") or ()))
        shown = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(str(op), "")
        if shown:
            terms.append((key, shown))
    return ",".join(text for _, text in sorted(terms, key=lambda t: t[0]))


def drop_empty_meta(meta: JSON) -> None:
    """Omit empty metadata collections, as kube's typed ObjectMeta (omitempty) does.

    Custom resources too: apiextensions coerces their metadata through ObjectMeta. So a
    patch removing the last annotation leaves no ``annotations: {}`` behind.
    """
    for key in ("labels", "annotations", "finalizers", "ownerReferences", "managedFields"):
        if key in meta and meta[key] in (None, {}, []):
            del meta[key]


def immutable(field: str, value: Any) -> Cause:
    """The cause of an update that changed an immutable metadata field."""
    # field.ErrorBody renders a value that is not a Go string or number as its JSON.
    return Cause(f"metadata.{field}", f"Invalid value: {go_json(value)}: field is immutable")


def as_meta_time(value: str) -> str:
    """A timestamp as kube shows it once decoded: metav1.Time's JSON, RFC 3339 in UTC to the
    second (a client may send "+00:00" or fractions; the python client's models do)."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return value
    if when.tzinfo is None:
        return value  # (not RFC 3339: kube's decoding refuses it)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def system_meta_update(meta: JSON, old: JSON) -> list[Cause]:
    """What kube's rest.BeforeUpdate does to the system fields of an update's metadata
    (in place), and the causes ValidateObjectMetaAccessorUpdate then finds in them
    (apiserver registry/rest/update.go; apimachinery api/validation/objectmeta.go).

    BeforeUpdate keeps the stored uid when the request sends none, always restores the
    stored creationTimestamp, restores a stored deletionTimestamp, and the stored grace
    period when the request drops it. What still differs is refused (422), not ignored:
    another uid, a deletionTimestamp on an object not being deleted, another grace period,
    and finalizers added to an object being deleted.
    """
    causes: list[Cause] = []
    if "deletionTimestamp" in old:
        kept = old.get("finalizers") or ()
        added = [f for f in meta.get("finalizers") or () if f not in kept]
        if added:
            # (ValidateNoNewFinalizers prints the sorted set with Go's %#v)
            shown = ", ".join(go_quote(f) for f in sorted(set(added)))
            causes.append(
                Cause(
                    "metadata.finalizers",
                    f"Forbidden: no new finalizers can be added if the object is being "
                    f"deleted, found new finalizers []string{{{shown}}}",
                    "FieldValueForbidden",
                )
            )
    uid = meta.get("uid")
    if not uid:
        meta["uid"] = old.get("uid")
    elif uid != old.get("uid"):
        causes.append(immutable("uid", uid))
    meta["creationTimestamp"] = old.get("creationTimestamp")
    if "deletionTimestamp" in old:
        meta["deletionTimestamp"] = old["deletionTimestamp"]
    elif meta.get("deletionTimestamp") is not None:
        causes.append(immutable("deletionTimestamp", as_meta_time(meta["deletionTimestamp"])))
    else:
        meta.pop("deletionTimestamp", None)
    grace = meta.get("deletionGracePeriodSeconds")
    old_grace = old.get("deletionGracePeriodSeconds")
    if grace is None:
        if old_grace is None:
            meta.pop("deletionGracePeriodSeconds", None)
        else:
            meta["deletionGracePeriodSeconds"] = old_grace
    elif grace != old_grace:
        causes.append(immutable("deletionGracePeriodSeconds", grace))
    return causes


def validate_meta(meta: JSON, *, label_named: bool = False) -> list[Cause]:
    """kube's ValidateObjectMeta on a write's metadata: the name (a DNS-1123 label for the
    kinds that want one, ``label_named``, else a subdomain), label and annotation keys and
    label values, finalizers, and the ownerReferences the garbage collector relies on."""
    causes: list[Cause] = []
    name = str(meta.get("name", ""))
    pattern, limit = (_DNS1123_LABEL, 63) if label_named else (_DNS1123_SUBDOMAIN, 253)
    if len(name) > limit:
        causes.append(
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": must be no more than {limit} characters',
            )
        )
    elif (_bad_name_cached if type(name) is str else bad_name)(name, label_named):
        what = "RFC 1123 label" if label_named else "RFC 1123 subdomain"
        chars = "'-'" if label_named else "'-' or '.'"
        causes.append(
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": a lowercase {what} must consist of lower case '
                f"alphanumeric characters, {chars}, and must start and end with an "
                f"alphanumeric character (regex used for validation is "
                f"'{pattern.pattern[1:-1]}')",
            )
        )
    for section in ("labels", "annotations"):
        values = meta.get(section)
        if values is None:
            continue
        if not isinstance(values, dict):
            causes.append(
                Cause(
                    f"metadata.{section}",
                    "Invalid value: must be a map",
                    "FieldValueTypeInvalid",
                )
            )
            continue
        for k, v in values.items():
            key = str(k)
            if (_bad_meta_key_cached if type(key) is str else bad_meta_key)(key):
                causes.append(
                    Cause(
                        f"metadata.{section}",
                        f'Invalid value: "{k}": name part must consist of '
                        f"alphanumeric characters, '-', '_' or '.', and must "
                        f"start and end with an alphanumeric character",
                    )
                )
            if not isinstance(v, str):
                causes.append(
                    Cause(
                        f"metadata.{section}.{k}",
                        "Invalid value: must be a string",
                        "FieldValueTypeInvalid",
                    )
                )
            elif section == "labels" and (
                _bad_label_value_cached if type(v) is str else bad_label_value
            )(v):
                causes.append(
                    Cause(
                        "metadata.labels",
                        f'Invalid value: "{v}": a valid label must be an empty '
                        f"string or consist of alphanumeric characters, '-', '_' "
                        f"or '.', and must start and end with an alphanumeric "
                        f"character",
                    )
                )
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        causes.append(
            Cause(
                "metadata.finalizers",
                "Invalid value: must be a list of strings",
                "FieldValueTypeInvalid",
            )
        )
    for ref in meta.get("ownerReferences") or ():
        # kube's ValidateOwnerReferences; the garbage collector relies on uid.
        for key, what in (
            ("apiVersion", "version"),
            ("kind", "kind"),
            ("name", "name"),
            ("uid", "uid"),
        ):
            value = ref.get(key)
            if not isinstance(value, str) or not value:
                causes.append(
                    Cause(
                        f"metadata.ownerReferences.{key}",
                        f'Invalid value: "{value or ""}": {what} must not be empty',
                    )
                )
    return causes


def check_type_meta(body: Any, rt: ResourceType) -> JSON:
    """The body as an object of ``rt``: its apiVersion and kind set to the type's, refused
    (400) if it is no object or names another kind (or a group other than the type's)."""
    if not isinstance(body, dict):
        raise errors.BadRequest(
            f"the body of the request must be a {rt.kind} object, not "
            f"{type(body).__name__ if body is not None else 'null'}"
        )
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if (
        api_version not in (None, "")
        and api_version != rt.api_version
        and not (
            # Any served version of the same group may be written through another.
            str(api_version).rpartition("/")[0] == rt.group and rt.group
        )
    ):
        raise errors.BadRequest(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})"
        )
    if kind not in (None, "") and kind != rt.kind:
        raise errors.BadRequest(
            f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
        )
    body["apiVersion"], body["kind"] = rt.api_version, rt.kind
    return body


def settle_namespace(rt: ResourceType, namespace: str, meta: JSON) -> str:
    """The namespace of a create: the request's and the body's, which must agree (400);
    none for a cluster-scoped type. Written into ``meta``."""
    if not rt.namespaced:
        meta.pop("namespace", None)
        return ""
    body_ns = meta.get("namespace")
    if body_ns and namespace and body_ns != namespace:
        raise errors.BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    ns = namespace or body_ns or ""
    if not ns:
        raise errors.BadRequest("the namespace of the object must be set")
    meta["namespace"] = ns
    return str(ns)
