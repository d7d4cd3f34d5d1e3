"""The object store: kube-apiserver semantics over in-memory state, with no transport.

One global, monotonically increasing resourceVersion (like etcd's revision) orders
every write. Each write produces exactly one event (ADDED, MODIFIED or DELETED) that
carries the write's resourceVersion; a no-op write produces none and keeps the
version, because kopf waits for the version of its own patch to come back in the
watch (``settings.persistence.consistency_timeout``). Every version of every object
is kept, so a reader can be served "as of" an older resourceVersion (stale views)
and a watcher can resume from any version still in history.

Stored objects are never mutated: a write builds a new dict. Readers in other threads
can therefore hold a ``Version`` without copying; ``Version.raw`` is its JSON, encoded
once and shared by every GET, LIST and watch that serves it.

This module is the generic registry, as kube-apiserver's is: versioned storage and the
steps every write takes. What is not generic lives beside it: what is kept and handed out
(versions.py), object metadata (objectmeta.py), each kind's own rules (kinds/, asked
through the kind's strategy), the validation of a write (validation.py), and kube's
controllers that act on deletions (controllers/).
"""

from __future__ import annotations

import bisect
import builtins
import contextlib
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from . import apply as ssa
from . import errors, scale
from .controllers import (
    FOREGROUND,
    CrdCleanup,
    Emptier,
    GarbageCollector,
    NamespaceController,
)
from .crd import StructuralSchema, compiled_schema
from .decode import check_depth
from .errors import Cause, invalid
from .jsonvalues import as_json
from .kinds import BUILTIN, strategy_for
from .kinds.crds import crd_status
from .mediatypes import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH
from .objectmeta import (
    VALIDATED_META,
    check_type_meta,
    drop_empty_meta,
    now_rfc3339,
    object_meta,
    settle_namespace,
    system_meta_update,
)
from .patch import apply_json_patch, apply_merge_patch, apply_strategic_merge_patch
from .registry import Registry
from .resources import CRD_KEY, NAMESPACE_KEY, ResourceType, crd_resource_types
from .selectors import FieldSelector, LabelSelector
from .validation import validate_write
from .versions import (
    JSON,
    Event,
    Version,
    WriteContext,
    check_preconditions,
    decode_continue,
    encode_continue,
)

__all__ = ["Event", "Listener", "Store", "Version", "WriteContext"]

Listener = Callable[["Event"], None]


_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # kube's utilrand alphabet: no vowels
_SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
# Root fields a write always sets itself (so never "unchanged" for the schema's walks).
_ROOT_META = frozenset(("apiVersion", "kind", "metadata"))
_MISSING = object()


def _content(obj: JSON, rt: ResourceType) -> JSON:
    """What bumps ``metadata.generation``: all but metadata (and status, if a subresource)."""
    # apiVersion too: a write through another served version of a CRD is the same content.
    skip = _NOT_CONTENT_WITH_STATUS if rt.has_status else _NOT_CONTENT
    return {k: v for k, v in obj.items() if k not in skip}


_NOT_CONTENT = frozenset(("apiVersion", "metadata"))
_NOT_CONTENT_WITH_STATUS = _NOT_CONTENT | {"status"}


def _content_changed(new: JSON, old: JSON, rt: ResourceType) -> bool:
    """``_content(new, rt) != _content(old, rt)``, without building the two dicts.

    Dict equality, key by key: the same keys, and each value the very same object or
    ``==`` (as dict comparison does). Values a write leaves alone are shared with the
    stored version, so their comparison ends at the identity check.
    """
    skip = _NOT_CONTENT_WITH_STATUS if rt.has_status else _NOT_CONTENT
    count = 0
    for key, value in new.items():
        if key in skip:
            continue
        count += 1
        other = old.get(key, _MISSING)
        # (not ==: what dict comparison computes, rather than value.__ne__)
        if other is not value and (other is _MISSING or not value == other):  # noqa: SIM201
            return True
    for key in skip:  # old's keys outside skip must be as many as new's (all found above)
        if key in old:
            count += 1
    return count != len(old)


