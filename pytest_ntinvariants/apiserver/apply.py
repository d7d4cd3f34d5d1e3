"""Server-side apply and field ownership (``metadata.managedFields``), without transport.

What clients observe of kube-apiserver's field manager (structured-merge-diff), rebuilt on
plain JSON values:

* Field sets are trees in the FieldsV1 shape: keys ``f:<field>``, ``k:<json of the keys>``
  (an item of a map-type list), ``v:<json value>`` (an item of a set); a node with no
  children, or with a ``"."`` child, is itself a member of the set.
* Which lists merge, and by which keys, comes from the CRD's structural schema
  (``x-kubernetes-list-type``, ``x-kubernetes-list-map-keys``, ``x-kubernetes-map-type``)
  or, for built-in kinds, from the merge keys of the strategic merge patch table (with the
  composite keys kube declares for server-side apply, such as ports by port and protocol).
  Anything else is what structured-merge-diff deduces: maps are granular, lists atomic.
* ``apply`` merges an applied configuration into the live object, removes what its manager
  applied before, no longer applies and nobody else owns, and answers a 409 naming every
  field whose value it would change that another manager owns (unless forced).
* ``track_update`` records a non-apply write as an ``Update`` by its manager.

Objects that were never applied carry no managedFields and cost nothing (kube's
"skip non-applied" manager): the first apply gives their existing fields to
``before-first-apply``.

Approximations, on purpose: without Go types, the ``"."`` marker of an ``Update`` entry is
written for every map the write added, except the root ``spec``/``status`` of built-in
kinds (non-pointer structs in kube's types, so never "added"); values are not defaulted
before they are compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from . import errors
from .errors import Cause, invalid
from .jsonvalues import as_json
from .patch import DEFAULT_FIELD, PatchField, field_tags, kind_root_type
from .resources import ResourceType

__all__ = [
    "APPLY",
    "BEFORE_FIRST_APPLY",
    "UPDATE",
    "apply",
    "check_field_manager",
    "managed_fields_from_request",
    "manager_from_user_agent",
    "track_update",
]

JSON = dict[str, Any]
Tree = dict[str, Any]  # a field set: path element -> subtree; "." marks a member with children

APPLY = "Apply"
UPDATE = "Update"
BEFORE_FIRST_APPLY = "before-first-apply"
_MEMBER = "."
_MISSING = object()
# Fields nobody owns (kube's stripmeta): identity and system-set metadata.
_STRIPPED_META = frozenset(
    (
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    )
)
# kube's FieldManagerMaxLength (apimachinery ValidatePatchOptions).
_MAX_MANAGER = 128


# --------------------------------------------------------------------------------------
# Shapes: how a value's maps and lists merge


class _Shape:
    """What structured-merge-diff deduces for a value it has no schema for."""

    list_type = "atomic"  # "atomic", "set" or "map"
    keys: tuple[str, ...] = ()
    atomic_map = False

    def field(self, name: str) -> _Shape:
        """The shape of a field of this map."""
        return _UNKNOWN

    def item(self) -> _Shape:
        """The shape of this list's items."""
        return _UNKNOWN


_UNKNOWN = _Shape()

# Where kube's server-side apply keys differ from the strategic merge patch's merge key
# (k8s.io/api ``+listMapKey`` tags), and structs it treats as atomic (``+structType`` /
# ``+mapType=atomic``).
_SSA_KEYS = {
    ("Container", "ports"): ("containerPort", "protocol"),
    ("ServiceSpec", "ports"): ("port", "protocol"),
    ("PodSpec", "topologySpreadConstraints"): ("topologyKey", "whenUnsatisfiable"),
}
_KEY_DEFAULTS = {"protocol": "TCP"}  # defaulted key fields, as kube keys the defaulted item
_ATOMIC = {("WorkloadSpec", "selector"), ("ServiceSpec", "selector")}


