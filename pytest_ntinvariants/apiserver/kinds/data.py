"""ConfigMaps and Secrets: kube's decoding of their data maps, a Secret's defaulting, and
ValidateConfigMap/ValidateSecret (keys, size, immutability, a Secret's type)."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import Any

from .. import errors
from ..errors import Cause
from ..gotext import go_json_type, go_quote
from ..resources import ResourceType, builtin_type
from ..versions import WriteContext
from .base import JSON, BaseStrategy, Builtin
from .columns import Column, count, path

__all__ = ["CONFIG_MAPS", "SECRETS"]

_MISSING = object()


def _default_secret(obj: JSON) -> None:
    """A Secret's defaulting that clients observe in what they read back."""
    # stringData is write-only: kube folds it into base64 data (overriding equal keys)
    # and defaults an empty type to Opaque (SetDefaults_Secret, v1 conversion).
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict) and string_data:
        data = obj.get("data")
        data = dict(data) if isinstance(data, dict) else {}
        for key, value in string_data.items():
            if value is not None and not isinstance(value, str):
                raise errors.BadRequest(
                    'Secret in version "v1" cannot be handled as a Secret: json: cannot '
                    f"unmarshal {go_json_type(value)} into Go struct "
                    "field Secret.stringData of type string"
                )
            data[key] = base64.b64encode((value or "").encode()).decode()
        obj["data"] = data
    if not obj.get("type"):
        obj["type"] = "Opaque"


# ConfigMaps and Secrets: kube's ValidateConfigMap/ValidateSecret (and their updates).
_DATA_KINDS = frozenset(("/configmaps", "/secrets"))
# The fields of each whose values are bytes (base64 strings on the wire), and those whose
# values are strings: kube decodes both into typed maps, so any other value is a 400.
_BYTES_FIELDS = {"/configmaps": ("binaryData",), "/secrets": ("data",)}
_STRING_FIELDS = {"/configmaps": ("data",)}  # (a Secret's stringData: _default_secret)
_MAX_DATA_SIZE = 1024 * 1024  # kube's MaxSecretSize, which bounds ConfigMaps too
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def _check_bytes(rt: ResourceType, obj: JSON, old: JSON | None) -> None:
    """Refuse bytes fields that are not base64, and string maps holding another type, as
    kube's JSON decoding does (400).

    Values the write shares with the stored version passed when they were stored.
    """
    typed = [(n, "[]uint8") for n in _BYTES_FIELDS.get(rt.key, ())]
    typed += [(n, "string") for n in _STRING_FIELDS.get(rt.key, ())]
    for name, go_type in typed:
        values = obj.get(name)
        if not isinstance(values, dict):
            continue
        before = (old or {}).get(name) or {}
        if values is before:
            continue
        for key, value in values.items():
            if value is None or (isinstance(before, dict) and before.get(key, _MISSING) is value):
                continue  # (Go decodes a null into the zero value)
            if not isinstance(value, str):
                raise errors.BadRequest(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    f"json: cannot unmarshal {go_json_type(value)} into "
                    f"Go struct field {rt.kind}.{name} of type {go_type}"
                )
            if go_type == "string":
                continue
            bad = _base64_error_at(value)
            if bad is not None:
                raise errors.BadRequest(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                    f"illegal base64 data at input byte {bad}"
                )


def _base64_error_at(text: str) -> int | None:
    """Where Go's strict standard base64 decoding fails on ``text`` (None: it decodes)."""
    data = text.encode()
    for i, ch in enumerate(data):
        if ch not in _B64_ALPHABET:
            return i
    try:
        base64.b64decode(data, validate=True)
    except ValueError:
        return len(data) - len(data) % 4 if len(data) % 4 else max(len(data) - 4, 0)
    return None


def _decoded_len(text: str) -> int:
    """The length of what valid padded base64 ``text`` decodes to, without decoding it."""
    return len(text) // 4 * 3 - (len(text) - len(text.rstrip("=")))


