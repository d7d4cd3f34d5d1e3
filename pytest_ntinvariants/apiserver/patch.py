"""The three PATCH flavours of kube-apiserver, applied to plain JSON values.

* ``apply_merge_patch``: JSON merge patch (RFC 7386), ``application/merge-patch+json``.
* ``apply_json_patch``: JSON patch (RFC 6902), ``application/json-patch+json``.
* ``apply_strategic_merge_patch``: strategic merge patch,
  ``application/strategic-merge-patch+json``, for built-in kinds only (the caller answers
  415 for custom resources, as kube-apiserver does).

All three return a new object and never mutate their inputs; the result shares no
mutable value with them, so the caller may edit it freely. Errors are the ``ApiError``s
kube-apiserver answers with; where the facts come from is cited next to each rule. The
kube sources read are ``k8s.io/apiserver/pkg/endpoints/handlers/patch.go`` (how errors
become HTTP codes), ``gopkg.in/evanphx/json-patch.v4`` (the JSON patch and merge patch
engine kube uses) and ``k8s.io/apimachinery/pkg/util/strategicpatch/patch.go``.

What the strategic merge patch here does not do, on purpose:

* It knows the ``patchStrategy``/``patchMergeKey`` tags of the common built-in kinds only
  (their strategies' ``patch_root`` and ``patch_structs``: Pod and the workload kinds,
  Service, Node, Namespace, ServiceAccount,
  PersistentVolumeClaim, ReplicationController, ComponentStatus, PodTemplate, plus
  ``metadata`` of every kind). Any other kind, and any field not in the table, gets the
  default strategy: objects merge, lists are replaced.
* There are no Go types behind the result, so what kube's typed round trip does after the
  merge is emulated, not performed: nulls and leftover ``$`` directive keys are dropped
  from values the patch brings in (kube decodes them into zero values that then vanish
  under ``omitempty``, or drops them as unknown fields). Type errors in the patched
  object (e.g. a string where kube has an int) are not detected.
* kube answers 500 for several malformed patches (no merge key in a merge-list item,
  unknown ``$patch`` value, mixed element types, ``$patch: merge``): those are its
  unmapped errors. Here they are ``BadRequest`` (400) with kube's message, because a
  fake must answer bad input with a 4xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import jsonpatch
import jsonpointer

from .errors import BadRequest, Cause, Invalid, RequestEntityTooLarge
from .gotext import go_v
from .jsonvalues import copy_json, json_equal
from .kinds import BUILTIN, BUILTIN_KINDS, UNSERVED_PATCH_ROOTS
from .kinds.mergekeys import DEFAULT_FIELD, OBJECT_ROOT, SHARED_STRUCTS, PatchField

__all__ = [
    "DEFAULT_FIELD",
    "MAX_JSON_PATCH_OPERATIONS",
    "PatchField",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "field_tags",
    "kind_root_type",
]

# kube-apiserver's limit (handlers/patch.go, maxJSONPatchOperations); more is 413.
MAX_JSON_PATCH_OPERATIONS = 10000

# What kube answers for every failure inside jsonpatch Apply: NewGenericServerResponse(422)
# keeps only this generic text (the library's own message is dropped, there are no
# causes). kopf only looks at the 422 of a failed ``test`` op.
_GENERIC_422 = "the server rejected our request due to an error in our request"


# --------------------------------------------------------------------------------------
# Shared helpers


def _go_kind(value: Any) -> str:
    """The JSON kind as Go's ``encoding/json`` names it in an ``UnmarshalTypeError``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _go_type(value: Any) -> str:
    """Go's ``reflect.TypeOf`` name for a decoded JSON value (for ErrBadArgType texts)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def _not_an_object(result: Any) -> Invalid:
    """The 422 kube answers when a patch leaves something other than a JSON object.

    handlers/patch.go decodes the patched JSON into the object type and, when that fails,
    answers ``NewInvalid(GroupKind{}, "", field.Invalid(NewPath("patch"), json, err))``;
    the decoder's first step (``SimpleMetaFactory.Interpret``) fails as quoted here.
    """
    text = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
    detail = (
        "couldn't get version/kind; json parse error: json: cannot unmarshal "
        f"{_go_kind(result)} into Go value of type struct "
        '{ APIVersion string "json:\\"apiVersion,omitempty\\""; '
        'Kind string "json:\\"kind,omitempty\\"" }'
    )
    cause = Cause("patch", f"Invalid value: {json.dumps(text)}: {detail}", "FieldValueInvalid")
    return Invalid(f' "" is invalid: patch: {cause.message}', causes=[cause])


# --------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)


def apply_merge_patch(target: Any, patch: Any, *, share: bool = False) -> Any:
    """Apply an RFC 7386 JSON merge patch to ``target`` and return the result.

    Follows evanphx/json-patch v4 ``MergePatch`` (what kube-apiserver runs): a ``null``
    member deletes the key; an object merges recursively into an object; anything else
    replaces, with ``null`` members of newly brought-in objects dropped, also inside
    arrays (a v4 quirk kept for fidelity). Raises ``BadRequest("Invalid JSON Patch")``
    for a ``null`` or scalar patch (v4's ``ErrBadJSONPatch``, mapped to 400 by
    handlers/patch.go) and ``Invalid`` (422, field ``patch``) for a top-level array,
    which kube cannot decode into an object.

    ``share=True`` (structural sharing) copies only the objects on the patch's paths: the
    result is a new object, but every value of ``target`` the patch does not reach is
    ``target``'s own, not a copy. The caller must then never mutate those (the store can:
    its versions are never mutated, so a write copies only what it changes). The result is
    equal to the unshared one, key order included, and never aliases the patch.
    """
    if patch is None or not isinstance(patch, (dict, list)):  # (a tuple is the faster check)
        raise BadRequest("Invalid JSON Patch")
    if isinstance(patch, list) or not isinstance(target, dict):
        # v4: "Not an error, just not a doc, so we turn straight into the patch".
        result = _pruned_copy(patch)
        if not isinstance(result, dict):
            raise _not_an_object(result)
        return result
    if share and type(target) is dict:
        # (``copy_json`` copies exact dicts only: a subclass takes the unshared path below.)
        shared = dict(target)
        _merge_shared(shared, patch)
        return shared
    doc: dict[str, Any] = copy_json(target)
    _merge_into(doc, patch)
    return doc


# Exact JSON scalar types: _pruned_copy returns such a value itself (no call needed).
_SCALARS = frozenset((str, int, float, bool))


def _merge_shared(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    """``_merge_into`` for a ``doc`` whose values may belong to the target: copy on write."""
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
            continue
        current = doc.get(key)
        if current is None:
            doc[key] = value if type(value) in _SCALARS else _pruned_copy(value)
        elif isinstance(current, dict):
            if isinstance(value, dict):
                if type(current) is dict:
                    current = doc[key] = dict(current)
                    _merge_shared(current, value)
                else:
                    # ``copy_json`` leaves a dict subclass shared, so the unshared merge writes
                    # into it: do the same, to give the same result.
                    _merge_into(current, value)
            else:
                doc[key] = copy_json(value)
        else:
            doc[key] = value if type(value) in _SCALARS else _pruned_copy(value)


def _merge_into(doc: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            doc.pop(key, None)
            continue
        current = doc.get(key)
        if current is None:
            doc[key] = _pruned_copy(value)
        elif isinstance(current, dict):
            if isinstance(value, dict):
                _merge_into(current, value)
            else:
                # v4 returns the patch value untouched when the current value is an
                # object but the patch value is not (merge.go, ``merge``).
                doc[key] = copy_json(value)
        else:
            doc[key] = _pruned_copy(value)


def _pruned_copy(value: Any) -> Any:
    """Copy ``value`` without null object members (v4 ``pruneNulls``: array nulls stay)."""
    if isinstance(value, dict):
        return {k: _pruned_copy(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_pruned_copy(v) for v in value]
    return value


# --------------------------------------------------------------------------------------
# JSON patch (RFC 6902)


class _StrictTest(jsonpatch.TestOperation):  # type: ignore[misc]
    """``test`` with JSON equality: python's ``True == 1`` and ``1 == 1.0`` quirks aside.

    evanphx v4 compares decoded JSON (all numbers are float64 there, so ``1`` equals
    ``1.0``, but a boolean never equals a number).
    """

    def apply(self, obj: Any) -> Any:
        try:
            subobj, part = self.pointer.to_last(obj)
            value = subobj if part is None else self.pointer.walk(subobj, part)
        except jsonpointer.JsonPointerException as exc:
            raise jsonpatch.JsonPatchTestFailed(str(exc)) from exc
        expected = self.operation.get("value")
        if not json_equal(value, expected):
            raise jsonpatch.JsonPatchTestFailed(f"testing value {self.location} failed")
        return obj


_OPERATIONS: dict[str, type[jsonpatch.PatchOperation]] = {
    "add": jsonpatch.AddOperation,
    "remove": jsonpatch.RemoveOperation,
    "replace": jsonpatch.ReplaceOperation,
    "move": jsonpatch.MoveOperation,
    "copy": jsonpatch.CopyOperation,
    "test": _StrictTest,
}


def apply_json_patch(target: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a list of operations) and return the result.

    Errors are kube-apiserver's (handlers/patch.go, ``jsonPatcher.applyJSPatch``):

    * a document that is not a list of objects cannot be decoded: ``BadRequest`` with
      Go's decoding message (``null`` decodes to an empty patch, as in Go);
    * more than 10000 operations: ``RequestEntityTooLarge`` (413);
    * anything that fails while applying, a failed ``test`` op (kopf relies on that 422
      for its ``test`` on ``/metadata/resourceVersion``), a path that does not exist for
      ``remove``/``replace``/``move``/``copy``, an unknown ``op``, a missing ``path``:
      ``Invalid`` (422) with kube's generic text and no causes. kube wraps *every* Apply
      error in ``NewGenericServerResponse(422, ...)``; older servers answered 500 for
      some of these (kubernetes/kubernetes#68862 era), current ones do not. The library's
      own message is chained as ``__cause__`` for logs, since kube's body drops it.

    A missing ``value`` is read as ``null`` for ``add``/``replace``, as evanphx v4 does.
    Negative array indices (a v4 extension) are not supported. The path ``""`` (the whole
    document) is v4's: ``replace`` with an object or array replaces it (what the caller then
    makes of the result is kube's decoding, see ``_not_an_object`` and the store's name
    check), with anything else it is a no-op; ``test`` compares it; ``add``, ``remove``,
    ``move`` and ``copy`` fail.
    """
    if ops is None:
        return copy_json(target)
    if not isinstance(ops, list):
        raise BadRequest(
            f"json: cannot unmarshal {_go_kind(ops)} into Go value of type jsonpatch.Patch"
        )
    for op in ops:
        if op is not None and not isinstance(op, dict):
            raise BadRequest(
                f"json: cannot unmarshal {_go_kind(op)} into Go value of type jsonpatch.Operation"
            )
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise RequestEntityTooLarge(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, "
            f"got {len(ops)}"
        )
    doc = copy_json(target)
    for op in ops:
        try:
            doc = _apply_op(doc, op)
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            TypeError,
            KeyError,
            IndexError,
            ValueError,
        ) as exc:
            raise Invalid(_GENERIC_422) from exc
    if not isinstance(doc, dict):
        raise _not_an_object(doc)
    return doc