class _BuiltinShape(_Shape):
    """A built-in kind's field, from patch.py's strategic merge table."""

    def __init__(
        self,
        type_name: str | None,
        info: PatchField = DEFAULT_FIELD,
        owner: str = "",
        name: str = "",
    ) -> None:
        self.type_name = type_name
        self.info = info
        self.atomic_map = (owner, name) in _ATOMIC
        if info.strategy == "merge":
            keys = _SSA_KEYS.get((owner, name)) or ((info.merge_key,) if info.merge_key else ())
            self.list_type, self.keys = ("map", keys) if keys else ("set", ())

    def field(self, name: str) -> _Shape:
        if self.type_name is None:
            return _UNKNOWN
        info = field_tags(self.type_name, name)
        if info is DEFAULT_FIELD and (self.type_name, name) not in _ATOMIC:
            return _UNKNOWN
        return _BuiltinShape(
            info.type if info.strategy != "merge" else None, info, self.type_name, name
        )

    def item(self) -> _Shape:
        return _BuiltinShape(self.info.type) if self.info.type else _UNKNOWN


class _SchemaShape(_Shape):
    """A custom resource's field, from its CRD's openAPIV3Schema."""

    def __init__(self, doc: JSON) -> None:
        self.doc = doc
        self.list_type = str(doc.get("x-kubernetes-list-type") or "atomic")
        self.keys = tuple(doc.get("x-kubernetes-list-map-keys") or ())
        self.atomic_map = doc.get("x-kubernetes-map-type") == "atomic"

    def field(self, name: str) -> _Shape:
        props = self.doc.get("properties") or {}
        sub = props.get(name)
        if sub is None:
            extra = self.doc.get("additionalProperties")
            sub = extra if isinstance(extra, dict) else None
        return _SchemaShape(sub) if isinstance(sub, dict) else _UNKNOWN

    def item(self) -> _Shape:
        items = self.doc.get("items")
        return _SchemaShape(items) if isinstance(items, dict) else _UNKNOWN


class _RootShape(_Shape):
    """An object's root: ObjectMeta's rules for metadata, the kind's for the rest."""

    def __init__(self, rt: ResourceType) -> None:
        self.rest: _Shape
        if rt.builtin:
            self.rest = _BuiltinShape(kind_root_type(rt.group, rt.kind))
        elif isinstance(rt.schema, dict):
            self.rest = _SchemaShape(rt.schema)
        else:
            self.rest = _UNKNOWN

    def field(self, name: str) -> _Shape:
        if name == "metadata":
            return _BuiltinShape("ObjectMeta")
        return self.rest.field(name)


# --------------------------------------------------------------------------------------
# Field sets


def _pe_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _item_key(item: Any, shape: _Shape) -> str | None:
    """The path element of a list item (``k:``/``v:``), or None for an unkeyed item."""
    if shape.list_type == "set":
        return "v:" + _pe_json(item)
    if not isinstance(item, dict):
        return None
    key = {}
    for name in shape.keys:
        value = item.get(name, _KEY_DEFAULTS.get(name, _MISSING))
        if value is not _MISSING:
            key[name] = value
    return "k:" + _pe_json(key) if key else None


def _is_granular_map(value: Any, shape: _Shape) -> bool:
    return isinstance(value, dict) and not shape.atomic_map


def _is_granular_list(value: Any, shape: _Shape) -> bool:
    return isinstance(value, list) and shape.list_type in ("set", "map")


def _leaves(value: Any, shape: _Shape) -> Tree:
    """The field set of a value (what applying it claims): its leaves and keyed items."""
    tree: Tree = {}
    if _is_granular_map(value, shape):
        for k, v in value.items():
            tree["f:" + k] = _leaves(v, shape.field(k))
    elif _is_granular_list(value, shape):
        for item in value:
            pe = _item_key(item, shape)
            if pe is None:
                continue
            if shape.list_type == "set":
                tree[pe] = {}
            else:
                sub = _leaves(item, shape.item())
                tree[pe] = {_MEMBER: {}, **sub} if sub else {}
    return tree