def _config_key_causes(path: str, key: str) -> list[Cause]:
    """kube's IsConfigMapKey, for a key of ``path`` (``data``, ``binaryData``)."""
    shown = go_quote(key)
    field_path = f"{path}[{key}]"
    causes = []
    if len(key) > 253:
        causes.append(
            Cause(field_path, f"Invalid value: {shown}: must be no more than 253 characters")
        )
    if not _CONFIG_KEY.match(key):
        causes.append(
            Cause(
                field_path,
                f"Invalid value: {shown}: a valid config key must consist of alphanumeric "
                f"characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
                f"'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            )
        )
    if key == ".":
        causes.append(Cause(field_path, f"Invalid value: {shown}: must not be '.'"))
    elif key == "..":
        causes.append(Cause(field_path, f"Invalid value: {shown}: must not be '..'"))
    elif key.startswith(".."):
        causes.append(Cause(field_path, f"Invalid value: {shown}: must not start with '..'"))
    return causes


def _data_causes(rt: ResourceType, obj: JSON, old: JSON | None) -> list[Cause]:
    """kube's ValidateConfigMap/ValidateSecret and their Update checks: keys, size,
    ``immutable``, and a Secret's type (immutable, and the keys its type requires)."""
    causes: list[Cause] = []
    bags = ("data", "binaryData") if rt.key == "/configmaps" else ("data",)
    total = 0
    for bag in bags:
        values = obj.get(bag)
        if not isinstance(values, dict):
            continue
        before = (old or {}).get(bag)
        # The very keys of a version that passed: valid already (only sizes may change).
        if not (isinstance(before, dict) and values.keys() == before.keys()):
            for key in values:
                causes.extend(_config_key_causes(bag, str(key)))
            if bag == "data" and rt.key == "/configmaps":
                others = obj.get("binaryData")
                for key in values:
                    if isinstance(others, dict) and key in others:
                        causes.append(
                            Cause(
                                f"data[{key}]",
                                f"Invalid value: {go_quote(str(key))}: duplicate of key "
                                f"present in binaryData",
                            )
                        )
        # kube counts bytes fields decoded (they passed _check_bytes: valid base64).
        size = _decoded_len if bag in _BYTES_FIELDS[rt.key] else len
        total += sum(size(v) for v in values.values() if isinstance(v, str))
    if total > _MAX_DATA_SIZE:
        causes.append(
            Cause("", f"Too long: must have at most {_MAX_DATA_SIZE} bytes", "FieldValueTooLong")
        )
    if rt.key == "/secrets":
        data = obj.get("data") or {}
        if obj.get("type") == "kubernetes.io/tls":
            for key in ("tls.crt", "tls.key"):
                if key not in data:
                    causes.append(Cause(f"data[{key}]", "Required value", "FieldValueRequired"))
        if old is not None and old.get("type", "Opaque") != obj.get("type", "Opaque"):
            causes.append(
                Cause(
                    "type", f"Invalid value: {go_quote(str(obj.get('type')))}: field is immutable"
                )
            )
    if old is not None and old.get("immutable") is True:
        forbidden = "Forbidden: field is immutable when `immutable` is set"
        if obj.get("immutable") is not True:
            causes.append(Cause("immutable", forbidden, "FieldValueForbidden"))
        for bag in bags:
            if obj.get(bag) != old.get(bag):
                causes.append(Cause(bag, forbidden, "FieldValueForbidden"))
    return causes


class _DataKind(BaseStrategy):
    """A ConfigMap (or, below, a Secret): its maps decoded as kube decodes them, validated."""

    columns: tuple[Column, ...] = (Column("Data", "integer", count("data", "binaryData")),)

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The object, refused (400) where kube's decoding of its maps would refuse it."""
        _check_bytes(rt, obj, None)
        return obj

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The object, refused (400) where kube's decoding of its maps would refuse it."""
        _check_bytes(rt, obj, old)
        return obj

    def validate(
        self, rt: ResourceType, obj: JSON, old: JSON | None, ctx: WriteContext
    ) -> Sequence[Cause]:
        """ValidateConfigMap/ValidateSecret, and their update checks."""
        return _data_causes(rt, obj, old)


class _Secret(_DataKind):
    """A Secret: its write-only stringData folded into data, its type defaulted."""

    columns: tuple[Column, ...] = (
        Column("Type", "string", path(".type")),
        Column("Data", "integer", count("data")),
    )

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The defaulted Secret, its maps checked."""
        _default_secret(obj)
        _check_bytes(rt, obj, None)
        return obj

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The defaulted Secret, its maps checked."""
        _default_secret(obj)
        _check_bytes(rt, obj, old)
        return obj


CONFIG_MAPS = Builtin(
    builtin_type("", "v1", "configmaps", "ConfigMap", short=("cm",), generation=False),
    _DataKind(),
)
SECRETS = Builtin(
    builtin_type("", "v1", "secrets", "Secret", generation=False, fields=("type",)), _Secret()
)
