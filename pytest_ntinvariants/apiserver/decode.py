"""The door: every request body becomes plain JSON data, within limits, or a 4xx.

Nothing past this module sees a body as bytes, and nothing it hands on can hurt the
server: the result holds only dicts, lists, strings, ints, floats, booleans and None,
nested at most ``MAX_DEPTH`` deep, so the store, the patch and schema code, and
orjson (which cannot encode past 254 levels) never meet a value they cannot keep or
serve. A body that breaks a rule is refused before anything is stored.

YAML is read as kube-apiserver reads it (``sigs.k8s.io/yaml``: go-yaml, then JSON):

- it is built here from libyaml's event stream, with explicit stacks, rather than by
  PyYAML's composer and constructor, which recurse once per level (libyaml's Cython
  composer recursing a 3 MiB body of ``[`` would overflow the C stack);
- aliases are expanded under go-yaml's own rule (``document contains excessive
  aliasing``), and the expansion may not grow the document past the body limit;
- what JSON cannot hold becomes what kube's conversion makes of it: timestamps stay
  the strings they were written as, ``!!binary`` is its decoded text, a ``!!set`` is a
  map of nulls, and keys that are numbers or booleans become strings; NaN and the
  infinities are refused, as Go's JSON encoder refuses them;
- only the first document of a stream is read, as go-yaml's ``Unmarshal`` does.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import orjson
import yaml

from . import errors
from .gotext import go_float
from .jsonvalues import copy_json

__all__ = ["MAX_BODY_BYTES", "MAX_DEPTH", "check_depth", "json_body", "yaml_body"]

# kube-apiserver refuses request bodies over 3 MiB (``maxRequestBodyBytes``).
MAX_BODY_BYTES = 3 * 1024 * 1024

# How deep a body (and so a stored object) may nest. kube's decoders stop at 10,000;
# this server stops far sooner because its own code and orjson must be able to walk
# every object it keeps: orjson encodes at most 254 levels, a Table wraps an object
# in three more, and the recursive helpers of the patch and schema code take a few
# frames a level under Python's limit of 1,000. Real objects, CRD schemas included,
# stay well under 64.
MAX_DEPTH = 128

_MAX_INT64 = 2**63
_MAX_UINT64 = 2**64


def json_body(body: bytes, what: str = "request body") -> Any:
    """Decode a JSON body, refusing malformed JSON (400) and nesting past ``MAX_DEPTH``.

    orjson already yields only JSON types and refuses NaN, out-of-range integers and
    lone surrogates, so the nesting is all that is left to check.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise errors.BadRequest(f"the {what} is not valid JSON: {e}") from None
    # Fewer brackets than the limit cannot nest past it: most bodies stop here, at the
    # cost of two byte counts, which keeps the depth walk off the write path.
    if body.count(b"{") + body.count(b"[") > MAX_DEPTH:
        check_depth(data, what)
    return data


def check_depth(data: Any, what: str = "request body") -> None:
    """Refuse (400) a value that nests more than ``MAX_DEPTH`` containers deep.

    For bodies decoded elsewhere (protobuf) and for what a JSON patch builds, whose
    ``copy`` and ``move`` operations can nest an object deeper than any one body.
    """
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if type(node) is dict else node
        for child in children:
            if type(child) is dict or type(child) is list:
                if depth >= MAX_DEPTH:
                    raise errors.BadRequest(
                        f"the {what} is nested too deeply: exceeded max depth of {MAX_DEPTH}"
                    )
                stack.append((child, depth + 1))
    return None