def _added(value: Any, shape: _Shape, name: str, builtin: bool) -> Tree:
    """A value that appeared: its leaves, and every map or list on the way that appeared
    with it (marked ``"."``), as kube's comparison against an empty object has it."""
    tree: Tree = {}
    if _is_granular_map(value, shape):
        for k, v in value.items():
            tree["f:" + k] = _added(v, shape.field(k), k, builtin)
    elif _is_granular_list(value, shape):
        for item in value:
            pe = _item_key(item, shape)
            if pe is None:
                continue
            if shape.list_type == "set":
                tree[pe] = {}
            else:
                sub = _added(item, shape.item(), "", builtin)
                tree[pe] = {_MEMBER: {}, **sub} if sub and _MEMBER not in sub else sub
    if not tree or name == "metadata" or (builtin and name in _STRUCTS):
        return tree
    return {_MEMBER: {}, **tree}


# Fields of built-in kinds that are non-pointer structs in kube's Go types: they exist in
# an empty object, so a write never adds them themselves (no ``"."`` of their own).
_STRUCTS = frozenset(("spec", "status", "template", "strategy", "resources", "jobTemplate"))


def _items(value: list[Any], shape: _Shape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in value:
        pe = _item_key(item, shape)
        if pe is not None and pe not in out:
            out[pe] = item
    return out


def _compare(old: Any, new: Any, shape: _Shape, added: Tree, removed: Tree, builtin: bool) -> None:
    """Fill ``added`` with what changed or appeared from old to new, ``removed`` with what went."""
    if _is_granular_map(old, shape) and _is_granular_map(new, shape):
        pairs: Iterator[tuple[str, Any, Any, _Shape]] = (
            ("f:" + k, old.get(k, _MISSING), new.get(k, _MISSING), shape.field(k))
            for k in dict.fromkeys([*old, *new])
        )
    elif _is_granular_list(old, shape) and _is_granular_list(new, shape):
        o, n = _items(old, shape), _items(new, shape)
        item_shape = shape.item() if shape.list_type == "map" else _UNKNOWN
        pairs = (
            (pe, o.get(pe, _MISSING), n.get(pe, _MISSING), item_shape)
            for pe in dict.fromkeys([*o, *n])
        )
    else:
        return
    for pe, a, b, sub_shape in pairs:
        if a is b:
            continue
        if a is _MISSING:
            added[pe] = _added(b, sub_shape, pe[2:], builtin) if shape.list_type != "set" else {}
        elif b is _MISSING:
            removed[pe] = _added(a, sub_shape, pe[2:], builtin) if shape.list_type != "set" else {}
        elif a == b:
            continue
        elif (_is_granular_map(a, sub_shape) and _is_granular_map(b, sub_shape)) or (
            _is_granular_list(a, sub_shape) and _is_granular_list(b, sub_shape)
        ):
            sub_added: Tree = {}
            sub_removed: Tree = {}
            _compare(a, b, sub_shape, sub_added, sub_removed, builtin)
            if sub_added:
                added[pe] = sub_added
            if sub_removed:
                removed[pe] = sub_removed
        else:
            added[pe] = {}  # a leaf (or atomic value) that changed


def _is_member(node: Tree) -> bool:
    return not node or _MEMBER in node


def _union(a: Tree, b: Tree) -> Tree:
    out = dict(a)
    for pe, sub in b.items():
        if pe == _MEMBER:
            out[_MEMBER] = {}
        elif pe in out:
            mine = out[pe]
            merged = _union(mine, sub)
            if _is_member(mine) or _is_member(sub):
                merged = {_MEMBER: {}, **merged} if merged and _MEMBER not in merged else merged
            out[pe] = merged
        else:
            out[pe] = sub
    return _tidy(out)


def _difference(a: Tree, b: Tree) -> Tree:
    """``a`` without the members of ``b``."""
    out: Tree = {}
    for pe, sub in a.items():
        if pe == _MEMBER:
            if _MEMBER not in b:
                out[_MEMBER] = {}
            continue
        other = b.get(pe)
        if other is None:
            out[pe] = sub
            continue
        rest = _difference(_as_explicit(sub), _as_explicit(other))
        if rest:
            out[pe] = _implicit(rest)
    return out


def _intersection(a: Tree, b: Tree) -> Tree:
    out: Tree = {}
    for pe, sub in a.items():
        if pe == _MEMBER:
            if _MEMBER in b:
                out[_MEMBER] = {}
            continue
        other = b.get(pe)
        if other is None:
            continue
        both = _intersection(_as_explicit(sub), _as_explicit(other))
        if both:
            out[pe] = _implicit(both)
    return out


def _as_explicit(node: Tree) -> Tree:
    """A node with its membership spelled out (``{}`` is a member without children)."""
    return node if node else {_MEMBER: {}}


def _implicit(node: Tree) -> Tree:
    return {} if node == {_MEMBER: {}} else node


def _tidy(node: Tree) -> Tree:
    return _implicit(node)


def _paths(tree: Tree, prefix: str = "") -> Iterator[str]:
    """Every member as kube prints a path: ``.spec.containers[name="app"].image``."""
    if _is_member(tree) and prefix:
        yield prefix
    for pe in _sorted(tree):
        if pe == _MEMBER:
            continue
        kind, _, text = pe.partition(":")
        if kind == "f":
            step = "." + text
        elif kind == "k":
            fields = orjson.loads(text)
            step = "[" + ",".join(f"{k}={_pe_json(v)}" for k, v in sorted(fields.items())) + "]"
        else:
            step = f"[={text}]"
        yield from _paths(tree[pe], prefix + step)


def _sorted(tree: Tree) -> list[str]:
    # FieldsV1's order: the member marker, then fields, keyed items, set values, each sorted.
    order = {".": 0, "f": 1, "k": 2, "v": 3, "i": 4}
    return sorted(tree, key=lambda pe: (order.get(pe[0], 5), pe))


def _fields_v1(tree: Tree) -> JSON:
    return {pe: _fields_v1(tree[pe]) for pe in _sorted(tree)}


def _owned(obj: JSON, subresource: str, rt: ResourceType) -> JSON:
    """What of an object fields may be owned in: no identity or system metadata, and only
    the part a write through this (sub)resource can change."""
    meta = obj.get("metadata")
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    if rt.has_status:
        if subresource == "status":
            out = {"status": out["status"]} if "status" in out else {}
        else:
            out.pop("status", None)
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if k not in _STRIPPED_META}
        if kept:
            out["metadata"] = kept
    return out