def _apply_op(doc: Any, op: dict[str, Any] | None) -> Any:
    kind = op.get("op") if op is not None else None
    if not isinstance(kind, str) or kind not in _OPERATIONS:
        # evanphx v4: Kind() is "unknown" when op is absent or not a string.
        shown = kind if isinstance(kind, str) else "unknown"
        raise ValueError(f"Unexpected kind: {shown}")
    assert op is not None
    path = op.get("path")
    if not isinstance(path, str):
        raise ValueError(f"{kind} operation failed to decode path: missing value")
    if kind in ("move", "copy") and not isinstance(op.get("from"), str):
        raise ValueError(f"{kind} operation failed to decode from: missing value")
    if path == "" or (kind in ("move", "copy") and op["from"] == ""):
        # The whole document: evanphx v4 replaces it (with an object or array) and tests it;
        # every other op's findObject finds no parent of "" and fails.
        if kind == "replace":
            value = op.get("value")
            if not isinstance(value, dict | list):
                # v4 returns errors.Wrapf(err, ...) with err nil there, which is nil: a scalar
                # or null replaces nothing, and the patch goes on (kube answers 200).
                return doc
        elif kind != "test":
            raise ValueError(f"{kind} operation does not apply to the whole document")
    operation = dict(op)
    if kind in ("add", "replace"):
        # Copied so that the result never aliases the caller's patch document.
        operation["value"] = copy_json(op.get("value"))
    return _OPERATIONS[kind](operation).apply(doc)


