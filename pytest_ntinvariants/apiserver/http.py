"""The HTTP face of the fake API server: parse, dispatch to the store, serialize.

No semantics live here beyond the wire: which verb a method and path mean, content
negotiation (plain JSON, Table, aggregated discovery), body limits, and rendering
every ``ApiError`` as a ``metav1.Status``. The routes are matched by hand rather than
by aiohttp's router because kube paths are ambiguous in ways a pattern table cannot
express (``/api/v1/namespaces/x/status`` is a subresource, ``…/namespaces/x/pods`` a
collection).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from . import decode, discovery, errors, protobuf, reviews, scale
from .decode import MAX_BODY_BYTES
from .hooks import Gate, Interceptor, RequestInfo
from .mediatypes import APPLY_PATCH, PATCH_TYPES, patch_types, unsupported_patch
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import Store, Version, WriteContext
from .watch import Delivery, Watcher, WatchHub

__all__ = ["MAX_BODY_BYTES", "ApiHandler"]

log = logging.getLogger("pytest_ntinvariants.apiserver")

JSON_CT = "application/json"
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"
AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
_NS_SUBRESOURCES = ("status", "finalize")


def _json(
    body: Any, status: int = 200, content_type: str = JSON_CT, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type=None,
        headers={"Content-Type": content_type, **(headers or {})},
    )


# The headers of a plain JSON answer: shared, as web.Response copies what it is given.
_JSON_HEADERS = {"Content-Type": JSON_CT}


def _raw(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=body,
        status=status,
        headers={"Content-Type": JSON_CT, **headers} if headers else _JSON_HEADERS,
    )


def _serves(info: RequestInfo, v: Version) -> None:
    """Note on the request the resourceVersion of the object its response carries."""
    rv = v.obj["metadata"].get("resourceVersion")
    info.served_rv = str(rv) if rv is not None else None


def _list_body(
    rt: ResourceType, items: Sequence[Version], rv: int, token: str, remaining: int | None
) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if token:
        meta["continue"] = token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    head = orjson.dumps({"apiVersion": rt.api_version, "kind": rt.list_kind, "metadata": meta})
    # Splice the stored bytes of each item in, rather than re-encoding every object.
    return head[:-1] + b',"items":[' + b",".join(v.raw for v in items) + b"]}"


def _wants_table(request: web.Request) -> bool:
    return "as=Table" in request.headers.get("Accept", "")


def _wants_aggregated(request: web.Request) -> bool:
    # Only the discovery roots ask (not read on every resource request).
    return "as=APIGroupDiscoveryList" in request.headers.get("Accept", "")


# Go's strconv syntax, which kube's query decoding uses: no spaces, underscores, other
# digits than ASCII, nan or inf, all of which Python's int() and float() would take.
_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_UINT = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _parse_seconds(value: str | None) -> float | None:
    # kube reads timeoutSeconds as an int64; kopf sends str(float) ("2.0"), so a decimal
    # is taken too, but only a finite one.
    if value in (None, ""):
        return None
    if not _DECIMAL.fullmatch(value):
        raise errors.BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    seconds = float(value)
    if not math.isfinite(seconds):  # 1e999
        raise errors.BadRequest(f'strconv.ParseInt: parsing "{value}": value out of range')
    return seconds


def _parse_int(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    if not _GO_INT.fullmatch(value):
        raise errors.BadRequest(f'strconv.ParseInt: parsing "{value}": invalid syntax')
    number = int(value)
    if not -(2**63) <= number < 2**63:
        raise errors.BadRequest(f'strconv.ParseInt: parsing "{value}": value out of range')
    return number


def _parse_rv(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    if not _GO_UINT.fullmatch(value) or int(value) >= 2**64:
        raise errors.BadRequest(f'invalid resource version "{value}"')
    return int(value)


def _path_parts(request: web.Request) -> list[str]:
    """The path's segments, each decoded on its own, as kube's request info splits them.

    Decoding the whole path first would turn ``configmaps/%2F`` into ``configmaps//``,
    which reads as the collection; an empty or slash-holding segment names nothing.
    """
    raw = request.rel_url.raw_path
    parts = raw.strip("/").split("/")
    if "%" in raw:
        parts = [unquote(p) for p in parts]
    if any(not p or "/" in p for p in parts):
        raise errors.NotFound("the server could not find the requested resource")
    return parts


class ApiHandler:
    """The request handler; one per server, serving the watches of its hub."""

    def __init__(
        self,
        store: Store,
        *,
        hub: WatchHub | None = None,
        tokens: dict[str, str] | None = None,
        interceptors: list[Interceptor] | None = None,
        bookmark_interval: float = 5.0,
        watch_timeout: float = 1800.0,
        server_address: str = "127.0.0.1",
        require_auth: bool = False,
    ) -> None:
        self.store = store
        self.hub = hub if hub is not None else WatchHub(store)
        self.tokens = tokens if tokens is not None else {}  # token -> identity
        self.interceptors = interceptors if interceptors is not None else []
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.server_address = server_address
        self.require_auth = require_auth
        self._seq = itertools.count(1)
        self.closing = False
        #: Holds requests and watch events for a scheduler (see ``Gate``); None: never.
        self.gate: Gate | None = None

    # ------------------------------------------------------------------ entry

    # What kube-apiserver answers without credentials when anonymous requests are limited
    # to its health checks (AuthenticationConfiguration ``anonymous.conditions``).
    PUBLIC_PATHS = frozenset(("/healthz", "/livez", "/readyz"))

    def identify(self, request: web.Request) -> str:
        """The client identity: the owner of the bearer token, or ``anonymous``.

        A token the server did not issue gets kube's 401 Status, on any path. A request
        without one is ``anonymous``: refused with the same 401 when ``require_auth`` is
        set, except on ``PUBLIC_PATHS``, which probes call without credentials.
        kubectl never sends its token to an http:// server, which
        is why ``FakeApiServer`` leaves ``require_auth`` off over plain http. An anonymous
        TokenReview over https gets kube's 403 (``_authorize_anonymous`` says why).
        """
        # Parsed as kube's bearer authenticator parses it: the scheme in any case, the token
        # up to the next space; an empty token or another scheme is no credentials at all.
        parts = request.headers.get("Authorization", "").strip().split(" ", 2)
        if len(parts) > 1 and parts[0].lower() == "bearer" and parts[1]:
            identity = self.tokens.get(parts[1])
            if identity is None:
                raise errors.Unauthorized("Unauthorized")
            return identity
        if self.require_auth and request.path not in self.PUBLIC_PATHS:
            raise errors.Unauthorized("Unauthorized")
        self._authorize_anonymous(request)
        return "anonymous"

    @staticmethod
    def _authorize_anonymous(request: web.Request) -> None:
        # A TokenReview tells its caller whether a token is valid and whose it is: an
        # oracle for checking guessed or stolen tokens. kube-apiserver lets only those RBAC
        # allows create one, never system:anonymous. Over https tokens are secret, so the
        # fake refuses too, in kube's words. Over plain http every token crosses the wire
        # in the clear and every Go client is anonymous (it sends no token there), as on
        # kube's old insecure port, where any request was allowed: so a webhook that checks
        # tokens can still do it there.
        if not (request.secure and request.method == "POST"):
            return  # (every anonymous request passes here: the common case costs nothing)
        parts = [p for p in request.path.split("/") if p]
        if parts[:2] == ["apis", "authentication.k8s.io"] and parts[3:] == ["tokenreviews"]:
            raise errors.Forbidden(
                'tokenreviews.authentication.k8s.io is forbidden: User "system:anonymous" '
                'cannot create resource "tokenreviews" in API group "authentication.k8s.io" '
                "at the cluster scope",
                group="authentication.k8s.io",
                kind="tokenreviews",
            )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one request; every failure becomes a ``Status``, none escapes."""
        info: RequestInfo | None = None
        try:
            info = RequestInfo(
                seq=next(self._seq),
                identity=self.identify(request),
                method=request.method,
                path=request.path,
                verb="",
                query=request.query,
                content_type=request.headers.get("Content-Type", ""),
                started=asyncio.get_running_loop().time(),
            )
            response = await self._route(request, info)
        except errors.ApiError as e:
            response = _json(e.status(), e.code, headers=e.headers)
        except Exception as e:  # a bug in the fake must not take the server down
            response = self._internal_error(request, e)
        if info is not None and self.interceptors and not isinstance(response, _Streamed):
            body = response.body if isinstance(response, web.Response) else b""
            try:
                for i in self.interceptors:
                    i.on_response(info, response.status, body if isinstance(body, bytes) else b"")
            except Exception as e:  # an interceptor's bug: aiohttp would only log it
                response = self._internal_error(request, e)
        return response

    def _internal_error(self, request: web.Request, e: Exception) -> web.Response:
        log.exception("internal error serving %s %s", request.method, request.path)
        self.report(e)
        err = errors.InternalError(f"fake apiserver internal error: {type(e).__name__}: {e}")
        return _json(err.status(), 500)

    @staticmethod
    def report(error: BaseException) -> None:
        """Hand an unexpected failure to the loop's exception handler.

        A 500 alone fails nothing: clients retry it (kopf backs off on 5xx). Under
        ``FakeApiServer`` the handler is its ``LoopThread``, whose ``stop()`` raises what it
        collected, so the test that used the server fails at teardown instead of a log line.
        """
        asyncio.get_running_loop().call_exception_handler(
            {"message": "fake apiserver internal error", "exception": error}
        )

    async def _route(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        path = request.path
        if path in self.PUBLIC_PATHS:
            return web.Response(text="ok", content_type="text/plain")
        parts = _path_parts(request)
        if request.method not in ("GET", "HEAD") and (
            parts[0] not in ("api", "apis") or len(parts) <= (2 if parts[0] == "api" else 3)
        ):
            # Discovery, /version and /openapi are read-only documents.
            raise errors.MethodNotAllowed(
                "the server does not allow this method on the requested resource"
            )
        if path == "/version":
            return _json(discovery.KUBE_VERSION)
        if path.startswith("/openapi/"):
            return self._openapi(path)
        if parts[0] not in ("api", "apis"):
            raise errors.NotFound("the server could not find the requested resource")
        registry = self.store.registry
        if parts[0] == "api":
            if len(parts) == 1:
                if _wants_aggregated(request):
                    return _json(
                        discovery.aggregated_discovery(registry, core=True),
                        content_type=AGGREGATED_CT,
                    )
                return _json(discovery.api_versions(self.server_address))
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                if _wants_aggregated(request):
                    return _json(
                        discovery.aggregated_discovery(registry, core=False),
                        content_type=AGGREGATED_CT,
                    )
                return _json(discovery.api_group_list(registry))
            if len(parts) == 2:
                doc = discovery.api_group(registry, parts[1])
                if doc is None:
                    raise errors.NotFound("the server could not find the requested resource")
                return _json(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            doc = discovery.resource_list(registry, group, version)
            if doc is None:
                raise errors.NotFound("the server could not find the requested resource")
            return _json(doc)
        return await self._resource(request, info, group, version, rest)

    def _openapi(self, path: str) -> web.Response:
        registry = self.store.registry
        if path.rstrip("/") == "/openapi/v3":
            return _json(discovery.openapi_root(registry))
        if path.startswith("/openapi/v3/"):
            parts = path[len("/openapi/v3/") :].strip("/").split("/")
            if parts[0] == "api" and len(parts) == 2:
                doc = discovery.openapi_group_version(registry, "", parts[1])
            elif parts[0] == "apis" and len(parts) == 3:
                doc = discovery.openapi_group_version(registry, parts[1], parts[2])
            else:
                doc = None
            if doc is not None:
                return _json(doc)
        # /openapi/v2 stays 404: kubectl falls back to v3.
        raise errors.NotFound("the server could not find the requested resource")

    # -------------------------------------------------------------- resources

    async def _resource(
        self, request: web.Request, info: RequestInfo, group: str, version: str, rest: list[str]
    ) -> web.StreamResponse:
        watch_path = rest[0] == "watch"  # the deprecated /watch/ prefix
        if watch_path:
            rest = rest[1:]
        namespace = ""
        if (
            rest
            and rest[0] == "namespaces"
            and len(rest) >= 3
            and not (len(rest) == 3 and rest[2] in _NS_SUBRESOURCES)
        ):
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise errors.NotFound("the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else ""
        sub = rest[2] if len(rest) > 2 else ""
        rt = self.store.registry.lookup(group, version, plural)
        if rt is None:
            raise errors.NotFound(
                f"the server could not find the requested resource"
                f" ({request.method} {plural}{'.' + group if group else ''})"
            )
        if namespace and not rt.namespaced:
            raise errors.NotFound("the server could not find the requested resource")
        if sub and sub not in rt.subresources:
            raise errors.NotFound(
                f"the server could not find the requested resource ({sub} of {plural})"
            )
        q = request.query
        method = request.method
        # ``?watch`` on a named path is a plain GET, as kube's RequestInfoFactory resolves it;
        # the deprecated ``/watch/`` prefix with a name watches that one object.
        watch = watch_path or (q.get("watch") in ("true", "1") and not name)
        if method == "GET":
            verb = "watch" if watch else ("get" if name else "list")
        elif method == "POST" and not name:
            verb = "create"
        elif method == "PUT" and name:
            verb = "update"
        elif method == "PATCH" and name:
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name else "deletecollection"
        else:
            raise errors.MethodNotAllowed(f"{method} is not allowed on this path")
        if sub and verb not in ("get", "update", "patch"):
            raise errors.MethodNotAllowed(f"{method} is not allowed on {plural}/{sub}")
        if not sub and verb not in rt.verbs:  # the verbs discovery lists are the ones served
            raise errors.MethodNotAllowed(f"{verb} is not supported on {rt.group_resource}")
        info.verb, info.resource, info.namespace, info.name, info.subresource = (
            verb,
            rt,
            namespace,
            name,
            sub,
        )
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            info.body = await self._read_body(request)
        for interceptor in self.interceptors:
            await interceptor.on_request(info)
        gate = self.gate
        if gate is not None and gate.holds(info.identity):
            peer = request.transport.get_extra_info("peername") if request.transport else None
            await gate.hold_request(info, peer[1] if peer else None)
        if verb == "watch":
            return await self._watch(request, info, rt, namespace)
        if verb in ("get", "list"):
            return self._read(request, info, rt, namespace, name, verb)
        ctx = WriteContext(
            identity=info.identity,
            verb=verb,
            dry_run=q.get("dryRun") == "All",
            field_validation=q.get("fieldValidation", ""),
            field_manager=q.get("fieldManager", ""),
            force=q.get("force") == "true",
            user_agent=request.headers.get("User-Agent", ""),
            api_version=rt.api_version,
        )
        if ctx.field_validation not in ("", "Ignore", "Warn", "Strict"):
            raise errors.BadRequest(
                f"fieldValidation must be one of Ignore, Warn, Strict (got "
                f"{ctx.field_validation!r})"
            )
        if q.get("dryRun") not in (None, "All"):
            raise errors.BadRequest(f"unsupported dryRun value {q.get('dryRun')!r}; only All")
        store = self.store
        if verb == "create" and rt.key in reviews.REVIEW_KEYS:
            body = self._decode(request, info.body)
            return _json(reviews.answer(rt, body, info.identity, self.tokens), 201)
        if verb == "create":
            v = store.create(rt, namespace, self._decode(request, info.body), ctx)
            return self._written(request, info, rt, v, ctx, status=201)
        if verb == "update":
            body = self._decode(request, info.body)
            # (a PUT that creates, where kube allows it, answers 201 as a create does)
            created = rt.create_on_update and not sub and not store.exists(rt, namespace, name)
            v = store.update(rt, namespace, name, body, ctx, subresource=sub)
            if sub == "scale":
                _serves(info, v)
                return _json(scale.scale_of(rt, v.obj))
            return self._written(request, info, rt, v, ctx, status=201 if created else 200)
        if verb == "patch":
            # The raw header when it is exactly a patch type (what aiohttp's parse returns
            # for it, without the parse); anything else is parsed, parameters and all.
            raw_ctype = request.headers.get("Content-Type", "")
            ctype = raw_ctype if raw_ctype in PATCH_TYPES else request.content_type
            if ctype not in PATCH_TYPES:
                raise errors.UnsupportedMediaType(
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {', '.join(PATCH_TYPES)}"
                )
            if ctype == APPLY_PATCH and sub == "scale":
                raise errors.UnsupportedMediaType(
                    "server-side apply to the scale subresource is not supported by this fake "
                    "API server: patch (merge or json) or replace the Scale instead"
                )
            if ctype == APPLY_PATCH:
                # YAML, or JSON (which YAML reads too), worded as kube's applyPatcher does.
                config = decode.yaml_body(info.body, prefix="error decoding YAML")
                v, created = store.apply(rt, namespace, name, config, ctx, subresource=sub)
                return self._written(request, info, rt, v, ctx, status=201 if created else 200)
            if "force" in q:
                raise errors.invalid(
                    "PatchOptions",
                    "meta.k8s.io",
                    "",
                    [
                        errors.Cause(
                            "force",
                            "Forbidden: may not be specified for non-apply patch",
                            "FieldValueForbidden",
                        )
                    ],
                )
            patch = decode.json_body(info.body)
            if ctype not in patch_types(rt.builtin):
                raise unsupported_patch(rt.builtin)
            # The patch was just decoded for this request: the store may keep what it yields.
            v = store.patch(rt, namespace, name, ctype, patch, ctx, subresource=sub, owned=True)
            if sub == "scale":
                _serves(info, v)
                return _json(scale.scale_of(rt, v.obj))
            return self._written(request, info, rt, v, ctx)
        options = self._delete_options(request, info.body)
        if options.get("dryRun"):
            # kubectl delete --dry-run=server says it in the DeleteOptions body, not the query.
            if options["dryRun"] != ["All"]:
                raise errors.BadRequest(
                    f'unsupported dryRun value {options["dryRun"]!r}; only ["All"]'
                )
            ctx = dataclasses.replace(ctx, dry_run=True)
        if verb == "delete":
            v = store.delete(rt, namespace, name, options, ctx)
            meta = v.obj["metadata"]
            if rt.returns_deleted or "deletionTimestamp" in meta:
                # (a deletion waiting for finalizers answers with the object, whatever kind)
                return self._written(request, info, rt, v, ctx)
            # kube's finalizeDelete: what was deleted, with the resource in "kind".
            details = {"name": name, "group": rt.group, "kind": rt.plural, "uid": meta.get("uid")}
            return _json(
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {key: value for key, value in details.items() if value},
                }
            )
        labels = LabelSelector.parse(q.get("labelSelector"))
        fields = FieldSelector.parse(
            q.get("fieldSelector"), rt.field_selectors, rt.kind, rt.field_paths
        )
        deleted = store.delete_collection(
            rt, namespace or None, labels=labels, fields=fields, options=options, ctx=ctx
        )
        list_rv = store.resource_version
        info.served_rv = str(list_rv)
        return _raw(_list_body(rt, deleted, list_rv, "", None))

    async def _read_body(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            raise errors.RequestEntityTooLarge(
                f"the request body is too large (limit is {MAX_BODY_BYTES})"
            )
        if length is not None:
            # aiohttp ends a Content-Length body after exactly that many bytes, so this is
            # what the chunk loop below reads, without its extra read of the end (one await
            # and a StopAsyncIteration less on every write).
            try:
                return await request.content.readexactly(length)
            except asyncio.IncompleteReadError as e:
                return e.partial  # the stream ended early: the loop returned what came too
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise errors.RequestEntityTooLarge(
                    f"the request body is too large (limit is {MAX_BODY_BYTES})"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, request: web.Request, body: bytes) -> Any:
        # The python client sends POST/PUT bodies without Content-Type; kube defaults to JSON.
        ctype = request.content_type if "Content-Type" in request.headers else JSON_CT
        if ctype == JSON_CT:
            return decode.json_body(body)
        if ctype in ("application/yaml", "application/x-yaml", "text/yaml"):
            return decode.yaml_body(body)
        if ctype == protobuf.MEDIA_TYPE:
            # kubectl's typed generators (`kubectl create namespace`, `auth can-i`, ...) send it.
            data = protobuf.decode(body)
            decode.check_depth(data)
            return data
        raise errors.UnsupportedMediaType(
            f"the body of the request was in an unknown format ({ctype}) - accepted media "
            f"types include: application/json, application/yaml, {protobuf.MEDIA_TYPE}"
        )

    def _delete_options(self, request: web.Request, body: bytes) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if body.strip():
            parsed = decode.json_body(body)
            if not isinstance(parsed, dict):
                raise errors.BadRequest("DeleteOptions must be a JSON object")
            options = parsed
        if "propagationPolicy" in request.query:
            options["propagationPolicy"] = request.query["propagationPolicy"]
        return options

    def _written(
        self,
        request: web.Request,
        info: RequestInfo,
        rt: ResourceType,
        v: Version,
        ctx: WriteContext,
        status: int = 200,
    ) -> web.Response:
        _serves(info, v)
        headers = {}
        if ctx.warnings:
            # One header line per warning, as kube sends them (RFC 7234 warn-code 299).
            headers["Warning"] = ", ".join(
                '299 - "' + w.replace('"', '\\"') + '"' for w in ctx.warnings
            )
        if _wants_table(request):
            return _json(discovery.table(rt, [v.obj], list_meta={}), status, TABLE_CT, headers)
        return _raw(v.encoded(), status, headers)

    def _read_at(self, info: RequestInfo) -> int | None:
        at = None
        for interceptor in self.interceptors:
            candidate = interceptor.read_at(info)
            if candidate is not None:
                at = candidate if at is None else min(at, candidate)
        return at

    def _read(
        self,
        request: web.Request,
        info: RequestInfo,
        rt: ResourceType,
        namespace: str,
        name: str,
        verb: str,
    ) -> web.Response:
        q = request.query
        at = info.served_at = self._read_at(info)
        asked = _parse_rv(q.get("resourceVersion"))  # validated even when not "Exact": 400
        if q.get("resourceVersionMatch") == "Exact":
            at = asked
        if verb == "get":
            v = self.store.get(rt, namespace, name, at=at, min_rv=asked)
            _serves(info, v)
            if info.subresource == "scale":
                return _json(scale.scale_of(rt, v.obj))
            if info.subresource == "status" or not _wants_table(request):
                return _raw(v.raw)
            return _json(discovery.table(rt, [v.obj], list_meta={}), content_type=TABLE_CT)
        labels = LabelSelector.parse(q.get("labelSelector"))
        fields = FieldSelector.parse(
            q.get("fieldSelector"), rt.field_selectors, rt.kind, rt.field_paths
        )
        limit = _parse_int(q.get("limit")) or 0
        if limit < 0:
            raise errors.BadRequest("limit must not be negative")
        items, rv, token, remaining = self.store.list(
            rt,
            namespace or None,
            labels=labels,
            fields=fields,
            limit=limit,
            continue_token=q.get("continue", ""),
            at=at,
            min_rv=asked,
        )
        info.served_rv = str(rv)
        if _wants_table(request):
            meta: dict[str, Any] = {"resourceVersion": str(rv)}
            if token:
                meta["continue"] = token
            return _json(
                discovery.table(
                    rt,
                    [v.obj for v in items],
                    list_meta=meta,
                    include_object=q.get("includeObject", "Metadata"),
                ),
                content_type=TABLE_CT,
            )
        return _raw(_list_body(rt, items, rv, token, remaining))

    # ------------------------------------------------------------------ watch

    async def _watch(
        self, request: web.Request, info: RequestInfo, rt: ResourceType, namespace: str
    ) -> web.StreamResponse:
        q = request.query
        labels = LabelSelector.parse(q.get("labelSelector"))
        fields = FieldSelector.parse(
            q.get("fieldSelector"), rt.field_selectors, rt.kind, rt.field_paths
        )
        if info.name:  # the deprecated /watch/.../NAME form watches one object
            fields = FieldSelector((*fields.terms, ("metadata.name", True, info.name)))
        timeout = _parse_seconds(q.get("timeoutSeconds"))
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        initial = q.get("sendInitialEvents") in ("true", "1")
        if initial and (not bookmarks or q.get("resourceVersionMatch") != "NotOlderThan"):
            raise errors.Invalid(
                "sendInitialEvents requires allowWatchBookmarks=true and "
                "resourceVersionMatch=NotOlderThan"
            )
        rv_text = q.get("resourceVersion")
        start_rv = _parse_rv(rv_text)
        table = _wants_table(request)
        loop = asyncio.get_running_loop()
        watcher = Watcher(
            rt, namespace or None, labels, fields, info.identity, loop, id=self.hub.next_id()
        )
        if self.gate is not None and self.gate.holds(info.identity):
            watcher.gate = self.gate
        if self.interceptors:
            watcher.on_delivery = self._intercept_delivery
        expired: errors.ApiError | None = None
        with self.store.lock:
            backlog: list[Delivery] = []
            if initial or start_rv in (None, 0):
                items, list_rv, _, _ = self.store.list(
                    rt, namespace or None, labels=labels, fields=fields
                )
                backlog = [Delivery("ADDED", v, None) for v in items]
                watcher.seen_rv = list_rv
            else:
                try:
                    if any(i.expire_watch(info) for i in self.interceptors):
                        raise errors.Expired(
                            f"too old resource version: {start_rv} ({self.store.resource_version})"
                        )
                    events = self.store.events_since(start_rv)
                except errors.Expired as e:
                    expired = e
                    events = []
                watcher.seen_rv = start_rv or 0
                for event in events:
                    d = watcher.translate(event)
                    if d is not None:
                        backlog.append(d)
                    else:
                        watcher.seen_rv = event.rv
            if expired is None:
                # Writes made while the stream is being opened (the awaits below) are held
                # back until the backlog is queued, so they cannot overtake it.
                watcher.held = []
                self.hub.add(watcher)
        response = _Streamed(
            status=200,
            headers={
                "Content-Type": TABLE_CT if table else JSON_CT,
                "Cache-Control": "no-cache, private",
            },
        )
        response.enable_chunked_encoding()
        opened = False
        try:
            await response.prepare(request)
            for interceptor in self.interceptors:
                interceptor.on_response(info, 200, b"")
            if expired is not None:
                # An in-stream ERROR 410 (not an HTTP 410): kopf relists on it, and dies on
                # anything else.
                await response.write(
                    orjson.dumps({"type": "ERROR", "object": expired.status()}) + b"\n"
                )
                return response
            opened = True
            for interceptor in self.interceptors:
                interceptor.on_watch_open(info, watcher)
            for d in backlog:
                watcher.enqueue(d)
            if initial:
                watcher.pending.append(
                    Delivery("BOOKMARK", self._bookmark(rt, watcher.seen_rv, end=True), None)
                )
            watcher.release()
            await self._stream(response, watcher, rt, timeout, bookmarks, table)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except Exception as e:
            # The 200 is already sent, so no Status can follow: end the stream, and make
            # the failure fail the test rather than vanish.
            log.exception("internal error in watch %s", request.path)
            self.report(e)
        finally:
            if expired is None:
                self.hub.remove(watcher)
            if opened:
                for interceptor in self.interceptors:
                    interceptor.on_watch_close(watcher)
        return response

    def _intercept_delivery(self, watcher: Watcher, delivery: Delivery) -> list[Delivery]:
        batch = [delivery]
        for interceptor in self.interceptors:
            batch = [out for d in batch for out in interceptor.on_delivery(watcher, d)]
        return batch

    @staticmethod
    def _bookmark(rt: ResourceType, rv: int, end: bool = False) -> Version:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta}
        return Version(obj, rv)

    async def _stream(
        self,
        response: web.StreamResponse,
        watcher: Watcher,
        rt: ResourceType,
        timeout: float | None,
        bookmarks: bool,
        table: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        # timeoutSeconds=0 (or absent) means the server's own limit, as in kube's ListResource.
        deadline = loop.time() + (timeout if timeout else self.watch_timeout)
        next_bookmark = loop.time() + self.bookmark_interval
        pending = watcher.pending
        while not watcher.closed and not self.closing:
            now = loop.time()
            if pending and pending[0].not_before <= now:
                chunks = []
                written = []
                while pending and pending[0].not_before <= now:
                    d = pending.popleft()
                    chunks.append(self._line(d, rt, table))
                    written.append(d)
                # Recorded before the write, so that whoever reads the line can already
                # find its delivery in the record.
                for d in written:
                    watcher.seen_rv = max(watcher.seen_rv, d.version.rv)
                    for interceptor in self.interceptors:
                        interceptor.on_delivered(watcher, d)
                await response.write(b"".join(chunks))
                continue
            if now >= deadline or (watcher.ending and not pending):
                return
            wait = deadline - now
            if pending:
                wait = min(wait, pending[0].not_before - now)
            if bookmarks:
                if now >= next_bookmark:
                    if not pending:
                        # Nothing is in flight for this watcher, so everything up to
                        # seen_rv has reached it: a bookmark may say so.
                        await response.write(
                            self._line(
                                Delivery("BOOKMARK", self._bookmark(rt, watcher.seen_rv), None),
                                rt,
                                False,
                            )
                        )
                    next_bookmark = now + self.bookmark_interval
                    continue
                wait = min(wait, next_bookmark - now)
            watcher.wakeup.clear()
            if pending and pending[0].not_before <= loop.time():
                continue
            try:
                # asyncio.timeout rather than wait_for: wait_for runs the wait in a Task of
                # its own, which costs two more loop turns on every wake-up (and so delays
                # every delivery; see benchmarks/bench_apiserver.py).
                async with asyncio.timeout(max(wait, 0)):
                    await watcher.wakeup.wait()
            except TimeoutError:
                pass

    def _line(self, d: Delivery, rt: ResourceType, table: bool) -> bytes:
        v = d.version
        if d.type != "BOOKMARK":
            # Objects are stored as written, in the version the writer used; a watch of
            # another served version must see its own apiVersion, as GET and LIST do.
            v = self.store.served(v, rt)
        if table and d.type != "BOOKMARK":
            obj = discovery.table(rt, [v.obj], list_meta={"resourceVersion": str(v.rv)})
            return orjson.dumps({"type": d.type, "object": obj}) + b"\n"
        return b'{"type":"' + d.type.encode() + b'","object":' + v.raw + b"}\n"


class _Streamed(web.StreamResponse):
    """A watch response (already reported to interceptors when it opened)."""