# --------------------------------------------------------------------------------------
# managedFields entries


class _Entry:
    """One managedFields entry, decoded: who, how, through which version, what."""

    __slots__ = ("api_version", "fields", "manager", "operation", "subresource", "time")

    def __init__(
        self,
        manager: str,
        operation: str,
        api_version: str,
        time: str | None,
        fields: Tree,
        subresource: str = "",
    ) -> None:
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.time = time
        self.fields = fields
        self.subresource = subresource

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two entries the same manager (kube's encoded manager identifier)."""
        version = self.api_version if self.operation == UPDATE else ""
        return (self.manager, self.operation, self.subresource + "|" + version)

    def encode(self) -> JSON:
        out: JSON = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = _fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def label(self) -> str:
        """How kube names this manager in a conflict (its printManager, without the time)."""
        text = f'"{self.manager}"'
        if self.subresource:
            text += f' with subresource "{self.subresource}"'
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text


def _decode_tree(value: Any) -> Tree:
    if not isinstance(value, dict):
        raise ValueError("fieldsV1 must be an object")
    out: Tree = {}
    for pe, sub in value.items():
        if pe != _MEMBER and (len(pe) < 3 or pe[1] != ":" or pe[0] not in "fkvi"):
            raise ValueError(f"bad path element {pe!r}")
        out[pe] = _decode_tree(sub)
    return out


def _decode(entries: Any) -> list[_Entry]:
    """Decode stored or sent managedFields; ``ValueError`` when they are not kube's shape."""
    if not isinstance(entries, list):
        raise ValueError("managedFields must be a list")
    out = []
    for e in entries:
        if not isinstance(e, dict):
            raise ValueError("an entry must be an object")
        manager, operation = e.get("manager", ""), e.get("operation")
        api_version, time = e.get("apiVersion", ""), e.get("time")
        subresource = e.get("subresource", "")
        if operation not in (APPLY, UPDATE) or e.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ValueError("unknown operation or fieldsType")
        if not all(isinstance(v, str) for v in (manager, api_version, subresource)):
            raise ValueError("manager, apiVersion and subresource are strings")
        if time is not None and not isinstance(time, str):
            raise ValueError("time is a string")
        out.append(
            _Entry(
                manager,
                operation,
                api_version,
                time,
                _decode_tree(e.get("fieldsV1", {})),
                subresource,
            )
        )
    return out


def _encode(entries: list[_Entry]) -> list[JSON]:
    # kube's order: Apply before Update, then oldest first, then by manager.
    ordered = sorted(
        (e for e in entries if e.fields),
        key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource),
    )
    return [e.encode() for e in ordered]