# --------------------------------------------------------------------------------------
# Strategic merge patch: the patch metadata of built-in kinds


# The tables are the kinds': kinds/mergekeys.py has the shared structs (ObjectMeta, status
# conditions), each kind's module its own, and its strategy names its root struct.
_TYPES: dict[str, Mapping[str, PatchField]] = {
    **SHARED_STRUCTS,
    **{name: fields for s in BUILTIN.values() for name, fields in s.patch_structs.items()},
}
# (API group, kind) -> root type. Kinds not listed get "Object" (metadata rules only).
_KINDS: dict[tuple[str, str], str] = {
    **{
        (row.type.group, row.type.kind): root
        for row in BUILTIN_KINDS
        if (root := row.strategy.patch_root) != OBJECT_ROOT
    },
    **UNSERVED_PATCH_ROOTS,
}


def field_tags(type_name: str | None, key: str) -> PatchField:
    """The tags of field ``key`` of built-in struct ``type_name`` (the default if untagged)."""
    if type_name is None:
        return DEFAULT_FIELD
    return _TYPES[type_name].get(key, DEFAULT_FIELD)


def kind_root_type(group: str, kind: str) -> str:
    """The struct type of a built-in kind's root in this table (``Object``: metadata only)."""
    return _KINDS.get((group, kind), "Object")


