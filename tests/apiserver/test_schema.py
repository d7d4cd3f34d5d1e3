"""CRD structural schemas: pruning, defaulting, validation and CEL, worded like kube."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from pytest_ntinvariants.apiserver.crd import (
    StructuralSchema,
    UnevaluatedRule,
    validate_schema_document,
)
from pytest_ntinvariants.apiserver.errors import Cause

IMMUTABLE = "spec is immutable after creation (DD-NOT-005)"
NOT_CHECKED = Cause(
    "<nil>",
    'Invalid value: "null": some validation rules were not checked because the object was '
    "invalid; correct the existing errors to complete validation",
    "FieldValueInvalid",
)


def integer(default: int, low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "default": default, "minimum": low, "maximum": high}


# A NotificationRequest-like schema (the original controller's Dec-2025 CRD shape).
NR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["type", "priority", "subject", "body"],
            "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": IMMUTABLE}],
            "properties": {
                "type": {
                    "type": "string",
                    "enum": ["escalation", "simple", "status-update", "approval", "manual-review"],
                },
                "priority": {
                    "type": "string",
                    "enum": ["critical", "high", "medium", "low"],
                    "default": "medium",
                },
                "recipients": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "email": {"type": "string"},
                            "slack": {"type": "string"},
                            "webhookURL": {"type": "string"},
                        },
                    },
                },
                "subject": {"type": "string", "minLength": 1, "maxLength": 500},
                "body": {"type": "string", "minLength": 1},
                "channels": {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "enum": [
                            "email",
                            "slack",
                            "teams",
                            "sms",
                            "webhook",
                            "console",
                            "file",
                            "log",
                        ],
                    },
                },
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                "actionLinks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["service", "url", "label"],
                        "properties": {
                            "service": {"type": "string"},
                            "url": {"type": "string"},
                            "label": {"type": "string"},
                        },
                    },
                },
                "retryPolicy": {
                    "type": "object",
                    "properties": {
                        "maxAttempts": integer(5, 1, 10),
                        "initialBackoffSeconds": integer(30, 1, 300),
                        "backoffMultiplier": integer(2, 1, 10),
                        "maxBackoffSeconds": integer(480, 60, 3600),
                    },
                },
                "fileDeliveryConfig": {
                    "type": "object",
                    "required": ["outputDirectory"],
                    "properties": {
                        "outputDirectory": {"type": "string", "minLength": 1},
                        "format": {"type": "string", "enum": ["json", "yaml"], "default": "json"},
                    },
                },
                "retentionDays": integer(7, 1, 90),
            },
        },
        "status": {
            "type": "object",
            "properties": {
                "phase": {
                    "type": "string",
                    "enum": ["Pending", "Sending", "Retrying", "Sent", "PartiallySent", "Failed"],
                },
                "conditions": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                    "items": {
                        "type": "object",
                        "required": ["type", "status"],
                        "properties": {
                            "type": {"type": "string"},
                            "status": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
                "deliveryAttempts": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "channel": {"type": "string"},
                            "attempt": {"type": "integer"},
                            "timestamp": {"type": "string", "format": "date-time"},
                            "status": {"type": "string"},
                        },
                    },
                },
                "totalAttempts": {"type": "integer"},
                "completionTime": {"type": "string", "format": "date-time", "nullable": True},
            },
        },
    },
}


@pytest.fixture(scope="module")
def nr() -> StructuralSchema:
    return StructuralSchema(NR_SCHEMA)


def notification(**spec: Any) -> dict[str, Any]:
    base = {"type": "simple", "priority": "high", "subject": "disk full", "body": "node-1"}
    base.update(spec)
    return {
        "apiVersion": "kubernaut.ai/v1alpha1",
        "kind": "NotificationRequest",
        "metadata": {"name": "n1", "namespace": "default"},
        "spec": {k: v for k, v in base.items() if v is not ...},
    }


def admitted(schema: StructuralSchema, obj: dict[str, Any]) -> list[Cause]:
    """What the server does on create: prune, default, validate."""
    schema.prune(obj)
    schema.apply_defaults(obj)
    return schema.validate(obj)


def schema_of(spec_properties: dict[str, Any], **spec_extra: Any) -> StructuralSchema:
    spec = {"type": "object", "properties": spec_properties, **spec_extra}
    return StructuralSchema({"type": "object", "properties": {"spec": spec}})


def causes_of(schema: StructuralSchema, spec: Any) -> list[tuple[str, str, str]]:
    obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}, "spec": spec}
    return [(c.field, c.message, c.reason) for c in schema.validate(obj)]


# --------------------------------------------------------------------------------------
# The NotificationRequest schema end to end


class TestNotificationRequest:
    def test_a_valid_request_passes_and_gets_defaults(self, nr: StructuralSchema) -> None:
        obj = notification(priority=..., retryPolicy={"maxAttempts": 3})
        assert admitted(nr, obj) == []
        assert obj["spec"]["priority"] == "medium"
        assert obj["spec"]["retryPolicy"] == {
            "maxAttempts": 3,
            "initialBackoffSeconds": 30,
            "backoffMultiplier": 2,
            "maxBackoffSeconds": 480,
        }
        assert obj["spec"]["retentionDays"] == 7
        assert "fileDeliveryConfig" not in obj["spec"]

    def test_absent_retry_policy_stays_absent(self, nr: StructuralSchema) -> None:
        obj = notification()
        assert admitted(nr, obj) == []
        assert "retryPolicy" not in obj["spec"]

    def test_every_field_error_worded_like_kube(self, nr: StructuralSchema) -> None:
        obj = notification(
            type="urgent",
            subject="x" * 501,
            body="",
            channels=["email", "pager"],
            retryPolicy={"maxAttempts": 11, "initialBackoffSeconds": 0, "maxBackoffSeconds": 59},
            fileDeliveryConfig={"format": "xml"},
            retentionDays="7",
        )
        causes = admitted(nr, obj)
        assert causes == [
            Cause(
                "spec.type",
                'Unsupported value: "urgent": supported values: "escalation", "simple", '
                '"status-update", "approval", "manual-review"',
                "FieldValueNotSupported",
            ),
            Cause("spec.subject", "Too long: may not be more than 500 bytes", "FieldValueTooLong"),
            Cause(
                "spec.body",
                'Invalid value: "": spec.body in body should be at least 1 chars long',
                "FieldValueInvalid",
            ),
            Cause(
                "spec.channels[1]",
                'Unsupported value: "pager": supported values: "email", "slack", "teams", '
                '"sms", "webhook", "console", "file", "log"',
                "FieldValueNotSupported",
            ),
            Cause(
                "spec.retryPolicy.maxAttempts",
                "Invalid value: 11: spec.retryPolicy.maxAttempts in body should be less than "
                "or equal to 10",
                "FieldValueInvalid",
            ),
            Cause(
                "spec.retryPolicy.initialBackoffSeconds",
                "Invalid value: 0: spec.retryPolicy.initialBackoffSeconds in body should be "
                "greater than or equal to 1",
                "FieldValueInvalid",
            ),
            Cause(
                "spec.retryPolicy.maxBackoffSeconds",
                "Invalid value: 59: spec.retryPolicy.maxBackoffSeconds in body should be greater "
                "than or equal to 60",
                "FieldValueInvalid",
            ),
            Cause(
                "spec.fileDeliveryConfig.format",
                'Unsupported value: "xml": supported values: "json", "yaml"',
                "FieldValueNotSupported",
            ),
            Cause(
                "spec.fileDeliveryConfig.outputDirectory", "Required value", "FieldValueRequired"
            ),
            Cause(
                "spec.retentionDays",
                'Invalid value: "string": spec.retentionDays in body must be of type integer: '
                '"string"',
                "FieldValueTypeInvalid",
            ),
            NOT_CHECKED,
        ]

    def test_required_fields(self, nr: StructuralSchema) -> None:
        obj = notification(type=..., subject=..., body=...)
        assert [(c.field, c.message) for c in admitted(nr, obj)] == [
            ("spec.type", "Required value"),
            ("spec.subject", "Required value"),
            ("spec.body", "Required value"),
            ("<nil>", NOT_CHECKED.message),
        ]
        bare: dict[str, Any] = {"apiVersion": "a/v1", "kind": "K", "metadata": {}}
        assert admitted(nr, bare)[0] == Cause("spec", "Required value", "FieldValueRequired")

    def test_max_length_counts_characters(self, nr: StructuralSchema) -> None:
        assert admitted(nr, notification(subject="é" * 500)) == []
        assert admitted(nr, notification(subject="é" * 501))[0].reason == "FieldValueTooLong"

    def test_ranges_accept_their_bounds(self, nr: StructuralSchema) -> None:
        policy = {
            "maxAttempts": 10,
            "initialBackoffSeconds": 300,
            "backoffMultiplier": 1,
            "maxBackoffSeconds": 3600,
        }
        assert admitted(nr, notification(retryPolicy=policy)) == []
        policy = {"maxAttempts": 1, "initialBackoffSeconds": 1, "maxBackoffSeconds": 60}
        assert admitted(nr, notification(retryPolicy=policy)) == []

    def test_spec_is_immutable(self, nr: StructuralSchema) -> None:
        old = notification()
        assert admitted(nr, old) == []
        new = copy.deepcopy(old)
        new["spec"]["subject"] = "changed"
        assert admitted(nr, new) == []  # create-time validation ignores transition rules
        assert nr.validate_update(new, old) == [
            Cause("spec", f'Invalid value: "object": {IMMUTABLE}', "FieldValueInvalid")
        ]

    def test_unchanged_spec_and_status_updates_pass(self, nr: StructuralSchema) -> None:
        old = notification()
        admitted(nr, old)
        new = copy.deepcopy(old)
        new["status"] = {"phase": "Sent", "conditions": [{"type": "Ready", "status": "True"}]}
        assert admitted(nr, new) == []
        assert nr.validate_update(new, old) == []

    def test_defaulting_on_update_does_not_trip_immutability(self, nr: StructuralSchema) -> None:
        old = notification()
        admitted(nr, old)
        new = copy.deepcopy(old)
        del new["spec"]["retentionDays"]  # a client that does not know the default
        admitted(nr, new)
        assert nr.validate_update(new, old) == []

    def test_an_invalid_update_does_not_evaluate_rules(self, nr: StructuralSchema) -> None:
        old = notification()
        admitted(nr, old)
        new = copy.deepcopy(old)
        new["spec"]["type"] = "bogus"
        assert NOT_CHECKED in admitted(nr, new)
        assert nr.validate_update(new, old) == []

    def test_status_list_map_duplicates(self, nr: StructuralSchema) -> None:
        obj = notification()
        obj["status"] = {
            "conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Ready", "status": "False"},
            ],
            "deliveryAttempts": [{"timestamp": "yesterday"}],
        }
        assert admitted(nr, obj) == [
            Cause(
                "status.deliveryAttempts[0].timestamp",
                'Invalid value: "yesterday": status.deliveryAttempts[0].timestamp in body must '
                'be of type date-time: "yesterday"',
                "FieldValueTypeInvalid",
            ),
            Cause(
                "status.conditions[1]",
                'Duplicate value: map[string]interface {}{"type":"Ready"}',
                "FieldValueDuplicate",
            ),
            NOT_CHECKED,
        ]

    def test_nullable_field_keeps_its_null(self, nr: StructuralSchema) -> None:
        obj = notification()
        obj["status"] = {"completionTime": None, "phase": None}
        assert admitted(nr, obj) == []
        assert obj["status"] == {"completionTime": None}


# --------------------------------------------------------------------------------------
# Pruning


class TestPrune:
    def test_unknown_fields_are_removed_and_reported_sorted(self, nr: StructuralSchema) -> None:
        obj = notification(
            bogus=1,
            retryPolicy={"maxAttempts": 2, "jitter": True},
            actionLinks=[{"service": "s", "url": "u", "label": "l", "icon": "x"}],
            metadata={"anything": "goes"},
        )
        obj["zzz"] = {"deep": 1}
        obj["metadata"]["unknownMeta"] = 1
        assert nr.prune(obj) == [
            "spec.actionLinks[0].icon",
            "spec.bogus",
            "spec.retryPolicy.jitter",
            "zzz",
        ]
        assert obj["spec"]["metadata"] == {"anything": "goes"}
        assert obj["metadata"]["unknownMeta"] == 1  # root metadata is not the schema's business
        assert obj["spec"]["retryPolicy"] == {"maxAttempts": 2}

    def test_nothing_to_prune(self, nr: StructuralSchema) -> None:
        assert nr.prune(notification()) == []

    def test_preserve_unknown_fields(self) -> None:
        schema = schema_of(
            {
                "free": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "known": {"type": "object", "properties": {"a": {"type": "string"}}}
                    },
                },
            }
        )
        obj = {"spec": {"free": {"x": {"y": 1}, "known": {"a": "1", "b": 2}}}}
        assert schema.prune(obj) == ["spec.free.known.b"]
        assert obj == {"spec": {"free": {"x": {"y": 1}, "known": {"a": "1"}}}}

    def test_preserve_unknown_fields_at_the_root(self) -> None:
        schema = StructuralSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        obj = {"kind": "K", "anything": {"deep": [1]}}
        assert schema.prune(obj) == []
        assert obj == {"kind": "K", "anything": {"deep": [1]}}

    def test_object_without_properties_loses_every_key(self) -> None:
        schema = schema_of({"empty": {"type": "object"}})
        obj = {"spec": {"empty": {"a": 1, "b": {"c": 2}}}}
        assert schema.prune(obj) == ["spec.empty.a", "spec.empty.b"]
        assert obj == {"spec": {"empty": {}}}

    def test_meta_named_fields_below_the_root_are_pruned(self) -> None:
        schema = schema_of({"x": {"type": "string"}})
        obj = {"kind": "K", "spec": {"kind": "k", "metadata": {}, "x": "1"}}
        assert schema.prune(obj) == ["spec.kind", "spec.metadata"]

    def test_embedded_resource_keeps_its_type_and_object_meta(self) -> None:
        schema = schema_of(
            {
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"spec": {"type": "object", "properties": {}}},
                }
            }
        )
        obj = {
            "spec": {
                "template": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": "p"},
                    "spec": {"x": 1},
                    "other": 2,
                }
            }
        }
        assert schema.prune(obj) == ["spec.template.other", "spec.template.spec.x"]
        assert obj["spec"]["template"]["kind"] == "Pod"

    def test_additional_properties_schema_is_walked(self) -> None:
        schema = schema_of(
            {
                "byName": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "properties": {"port": {"type": "integer"}},
                    },
                },
                "anything": {"type": "object", "additionalProperties": True},
                "closed": {"type": "object", "additionalProperties": False},
            }
        )
        obj = {
            "spec": {
                "byName": {"a": {"port": 1, "extra": 2}},
                "anything": {"k": {"deep": 1}, "s": "v"},
                "closed": {"k": "v"},
            }
        }
        # kube keeps the keys of a boolean additionalProperties but prunes inside them.
        assert schema.prune(obj) == ["spec.anything.k.deep", "spec.byName.a.extra"]
        assert obj["spec"]["anything"] == {"k": {}, "s": "v"}
        assert obj["spec"]["closed"] == {"k": "v"}

    def test_arrays_are_walked(self) -> None:
        schema = schema_of(
            {
                "items": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"a": {"type": "string"}}},
                }
            }
        )
        obj = {"spec": {"items": [{"a": "1", "b": 2}, {"c": 3}, "scalar"]}}
        assert schema.prune(obj) == ["spec.items[0].b", "spec.items[1].c"]

    def test_non_nullable_nulls_without_default_are_dropped_silently(self) -> None:
        schema = schema_of(
            {
                "plain": {"type": "string"},
                "nullable": {"type": "string", "nullable": True},
                "defaulted": {"type": "string", "default": "d"},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
                "list": {"type": "array", "items": {"type": "string"}},
            }
        )
        obj = {
            "spec": {
                "plain": None,
                "nullable": None,
                "defaulted": None,
                "map": {"k": None},
                "list": [None],
            }
        }
        assert schema.prune(obj) == []
        assert obj["spec"] == {"nullable": None, "defaulted": None, "map": {}, "list": [None]}
        schema.apply_defaults(obj)
        assert obj["spec"]["defaulted"] == "d"


# --------------------------------------------------------------------------------------
# Defaulting


class TestDefaults:
    def test_nested_defaults_apply_after_a_parent_default(self) -> None:
        schema = schema_of(
            {
                "policy": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "attempts": {"type": "integer", "default": 5},
                        "inner": {
                            "type": "object",
                            "default": {"given": 1},
                            "properties": {"deep": {"type": "string", "default": "x"}},
                        },
                    },
                }
            }
        )
        obj: dict[str, Any] = {"spec": {}}
        schema.apply_defaults(obj)
        assert obj == {"spec": {"policy": {"attempts": 5, "inner": {"given": 1, "deep": "x"}}}}

    def test_defaults_do_not_apply_inside_absent_objects(self) -> None:
        schema = schema_of(
            {"policy": {"type": "object", "properties": {"a": {"type": "integer", "default": 1}}}}
        )
        obj: dict[str, Any] = {"spec": {}}
        schema.apply_defaults(obj)
        assert obj == {"spec": {}}
        obj2: dict[str, Any] = {}
        schema.apply_defaults(obj2)
        assert obj2 == {}

    def test_given_values_win(self) -> None:
        schema = schema_of({"a": {"type": "integer", "default": 1}})
        obj = {"spec": {"a": 7}}
        schema.apply_defaults(obj)
        assert obj == {"spec": {"a": 7}}

    def test_null_handling(self) -> None:
        schema = schema_of(
            {
                "strict": {"type": "string", "default": "d"},
                "loose": {"type": "string", "default": "d", "nullable": True},
            }
        )
        obj: dict[str, Any] = {"spec": {"strict": None, "loose": None}}
        schema.apply_defaults(obj)
        assert obj == {"spec": {"strict": "d", "loose": None}}

    def test_items_and_additional_properties(self) -> None:
        item = {"type": "object", "properties": {"port": {"type": "integer", "default": 80}}}
        schema = schema_of(
            {
                "list": {"type": "array", "items": item},
                "map": {"type": "object", "additionalProperties": item},
                "names": {"type": "array", "items": {"type": "string", "default": "none"}},
                "labels": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "default": "v"},
                },
            }
        )
        obj: dict[str, Any] = {
            "spec": {
                "list": [{}, {"port": 1}],
                "map": {"a": {}},
                "names": ["x", None],
                "labels": {"k": None},
            }
        }
        schema.apply_defaults(obj)
        assert obj["spec"] == {
            "list": [{"port": 80}, {"port": 1}],
            "map": {"a": {"port": 80}},
            "names": ["x", "none"],
            "labels": {"k": "v"},
        }

    def test_defaults_are_copied(self) -> None:
        schema = schema_of({"l": {"type": "array", "items": {"type": "string"}, "default": ["a"]}})
        first: dict[str, Any] = {"spec": {}}
        schema.apply_defaults(first)
        first["spec"]["l"].append("b")
        second: dict[str, Any] = {"spec": {}}
        schema.apply_defaults(second)
        assert second == {"spec": {"l": ["a"]}}

    def test_a_null_default_is_no_default(self) -> None:
        schema = schema_of({"a": {"type": "string", "default": None}})
        obj: dict[str, Any] = {"spec": {}}
        schema.apply_defaults(obj)
        assert obj == {"spec": {}}


# --------------------------------------------------------------------------------------
# OpenAPI validation


class TestTypes:
    @pytest.mark.parametrize(
        ("value", "shown"),
        [
            ("5", "string"),
            (True, "boolean"),
            ({"a": 1}, "object"),
            ([1], "array"),
            (5.5, "number"),
        ],
    )
    def test_type_mismatch(self, value: Any, shown: str) -> None:
        schema = schema_of({"n": {"type": "integer"}})
        assert causes_of(schema, {"n": value}) == [
            (
                "spec.n",
                f'Invalid value: "{shown}": spec.n in body must be of type integer: "{shown}"',
                "FieldValueTypeInvalid",
            )
        ]

    def test_integral_float_is_an_integer_and_int_is_a_number(self) -> None:
        schema = schema_of({"i": {"type": "integer"}, "n": {"type": "number"}})
        assert causes_of(schema, {"i": 5.0, "n": 5}) == []

    def test_null_for_a_non_nullable_field(self) -> None:
        schema = schema_of({"s": {"type": "string"}, "o": {"type": "string", "nullable": True}})
        assert causes_of(schema, {"s": None, "o": None}) == [
            (
                "spec.s",
                'Invalid value: "null": spec.s in body must be of type string: "null"',
                "FieldValueTypeInvalid",
            )
        ]

    def test_int_or_string(self) -> None:
        schema = schema_of(
            {
                "port": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                }
            }
        )
        assert causes_of(schema, {"port": 80}) == []
        assert causes_of(schema, {"port": "http"}) == []
        assert causes_of(schema, {"port": True})[0] == (
            "spec.port",
            'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
            "FieldValueTypeInvalid",
        )

    def test_the_root_must_be_an_object(self) -> None:
        schema = StructuralSchema({"type": "object"})
        causes = schema.validate([])  # type: ignore[arg-type]
        assert causes == [
            Cause(
                "<nil>",
                'Invalid value: "array":  in body must be of type object: "array"',
                "FieldValueTypeInvalid",
            )
        ]

    def test_untyped_preserved_fields_accept_anything(self) -> None:
        schema = schema_of({"any": {"x-kubernetes-preserve-unknown-fields": True}})
        for value in (1, "s", [1], {"a": None}, None):
            assert causes_of(schema, {"any": value}) == []


class TestStringKeywords:
    def test_pattern(self) -> None:
        schema = schema_of({"s": {"type": "string", "pattern": "^[a-z]+$"}})
        assert causes_of(schema, {"s": "abc"}) == []
        assert causes_of(schema, {"s": 'A"b'}) == [
            (
                "spec.s",
                'Invalid value: "A\\"b": spec.s in body should match \'^[a-z]+$\'',
                "FieldValueInvalid",
            )
        ]

    def test_only_the_first_string_error_is_reported(self) -> None:
        # kube-openapi's stringValidator stops at the first failure.
        schema = schema_of({"s": {"type": "string", "maxLength": 2, "pattern": "^[a-z]+$"}})
        assert [c[2] for c in causes_of(schema, {"s": "ABC"})] == ["FieldValueTooLong"]

    def test_a_pattern_python_cannot_compile_is_not_checked(self) -> None:
        schema = schema_of({"s": {"type": "string", "pattern": r"^\pL+$"}})
        assert causes_of(schema, {"s": "123"}) == []

    def test_max_length_of_one(self) -> None:
        schema = schema_of({"s": {"type": "string", "maxLength": 1}})
        # kube 1.32 says "bytes" even for 1 (singular "byte" came later).
        assert causes_of(schema, {"s": "ab"})[0][1] == "Too long: may not be more than 1 bytes"

    @pytest.mark.parametrize(
        ("fmt", "good", "bad"),
        [
            ("date-time", "2024-02-29T10:00:00Z", "2024-02-30T10:00:00Z"),
            ("date-time", "2024-01-01t23:59:59.123+02:00", "2024-01-01T24:00:00Z"),
            ("date", "2024-02-29", "2023-02-29"),
            ("byte", "aGVsbG8=", "not base64!"),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123"),
            (
                "uuid4",
                "123e4567-e89b-42d3-a456-426614174000",
                "123e4567-e89b-12d3-a456-426614174000",
            ),
            ("ipv4", "10.0.0.1", "10.0.0.300"),
            ("ipv6", "fd00::1", "10.0.0.1"),
            ("cidr", "10.0.0.0/8", "10.0.0.0"),
            ("hostname", "example.com", "-bad-.com"),
            ("mac", "01:23:45:67:89:ab", "01:23:45"),
            ("hexcolor", "#ffcc00", "#ffcc0"),
            ("duration", "1h30m", "soon"),
            ("email", "a@example.com", "not an email"),
            ("uri", "https://example.com/x", "relative/path"),
        ],
    )
    def test_formats(self, fmt: str, good: str, bad: str) -> None:
        schema = schema_of({"s": {"type": "string", "format": fmt}})
        assert causes_of(schema, {"s": good}) == []
        assert causes_of(schema, {"s": bad}) == [
            (
                "spec.s",
                f'Invalid value: "{bad}": spec.s in body must be of type {fmt}: "{bad}"',
                "FieldValueTypeInvalid",
            )
        ]

    def test_unknown_and_unchecked_formats_accept_anything(self) -> None:
        schema = schema_of(
            {
                "a": {"type": "string", "format": "k8s-made-up"},
                "b": {"type": "string", "format": "isbn"},
                "c": {"type": "boolean", "format": "date-time"},
            }
        )
        assert causes_of(schema, {"a": "?", "b": "?", "c": True}) == []

    def test_format_and_other_string_errors_are_both_reported(self) -> None:
        schema = schema_of({"s": {"type": "string", "format": "date", "maxLength": 3}})
        assert [c[2] for c in causes_of(schema, {"s": "yesterday"})] == [
            "FieldValueTooLong",
            "FieldValueTypeInvalid",
        ]

    def test_format_on_a_non_string_value(self) -> None:
        schema = schema_of({"s": {"type": "string", "format": "date-time"}})
        assert causes_of(schema, {"s": 5}) == [
            (
                "spec.s",
                'Invalid value: "int64": spec.s in body must be of type date-time: "int64"',
                "FieldValueTypeInvalid",
            )
        ]


class TestNumberKeywords:
    def test_exclusive_bounds(self) -> None:
        schema = schema_of(
            {
                "n": {
                    "type": "integer",
                    "minimum": 1,
                    "exclusiveMinimum": True,
                    "maximum": 10,
                    "exclusiveMaximum": True,
                }
            }
        )
        assert causes_of(schema, {"n": 5}) == []
        assert causes_of(schema, {"n": 1})[0][1] == (
            "Invalid value: 1: spec.n in body should be greater than 1"
        )
        assert causes_of(schema, {"n": 10})[0][1] == (
            "Invalid value: 10: spec.n in body should be less than 10"
        )

    def test_float_values_and_bounds_print_like_go(self) -> None:
        schema = schema_of({"n": {"type": "number", "maximum": 2.5, "minimum": 1e-05}})
        assert causes_of(schema, {"n": 10.5})[0][1] == (
            "Invalid value: 10.5: spec.n in body should be less than or equal to 2.5"
        )
        assert causes_of(schema, {"n": 1e-06})[0][1] == (
            "Invalid value: 1e-06: spec.n in body should be greater than or equal to 1e-05"
        )
        assert causes_of(schema, {"n": 3.0})[0][1] == (
            "Invalid value: 3: spec.n in body should be less than or equal to 2.5"
        )

    def test_integer_values_compare_with_the_truncated_bound(self) -> None:
        # MaximumNativeType: an int64 value is compared with int64(maximum).
        schema = schema_of({"n": {"type": "integer", "maximum": 10.9}})
        assert causes_of(schema, {"n": 11})[0][1] == (
            "Invalid value: 11: spec.n in body should be less than or equal to 10"
        )

    def test_multiple_of(self) -> None:
        schema = schema_of(
            {"i": {"type": "integer", "multipleOf": 5}, "f": {"type": "number", "multipleOf": 0.5}}
        )
        assert causes_of(schema, {"i": 15, "f": 1.5}) == []
        assert causes_of(schema, {"i": 7, "f": 1.25}) == [
            (
                "spec.i",
                "Invalid value: 7: spec.i in body should be a multiple of 5",
                "FieldValueInvalid",
            ),
            (
                "spec.f",
                "Invalid value: 1.25: spec.f in body should be a multiple of 0.5",
                "FieldValueInvalid",
            ),
        ]

    def test_int32_and_int64_ranges(self) -> None:
        schema = schema_of(
            {
                "a": {"type": "integer", "format": "int32"},
                "b": {"type": "integer", "format": "int64"},
            }
        )
        assert causes_of(schema, {"a": 2**31 - 1, "b": 2**63 - 1}) == []
        assert causes_of(schema, {"a": 2**31}) == [
            (
                "<nil>",
                'Invalid value: "": Checked value must be of type integer with format int32 '
                "in spec.a",
                "FieldValueInvalid",
            )
        ]
        causes = causes_of(schema, {"b": 2**63})
        assert [c[2] for c in causes] == ["FieldValueTypeInvalid", "FieldValueInvalid"]


class TestArrayAndObjectKeywords:
    def test_min_and_max_items(self) -> None:
        schema = schema_of(
            {"l": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2}}
        )
        assert causes_of(schema, {"l": []}) == [
            (
                "spec.l",
                "Invalid value: 0: spec.l in body should have at least 1 items",
                "FieldValueInvalid",
            )
        ]
        assert causes_of(schema, {"l": ["a", "b", "c"]}) == [
            ("spec.l", "Too many: 3: must have at most 2 items", "FieldValueTooMany")
        ]

    def test_unique_items(self) -> None:
        schema = schema_of({"l": {"type": "array", "items": {}, "uniqueItems": True}})
        assert causes_of(schema, {"l": [1, "1", True]}) == []
        assert causes_of(schema, {"l": [{"a": 1}, {"a": 1.0}]}) == [
            (
                "spec.l",
                'Invalid value: "": spec.l in body shouldn\'t contain duplicates',
                "FieldValueInvalid",
            )
        ]

    def test_min_and_max_properties(self) -> None:
        schema = schema_of(
            {
                "m": {
                    "type": "object",
                    "additionalProperties": {"type": "string"},
                    "minProperties": 1,
                    "maxProperties": 2,
                }
            }
        )
        assert causes_of(schema, {"m": {}}) == [
            (
                "spec.m",
                "Invalid value: 0: spec.m in body should have at least 1 properties",
                "FieldValueInvalid",
            )
        ]
        assert causes_of(schema, {"m": {"a": "", "b": "", "c": ""}}) == [
            ("spec.m", "Too many: 3: must have at most 2 items", "FieldValueTooMany")
        ]

    def test_additional_properties_paths_use_dots(self) -> None:
        schema = schema_of({"m": {"type": "object", "additionalProperties": {"type": "integer"}}})
        assert causes_of(schema, {"m": {"a.b": "x"}})[0][:2] == (
            "spec.m.a.b",
            'Invalid value: "string": spec.m.a.b in body must be of type integer: "string"',
        )

    def test_additional_properties_false(self) -> None:
        schema = schema_of({"m": {"type": "object", "additionalProperties": False}})
        assert causes_of(schema, {"m": {"k": 1}}) == [
            (
                "spec.m",
                'Invalid value: "k": spec.m.k in body is a forbidden property',
                "FieldValueInvalid",
            )
        ]

    def test_enum_of_non_strings(self) -> None:
        schema = schema_of(
            {"n": {"type": "integer", "enum": [1, 2.0]}, "b": {"type": "boolean", "enum": [True]}}
        )
        assert causes_of(schema, {"n": 2, "b": True}) == []
        assert causes_of(schema, {"n": 3, "b": False}) == [
            (
                "spec.n",
                'Unsupported value: 3: supported values: "1", "2"',
                "FieldValueNotSupported",
            ),
            (
                "spec.b",
                'Unsupported value: false: supported values: "true"',
                "FieldValueNotSupported",
            ),
        ]

    def test_enum_with_null_value(self) -> None:
        schema = schema_of({"s": {"type": "string", "nullable": True, "enum": ["a"]}})
        assert causes_of(schema, {"s": None}) == [
            ("spec.s", 'Unsupported value: "null": supported values: "a"', "FieldValueNotSupported")
        ]

    def test_list_type_set(self) -> None:
        schema = schema_of(
            {"l": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}}
        )
        assert causes_of(schema, {"l": ["a", "b"]}) == []
        assert causes_of(schema, {"l": ["a", "b", "a", "a", "b"]}) == [
            ("spec.l[2]", 'Duplicate value: "a"', "FieldValueDuplicate"),
            ("spec.l[4]", 'Duplicate value: "b"', "FieldValueDuplicate"),
        ]

    def test_list_type_map_with_two_keys_and_non_objects(self) -> None:
        schema = schema_of(
            {
                "l": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["port", "protocol"],
                    "items": {
                        "type": "object",
                        "properties": {"port": {"type": "integer"}, "protocol": {"type": "string"}},
                    },
                }
            }
        )
        ok = [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "UDP"}]
        assert causes_of(schema, {"l": ok}) == []
        dup = [{"port": 80, "protocol": "TCP"}, {"port": 80, "protocol": "TCP"}]
        assert causes_of(schema, {"l": dup}) == [
            (
                "spec.l[1]",
                'Duplicate value: map[string]interface {}{"port":80, "protocol":"TCP"}',
                "FieldValueDuplicate",
            )
        ]
        causes = causes_of(schema, {"l": [{"port": 1}, 5]})
        assert causes[-1] == (
            "spec.l[1]",
            "Invalid value: 5: must be an object for an array of list-type map",
            "FieldValueInvalid",
        )

    def test_list_types_under_map_keys_use_brackets(self) -> None:
        schema = schema_of(
            {
                "m": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "array",
                        "x-kubernetes-list-type": "set",
                        "items": {"type": "integer"},
                    },
                }
            }
        )
        assert causes_of(schema, {"m": {"k": [1, 1]}}) == [
            ("spec.m[k][1]", "Duplicate value: 1", "FieldValueDuplicate")
        ]


class TestJunctors:
    def test_any_of(self) -> None:
        schema = schema_of(
            {"s": {"type": "string", "anyOf": [{"pattern": "^a"}, {"pattern": "^b"}]}}
        )
        assert causes_of(schema, {"s": "bob"}) == []
        assert causes_of(schema, {"s": "carl"}) == [
            (
                "<nil>",
                'Invalid value: "": "spec.s" must validate at least one schema (anyOf)',
                "FieldValueInvalid",
            ),
            (
                "spec.s",
                "Invalid value: \"carl\": spec.s in body should match '^a'",
                "FieldValueInvalid",
            ),
        ]

    def test_one_of(self) -> None:
        schema = schema_of({"s": {"type": "string", "oneOf": [{"pattern": "a"}, {"pattern": "b"}]}})
        assert causes_of(schema, {"s": "a"}) == []
        assert causes_of(schema, {"s": "ab"}) == [
            (
                "<nil>",
                'Invalid value: "": "spec.s" must validate one and only one schema (oneOf). '
                "Found 2 valid alternatives",
                "FieldValueInvalid",
            )
        ]
        causes = causes_of(schema, {"s": "c"})
        assert causes[0][1].endswith("(oneOf). Found none valid")
        assert len(causes) == 2

    def test_all_of(self) -> None:
        schema = schema_of({"n": {"type": "integer", "allOf": [{"minimum": 1}, {"maximum": 5}]}})
        assert causes_of(schema, {"n": 3}) == []
        assert causes_of(schema, {"n": 9}) == [
            (
                "spec.n",
                "Invalid value: 9: spec.n in body should be less than or equal to 5",
                "FieldValueInvalid",
            ),
            (
                "<nil>",
                'Invalid value: "": "spec.n" must validate all the schemas (allOf)',
                "FieldValueInvalid",
            ),
        ]

    def test_not(self) -> None:
        schema = schema_of({"s": {"type": "string", "not": {"enum": ["forbidden"]}}})
        assert causes_of(schema, {"s": "fine"}) == []
        assert causes_of(schema, {"s": "forbidden"}) == [
            (
                "<nil>",
                'Invalid value: "": "spec.s" must not validate the schema (not)',
                "FieldValueInvalid",
            )
        ]

    def test_required_inside_a_junctor(self) -> None:
        schema = schema_of(
            {"a": {"type": "string"}, "b": {"type": "string"}},
            oneOf=[{"required": ["a"]}, {"required": ["b"]}],
        )
        assert causes_of(schema, {"a": "x"}) == []
        assert causes_of(schema, {"a": "x", "b": "y"})[0][1].endswith("Found 2 valid alternatives")


class TestRobustness:
    def test_garbage_schemas_do_not_crash(self) -> None:
        for document in (None, {}, {"type": 5, "properties": "x", "items": [1], "required": "a"}):
            schema = StructuralSchema(document)  # type: ignore[arg-type]
            obj = {"kind": "K", "spec": {"a": 1}}
            schema.prune(obj)
            schema.apply_defaults(obj)
            schema.validate(obj)
            assert schema.validate_update(obj, obj) == []

    def test_validate_does_not_mutate(self, nr: StructuralSchema) -> None:
        obj = notification(subject="")
        before = copy.deepcopy(obj)
        nr.validate(obj)
        nr.validate_update(obj, before)
        assert obj == before


# --------------------------------------------------------------------------------------
# CEL (x-kubernetes-validations)


def rule_schema(rule: str | dict[str, Any], **properties: Any) -> StructuralSchema:
    entry = {"rule": rule} if isinstance(rule, str) else rule
    props = {
        "name": {"type": "string"},
        "count": {"type": "integer"},
        "ratio": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "nested": {"type": "object", "properties": {"a": {"type": "integer"}}},
        **properties,
    }
    return schema_of(props, **{"x-kubernetes-validations": [entry]})


def cel(rule: str | dict[str, Any], spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    schema = rule_schema(rule)
    assert schema.unevaluated_rules == [], schema.warning()
    return causes_of(schema, spec)


SPEC = {
    "name": "web-1",
    "count": 3,
    "ratio": 1,
    "tags": ["a", "b"],
    "labels": {"env": "prod"},
    "nested": {"a": 2},
}


class TestCelEvaluation:
    @pytest.mark.parametrize(
        "rule",
        [
            "self.count == 3",
            "self.count > 2 && self.count <= 3",
            "self.count < 0 || self.name == 'web-1'",
            "!(self.count == 4)",
            "has(self.name) && !has(self.missing)",
            "size(self.tags) == 2 && self.tags.size() == 2",
            "size(self.name) == 5 && size(self.labels) == 1",
            "self.nested.a == 2 && self.labels['env'] == 'prod' && self.labels.env == 'prod'",
            "self.tags[1] == 'b'",
            "'a' in self.tags && 'env' in self.labels && !('zz' in self.tags)",
            "self.name.startsWith('web') && self.name.endsWith('-1') && self.name.contains('b-')",
            "self.name.matches('^[a-z]+-[0-9]$') && matches(self.name, 'web')",
            "self.tags.all(t, t.size() == 1) && self.tags.exists(t, t == 'b')",
            "self.tags.exists_one(t, t == 'a') && !self.tags.all(t, t == 'a')",
            "self.tags.map(t, t + '!') == ['a!', 'b!']",
            "self.tags.filter(t, t != 'a') == ['b']",
            "self.tags.map(t, t != 'a', t.upperAscii()) == ['B']",
            "self.labels.all(k, k == 'env')",
            "self.count + 1 == 4 && self.count - 1 == 2 && self.count * 2 == 6",
            "self.count / 2 == 1 && self.count % 2 == 1 && -self.count == -3",
            "-7 / 2 == -3 && -7 % 2 == -1",
            "self.ratio == 1 && self.ratio == 1.0 && self.ratio + 0.5 == 1.5",
            "self.ratio / 0.0 > 1000.0",
            "self.count > 2.5 && 2.5 < self.count",
            "self.count > 1 ? true : false",
            "[1, 2, 3].size() == 3 && {'a': 1}['a'] == 1 && {'a': 1} == {'a': 1}",
            "'ab' + 'c' == 'abc' && [1] + [2] == [1, 2]",
            "'abc' < 'abd' && true != false && false < true",
            "int('42') == 42 && double(2) == 2.0 && string(42) == '42' && uint(3) == 3",
            "string(1.5) == '1.5' && string(1000000.0) == '1e+06' && string(true) == 'true'",
            "bool('true') && !bool('0') && dyn(1) == 1",
            "int(2.9) == 2 && int(-2.9) == -2",
            "self.name.lowerAscii() == 'web-1' && 'ÀB'.lowerAscii() == 'Àb'",
            "null == null && self.nested != null",
            "0x10 == 16 && 1e3 == 1000.0 && 5u == 5",
            r"'a\tb'.size() == 3 && r'a\tb'.size() == 4 && '''x''' == 'x' && '\x41' == 'A'",
            "'\\u00e9' == 'é' && '\\101' == 'A' && \"q'\" == 'q\\''",
            "self.count == 3 // trailing comment",
            "[].size() == 0 && {}.size() == 0 && [1, 2,].size() == 2",
        ],
    )
    def test_supported_expressions_evaluate_true(self, rule: str) -> None:
        assert cel(rule, SPEC) == []

    def test_a_false_rule_reports_its_message(self) -> None:
        rule = {"rule": "self.count < 3", "message": "count must be below 3"}
        assert cel(rule, SPEC) == [
            ("spec", 'Invalid value: "object": count must be below 3', "FieldValueInvalid")
        ]

    def test_a_false_rule_without_message(self) -> None:
        assert cel("  self.count < 3 ", SPEC) == [
            ("spec", 'Invalid value: "object": failed rule: self.count < 3', "FieldValueInvalid")
        ]

    def test_message_expression_is_evaluated(self) -> None:
        rule = {
            "rule": "self.count < 3",
            "message": "static",
            "messageExpression": "'count is ' + string(self.count)",
        }
        assert cel(rule, SPEC)[0][1] == 'Invalid value: "object": count is 3'

    @pytest.mark.parametrize(
        "expression",
        ["self.count.format()", "1 + 1", "''", "'two\\nlines'", "self.missing"],
    )
    def test_message_expression_falls_back_to_the_message(self, expression: str) -> None:
        rule = {"rule": "self.count < 3", "message": "static", "messageExpression": expression}
        schema = rule_schema(rule)
        assert causes_of(schema, SPEC)[0][1] == 'Invalid value: "object": static'

    @pytest.mark.parametrize(
        ("reason", "message"),
        [
            ("FieldValueForbidden", "Forbidden: no"),
            ("FieldValueRequired", "Required value: no"),
            ("FieldValueDuplicate", 'Duplicate value: "object"'),
            ("FieldValueInvalid", 'Invalid value: "object": no'),
        ],
    )
    def test_reasons(self, reason: str, message: str) -> None:
        rule = {"rule": "false", "message": "no", "reason": reason}
        assert cel(rule, SPEC) == [("spec", message, reason)]

    def test_field_path(self) -> None:
        rule = {"rule": "self.count < 3", "message": "no", "fieldPath": ".count"}
        assert cel(rule, SPEC)[0][0] == "spec.count"

    def test_runtime_errors(self) -> None:
        assert cel({"rule": "self.missing == 1", "message": "m"}, SPEC) == [
            (
                "spec",
                'Invalid value: "object": no such key: missing evaluating rule: m',
                "FieldValueInvalid",
            )
        ]
        assert cel("self.tags[5] == 'x'", SPEC)[0][1] == (
            "Invalid value: \"object\": index out of bounds: 5 evaluating rule: self.tags[5] == 'x'"
        )
        assert cel("self.count / 0 == 1", SPEC)[0][1].endswith(
            "division by zero evaluating rule: self.count / 0 == 1"
        )
        assert cel("self.count % 0 == 1", SPEC)[0][1].startswith(
            'Invalid value: "object": modulus by zero'
        )
        assert "integer overflow" in cel("9223372036854775807 + self.count > 0", SPEC)[0][1]
        assert "integer overflow" in cel("int(1e30) > 0", SPEC)[0][1]

    def test_type_errors_are_no_such_overload(self) -> None:
        assert cel("self.name > 1", SPEC) == [
            (
                "spec",
                "Invalid value: \"object\": 'no such overload': call arguments did not match a "
                "supported operator, function or macro signature for rule: self.name > 1",
                "FieldValueInvalid",
            )
        ]
        for rule in (
            "self.count + 1.0 > 0",
            "!self.count",
            "self.count ? true : false",
            "self.name.size() && true",
            "self.count.startsWith('a')",
            "self.name.missing == 1",
            "self.tags['x'] == 1",
            "1 in 'abc'",
            "size(5) == 1",
            "self.tags.all(t, 1)",
            "int(true) == 1",
            "double('x') == 1.0",
        ):
            assert cel(rule, SPEC), rule

    def test_logic_absorbs_errors_like_cel(self) -> None:
        assert cel("!has(self.missing) || self.missing > 1", SPEC) == []
        assert cel("has(self.missing) && self.missing > 1", SPEC)[0][1] == (
            'Invalid value: "object": failed rule: has(self.missing) && self.missing > 1'
        )
        assert cel("self.missing > 1 && false", SPEC) == [
            (
                "spec",
                'Invalid value: "object": failed rule: self.missing > 1 && false',
                "FieldValueInvalid",
            )
        ]
        assert cel("self.missing > 1 || true", SPEC) == []
        assert cel("self.tags.exists(t, t == 'a' || t.missing)", SPEC) == []
        # An error with no false element to absorb it is the result of all().
        assert cel("self.labels.all(k, self.labels[k + 'x'] == 'y')", SPEC)[0][1].startswith(
            'Invalid value: "object": no such key: envx'
        )

    def test_rules_on_nested_nodes_and_the_root(self) -> None:
        schema = StructuralSchema(
            {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.metadata.name != 'bad'", "message": "root"}
                ],
                "properties": {
                    "spec": {
                        "type": "object",
                        "properties": {
                            "items": {
                                "type": "array",
                                "items": {
                                    "type": "string",
                                    "x-kubernetes-validations": [
                                        {"rule": "self != 'x'", "message": "no x"}
                                    ],
                                },
                            },
                            "map": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "integer",
                                    "x-kubernetes-validations": [
                                        {"rule": "self > 0", "message": "positive"}
                                    ],
                                },
                            },
                        },
                    }
                },
            }
        )
        obj = {
            "metadata": {"name": "bad"},
            "spec": {"items": ["a", "x"], "map": {"k": 0, "j": 1}},
        }
        assert [(c.field, c.message) for c in schema.validate(obj)] == [
            ("<nil>", 'Invalid value: "object": root'),
            ("spec.items[1]", 'Invalid value: "string": no x'),
            ("spec.map[k]", 'Invalid value: "integer": positive'),
        ]

    def test_null_values_are_not_validated(self) -> None:
        schema = schema_of(
            {
                "s": {
                    "type": "string",
                    "nullable": True,
                    "x-kubernetes-validations": [{"rule": "self.size() > 1"}],
                }
            }
        )
        assert causes_of(schema, {"s": None}) == []

    def test_blocking_errors_skip_rules(self) -> None:
        schema = rule_schema(
            {"rule": "false", "message": "never"}, count={"type": "integer", "maximum": 1}
        )
        # A maximum error is FieldValueInvalid: not blocking, rules still run.
        assert [c[1] for c in causes_of(schema, {"count": 5})] == [
            "Invalid value: 5: spec.count in body should be less than or equal to 1",
            'Invalid value: "object": never',
        ]
        # A type error blocks.
        assert causes_of(schema, {"count": "x"})[-1] == (
            NOT_CHECKED.field,
            NOT_CHECKED.message,
            NOT_CHECKED.reason,
        )

    def test_no_rules_no_not_checked_cause(self) -> None:
        schema = schema_of({"n": {"type": "integer"}})
        assert causes_of(schema, {"n": "x"})[-1][2] == "FieldValueTypeInvalid"


class TestTransitionRules:
    def make(self, rule: str, **extra: Any) -> StructuralSchema:
        return schema_of(
            {
                "name": {
                    "type": "string",
                    "x-kubernetes-validations": [{"rule": rule, "message": "m", **extra}],
                },
                "items": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["key"],
                    "items": {
                        "type": "object",
                        "properties": {"key": {"type": "string"}, "value": {"type": "integer"}},
                        "x-kubernetes-validations": [
                            {"rule": "self.value >= oldSelf.value", "message": "no decrease"}
                        ],
                    },
                },
                "atomic": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"value": {"type": "integer"}},
                        "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "x"}],
                    },
                },
            }
        )

    def obj(self, **spec: Any) -> dict[str, Any]:
        return {"kind": "X", "metadata": {"name": "x"}, "spec": spec}

    def test_self_equals_old_self(self) -> None:
        schema = self.make("self == oldSelf")
        assert schema.validate_update(self.obj(name="a"), self.obj(name="a")) == []
        assert schema.validate_update(self.obj(name="b"), self.obj(name="a")) == [
            Cause("spec.name", 'Invalid value: "string": m', "FieldValueInvalid")
        ]

    def test_self_differs_from_old_self(self) -> None:
        schema = self.make("self != oldSelf")
        assert schema.validate_update(self.obj(name="b"), self.obj(name="a")) == []
        assert len(schema.validate_update(self.obj(name="a"), self.obj(name="a"))) == 1

    def test_no_old_value_no_evaluation(self) -> None:
        schema = self.make("self == oldSelf")
        assert schema.validate_update(self.obj(name="b"), self.obj()) == []
        assert schema.validate(self.obj(name="b")) == []

    def test_old_self_field_selection_and_mixed_rules(self) -> None:
        schema = schema_of(
            {"a": {"type": "integer"}, "b": {"type": "integer"}},
            **{
                "x-kubernetes-validations": [
                    {"rule": "self.a == oldSelf.a", "message": "a is fixed"},
                    {"rule": "self.b > 0", "message": "b positive"},
                ]
            },
        )
        new, old = self.obj(a=2, b=0), self.obj(a=1, b=1)
        assert [c.message for c in schema.validate(new)] == ['Invalid value: "object": b positive']
        assert [c.message for c in schema.validate_update(new, old)] == [
            'Invalid value: "object": a is fixed'
        ]

    def test_list_map_items_correlate_by_key(self) -> None:
        schema = self.make("true")
        old = self.obj(items=[{"key": "a", "value": 5}, {"key": "b", "value": 5}])
        new = self.obj(
            items=[{"key": "b", "value": 4}, {"key": "a", "value": 6}, {"key": "c", "value": 0}]
        )
        assert schema.validate_update(new, old) == [
            Cause("spec.items[0]", 'Invalid value: "object": no decrease', "FieldValueInvalid")
        ]

    def test_atomic_list_items_do_not_correlate(self) -> None:
        schema = self.make("true")
        old = self.obj(atomic=[{"value": 1}])
        new = self.obj(atomic=[{"value": 2}])
        assert schema.validate_update(new, old) == []

    def test_validate_update_without_transition_rules_is_empty(self) -> None:
        schema = rule_schema("self.count > 100")
        assert schema.validate_update(self.obj(count=1), self.obj(count=1)) == []


class TestUnevaluatedRules:
    @pytest.mark.parametrize(
        ("rule", "reason"),
        [
            ("self.x.isURL()", "function isURL() is not supported"),
            ("quantity(self.x) > 1", "function quantity() is not supported"),
            ("self ==", "unexpected token at 7"),
            ("self.a ? 1", "expected ':' at 10"),
            ("b'abc' == self", "bytes literals are not supported"),
            ("self.?x", "optional field selection (.?) is not supported"),
            ("self.l[?0]", "optional indexing ([?) is not supported"),
            ("var == 1", "reserved identifier 'var'"),
            ("'unterminated", "unterminated string literal"),
            ("has(self)", "invalid argument to has() macro"),
            ("self.all(1, true)", "argument to all() must be a simple name"),
            ("size(1, 2)", "wrong number of arguments to size()"),
            ("", "empty rule"),
            (".self", "qualified identifiers are not supported"),
            ("'\\q'", "bad escape \\q"),
            ("9223372036854775808 > 1", "integer literal out of range"),
            (
                "timestamp('2024-01-01T00:00:00Z') > timestamp(self.t)",
                "function timestamp() is not supported",
            ),
        ],
    )
    def test_unparsed_rules_are_listed_and_warned_about(self, rule: str, reason: str) -> None:
        schema = rule_schema({"rule": rule, "message": "m"})
        assert schema.unevaluated_rules == [UnevaluatedRule("spec", rule, reason)]
        warning = schema.warning()
        assert warning is not None
        assert "\n" not in warning
        assert warning.startswith("1 of 1 x-kubernetes-validations rule(s) cannot be evaluated")
        assert "spec:" in warning
        # ...and they are skipped, never evaluated as false.
        assert causes_of(schema, SPEC) == []

    def test_nested_rules_are_never_run_and_are_listed(self) -> None:
        schema = schema_of(
            {
                "s": {
                    "type": "string",
                    "allOf": [{"x-kubernetes-validations": [{"rule": "self == 'a'"}]}],
                }
            }
        )
        assert schema.unevaluated_rules == [
            UnevaluatedRule(
                "spec.s", "self == 'a'", "rules under allOf/anyOf/oneOf/not are not evaluated"
            )
        ]

    def test_paths_of_unevaluated_rules(self) -> None:
        schema = StructuralSchema(
            {
                "type": "object",
                "x-kubernetes-validations": [{"rule": "f()"}],
                "properties": {
                    "l": {
                        "type": "array",
                        "items": {"type": "string", "x-kubernetes-validations": [{"rule": "f()"}]},
                    },
                    "m": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "string",
                            "x-kubernetes-validations": [{"rule": "f()"}],
                        },
                    },
                },
            }
        )
        assert [r.path for r in schema.unevaluated_rules] == ["l[*]", "m[*]", ""]
        warning = schema.warning()
        assert warning is not None
        assert "<root>: 'f()'" in warning

    def test_no_warning_when_everything_is_evaluated(self, nr: StructuralSchema) -> None:
        assert nr.unevaluated_rules == []
        assert nr.warning() is None


# --------------------------------------------------------------------------------------
# The schema document checks at CRD creation

P = "spec.versions[0].schema.openAPIV3Schema"


def doc_causes(document: Any, path: str = P) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in validate_schema_document(document, path)]


class TestSchemaDocument:
    def test_the_notification_request_schema_is_accepted(self) -> None:
        assert validate_schema_document(NR_SCHEMA) == []

    def test_missing_document(self) -> None:
        assert doc_causes(None) == [(P, "Required value: schemas are required")]

    def test_types_are_required(self) -> None:
        document = {
            "properties": {
                "spec": {"properties": {"a": {"type": "array", "items": {}}}},
                "any": {"x-kubernetes-preserve-unknown-fields": True},
                "port": {"x-kubernetes-int-or-string": True},
            }
        }
        assert doc_causes(document) == [
            (
                f"{P}.properties[spec].properties[a].items.type",
                "Required value: must not be empty for specified array items",
            ),
            (
                f"{P}.properties[spec].type",
                "Required value: must not be empty for specified object fields",
            ),
            (f"{P}.type", "Required value: must not be empty at the root"),
        ]

    def test_root_must_be_an_object_and_arrays_need_items(self) -> None:
        assert doc_causes({"type": "string"}) == [
            (f"{P}.type", 'Invalid value: "string": must be object at the root')
        ]
        assert doc_causes({"type": "object", "properties": {"l": {"type": "array"}}}) == [
            (f"{P}.properties[l].items", "Required value: must be specified")
        ]

    def test_additional_properties_rules(self) -> None:
        assert doc_causes({"type": "object", "additionalProperties": {"type": "string"}}) == [
            (f"{P}.additionalProperties", "Forbidden: must not be used at the root")
        ]
        document = {
            "type": "object",
            "properties": {
                "m": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": False,
                }
            },
        }
        assert doc_causes(document) == [
            (
                f"{P}.properties[m].additionalProperties",
                "Forbidden: additionalProperties and properties are mutual exclusive",
            )
        ]

    @pytest.mark.parametrize(
        ("keyword", "value", "message"),
        [
            (
                "uniqueItems",
                True,
                "Forbidden: uniqueItems cannot be set to true since the runtime complexity "
                "becomes quadratic",
            ),
            ("$ref", "#/x", "Forbidden: $ref is not supported"),
            ("patternProperties", {"a": {}}, "Forbidden: patternProperties is not supported"),
            ("additionalItems", True, "Forbidden: additionalItems is not supported"),
            ("dependencies", {"a": ["b"]}, "Forbidden: dependencies is not supported"),
            ("definitions", {"a": {}}, "Forbidden: definitions is not supported"),
            ("id", "x", "Forbidden: id is not supported"),
            (
                "x-kubernetes-preserve-unknown-fields",
                False,
                "Invalid value: false: must be true or undefined",
            ),
        ],
    )
    def test_unsupported_keywords(self, keyword: str, value: Any, message: str) -> None:
        document = {"type": "object", "properties": {"f": {"type": "string", keyword: value}}}
        field = f"{P}.properties[f].{keyword}"
        assert (field, message) in doc_causes(document)

    def test_bad_types(self) -> None:
        document = {"type": "object", "properties": {"a": {"type": "null"}, "b": {"type": "date"}}}
        assert doc_causes(document) == [
            (
                f"{P}.properties[a].type",
                "Forbidden: type cannot be set to null, use nullable as an alternative",
            ),
            (
                f"{P}.properties[b].type",
                'Unsupported value: "date": supported values: "array", "boolean", "integer", '
                '"number", "object", "string"',
            ),
        ]

    def test_root_nullable(self) -> None:
        assert doc_causes({"type": "object", "nullable": True}) == [
            (f"{P}.nullable", "Forbidden: nullable cannot be true at the root")
        ]

    def test_int_or_string_conflicts(self) -> None:
        document = {
            "type": "object",
            "properties": {
                "p": {
                    "x-kubernetes-int-or-string": True,
                    "x-kubernetes-preserve-unknown-fields": True,
                    "x-kubernetes-embedded-resource": True,
                }
            },
        }
        messages = doc_causes(document)
        assert (
            f"{P}.properties[p].x-kubernetes-preserve-unknown-fields",
            "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
        ) in messages
        assert (
            f"{P}.properties[p].x-kubernetes-embedded-resource",
            "Invalid value: true: must be false if x-kubernetes-int-or-string is true",
        ) in messages

    def test_embedded_resources(self) -> None:
        document = {"type": "object", "properties": {"e": {"x-kubernetes-embedded-resource": True}}}
        assert doc_causes(document) == [
            (
                f"{P}.properties[e].properties",
                "Required value: must not be empty if x-kubernetes-embedded-resource is true "
                "without x-kubernetes-preserve-unknown-fields",
            ),
            (
                f"{P}.properties[e].type",
                "Required value: must be object if x-kubernetes-embedded-resource is true",
            ),
        ]

    def test_nested_value_validations_must_not_be_structural(self) -> None:
        document = {
            "type": "object",
            "properties": {
                "s": {
                    "type": "string",
                    "anyOf": [{"type": "string", "description": "d", "nullable": True}],
                    "not": {"properties": {"metadata": {}}},
                },
                "port": {
                    "x-kubernetes-int-or-string": True,
                    "anyOf": [{"type": "integer"}, {"type": "string"}],
                },
            },
        }
        assert doc_causes(document) == [
            (
                f"{P}.properties[s].anyOf[0].description",
                "Forbidden: must be empty to be structural",
            ),
            (f"{P}.properties[s].anyOf[0].nullable", "Forbidden: must be false to be structural"),
            (f"{P}.properties[s].anyOf[0].type", "Forbidden: must be empty to be structural"),
            (
                f"{P}.properties[s].not.properties[metadata]",
                "Forbidden: must not be specified in a nested context",
            ),
        ]

    def test_completeness_of_root_junctors(self) -> None:
        document = {
            "type": "object",
            "properties": {"a": {"type": "string"}},
            "anyOf": [{"properties": {"b": {}}}],
        }
        assert doc_causes(document) == [
            (
                f"{P}.properties[b]",
                f"Required value: because it is defined in {P}.anyOf[0].properties[b]",
            )
        ]

    def test_root_metadata_is_restricted(self) -> None:
        ok = {
            "type": "object",
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "maxLength": 8}},
                }
            },
        }
        assert doc_causes(ok) == []
        bad = {
            "type": "object",
            "properties": {
                "metadata": {
                    "type": "object",
                    "properties": {"labels": {"type": "object"}},
                    "default": {},
                }
            },
        }
        assert doc_causes(bad) == [
            (
                f"{P}.properties[metadata]",
                "Forbidden: must not specify anything other than name and generateName, but "
                "metadata is implicitly specified",
            ),
            (
                f"{P}.properties[metadata].default",
                "Forbidden: must not be set in top-level metadata",
            ),
        ]

    def test_list_and_map_types(self) -> None:
        document = {
            "type": "object",
            "properties": {
                "a": {"type": "string", "x-kubernetes-list-type": "set"},
                "b": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-list-type": "bag",
                },
                "c": {
                    "type": "array",
                    "items": {"type": "object", "properties": {}},
                    "x-kubernetes-list-type": "map",
                },
                "d": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["k", "missing"],
                    "items": {"type": "object", "properties": {"k": {"type": "string"}}},
                },
                "e": {
                    "type": "array",
                    "items": {"type": "string"},
                    "x-kubernetes-list-map-keys": ["k"],
                },
                "f": {"type": "string", "x-kubernetes-map-type": "atomic"},
                "g": {"type": "object", "x-kubernetes-map-type": "fine"},
            },
        }
        assert doc_causes(document) == [
            (
                f"{P}.properties[a].type",
                'Invalid value: "string": must be array if x-kubernetes-list-type is specified',
            ),
            (
                f"{P}.properties[b].x-kubernetes-list-type",
                'Unsupported value: "bag": supported values: "atomic", "set", "map"',
            ),
            (
                f"{P}.properties[c].x-kubernetes-list-map-keys",
                "Required value: must not be empty if x-kubernetes-list-type is map",
            ),
            (
                f"{P}.properties[d].x-kubernetes-list-map-keys",
                'Invalid value: []interface {}{"k", "missing"}: entries must all be names of '
                "item properties",
            ),
            (
                f"{P}.properties[d].items.properties[k].default",
                "Required value: this property is in x-kubernetes-list-map-keys, so it must have "
                "a default or be a required property",
            ),
            (
                f"{P}.properties[e].x-kubernetes-list-type",
                "Required value: must be map if x-kubernetes-list-map-keys is non-empty",
            ),
            (
                f"{P}.properties[f].type",
                'Invalid value: "string": must be object if x-kubernetes-map-type is specified',
            ),
            (
                f"{P}.properties[g].x-kubernetes-map-type",
                'Unsupported value: "fine": supported values: "atomic", "granular"',
            ),
        ]

    def test_defaults_must_validate_and_be_pruned(self) -> None:
        document = {
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "n": {"type": "integer", "maximum": 10, "default": 11},
                        "o": {
                            "type": "object",
                            "properties": {"a": {"type": "string"}},
                            "default": {"b": 1},
                        },
                        "p": {
                            "type": "object",
                            "properties": {"a": {"type": "string"}},
                            "default": {"a": 5},
                        },
                    },
                }
            },
        }
        path = f"{P}.properties[spec].properties"
        assert doc_causes(document) == [
            (
                f"{path}[n].default",
                "Invalid value: 11:  in body should be less than or equal to 10",
            ),
            (
                f"{path}[o].default",
                'Invalid value: map[string]interface {}{"b":1}: must not have unknown fields',
            ),
            (
                f"{path}[p].default.a",
                'Invalid value: "integer": a in body must be of type string: "integer"',
            ),
        ]

    def test_rule_shapes(self) -> None:
        document = {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": " "},
                {"rule": "true", "message": " "},
                {"rule": "true", "message": "a\nb"},
                {"rule": "true &&\ntrue"},
                {"rule": "true", "messageExpression": ""},
                {"rule": "true", "reason": "Nope"},
                {"rule": "true", "fieldPath": ""},
            ],
        }
        rules = f"{P}.x-kubernetes-validations"
        assert doc_causes(document) == [
            (f"{rules}[0].rule", "Required value: rule is not specified"),
            (f"{rules}[1].message", 'Invalid value: " ": message must be non-empty if specified'),
            (f"{rules}[2].message", 'Invalid value: "a\\nb": message must not contain line breaks'),
            (
                f"{rules}[3].message",
                "Required value: message must be specified if rule contains line breaks",
            ),
            (
                f"{rules}[4].messageExpression",
                "Required value: messageExpression must be non-empty if specified",
            ),
            (
                f"{rules}[5].reason",
                'Unsupported value: "Nope": supported values: "FieldValueDuplicate", '
                '"FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"',
            ),
            (
                f"{rules}[6].fieldPath",
                'Invalid value: "": fieldPath must be non-empty if specified',
            ),
        ]

    def test_the_path_prefix_is_the_callers(self) -> None:
        assert doc_causes({"type": "string"}, "spec.versions[2].schema.openAPIV3Schema") == [
            (
                "spec.versions[2].schema.openAPIV3Schema.type",
                'Invalid value: "string": must be object at the root',
            )
        ]


# --------------------------------------------------------------------------------------
# normalize: prune then apply_defaults in one copy-on-write walk (what the store runs)

_KEYS = ["a", "b", "c", "apiVersion", "kind", "metadata"]


def _random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.35:
        return rng.choice([None, 1, "x", True, 2.5])
    if roll < 0.75:
        return {rng.choice(_KEYS): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _random_schema(rng: random.Random, depth: int) -> dict[str, Any]:
    """Every keyword pruning and defaulting look at, including defaults that are not clean."""
    s: dict[str, Any] = {}
    kind = rng.choice(["object", "object", "array", "string", "integer", None])
    if kind:
        s["type"] = kind
    if depth < 4 and (kind == "object" or (kind is None and rng.random() < 0.5)):
        if rng.random() < 0.8:
            keys = rng.sample(_KEYS, rng.randint(0, 4))
            s["properties"] = {k: _random_schema(rng, depth + 1) for k in keys}
        roll = rng.random()
        if roll < 0.2:
            s["additionalProperties"] = _random_schema(rng, depth + 1)
        elif roll < 0.3:
            s["additionalProperties"] = rng.choice([True, False])
    if (
        depth < 4
        and (kind == "array" or (kind is None and rng.random() < 0.3))
        and rng.random() < 0.85
    ):
        s["items"] = _random_schema(rng, depth + 1)
    for keyword, chance in (
        ("x-kubernetes-preserve-unknown-fields", 0.15),
        ("x-kubernetes-embedded-resource", 0.1),
        ("nullable", 0.25),
    ):
        if rng.random() < chance:
            s[keyword] = True
    if rng.random() < 0.25:
        s["default"] = _random_value(rng, 2)
    return s


class TestNormalize:
    def test_nr_shares_what_needs_no_change(self, nr: StructuralSchema) -> None:
        obj = notification(extra=1)
        obj["metadata"] = {"name": "n", "labels": {"a": "b"}}
        before = copy.deepcopy(obj)
        expected = copy.deepcopy(obj)
        assert nr.prune(expected) == ["spec.extra"]
        nr.apply_defaults(expected)
        result, pruned = nr.normalize(obj)
        assert obj == before
        assert pruned == ["spec.extra"] and result == expected
        assert result["metadata"] is obj["metadata"] and result["spec"] is not obj["spec"]

    def test_equals_prune_then_apply_defaults_on_random_schemas(self) -> None:
        rng = random.Random(7)
        for _ in range(600):
            document = _random_schema(rng, 0)
            document.setdefault("type", "object")
            schema = StructuralSchema(document)
            for _ in range(4):
                obj = {rng.choice(_KEYS): _random_value(rng, 1) for _ in range(rng.randint(0, 6))}
                before = orjson.dumps(obj)
                expected = copy.deepcopy(obj)
                expected_pruned = schema.prune(expected)
                schema.apply_defaults(expected)
                result, pruned = schema.normalize(obj)
                assert orjson.dumps(obj) == before, "normalize wrote into its input"
                assert pruned == expected_pruned, (document, obj)
                # Key order too: the stored bytes are what clients read.
                assert orjson.dumps(result) == orjson.dumps(expected), (document, obj)

    def test_unchanged_fields_of_a_passed_object_need_no_second_walk(self) -> None:
        # What the store relies on: a root field still holding the value that normalize()
        # returned and validate() passed with no cause gives the same results when skipped.
        rng = random.Random(11)
        skipped = 0
        for _ in range(400):
            document = _random_schema(rng, 0)
            document["type"] = "object"
            if rng.random() < 0.3:
                rule = rng.choice(["has(self.a) || !has(self.b)", "size(self) >= 0"])
                document["x-kubernetes-validations"] = [{"rule": rule}]
            schema = StructuralSchema(document)
            for _ in range(3):
                obj = {
                    k: {kk: _random_value(rng, 3) for kk in rng.sample(_KEYS, 2)}
                    if rng.random() < 0.6
                    else _random_value(rng, 2)
                    for k in rng.sample(_KEYS, rng.randint(1, 6))
                }
                passed, _ = schema.normalize(obj)
                if schema.validate(passed):
                    continue
                new = {
                    k: _random_value(rng, 1) if k in ("apiVersion", "kind", "metadata") else v
                    for k, v in passed.items()
                    if rng.random() > 0.1
                }
                new[rng.choice(["a", "b"])] = _random_value(rng, 1)
                unchanged = [
                    k
                    for k, v in new.items()
                    if k in ("a", "b", "c") and k in passed and passed[k] is v
                ]
                expected, expected_pruned = schema.normalize(new)
                result, pruned = schema.normalize(new, unchanged)
                assert pruned == expected_pruned
                assert orjson.dumps(result) == orjson.dumps(expected), (document, passed, new)
                still = [k for k in unchanged if result.get(k) is passed[k]]
                skipped += len(still)
                assert schema.validate(result, still) == schema.validate(result)
        assert skipped > 100

    def test_a_field_with_an_object_default_below_is_walked_again(self) -> None:
        # An object or array default can hold what a second normalize() changes (here an
        # undeclared field), so such a field is walked even when it is "unchanged".
        schema = StructuralSchema(
            {
                "type": "object",
                "properties": {"c": {"type": "object", "properties": {}, "default": {"b": "x"}}},
            }
        )
        passed, pruned = schema.normalize({})
        assert (passed, pruned) == ({"c": {"b": "x"}}, []) and schema.validate(passed) == []
        assert schema.normalize(passed, ["c"]) == schema.normalize(passed) == ({"c": {}}, ["c.b"])