def check_field_manager(manager: str | None, *, required: bool) -> None:
    """kube's PatchOptions validation of ``fieldManager``: required for apply, at most 128
    characters, printable."""
    causes = []
    if required and not manager:
        causes.append(
            Cause(
                "fieldManager", "Required value: is required for apply patch", "FieldValueRequired"
            )
        )
    if manager and len(manager) > _MAX_MANAGER:
        causes.append(
            Cause(
                "fieldManager",
                f"Too long: may not be more than {_MAX_MANAGER} bytes",
                "FieldValueTooLong",
            )
        )
    if causes:
        error = invalid("PatchOptions", "meta.k8s.io", "", causes)
        error.name = None  # (kube's details.name is omitempty: no "name": "")
        raise error


def manager_from_user_agent(user_agent: str) -> str:
    """The manager kube names a write without ``fieldManager`` after: the User-Agent up to its
    first ``/`` (``kubectl/v1.32.0 (linux/amd64) …`` is ``kubectl``)."""
    return user_agent.split("/", 1)[0][:_MAX_MANAGER]


def managed_fields_from_request(meta: JSON) -> None:
    """Refuse managedFields that JSON decoding into ObjectMeta would refuse (400)."""
    value = meta.get("managedFields")
    if value is not None and not (
        isinstance(value, list) and all(isinstance(e, dict) for e in value)
    ):
        raise errors.BadRequest(
            "json: cannot unmarshal into Go struct field ObjectMeta.metadata.managedFields of type "
            "[]v1.ManagedFieldsEntry"
        )


# --------------------------------------------------------------------------------------
# Writes


def _live_entries(live: JSON | None) -> list[_Entry]:
    if live is None:
        return []
    try:
        return _decode(live.get("metadata", {}).get("managedFields") or [])
    except ValueError:
        return []  # kube starts afresh from managed fields it cannot decode


def _record(
    entries: list[_Entry],
    old: JSON,
    new: JSON,
    rt: ResourceType,
    manager: str,
    subresource: str,
    now: str,
    *,
    applied: Tree | None = None,
    force: bool = True,
) -> list[_Entry]:
    """kube's Updater.update: diff old and new; other managers lose what changed or went
    (a conflict if not forced); the writer gains what changed (or, applying, what it applied)."""
    shape = _RootShape(rt)
    changed: Tree = {}
    removed: Tree = {}
    _compare(
        _owned(old, subresource, rt),
        _owned(new, subresource, rt),
        shape,
        changed,
        removed,
        rt.builtin,
    )
    operation = APPLY if applied is not None else UPDATE
    me = _Entry(manager, operation, rt.api_version, now, {}, subresource)
    conflicts: list[tuple[_Entry, Tree]] = []
    out: list[_Entry] = []
    for e in entries:
        if e.key == me.key:
            me = _Entry(e.manager, e.operation, e.api_version, e.time, e.fields, e.subresource)
            continue
        lost = _intersection(e.fields, changed)
        if lost:
            conflicts.append((e, lost))
        fields = _difference(e.fields, _union(lost, removed)) if (lost or removed) else e.fields
        if fields is not e.fields:
            e = _Entry(e.manager, e.operation, e.api_version, e.time, fields, e.subresource)
        out.append(e)
    if conflicts and not force:
        raise _conflict_error(conflicts)
    mine = applied if applied is not None else _union(_difference(me.fields, removed), changed)
    if mine != me.fields or changed or removed:
        me.fields, me.time, me.api_version = mine, now, rt.api_version
    out.append(me)
    return [e for e in out if e.fields]