class Store:
    """In-memory kube-apiserver state; thread-safe; all methods synchronous and fast."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        history_limit: int = 100_000,
        clock: Callable[[], datetime] | None = None,
        seed: int = 0,
        namespaces: Iterable[str] = _SYSTEM_NAMESPACES,
    ) -> None:
        self.registry = registry or Registry()
        self.history_limit = history_limit
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rng = random.Random(seed)  # names and uids replay with the seed
        self._lock = threading.RLock()
        self._rv = 0
        self._objects: dict[str, dict[tuple[str, str], Version]] = {}
        self._versions: dict[tuple[str, str, str], list[tuple[int, Version | None]]] = {}
        self._history: deque[Event] = deque()
        self._compacted = 0  # every event with rv > this is still in history
        self._listeners: list[Listener] = []
        # Compiled per schema document; the document is kept to notice a CRD update.
        self._schemas: dict[tuple[str, str, str], tuple[Any, StructuralSchema]] = {}
        # Per object: its latest version that _validate passed without a cause (its
        # metadata, and its schema's pruning, defaulting and validation), and that schema
        # (None for a type without one). A write that leaves a root field of that very
        # version in place (the same object: versions are never mutated) need not walk it
        # again (StructuralSchema.normalize and validate say why that changes nothing), nor
        # validate metadata fields it leaves in place (see _update).
        self._checked: dict[tuple[str, str, str], tuple[Version, StructuralSchema | None]] = {}
        # Per kind, the state its strategy keeps in this store (Services' allocations).
        self._kind_state: dict[str, Any] = {}
        for key, strategy in BUILTIN.items():
            state = strategy.new_state()
            if state is not None:
                self._kind_state[key] = state
        cluster = _Cluster(self)
        self._gc = GarbageCollector(cluster)
        self._namespaces = NamespaceController(cluster)
        self._crds = CrdCleanup(cluster)
        # The kinds whose objects hold others, emptied before they go.
        self._emptiers: dict[str, Emptier] = {
            NAMESPACE_KEY: self._namespaces,
            CRD_KEY: self._crds,
        }
        for ns in namespaces:
            self.create(self._type("", "v1", "namespaces"), "", {"metadata": {"name": ns}})

    # ----------------------------------------------------------------- plumbing

    @property
    def lock(self) -> threading.RLock:
        """The store's lock; hold it to read several things consistently."""
        return self._lock

    @property
    def resource_version(self) -> int:
        """The current global resourceVersion."""
        return self._rv

    @property
    def compacted(self) -> int:
        """Watches and stale reads from resourceVersions at or below this get 410 Expired."""
        return self._compacted

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(event)`` for every change, in order, under the store's lock.

        Listeners must be quick and must not write to the store. Returns the undo.
        """
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _type(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.lookup(group, version, plural)
        if rt is None:
            raise errors.NotFound(f"the server could not find the requested resource ({plural})")
        return rt

    def schema(self, rt: ResourceType) -> StructuralSchema | None:
        """The compiled structural schema of a CRD-served type (cached)."""
        if rt.schema is None:
            return None
        key = (rt.group, rt.version, rt.plural)
        cached = self._schemas.get(key)
        if cached is None or cached[0] is not rt.schema:
            cached = self._schemas[key] = (rt.schema, compiled_schema(rt.schema))
        return cached[1]

    def _warn_unevaluated(self, types: list[ResourceType], ctx: WriteContext) -> None:
        """Warn, on the CRD's write, of its rules this fake cannot evaluate (kube refuses a
        rule that does not compile, and runs the rest), so none is skipped silently."""
        for served in types:
            schema = self.schema(served)
            warning = schema.warning() if schema is not None else None
            if warning is not None and warning not in ctx.warnings:
                ctx.warnings.append(warning)

    def events_since(self, rv: int) -> list[Event]:
        """History after ``rv``; raises ``Expired`` if part of it was compacted away."""
        with self._lock:
            if rv < self._compacted:
                raise errors.Expired(f"too old resource version: {rv} ({self._compacted + 1})")
            if not self._history or rv >= self._rv:
                return []
            first = self._history[0].rv
            return (
                list(self._history)[max(0, rv + 1 - first) :]
                if rv >= first
                else list(self._history)
            )

    def compact(self, rv: int | None = None) -> None:
        """Forget history up to ``rv`` (default: all), like etcd compaction.

        Watches resuming from before it then get ``ERROR 410``, which forces clients
        to relist (kopf relists; the python client raises after one retry).
        """
        with self._lock:
            target = self._rv if rv is None else min(rv, self._rv)
            while self._history and self._history[0].rv <= target:
                self._history.popleft()
            self._compacted = max(self._compacted, target)

    # ---------------------------------------------------------------- reads

    def get(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        at: int | None = None,
        min_rv: int | None = None,
    ) -> Version:
        """The object, or its version as of resourceVersion ``at`` (a stale view).

        ``min_rv``: the request's resourceVersion (kube's NotOlderThan): the answer is at
        least that fresh (see ``_fresh_at``).
        """
        ns = namespace if rt.namespaced else ""
        with self._lock:
            if at is not None or min_rv is not None:  # (most reads ask for neither)
                at = self._fresh_at(at, min_rv)
            if at is None or at >= self._rv:
                found = self._objects.get(rt.key, {}).get((ns, name))
            else:
                found = self._version_at(rt.key, ns, name, at)
        if found is None:
            raise self._not_found(rt, name)
        return self.served(found, rt)

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        limit: int = 0,
        continue_token: str = "",
        at: int | None = None,
        min_rv: int | None = None,
    ) -> tuple[list[Version], int, str, int | None]:
        """List matching objects in key order: ``(items, list rv, continue, remaining)``.

        Pages after the first are served from the first page's snapshot, as kube does.
        ``at``: the snapshot to serve (resourceVersionMatch=Exact, or a stale view);
        ``min_rv``: the request's resourceVersion as a lower bound (NotOlderThan). Either
        beyond the current resourceVersion is kube's 504 (see ``_fresh_at``).
        """
        start_after: tuple[str, str] | None = None
        if continue_token:
            at, start_after = decode_continue(continue_token)
        ns = namespace if rt.namespaced and namespace else None
        with self._lock:
            if at is not None or min_rv is not None:
                at = self._fresh_at(at, min_rv)
            snapshot = at if at is not None and at < self._rv else None
            list_rv = snapshot if snapshot is not None else self._rv
            if snapshot is not None and snapshot < self._compacted:
                raise errors.Expired(
                    f"too old resource version: {snapshot} ({self._compacted + 1})"
                )
            if snapshot is None:
                candidates = list(self._objects.get(rt.key, {}).items())
            else:
                candidates = []
                for (okey, ons, oname), _ in self._versions.items():
                    if okey == rt.key:
                        v = self._version_at(okey, ons, oname, snapshot)
                        if v is not None:
                            candidates.append(((ons, oname), v))
        candidates.sort(key=lambda kv: kv[0])
        pinned = fields.name() if fields else None
        items: list[Version] = []
        last_key: tuple[str, str] | None = None
        remaining = 0
        for key, v in candidates:
            if ns is not None and key[0] != ns:
                continue
            if start_after is not None and key <= start_after:
                continue
            if pinned is not None and key[1] != pinned:
                continue
            if labels and not labels.matches(v.obj):
                continue
            if fields and not fields.matches(v.obj):
                continue
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(self.served(v, rt))
            last_key = key
        token = ""
        if limit and remaining and last_key is not None:
            token = encode_continue(list_rv, last_key)
        # kube leaves remainingItemCount unset when selectors filter the list.
        counted = token and not labels and not fields
        return items, list_rv, token, (remaining if counted else None)

    def _fresh_at(self, at: int | None, min_rv: int | None) -> int | None:
        """The resourceVersion a read is served at (None: the current state), or kube's 504.

        A resourceVersion the store has not reached, asked exactly or as a minimum, is
        kube's ``Too large resource version`` Timeout: its watch cache waits up to 3 s for
        it (storage/cacher/watch_cache.go ``waitUntilFreshLocked``), and so does etcd's for
        an exact list (etcd3/store.go ``listReadError``). Here nothing is in flight that
        could bring it, so the answer comes at once. A stale view (``at``) older than
        ``min_rv`` is served at ``min_rv``: a lagging cache waits until it is that fresh.
        """
        current = self._rv
        for wanted in (at, min_rv):
            if wanted is not None and wanted > current:
                raise errors.too_large_resource_version(wanted, current)
        if at is not None and min_rv is not None and at < min_rv:
            return min_rv
        return at

    # (Store defines list(): in its annotations, mypy reads "list" as that method, hence
    # builtins.list in the signatures below.)
    def version_rvs(self, rt: ResourceType, namespace: str, name: str) -> builtins.list[int]:
        """The resourceVersions of every version of one object (incl. its deletion)."""
        ns = namespace if rt.namespaced else ""
        with self._lock:
            return [rv for rv, _ in self._versions.get((rt.key, ns, name), ())]

    def resource_rvs(self, rt: ResourceType) -> builtins.list[int]:
        """The resourceVersions of every change to objects of one resource still in history."""
        with self._lock:
            return [e.rv for e in self._history if e.resource.key == rt.key]

    def _version_at(self, key: str, ns: str, name: str, at: int) -> Version | None:
        if at < self._compacted:
            raise errors.Expired(f"too old resource version: {at} ({self._compacted + 1})")
        versions = self._versions.get((key, ns, name))
        if not versions:
            return None
        i = bisect.bisect_right(versions, at, key=lambda e: e[0])
        return versions[i - 1][1] if i else None

    def served(self, v: Version, rt: ResourceType) -> Version:
        """``v`` as ``rt`` serves it. Objects are stored once per resource; each served version
        names its own apiVersion, and a kind stored in another's shape (events.k8s.io
        Events) is converted to its own."""
        if v.obj.get("apiVersion") == rt.api_version:
            return v
        if rt.converter is not None:
            return Version(rt.converter.from_storage(v.obj), v.rv)
        obj = dict(v.obj)
        obj["apiVersion"] = rt.api_version
        return Version(obj, v.rv)

    def _not_found(self, rt: ResourceType, name: str) -> errors.NotFound:
        return errors.NotFound(
            f'{rt.group_resource} "{name}" not found', name=name, group=rt.group, kind=rt.plural
        )

    # --------------------------------------------------------------- writes

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: Any,
        ctx: WriteContext | None = None,
        *,
        managed: bool = False,
    ) -> Version:
        """Create an object (POST); returns the stored version.

        ``managed``: the body's managedFields are already the server's (an apply's).
        """
        ctx = ctx or WriteContext(verb="create")
        obj = check_type_meta(body, rt)
        if rt.converter is not None:
            stored_rt = self._storage_of(rt)
            with self._served_errors(rt, stored_rt):
                v = self.create(
                    stored_rt, namespace, self._to_storage(rt, obj, ctx), ctx, managed=managed
                )
            return self.served(v, rt)
        meta = object_meta(obj)
        ns = settle_namespace(rt, namespace, meta)
        with self._lock:
            if rt.namespaced:
                self._require_live_namespace(ns)
            if not rt.builtin:
                crdv = self._objects.get(CRD_KEY, {}).get(("", f"{rt.plural}.{rt.group}"))
                if crdv is not None and "deletionTimestamp" in crdv.obj["metadata"]:
                    raise errors.MethodNotAllowed(
                        "create not allowed while custom resource definition is terminating"
                    )
            name = meta.get("name") or ""
            if not name:
                prefix = meta.get("generateName")
                if not prefix:
                    raise invalid(
                        rt.kind,
                        rt.group,
                        "",
                        [
                            Cause(
                                "metadata.name",
                                "Required value: name or generateName is required",
                                "FieldValueRequired",
                            )
                        ],
                    )
                name = self._generate_name(rt, ns, str(prefix))
            meta["name"] = name
            if (ns, name) in self._objects.get(rt.key, {}):
                raise errors.AlreadyExists(
                    f'{rt.group_resource} "{name}" already exists',
                    name=name,
                    group=rt.group,
                    kind=rt.plural,
                )
            for system in (
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "resourceVersion",
                "selfLink",
            ):
                meta.pop(system, None)
            meta["uid"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
            meta["creationTimestamp"] = now_rfc3339(self._clock)
            if rt.has_generation:
                meta["generation"] = 1
            if rt.has_status:
                obj.pop("status", None)
            obj = strategy_for(rt).prepare_create(rt, obj, ctx, self._kind_state.get(rt.key))
            if "managedFields" in meta and not managed:
                # A client may send managedFields: the creator is then tracked from there
                # (kube's field manager), while objects created without them stay untracked.
                ssa.managed_fields_from_request(meta)
                ssa.track_update(
                    {},
                    obj,
                    rt,
                    self._manager(ctx),
                    "",
                    now_rfc3339(self._clock),
                    meta.get("managedFields"),
                )
            drop_empty_meta(meta)
            validate_write(rt, obj, None, ctx, self.schema(rt))
            if rt.key == CRD_KEY:
                types = crd_resource_types(obj)
                self.registry.check_crd(name, types)
                self._warn_unevaluated(types, ctx)
                obj.setdefault("status", {}).update(crd_status(obj, now_rfc3339(self._clock)))
            version = self._commit(rt, "ADDED", obj, None, ctx)
            self._mark_checked(rt, ns, name, version, ctx)
            if rt.key == CRD_KEY and not ctx.dry_run:
                self.registry.set_crd(name, types)
            return version

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        ctx: WriteContext | None = None,
        *,
        subresource: str = "",
    ) -> Version:
        """Replace an object (PUT) with a resourceVersion precondition."""
        ctx = ctx or WriteContext(verb="update")
        if subresource == "scale":  # (the body is a Scale, not the object)
            return self._update(
                rt, namespace, name, lambda cur: scale.with_scale(rt, cur, body), ctx, "scale", True
            )
        new = check_type_meta(body, rt)
        if rt.converter is not None:
            stored_rt = self._storage_of(rt)
            with self._served_errors(rt, stored_rt):
                v = self.update(
                    stored_rt,
                    namespace,
                    name,
                    self._to_storage(rt, new, ctx),
                    ctx,
                    subresource=subresource,
                )
            return self.served(v, rt)
        meta = object_meta(new)
        if meta.get("name") != name:
            # kube's checkName (handlers/update.go): a body naming no object is refused too.
            raise errors.name_mismatch(meta.get("name"), name)
        with self._lock:  # (what exists and what this write does, decided at once)
            if not subresource and rt.create_on_update and not self.exists(rt, namespace, name):
                # kube's AllowCreateOnUpdate: the PUT of a missing object creates it.
                meta.pop("resourceVersion", None)
                return self.create(rt, namespace, new, ctx)
            if not meta.get("resourceVersion") and not rt.unconditional_update:
                # kube names the resource here, not the kind (genericregistry Store.Update).
                raise invalid(
                    rt.plural,
                    rt.group,
                    name,
                    [
                        Cause(
                            "metadata.resourceVersion",
                            "Invalid value: 0x0: must be specified for an update",
                        )
                    ],
                )
            return self._update(rt, namespace, name, lambda _cur: new, ctx, subresource)

    def exists(self, rt: ResourceType, namespace: str, name: str) -> bool:
        """Whether the object is stored (being deleted or not)."""
        return (namespace if rt.namespaced else "", name) in self._objects.get(rt.key, {})

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        ctx: WriteContext | None = None,
        *,
        subresource: str = "",
        owned: bool = False,
    ) -> Version:
        """Patch an object: merge (RFC 7386), json (RFC 6902) or strategic (built-ins only).

        ``owned=True`` hands ``patch`` over as freshly decoded JSON (what the HTTP layer
        passes): the patched result, which shares nothing with the stored object, is then
        kept as is instead of being deep-copied once more. Other callers keep the copy,
        which also turns Python values such as tuples into their JSON form.
        """
        ctx = ctx or WriteContext(verb="patch")
        if content_type == MERGE_PATCH:

            def compute(cur: JSON) -> Any:
                # Owned: nothing else holds the result, so it may share what the patch does
                # not touch with the stored object (_update never mutates below metadata).
                return apply_merge_patch(cur, patch, share=owned)
        elif content_type == JSON_PATCH:

            def compute(cur: JSON) -> Any:
                patched = apply_json_patch(cur, patch)
                # copy and move can nest an object deeper than any one body may.
                check_depth(patched, "patched object")
                return patched
        elif content_type == STRATEGIC_PATCH and rt.builtin:
            if not isinstance(patch, dict):
                raise errors.BadRequest("strategic merge patch must be a JSON object")

            def compute(cur: JSON) -> Any:
                return apply_strategic_merge_patch(cur, patch)
        else:
            # (the wire answers 415 for a type the kind does not take: mediatypes.py)
            raise ValueError(f"not a patch type {rt.kind} takes: {content_type}")
        if rt.converter is not None:
            return self._update_converted(rt, namespace, name, compute, ctx, subresource, owned)
        if subresource == "scale":
            # The patch applies to the Scale the client sees; its replicas go to the object.
            on_object = compute

            def compute(cur: JSON) -> Any:
                return scale.with_scale(rt, cur, on_object(scale.scale_of(rt, cur)))

            owned = True  # (with_scale's result shares only what it leaves alone)
        return self._update(rt, namespace, name, compute, ctx, subresource, fresh=owned)

    def apply(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        config: Any,
        ctx: WriteContext | None = None,
        *,
        subresource: str = "",
    ) -> tuple[Version, bool]:
        """Server-side apply ``config`` as ``ctx.field_manager`` (``ctx.force`` to take over
        conflicting fields); creates the object if there is none. Returns the version and
        whether it was created. The semantics are in ``apply.py``.
        """
        ctx = ctx or WriteContext(verb="patch")
        ssa.check_field_manager(ctx.field_manager, required=True)
        ns = namespace if rt.namespaced else ""
        now = now_rfc3339(self._clock)

        def compute(cur: JSON) -> JSON:
            return ssa.apply(
                cur,
                config,
                rt,
                name,
                ctx.field_manager,
                force=ctx.force,
                subresource=subresource,
                now=now,
            )

        with self._lock:
            if (ns, name) not in self._objects.get(rt.key, {}):
                if subresource:
                    raise self._not_found(rt, name)
                created = compute(None)  # type: ignore[arg-type]
                return self.create(rt, namespace, created, ctx, managed=True), True
            if rt.converter is not None:
                version = self._update_converted(
                    rt, namespace, name, compute, ctx, subresource, True, managed=True
                )
                return version, False
            version = self._update(
                rt, namespace, name, compute, ctx, subresource, fresh=True, managed=True
            )
            return version, False

    def _manager(self, ctx: WriteContext) -> str:
        """The manager of a non-apply write: fieldManager, else the User-Agent's product."""
        return ctx.field_manager or ssa.manager_from_user_agent(ctx.user_agent)

    def _update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        compute: Callable[[JSON], Any],
        ctx: WriteContext,
        subresource: str,
        fresh: bool = False,
        managed: bool = False,
    ) -> Version:
        # ``managed``: compute() returns the managedFields too (an apply).
        ns = namespace if rt.namespaced else ""
        with self._lock:
            cur = self._objects.get(rt.key, {}).get((ns, name))
            if cur is None:
                raise self._not_found(rt, name)
            result = compute(cur.obj)
            # From here on ``new`` and its metadata dict are this write's own, while any
            # value below them may be shared with ``cur`` (a merge patch's result, the status
            # strategy below): stored versions are never mutated, so nothing below metadata
            # is written to in place (the schema's pruning and defaulting copy on write).
            new = check_type_meta(result if fresh else as_json(result), rt)
            cur_meta = cur.obj["metadata"]
            # A merge patch that leaves metadata alone shares the stored metadata, which
            # passed every check below when it was stored.
            meta_touched = new.get("metadata") is not cur_meta
            meta = object_meta(new) if meta_touched else cur_meta
            # What the request said of managedFields, before anything below drops an empty list.
            sent_fields = meta.get("managedFields") if meta_touched else None
            if sent_fields is not None and not managed:
                ssa.managed_fields_from_request(meta)
            if not meta_touched and subresource != "status":
                # (a /status write takes its metadata from the stored object, copied below)
                meta = new["metadata"] = dict(meta)
            if meta_touched:
                # (untouched, it is the stored metadata: these checks pass as they did)
                if meta.get("namespace", ns or None) not in (ns, None) and rt.namespaced:
                    raise errors.BadRequest(
                        "the namespace of the provided object does not match the namespace "
                        "sent on the request"
                    )
                if meta.get("name") != name:
                    # kube's checkName runs on the patched object too (handlers/patch.go
                    # applyPatch, after the namespace's check): a patch cannot rename, nor
                    # remove the name (a JSON patch removing /metadata, a merge patch
                    # nulling it).
                    raise errors.name_mismatch(meta.get("name"), name)
                wanted = meta.get("resourceVersion")
                if wanted in (None, "") and not rt.unconditional_update:
                    # A patch that removed it (a JSON patch replacing the whole document, a
                    # merge patch nulling it) meets the check a PUT does (update() above):
                    # kube's Store.Update makes it for every update, patches included.
                    raise invalid(
                        rt.plural,
                        rt.group,
                        name,
                        [
                            Cause(
                                "metadata.resourceVersion",
                                "Invalid value: 0x0: must be specified for an update",
                            )
                        ],
                    )
                if wanted not in (None, "") and str(wanted) != str(cur.rv):
                    raise errors.Conflict(
                        f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the '
                        f"object has been modified; please apply your changes to the latest "
                        f"version and try again",
                        name=name,
                        group=rt.group,
                        kind=rt.plural,
                    )
            if subresource == "status":
                # /status writes change status only (kube's status strategy): the stored
                # object with the new status, sharing the rest (only metadata is written to).
                merged = dict(cur.obj)
                merged["metadata"] = dict(cur.obj["metadata"])
                if "status" in new:
                    merged["status"] = new["status"]
                else:
                    merged.pop("status", None)
                if managed:
                    merged["metadata"]["managedFields"] = sent_fields
                new, meta = merged, merged["metadata"]
                meta_touched = False
            elif subresource and subresource != "scale":  # (/scale: a write of the object)
                raise errors.NotFound(
                    f"the server could not find the requested resource ({subresource})"
                )
            elif rt.has_status:
                if "status" in cur.obj:
                    new["status"] = cur.obj["status"]  # shared, never mutated
                else:
                    new.pop("status", None)
            deleting = "deletionTimestamp" in cur_meta
            meta_causes: builtins.list[Cause] = []
            if meta_touched:
                # What the system owns comes from the stored object, whatever was sent
                # (untouched metadata already holds exactly that).
                meta["name"] = name
                if rt.namespaced:
                    meta["namespace"] = ns
                else:
                    meta.pop("namespace", None)
                meta_causes = system_meta_update(meta, cur_meta)
                meta.pop("selfLink", None)
                if rt.has_generation:
                    meta["generation"] = cur_meta.get("generation", 1)
                meta["resourceVersion"] = str(cur.rv)
            new = strategy_for(rt).prepare_update(
                rt, new, cur.obj, ctx, self._kind_state.get(rt.key)
            )
            # (Sequence, not list: in this class "list" is Store.list for mypy.)
            unchanged: Sequence[str] = ()
            meta_unchanged = False
            schema = self.schema(rt)
            checked = self._checked.get((rt.key, ns, name))
            if checked is not None and checked[0] is cur and checked[1] is schema:
                cur_obj = cur.obj
                if schema is not None:
                    unchanged = [
                        k
                        for k, v in new.items()
                        if k not in _ROOT_META and cur_obj.get(k, _MISSING) is v
                    ]
                # What _validate_meta reads, as in the version that passed it: the same name
                # and the very same values (one absent here was absent or empty there, as
                # _drop_empty_meta leaves it), so it would find no cause again.
                if not meta_touched:
                    meta_unchanged = True
                elif meta.get("name") == cur_meta.get("name"):
                    for key in VALIDATED_META:
                        if meta.get(key, _MISSING) is not cur_meta.get(key, _MISSING):
                            break
                    else:
                        meta_unchanged = True
            new = validate_write(
                rt,
                new,
                cur.obj,
                ctx,
                schema,
                shared=True,
                unchanged=unchanged,
                meta_unchanged=meta_unchanged,
                update_causes=meta_causes,
            )
            meta = new["metadata"]
            # A /status write keeps all but status, so it never bumps generation (nor does
            # kube's status strategy); metadata it did not touch has no empties to drop.
            if subresource != "status" and rt.has_generation and _content_changed(new, cur.obj, rt):
                meta["generation"] = int(cur_meta.get("generation", 1)) + 1
            if not managed and (sent_fields is not None or cur_meta.get("managedFields")):
                # Only objects with managedFields (or a request that sends some) pay for
                # tracking: kube's field manager skips objects that were never applied.
                ssa.track_update(
                    cur.obj,
                    new,
                    rt,
                    self._manager(ctx),
                    subresource,
                    now_rfc3339(self._clock),
                    sent_fields,
                )
            if meta_touched:
                drop_empty_meta(meta)
            elif managed and not meta.get("managedFields"):
                meta.pop("managedFields", None)
            if new == cur.obj or (
                # (with the same apiVersion this is the comparison just made)
                new["apiVersion"] != cur.obj.get("apiVersion")
                and new == dict(cur.obj, apiVersion=new["apiVersion"])
            ):
                # A no-op write: no new resourceVersion, no event (like etcd), even when it
                # came through another served version of the resource than the stored one.
                return self.served(cur, rt)
            if rt.key == CRD_KEY:
                types = crd_resource_types(new)  # first: it checks the shape of spec
                old_scope = (cur.obj.get("spec") or {}).get("scope")
                new_scope = (new.get("spec") or {}).get("scope")
                if old_scope != new_scope:
                    raise invalid(
                        rt.kind,
                        rt.group,
                        name,
                        [Cause("spec.scope", f'Invalid value: "{new_scope}": field is immutable')],
                    )
                self.registry.check_crd(name, types)
                self._warn_unevaluated(types, ctx)
            if deleting and not meta.get("finalizers") and self._may_go(rt, name):
                # The update that empties the finalizers of an object being deleted is its
                # deletion (kube's generic Store.Update: ShouldDeleteDuringUpdate, then
                # deleteWithoutFinalizers, registry/generic/registry/store.go): nothing of
                # the update is stored, the stored version goes in one step (watches see
                # only DELETED, at the deletion's resourceVersion), and the request is
                # answered with the object it made, at the resourceVersion it was made on.
                if not ctx.dry_run:
                    self._finish_delete(rt, cur, ctx)
                return self.served(Version(new, cur.rv), rt)
            version = self._commit(rt, "MODIFIED", new, cur, ctx, subresource)
            if ctx.dry_run:
                return version
            self._checked[(rt.key, ns, name)] = (version, schema)
            if rt.key == CRD_KEY:
                self.registry.set_crd(name, types)
            return version

    def _may_go(self, rt: ResourceType, name: str) -> bool:
        """Whether an object being deleted goes once its finalizers are gone: at once, but a
        CRD only once its objects are gone and a namespace once its contents are."""
        emptier = self._emptiers.get(rt.key)
        return emptier is None or emptier.may_go(name)

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: JSON | None = None,
        ctx: WriteContext | None = None,
    ) -> Version:
        """Delete an object; with finalizers it only gets a deletionTimestamp."""
        ctx = ctx or WriteContext(verb="delete")
        if rt.converter is not None:
            stored_rt = self._storage_of(rt)
            with self._served_errors(rt, stored_rt):
                v = self.delete(stored_rt, namespace, name, options, ctx)
            return self.served(v, rt)
        options = options or {}
        ns = namespace if rt.namespaced else ""
        with self._lock:
            cur = self._objects.get(rt.key, {}).get((ns, name))
            if cur is None:
                raise self._not_found(rt, name)
            if rt.key == NAMESPACE_KEY and name in _IMMORTAL_NAMESPACES:
                # kube's NamespaceLifecycle admission refuses these, whoever asks.
                raise errors.Forbidden(
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    name=name,
                    kind="namespaces",
                )
            check_preconditions(rt, cur, options.get("preconditions") or {})
            policy = options.get("propagationPolicy") or (
                "Orphan" if options.get("orphanDependents") else "Background"
            )
            if policy not in ("Background", "Foreground", "Orphan"):
                raise invalid(
                    "DeleteOptions",
                    "",
                    "",
                    [
                        Cause(
                            "propagationPolicy",
                            f'Unsupported value: "{policy}": supported values: "Foreground", '
                            f'"Background", "Orphan"',
                            "FieldValueNotSupported",
                        )
                    ],
                )
            if ctx.dry_run:
                return cur
            if policy == "Orphan":
                self._gc.orphan_dependents(cur)
            meta = cur.obj["metadata"]
            emptier = self._emptiers.get(rt.key)
            foreground = policy == "Foreground" and emptier is None
            # Namespaces and CRDs wait for their contents (kube's namespace controller and
            # customresourcecleanup finalizer), honouring the finalizers on them; Foreground
            # deletion waits for the dependents (kube's foregroundDeletion finalizer).
            if meta.get("finalizers") or foreground or emptier is not None:
                if "deletionTimestamp" in meta:
                    return cur
                new = as_json(cur.obj)
                if foreground and FOREGROUND not in (meta.get("finalizers") or ()):
                    new["metadata"]["finalizers"] = [*(meta.get("finalizers") or ()), FOREGROUND]
                new["metadata"]["deletionTimestamp"] = now_rfc3339(self._clock)
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                if new["metadata"].get("generation"):
                    # kube bumps generation when deletion starts (rest.BeforeDelete): the
                    # object's controllers must now behave differently.
                    new["metadata"]["generation"] = int(new["metadata"]["generation"]) + 1
                if emptier is not None:
                    emptier.terminating(new)
                version = self._commit(rt, "MODIFIED", new, cur, ctx)
                if emptier is not None:
                    emptier.drain(version)
                if foreground:
                    self._gc.delete_dependents_first(version)
                return self._objects.get(rt.key, {}).get((ns, name), version)
            return self._finish_delete(rt, cur, ctx)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
        options: JSON | None = None,
        ctx: WriteContext | None = None,
    ) -> builtins.list[Version]:
        """Delete every matching object; returns what each delete returned."""
        ctx = ctx or WriteContext(verb="deletecollection")
        with self._lock:
            items, _, _, _ = self.list(rt, namespace, labels=labels, fields=fields)
            out = []
            for v in items:
                try:
                    out.append(self.delete(rt, v.namespace, v.name, options, ctx))
                except errors.NotFound:  # removed by garbage collection meanwhile
                    continue
            return out

    # ------------------------------------------------- kinds stored in another's shape

    # Writes through a type with a converter (events.k8s.io/v1 Events) are made through
    # the storage type (core/v1 Events) on the converted object, so history, watches,
    # garbage collection and the ledger see one kind in one shape; what they answer is
    # converted back. Every other type skips all of this on one ``converter is None``.

    def _storage_of(self, rt: ResourceType) -> ResourceType:
        assert rt.converter is not None
        return self._type(*rt.converter.storage)

    def _to_storage(self, rt: ResourceType, obj: JSON, ctx: WriteContext) -> JSON:
        """``obj`` (as ``rt`` shows it) in the storage shape. Fields only the storage shape
        defines are unknown to ``rt``'s API: dropped with kube's warning (or refused under
        Strict field validation), as its typed decoding does."""
        assert rt.converter is not None
        foreign = rt.converter.foreign(obj)
        if foreign:
            unknown = [f'unknown field "{f}"' for f in foreign]
            if ctx.field_validation == "Strict":
                raise errors.BadRequest(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    f"strict decoding error: " + ", ".join(unknown)
                )
            if ctx.field_validation in ("", "Warn"):
                ctx.warnings.extend(unknown)
        return rt.converter.to_storage(obj)

    def _update_converted(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        compute: Callable[[JSON], Any],
        ctx: WriteContext,
        subresource: str,
        fresh: bool,
        managed: bool = False,
    ) -> Version:
        """A patch or apply through ``rt``: ``compute`` sees the object as ``rt`` shows it,
        and its result is stored converted."""
        assert rt.converter is not None
        conv = rt.converter
        stored_rt = self._storage_of(rt)

        def converted(cur: JSON) -> JSON:
            result = compute(conv.from_storage(cur))
            # (_update copies a result that is not fresh; this one is converted first)
            served = check_type_meta(result if fresh else as_json(result), rt)
            return self._to_storage(rt, served, ctx)

        with self._served_errors(rt, stored_rt):
            v = self._update(stored_rt, namespace, name, converted, ctx, subresource, True, managed)
        return self.served(v, rt)

    @contextlib.contextmanager
    def _served_errors(self, rt: ResourceType, stored_rt: ResourceType) -> Iterator[None]:
        """Errors of a write made through ``stored_rt`` on behalf of ``rt``, in ``rt``'s
        words (``events.events.k8s.io "x" not found``, ``Event.events.k8s.io "x" is
        invalid``), as kube names the resource that was asked for."""
        try:
            yield
        except errors.ApiError as e:
            if e.kind == stored_rt.plural and e.group == stored_rt.group:
                old, new = f'{stored_rt.group_resource} "', f'{rt.group_resource} "'
            elif e.kind == stored_rt.kind and e.group == stored_rt.group:
                old, new = f'{stored_rt.kind} "', f'{rt.kind}.{rt.group} "'
            else:
                raise
            e.group = rt.group
            e.message = e.message.replace(old, new, 1)
            e.args = (e.message,)
            raise

    # ---------------------------------------------------------------- internals

    def _commit(
        self,
        rt: ResourceType,
        kind: str,
        obj: JSON,
        old: Version | None,
        ctx: WriteContext,
        subresource: str = "",
    ) -> Version:
        meta = obj["metadata"]
        ns, name = str(meta.get("namespace", "")), str(meta["name"])
        if ctx.dry_run:
            return Version(obj, old.rv if old else 0)
        self._rv += 1
        rv = self._rv
        if kind != "DELETED":
            meta["resourceVersion"] = str(rv)
        else:
            obj = dict(obj)
            obj["metadata"] = dict(meta, resourceVersion=str(rv))
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        version = Version(obj, rv)
        bucket = self._objects.setdefault(rt.key, {})
        if kind == "DELETED":
            bucket.pop((ns, name), None)
        else:
            bucket[(ns, name)] = version
        self._versions.setdefault((rt.key, ns, name), []).append(
            (rv, None if kind == "DELETED" else version)
        )
        event = Event(kind, rt, version, old, ctx.identity, ctx.verb, subresource)
        self._history.append(event)
        if len(self._history) > self.history_limit:
            self._compacted = self._history.popleft().rv
        for listener in list(self._listeners):
            listener(event)
        return version

    def _finish_delete(self, rt: ResourceType, cur: Version, ctx: WriteContext) -> Version:
        """Remove the object for good, then collect what depended on it."""
        version = self._commit(rt, "DELETED", cur.obj, cur, ctx)
        strategy_for(rt).deleted(cur.obj, self._kind_state.get(rt.key))
        uid = cur.obj["metadata"].get("uid")
        if rt.key == CRD_KEY:
            for dropped in self.registry.remove_crd(cur.name):
                for _key, v in list(self._objects.get(dropped.key, {}).items()):
                    self._commit(dropped, "DELETED", v.obj, v, ctx)
                self._objects.pop(dropped.key, None)
        # What kube's controllers do once an object is gone: collect its dependents, finish
        # the deletion of the namespace or CRD it kept, and of the owner it blocked.
        if uid:
            self._gc.collect_dependents(str(uid))
        ns = cur.namespace
        if ns and rt.key != NAMESPACE_KEY:
            self._namespaces.maybe_finish(ns)
        if not rt.builtin:
            self._crds.maybe_finish(f"{rt.plural}.{rt.group}")
        for ref in cur.obj["metadata"].get("ownerReferences") or ():
            if ref.get("blockOwnerDeletion"):
                self._gc.maybe_finish_foreground(str(ref.get("uid")))
        return version

    def _require_live_namespace(self, ns: str) -> None:
        nsv = self._objects.get(NAMESPACE_KEY, {}).get(("", ns))
        if nsv is None:
            raise errors.NotFound(f'namespaces "{ns}" not found', name=ns, kind="namespaces")
        if "deletionTimestamp" in nsv.obj["metadata"]:
            raise errors.Forbidden(
                f"unable to create new content in namespace {ns} because it is being terminated",
                name=ns,
                kind="namespaces",
            )

    def _generate_name(self, rt: ResourceType, ns: str, prefix: str) -> str:
        bucket = self._objects.get(rt.key, {})
        # kube truncates the prefix so the result stays a valid name (maxGeneratedNameLength).
        prefix = prefix[: 63 - 5]
        for _ in range(8):
            name = prefix + "".join(self._rng.choice(_GENERATE_ALPHABET) for _ in range(5))
            if (ns, name) not in bucket:
                return name
        raise errors.AlreadyExists(f"could not generate a unique name from {prefix!r}")

    def _mark_checked(
        self, rt: ResourceType, ns: str, name: str, version: Version, ctx: WriteContext
    ) -> None:
        """Record that ``version``, just stored, passed _validate (see ``_checked``)."""
        if not ctx.dry_run:
            self._checked[(rt.key, ns, name)] = (version, self.schema(rt))


class _Cluster:
    """The store as its controllers see it (controllers.Cluster): its live objects, and
    writes that go through the store's own steps."""

    __slots__ = ("_store", "objects", "registry")

    def __init__(self, store: Store) -> None:
        self._store = store
        self.objects = store._objects  # (the very dict: the store never replaces it)
        self.registry = store.registry

    def type_of(self, group: str, version: str, plural: str) -> ResourceType:
        """The served type."""
        return self._store._type(group, version, plural)

    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: JSON | None, ctx: WriteContext
    ) -> Version:
        """A client's delete."""
        return self._store.delete(rt, namespace, name, options, ctx)

    def commit(
        self, rt: ResourceType, kind: str, obj: JSON, old: Version | None, ctx: WriteContext
    ) -> Version:
        """A system write, stored as is."""
        return self._store._commit(rt, kind, obj, old, ctx)

    def remove(self, rt: ResourceType, cur: Version, ctx: WriteContext) -> Version:
        """The removal of an object whose finalizers are gone."""
        return self._store._finish_delete(rt, cur, ctx)