def _root_type(target: dict[str, Any]) -> str:
    api_version = target.get("apiVersion")
    kind = target.get("kind")
    group = ""
    if isinstance(api_version, str) and "/" in api_version:
        group = api_version.split("/", 1)[0]
    if isinstance(kind, str):
        return kind_root_type(group, kind)
    return "Object"


# --------------------------------------------------------------------------------------
# Strategic merge patch: the algorithm (after strategicpatch/patch.go, mergeMap & co.)

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList"
_SET_ELEMENT_ORDER = "$setElementOrder"

# mergepatch errors that handlers/patch.go (interpretStrategicMergePatchError) maps to 400.
_ERR_PRIMITIVE_LIST = "invalid patch format of primitive list"
_ERR_RETAIN_KEYS = "invalid patch format of retainKeys"
_ERR_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"


class _ListOfLists(Exception):
    """mergepatch.ErrNoListOfLists, which kube maps to the generic 422."""


def apply_strategic_merge_patch(target: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a strategic merge patch to a built-in object and return the result.

    The patch strategy of each field is looked up from ``target``'s ``apiVersion`` and
    ``kind`` (see the module docstring for the kinds known). Semantics, after
    ``strategicpatch.StrategicMergeMapPatch`` as kube-apiserver runs it:

    * ``null`` deletes a key; objects merge recursively; a list whose field has
      ``patchStrategy: merge`` merges (by ``patchMergeKey`` for lists of objects, as a
      set for lists of scalars such as ``finalizers``), any other list is replaced;
    * ``$patch: replace`` in an object replaces it, ``$patch: delete`` empties it (any
      other value, ``merge`` included, is an error, as in kube);
    * in a merge list, an item ``{"$patch": "delete", <key>: v}`` deletes the item with
      that key, an item ``{"$patch": "replace"}`` makes the rest of the list replace it;
    * ``$deleteFromPrimitiveList/<field>`` removes values from a list of scalars;
    * ``$setElementOrder/<field>`` orders the merged list;
    * ``$retainKeys`` clears the keys of the original object it does not list.

    Merged lists keep kube's order (normalizeElementOrder/mergeSortedSlice): the patch's
    items in the patch order, interleaved with the server-only items by their position in
    the live list. A patch item the live list lacks cannot be placed by that position, so
    it goes *before* the server-only items still pending: adding container ``c`` to
    ``[a, b]`` yields ``[c, a, b]``, exactly as kube-apiserver does.

    Raises ``BadRequest`` for a malformed patch and ``Invalid`` (the generic 422) for a
    list of lists, as handlers/patch.go ``interpretStrategicMergePatchError`` does.
    """
    if not isinstance(patch, dict):
        raise BadRequest(
            f"json: cannot unmarshal {_go_kind(patch)} into Go value of type "
            "map[string]interface {}"
        )
    original: dict[str, Any] = copy_json(target) if isinstance(target, dict) else {}
    try:
        return _smp_map(original, copy_json(patch), _root_type(original))
    except _ListOfLists as exc:
        raise Invalid(_GENERIC_422) from exc


def _smp_map(
    original: dict[str, Any] | None, patch: dict[str, Any], type_name: str | None
) -> dict[str, Any]:
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            del patch[_DIRECTIVE]
            return _clean_map(patch)
        if directive == "delete":
            return {}
        raise BadRequest(f"unknown patch type: {go_v(directive)} in map: {go_v(patch)}")
    if original is None:
        original = {}
    _apply_retain_keys(original, patch)
    _apply_set_element_order(original, patch, type_name)

    for raw_key, value in patch.items():
        key = raw_key
        is_delete_list = False
        if raw_key.startswith(_DELETE_FROM_PRIMITIVE_LIST):
            key = _directive_key(raw_key, _DELETE_FROM_PRIMITIVE_LIST, _ERR_PRIMITIVE_LIST)
            is_delete_list = True
        elif raw_key.startswith("$"):
            # No built-in field starts with "$": kube's typed decoding drops it.
            continue
        if value is None:
            original.pop(key, None)
            continue
        if key not in original:
            if not is_delete_list:
                _set_clean(original, key, value)
            continue
        current = original[key]
        if isinstance(current, dict) and isinstance(value, dict):
            meta = field_tags(type_name, key)
            if meta.strategy == "replace":
                original[key] = _clean_map(value)
            else:
                original[key] = _smp_map(current, value, meta.type)
        elif isinstance(current, list) and isinstance(value, list):
            meta = field_tags(type_name, key)
            if meta.strategy == "merge" or is_delete_list:
                original[key] = _smp_list(current, value, meta, is_delete_list)
            else:
                original[key] = _clean_list(value)
        elif not is_delete_list:
            # Different JSON types, or scalars: the patch value wins.
            _set_clean(original, key, value)
    return original


def _directive_key(key: str, prefix: str, error: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head != prefix:
        raise BadRequest(error)
    return rest


def _is_directive_item(value: Any) -> bool:
    return isinstance(value, dict) and _DIRECTIVE in value


def _clean(value: Any) -> Any:
    """Drop nulls and directive-bearing objects from a value the patch brings in.

    kube's ``removeDirectives`` and ``discardNullValuesFromPatch`` do the same for new
    keys; for whole replaced values it is what the typed round trip ends up doing.
    """
    if isinstance(value, dict):
        return _clean_map(value)
    if isinstance(value, list):
        return _clean_list(value)
    return value


def _clean_map(value: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _clean(v)
        for k, v in value.items()
        if v is not None and not k.startswith("$") and not _is_directive_item(v)
    }


def _clean_list(value: list[Any]) -> list[Any]:
    return [_clean(v) for v in value if not _is_directive_item(v)]


def _set_clean(original: dict[str, Any], key: str, value: Any) -> None:
    if _is_directive_item(value):
        # removeDirectives: a value that is itself a directive is not kept.
        original.pop(key, None)
    else:
        original[key] = _clean(value)


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise BadRequest(_ERR_RETAIN_KEYS)
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((_DELETE_FROM_PRIMITIVE_LIST, _SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise BadRequest(_ERR_RETAIN_KEYS)
    for key in [k for k in original if k not in keep]:
        del original[key]


def _apply_set_element_order(
    original: dict[str, Any], patch: dict[str, Any], type_name: str | None
) -> None:
    for directive in [k for k in patch if k.startswith(_SET_ELEMENT_ORDER)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise BadRequest(f"expected a []interface {{}}, but received a {_go_type(order)}")
        key = _directive_key(directive, _SET_ELEMENT_ORDER, _ERR_SET_ELEMENT_ORDER)
        found_original = key in original
        found_patch = key in patch
        original_list = original.get(key)
        patch_list = patch.get(key)
        if found_original and not isinstance(original_list, list):
            raise BadRequest(
                f"expected a []interface {{}}, but received a {_go_type(original_list)}"
            )
        if found_patch and not isinstance(patch_list, list):
            raise BadRequest(f"expected a []interface {{}}, but received a {_go_type(patch_list)}")
        meta = field_tags(type_name, key)
        _check_set_order(patch_list or [], order, meta.merge_key)
        if found_original and not found_patch:
            merged: list[Any] = original_list  # type: ignore[assignment]
        elif found_patch and not found_original:
            merged = _clean_list(patch_list)  # type: ignore[arg-type]
        elif found_original and found_patch:
            if meta.strategy == "merge":
                merged = _smp_list(original_list, patch_list, meta, False)  # type: ignore[arg-type]
            else:
                merged = _clean_list(patch_list)  # type: ignore[arg-type]
        else:
            continue
        old: list[Any] = original_list if isinstance(original_list, list) else []
        new: list[Any] = patch_list if isinstance(patch_list, list) else []
        is_map = _element_kind(old, new) is dict
        in_order, server_only = _partition(merged, order, meta.merge_key, is_map)
        original[key] = _normalize_order(in_order, server_only, order, old, meta.merge_key, is_map)
        patch.pop(key, None)


def _check_set_order(patch_list: list[Any], order: list[Any], merge_key: str) -> None:
    """kube's validatePatchWithSetOrderList: the patch's items keep the order's order."""
    if not order or not patch_list:
        return
    items = [
        v
        for v in patch_list
        if not (merge_key and isinstance(v, dict) and v.get(_DIRECTIVE) == "delete")
    ]
    i = j = 0
    while i < len(items) and j < len(order):
        if _is_directive_item(items[i]):
            i += 1
            continue
        if _merge_key_equal(items[i], order[j], merge_key):
            i += 1
        j += 1
    if i < len(items) and j >= len(order):
        raise BadRequest(
            f"The order in patch list:\n{go_v(patch_list)}\n doesn't match "
            f"{_SET_ELEMENT_ORDER} list:\n{go_v(order)}\n"
        )


def _merge_key_equal(left: Any, right: Any, merge_key: str) -> bool:
    if not merge_key:
        return _scalar_equal(left, right)
    for item in (left, right):
        if not isinstance(item, dict):
            raise BadRequest(
                f"expected a map[string]interface {{}}, but received a {_go_type(item)}"
            )
        if merge_key not in item:
            raise _no_merge_key(item, merge_key)
    return _scalar_equal(left[merge_key], right[merge_key])


def _no_merge_key(item: dict[str, Any], merge_key: str) -> BadRequest:
    return BadRequest(f"map: {go_v(item)} does not contain declared merge key: {merge_key}")


def _scalar_equal(a: Any, b: Any) -> bool:
    """Go's ``==`` on decoded JSON scalars: same dynamic type (bool, int64, float64...)."""
    return type(a) is type(b) and bool(a == b)


def _element_kind(*lists: list[Any]) -> type | None:
    """The one element type of ``lists`` (kube's sliceElementType), None if all empty."""
    kind: type | None = None
    for values in lists:
        for value in values:
            current = type(value)
            if kind is None:
                kind = current
                if current is list:
                    raise _ListOfLists("lists of lists are not supported")
            elif current is not kind:
                raise BadRequest(
                    "list element types are not identical: "
                    + "["
                    + " ".join(go_v(v) for v in lists)
                    + "]"
                )
    return kind


def _smp_list(
    original: list[Any], patch: list[Any], meta: PatchField, is_delete_list: bool
) -> list[Any]:
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    key = meta.merge_key
    if kind is not dict:
        if is_delete_list:
            return [v for v in original if not any(_scalar_equal(v, d) for d in patch)]
        merged: list[Any] = []
        for value in [*original, *patch]:
            if not any(_scalar_equal(value, m) for m in merged):
                merged.append(value)
        in_patch, server_only = _partition(merged, patch, "", False)
        return _normalize_order(in_patch, server_only, patch, original, "", False)
    if not key:
        raise BadRequest(f"cannot merge lists without merge key for {meta.type or 'list'}")
    original, patch = _special_elements(original, patch, key)
    merged = _merge_items(original, patch, key, meta.type)
    in_patch, server_only = _partition(merged, patch, key, True)
    return _normalize_order(in_patch, server_only, patch, original, key, True)


def _special_elements(
    original: list[Any], patch: list[Any], key: str
) -> tuple[list[Any], list[Any]]:
    """Apply ``$patch`` items of a merge list (kube's mergeSliceWithSpecialElements)."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise _no_merge_key(item, key)
            original = [
                o
                for o in original
                if not (isinstance(o, dict) and key in o and _scalar_equal(o[key], item[key]))
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise BadRequest("merging lists cannot yet be specified in the patch")
        else:
            raise BadRequest(f"unknown patch type: {go_v(directive)} in map: {go_v(item)}")
    if replace:
        return [_clean(v) for v in plain], []
    return original, plain


def _merge_items(
    original: list[Any], patch: list[Any], key: str, type_name: str | None
) -> list[Any]:
    merged = list(original)
    for item in patch:
        if key not in item:
            raise _no_merge_key(item, key)
        for index, candidate in enumerate(merged):
            if not isinstance(candidate, dict):
                raise BadRequest(f"value for key {index} is not a map")
            if key in candidate and _scalar_equal(candidate[key], item[key]):
                merged[index] = _smp_map(candidate, item, type_name)
                break
        else:
            merged.append(_clean(item))
    return merged


def _identity(value: Any, key: str, is_map: bool) -> Any:
    if is_map:
        return value.get(key) if isinstance(value, dict) else None
    return value


def _index(values: list[Any], value: Any, key: str, is_map: bool) -> int:
    wanted = _identity(value, key, is_map)
    for i, candidate in enumerate(values):
        if _scalar_equal(_identity(candidate, key, is_map), wanted):
            return i
    return -1


def _partition(
    merged: list[Any], by: list[Any], key: str, is_map: bool
) -> tuple[list[Any], list[Any]]:
    """Split ``merged`` into the items present in ``by`` and the server-only ones."""
    present: list[Any] = []
    server_only: list[Any] = []
    for item in merged:
        if is_map:
            if not isinstance(item, dict):
                raise BadRequest(
                    f"expected a map[string]interface {{}}, but received a {_go_type(item)}"
                )
            if key not in item:
                raise _no_merge_key(item, key)
        (present if _index(by, item, key, is_map) >= 0 else server_only).append(item)
    return present, server_only


def _normalize_order(
    in_patch: list[Any],
    server_only: list[Any],
    patch_order: list[Any],
    server_order: list[Any],
    key: str,
    is_map: bool,
) -> list[Any]:
    """kube's normalizeElementOrder: sort both parts, then interleave by live order."""
    if is_map:
        for values in (in_patch, patch_order, server_only, server_order):
            for item in values:
                if not isinstance(item, dict):
                    raise BadRequest(
                        f"expected a map[string]interface {{}}, but received a {_go_type(item)}"
                    )
                if key not in item:
                    raise _no_merge_key(item, key)
    by_patch: Callable[[Any], int] = lambda v: _index(patch_order, v, key, is_map)  # noqa: E731
    by_server: Callable[[Any], int] = lambda v: _index(server_order, v, key, is_map)  # noqa: E731
    right = sorted(in_patch, key=by_patch)
    left = sorted(server_only, key=by_server)
    # mergeSortedSlice: insert server-only items among the patch items, by live order.
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if i >= len(left):
            out.append(right[j])
            j += 1
        elif j >= len(right):
            out.append(left[i])
            i += 1
        else:
            li, ri = by_server(left[i]), by_server(right[j])
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