def _conflict_error(conflicts: list[tuple[_Entry, Tree]]) -> errors.ApiError:
    found = [(e.label(), path) for e, tree in conflicts for path in _paths(tree)]
    causes = [
        Cause(path, f"conflict with {label}", "FieldManagerConflict") for label, path in found
    ]
    if len(found) == 1:
        message = f"Apply failed with 1 conflict: conflict with {found[0][0]}: {found[0][1]}"
    else:
        lines = []
        for label in sorted({label for label, _ in found}):
            lines.append(f"conflicts with {label}:")
            lines += [f"- {path}" for other, path in found if other == label]
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message, causes=causes)


def track_update(
    old: JSON,
    new: JSON,
    rt: ResourceType,
    manager: str,
    subresource: str,
    now: str,
    sent: Any = None,
) -> None:
    """Record a non-apply write in ``new["metadata"]["managedFields"]`` (a dict of its own).

    The managedFields a client sent win over the live ones when they decode and differ (an
    explicit ``[]`` clears them, and nothing is tracked then); a /status write's never do.
    ``sent`` is what the request's metadata said (None: nothing).
    """
    meta = new["metadata"]
    live = old.get("metadata", {}).get("managedFields")
    if subresource:
        sent = None
    if sent == []:
        meta.pop("managedFields", None)
        return
    entries = None
    if sent is not None and sent != live:
        try:
            entries = _decode(sent)
        except ValueError:
            entries = None  # kube falls back to the live ones
    if entries is None:
        entries = _live_entries(old)
    if not entries:
        meta.pop("managedFields", None)
        return
    result = _record(entries, old, new, rt, manager, subresource, now)
    meta["managedFields"] = _encode(result)


def apply(
    live: JSON | None,
    config: Any,
    rt: ResourceType,
    name: str,
    manager: str,
    *,
    force: bool,
    subresource: str,
    now: str,
) -> JSON:
    """Apply ``config`` as ``manager``: the new object, managedFields included.

    ``live`` is None for a create. The result shares nothing with ``live`` or ``config``.
    """
    if not isinstance(config, dict):
        raise errors.BadRequest("the applied configuration must be an object")
    if config.get("apiVersion") != rt.api_version or config.get("kind") != rt.kind:
        # kube's versionCheckManager prints the GroupVersionKind it decoded.
        api_version = str(config.get("apiVersion") or "")
        raise errors.BadRequest(
            f"invalid object type: {_gv(api_version)}, Kind={config.get('kind') or ''}"
        )
    meta = config.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    if meta.get("managedFields") is not None:
        raise errors.BadRequest("metadata.managedFields must be nil")
    if meta.get("name") != name:
        raise errors.name_mismatch(meta.get("name", ""), name)
    try:
        config = as_json(config)
    except TypeError as e:  # YAML can say what JSON cannot (a map with a number as a key)
        raise errors.BadRequest(f"error decoding YAML: {e}") from None
    shape = _RootShape(rt)
    _check_keys(config, shape, "", rt)
    if rt.has_status:
        # The part of the configuration this endpoint does not write is ignored (kube's
        # reset fields), and not claimed.
        if subresource == "status":
            config = {
                k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")
            }
        else:
            config.pop("status", None)
    applied = _leaves(_owned(config, subresource, rt), shape)
    base: JSON = as_json(live) if live is not None else {}
    base_meta = base.setdefault("metadata", {})
    entries = _live_entries(live)
    if live is not None and not entries:
        # kube's first apply to an object nobody tracked: its fields become
        # before-first-apply's, an Update from nothing.
        entries = _record([], {}, live, rt, BEFORE_FIRST_APPLY, subresource, now)
    base_meta.pop("managedFields", None)
    merged: JSON = _merge(base, config, shape)
    previous = next(
        (
            e
            for e in entries
            if (e.manager, e.operation, e.subresource) == (manager, APPLY, subresource)
        ),
        None,
    )
    if previous is not None:
        others: Tree = {}
        for entry in entries:
            if entry is not previous:
                others = _union(others, entry.fields)
        gone = _difference(_difference(previous.fields, applied), others)
        if gone:
            merged = dict(_remove(merged, gone, shape, rt.builtin))
    result = _record(
        entries, live or {}, merged, rt, manager, subresource, now, applied=applied, force=force
    )
    merged["metadata"]["managedFields"] = _encode(result)
    return merged