def yaml_body(
    body: bytes, what: str = "request body", prefix: str = "error converting YAML to JSON"
) -> Any:
    """Decode a YAML (or JSON) body as kube converts YAML to JSON; a 4xx when it cannot.

    ``prefix`` begins the message of a 400 as kube's caller words it: the serializer of
    a create or update says ``error converting YAML to JSON``, an apply patch says
    ``error decoding YAML``.
    """
    if body[:1] == b"{":
        # kubectl's apply sends JSON under the YAML media type: the fast path, when it is.
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # YAML's flow style is not always JSON: read it as YAML below
        else:
            if body.count(b"{") + body.count(b"[") > MAX_DEPTH:
                check_depth(data, what)
            return data
    try:
        return _YamlBuilder(what).build(yaml.parse(body, Loader=_Loader))
    except _Refused as e:
        raise errors.BadRequest(f"{prefix}: {e}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise errors.BadRequest(f"{prefix}: yaml: {where}{e.problem or e.context}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise errors.BadRequest(f"{prefix}: yaml: {e}") from None


class _Refused(Exception):
    """A body kube's YAML conversion refuses; the message follows the caller's prefix."""


# libyaml's parser when PyYAML has it: a state machine with its own stacks, and fast.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_resolver = yaml.resolver.Resolver()
_constructor = yaml.constructor.SafeConstructor()
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _allowed_alias_ratio(decoded: int) -> float:
    # go-yaml's rule (decode.go, allowedAliasRatio): up to 400,000 decoded values, 99 %
    # of them may come from aliases; from 4,000,000 on, 10 %; linear in between. It
    # lets a document reuse what it defines, and refuses a billion laughs early.
    if decoded <= 400_000:
        return 0.99
    if decoded >= 4_000_000:
        return 0.10
    return 0.99 - 0.89 * (decoded - 400_000) / 3_600_000


class _Collection:
    """A mapping or sequence being built, with what its end must know."""

    __slots__ = ("anchor", "key", "merges", "nodes", "value")

    def __init__(self, value: dict[str, Any] | list[Any], anchor: str | None) -> None:
        self.value = value
        self.anchor = anchor
        self.key: str | None = None  # a mapping's key awaiting its value
        self.merges: list[Any] | None = None  # what ``<<`` brought, applied at the end
        self.nodes = 1  # values decoded inside, for the alias ratio and anchors' cost


class _YamlBuilder:
    """Turns libyaml's events into JSON data, iteratively, counting what aliases cost."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.anchors: dict[str, tuple[Any, int, int]] = {}  # anchor -> (value, nodes, bytes)
        self.decoded = 0
        self.aliased = 0
        self.size = 0  # scalar bytes so far, aliases expanded

    def build(self, events: Any) -> Any:
        stack: list[_Collection] = []
        root: Any = None
        done = False
        for event in events:
            kind = type(event)
            if done:
                if kind is yaml.DocumentStartEvent:
                    break  # the first document only, as go-yaml's Unmarshal
                continue
            if kind is yaml.ScalarEvent:
                value = self._scalar(event, stack)
                nodes = 1
                self._count(1, len(event.value))
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1, len(event.value))
            elif kind is yaml.AliasEvent:
                value, nodes = self._alias(event.anchor)
            elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
                if len(stack) >= MAX_DEPTH:
                    raise errors.BadRequest(
                        f"the {self.what} is nested too deeply: exceeded max depth of {MAX_DEPTH}"
                    )
                empty: dict[str, Any] | list[Any] = {} if kind is yaml.MappingStartEvent else []
                stack.append(_Collection(empty, event.anchor))
                self._count(1, 0)
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                ended = stack.pop()
                value, nodes = ended.value, ended.nodes
                if ended.merges is not None:
                    self._merge(value, ended.merges)
                if ended.anchor is not None:
                    self.anchors[ended.anchor] = (value, nodes, -1)
            elif kind is yaml.DocumentEndEvent:
                done = True
                continue
            else:
                continue  # stream and document starts
            if not stack:
                root = value
                continue
            self._place(stack[-1], value, nodes)
        if self.aliased:
            # An alias puts a whole anchored value where it is used: deeper than any
            # collection the events opened.
            check_depth(root, self.what)
        return root

    def _count(self, nodes: int, size: int, aliased: bool = False) -> None:
        self.decoded += nodes
        self.size += size
        if aliased:
            self.aliased += nodes
            if (
                self.aliased > 100
                and self.decoded > 1000
                and self.aliased / self.decoded > _allowed_alias_ratio(self.decoded)
            ):
                raise _Refused("yaml: document contains excessive aliasing")
        if self.size > MAX_BODY_BYTES:
            raise errors.RequestEntityTooLarge(
                f"the {self.what} is too large once its YAML aliases are expanded "
                f"(limit is {MAX_BODY_BYTES})"
            )

    def _place(self, parent: _Collection, value: Any, nodes: int) -> None:
        parent.nodes += nodes
        container = parent.value
        if type(container) is list:
            container.append(value)
            return
        assert type(container) is dict
        if parent.key is None:
            if type(value) is dict or type(value) is list:
                raise _Refused("unsupported map key: a mapping or sequence cannot be a key")
            if value is _MERGE_KEY:
                parent.key = _MERGE_KEY
                return
            parent.key = _key(value)
            return
        key, parent.key = parent.key, None
        if key is _MERGE_KEY:
            merges = value if type(value) is list else [value]
            if any(type(m) is not dict for m in merges):
                raise _Refused("yaml: map merge requires map or sequence of maps as the value")
            parent.merges = (parent.merges or []) + merges
            return
        container[key] = value

    @staticmethod
    def _merge(mapping: Any, merges: list[dict[str, Any]]) -> None:
        # Keys written in the mapping win over merged ones, and earlier merges win over
        # later ones, as YAML's merge key says.
        for merged in merges:
            for k, v in merged.items():
                if k not in mapping:
                    mapping[k] = copy_json(v)

    def _alias(self, anchor: str) -> tuple[Any, int]:
        try:
            value, nodes, size = self.anchors[anchor]
        except KeyError:
            raise _Refused(f'yaml: unknown anchor "{anchor}" referenced') from None
        if size < 0:
            size = len(orjson.dumps(value))  # a collection's size, measured on first use
            self.anchors[anchor] = (value, nodes, size)
        # Counted before the copy is made, so a refused expansion costs nothing.
        self._count(nodes, size, aliased=True)
        # An alias is a copy, so that a later change to one place cannot change another.
        return copy_json(value), nodes

    def _scalar(self, event: Any, stack: list[_Collection]) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:
                return event.value  # quoted: a string
            resolve: Any = _resolver.resolve
            tag = resolve(yaml.ScalarNode, event.value, (True, False))
        if tag == _STR:
            return event.value
        if tag == _MERGE:
            if stack and type(stack[-1].value) is dict and stack[-1].key is None:
                return _MERGE_KEY
            return event.value
        constructor = _constructor.yaml_constructors.get(tag)
        if constructor is None:
            raise _Refused(f"yaml: cannot decode {tag} `{event.value[:40]}`")
        if tag in _NUMBERS and event.tag is None and ":" in event.value:
            return event.value  # YAML 1.1's base 60 (1:30), which go-yaml reads as a string
        try:
            value = constructor(_constructor, yaml.ScalarNode(tag, event.value, style=event.style))
        except (yaml.YAMLError, ValueError, TypeError) as e:
            raise _Refused(f"yaml: {e}") from None
        return _plain(value, event.value)


_MERGE_KEY: Any = object()


def _plain(value: Any, text: str) -> Any:
    """What kube's YAML-to-JSON conversion makes of one scalar."""
    if value is None or type(value) in (str, bool):
        return value
    if type(value) is int:
        if -_MAX_INT64 <= value < _MAX_UINT64:
            return value
        value = float(value)  # go-yaml reads an integer too large for 64 bits as a float
    if type(value) is float:
        if math.isnan(value) or math.isinf(value):
            raise _Refused(f"json: unsupported value: {go_float(value)}")
        return value
    if isinstance(value, datetime.date):
        return text  # go-yaml keeps a timestamp decoded into interface{} as its text
    if type(value) is bytes:
        # !!binary decodes to a Go string; JSON turns bytes that are not UTF-8 into U+FFFD.
        return value.decode("utf-8", "replace")
    raise _Refused(f"yaml: cannot decode `{text[:40]}`")


def _key(value: Any) -> str:
    """A mapping key as ``sigs.k8s.io/yaml`` writes it into JSON: always a string."""
    if type(value) is str:
        return value
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if math.isnan(value) or math.isinf(value):
            return {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[str(value)]
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    raise _Refused(f"unsupported map key: {value!r}")