def _gv(api_version: str) -> str:
    """A GroupVersion as Go prints it: ``/v1`` for the core group."""
    return api_version if "/" in api_version else "/" + api_version


def _check_keys(value: Any, shape: _Shape, path: str, rt: ResourceType) -> None:
    """Refuse what structured-merge-diff cannot type: an item of a map-type list without
    its keys, or two items with the same key. kube answers these with a 500 (an unmapped
    error); a fake answers bad input with a 400, in kube's words."""
    if _is_granular_map(value, shape):
        for k, v in value.items():
            _check_keys(v, shape.field(k), f"{path}.{k}", rt)
    elif _is_granular_list(value, shape):
        seen = set()
        for i, item in enumerate(value):
            pe = _item_key(item, shape)
            where = (
                f"failed to create typed patch object ({_gv(rt.api_version)}, Kind={rt.kind}): "
                + path
            )
            if pe is None:
                missing = next(
                    (k for k in shape.keys if not isinstance(item, dict) or k not in item), ""
                )
                raise errors.BadRequest(
                    f"{where}: element {i}: associative list with keys has an element that "
                    f'omits key field "{missing}" (and doesn\'t have default value)'
                )
            if pe in seen:
                raise errors.BadRequest(f"{where}: duplicate entries for key {pe[2:]}")
            seen.add(pe)
            if shape.list_type == "map":
                _check_keys(item, shape.item(), f"{path}[{i}]", rt)


def _merge(live: Any, config: Any, shape: _Shape) -> Any:
    """structured-merge-diff's merge of an applied configuration into the live value."""
    if _is_granular_map(live, shape) and _is_granular_map(config, shape):
        out = dict(live)
        for k, v in config.items():
            out[k] = _merge(live[k], v, shape.field(k)) if k in live else v
        return out
    if _is_granular_list(live, shape) and _is_granular_list(config, shape):
        wanted = _items(config, shape)
        item_shape = shape.item() if shape.list_type == "map" else _UNKNOWN
        result = []
        seen = set()
        for item in live:
            pe = _item_key(item, shape)
            if pe is not None and pe in wanted:
                if pe in seen:
                    continue
                seen.add(pe)
                new = wanted[pe]
                result.append(_merge(item, new, item_shape) if shape.list_type == "map" else new)
            else:
                result.append(item)
        result += [item for pe, item in wanted.items() if pe not in seen]
        return result
    return config


def _remove(value: Any, gone: Tree, shape: _Shape, drop_empty: bool) -> Any:
    """``value`` without the members of ``gone``."""
    if isinstance(value, dict) and not shape.atomic_map:
        out = dict(value)
        for pe, sub in gone.items():
            if not pe.startswith("f:") or pe[2:] not in out:
                continue
            k = pe[2:]
            if _is_member(sub):
                del out[k]
            else:
                out[k] = _remove(out[k], sub, shape.field(k), drop_empty)
                if drop_empty and out[k] in ({}, []):
                    del out[k]
        return out
    if isinstance(value, list) and shape.list_type in ("set", "map"):
        item_shape = shape.item() if shape.list_type == "map" else _UNKNOWN
        kept = []
        for item in value:
            item_pe = _item_key(item, shape)
            sub = gone.get(item_pe) if item_pe is not None else None
            if sub is None:
                kept.append(item)
            elif not _is_member(sub):
                kept.append(_remove(item, sub, item_shape, drop_empty))
        return kept
    return value
