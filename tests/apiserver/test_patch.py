"""The three PATCH flavours: RFC 7386, RFC 6902 and strategic merge, with kube's errors."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from pytest_ntinvariants.apiserver.errors import (
    BadRequest,
    Invalid,
    RequestEntityTooLarge,
)
from pytest_ntinvariants.apiserver.patch import (
    MAX_JSON_PATCH_OPERATIONS,
    apply_json_patch,
    apply_merge_patch,
    apply_strategic_merge_patch,
)

GENERIC_422 = "the server rejected our request due to an error in our request"


def unchanged(fn: Any, target: Any, patch: Any) -> Any:
    """Apply ``fn`` and assert that neither input was mutated."""
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    result = fn(target, patch)
    assert target == target_before
    assert patch == patch_before
    return result


# --------------------------------------------------------------------------------------
# JSON merge patch


class TestMergePatch:
    def test_merges_objects_and_deletes_with_null(self) -> None:
        target = {"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": 1}}
        patch = {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"y": 2}}
        result = unchanged(apply_merge_patch, target, patch)
        assert result == {"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"x": 1, "y": 2}}

    def test_null_for_an_absent_key_is_a_no_op(self) -> None:
        assert apply_merge_patch({"a": 1}, {"b": None}) == {"a": 1}

    def test_arrays_are_replaced_not_merged(self) -> None:
        result = apply_merge_patch({"l": [1, 2, 3]}, {"l": [4]})
        assert result == {"l": [4]}

    def test_nulls_of_new_objects_are_dropped_recursively(self) -> None:
        result = apply_merge_patch({}, {"a": {"b": None, "c": {"d": None, "e": 1}}})
        assert result == {"a": {"c": {"e": 1}}}

    def test_nulls_in_arrays_stay_but_objects_inside_are_pruned(self) -> None:
        # evanphx v4 pruneAryNulls keeps null elements, prunes inside object elements.
        result = apply_merge_patch({"l": "x"}, {"l": [None, {"a": None, "b": 1}]})
        assert result == {"l": [None, {"b": 1}]}

    def test_object_replaced_by_array_keeps_the_array_as_sent(self) -> None:
        # evanphx v4 returns the patch value untouched when only the current one is an object.
        result = apply_merge_patch({"a": {"x": 1}}, {"a": [{"k": None}]})
        assert result == {"a": [{"k": None}]}

    def test_scalar_replaced_by_object(self) -> None:
        assert apply_merge_patch({"a": 1}, {"a": {"b": 2, "c": None}}) == {"a": {"b": 2}}

    def test_null_current_value_is_replaced(self) -> None:
        assert apply_merge_patch({"a": None}, {"a": {"b": 1}}) == {"a": {"b": 1}}

    def test_empty_patch_returns_an_equal_copy(self) -> None:
        target = {"a": {"b": [1]}}
        result = apply_merge_patch(target, {})
        assert result == target
        assert result is not target
        assert result["a"] is not target["a"]

    def test_result_shares_nothing_with_the_patch(self) -> None:
        patch = {"spec": {"list": [{"a": 1}]}}
        result = apply_merge_patch({}, patch)
        result["spec"]["list"][0]["a"] = 2
        assert patch == {"spec": {"list": [{"a": 1}]}}

    @pytest.mark.parametrize("patch", [None, "x", 3, True])
    def test_null_or_scalar_patch_is_a_400(self, patch: Any) -> None:
        with pytest.raises(BadRequest) as info:
            apply_merge_patch({"a": 1}, patch)
        assert info.value.message == "Invalid JSON Patch"
        assert info.value.code == 400

    def test_array_patch_cannot_become_an_object(self) -> None:
        with pytest.raises(Invalid) as info:
            apply_merge_patch({"a": 1}, [1, None])
        assert info.value.code == 422
        (cause,) = info.value.causes
        assert cause.field == "patch"
        assert cause.message.startswith('Invalid value: "[1,null]": couldn\'t get version/kind')
        assert info.value.message.startswith(' "" is invalid: patch: Invalid value:')

    def test_non_object_target_becomes_the_pruned_patch(self) -> None:
        assert apply_merge_patch("x", {"a": None, "b": 1}) == {"b": 1}


# --------------------------------------------------------------------------------------
# JSON patch


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p", "resourceVersion": "7", "finalizers": ["a"]},
    "spec": {"list": [1, 2, 3]},
}


class TestJsonPatch:
    def test_every_operation(self) -> None:
        ops = [
            {"op": "add", "path": "/metadata/labels", "value": {"x": "1"}},
            {"op": "replace", "path": "/spec/list/0", "value": 10},
            {"op": "remove", "path": "/spec/list/1"},
            {"op": "add", "path": "/spec/list/-", "value": 4},
            {"op": "copy", "from": "/metadata/labels", "path": "/spec/labels"},
            {"op": "move", "from": "/spec/labels", "path": "/spec/moved"},
            {"op": "test", "path": "/spec/moved/x", "value": "1"},
        ]
        result = unchanged(apply_json_patch, POD, ops)
        assert result["metadata"]["labels"] == {"x": "1"}
        assert result["spec"] == {"list": [10, 3, 4], "moved": {"x": "1"}}

    def test_kopf_finalizer_patch_with_a_passing_test(self) -> None:
        ops = [
            {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
            {"op": "add", "path": "/metadata/finalizers/-", "value": "kopf"},
        ]
        assert apply_json_patch(POD, ops)["metadata"]["finalizers"] == ["a", "kopf"]

    def test_failed_test_is_a_422_with_kubes_generic_text(self) -> None:
        ops = [
            {"op": "add", "path": "/metadata/finalizers/-", "value": "kopf"},
            {"op": "test", "path": "/metadata/resourceVersion", "value": "6"},
        ]
        with pytest.raises(Invalid) as info:
            unchanged(apply_json_patch, POD, ops)
        assert info.value.code == 422
        assert info.value.reason == "Invalid"
        assert info.value.message == GENERIC_422
        assert info.value.causes == ()
        assert "failed" in str(info.value.__cause__)

    @pytest.mark.parametrize(
        ("value", "ok"),
        [(7, False), ("7", True), (True, False), (None, False)],
    )
    def test_test_op_compares_json_values_strictly(self, value: Any, ok: bool) -> None:
        ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": value}]
        if ok:
            apply_json_patch(POD, ops)
        else:
            with pytest.raises(Invalid):
                apply_json_patch(POD, ops)

    def test_test_op_numbers_compare_by_value_but_not_with_booleans(self) -> None:
        doc = {"a": 1, "b": True, "c": [1, {"d": 2.0}]}
        apply_json_patch(doc, [{"op": "test", "path": "/a", "value": 1.0}])
        apply_json_patch(doc, [{"op": "test", "path": "/c", "value": [1.0, {"d": 2}]}])
        with pytest.raises(Invalid):
            apply_json_patch(doc, [{"op": "test", "path": "/b", "value": 1}])
        with pytest.raises(Invalid):
            apply_json_patch(doc, [{"op": "test", "path": "/a", "value": True}])
        with pytest.raises(Invalid):
            apply_json_patch(doc, [{"op": "test", "path": "/missing", "value": 1}])

    @pytest.mark.parametrize(
        "op",
        [
            {"op": "remove", "path": "/metadata/labels"},
            {"op": "remove", "path": "/nope/deeper"},
            {"op": "replace", "path": "/metadata/labels", "value": {}},
            {"op": "move", "from": "/nope", "path": "/x"},
            {"op": "copy", "from": "/nope", "path": "/x"},
            {"op": "add", "path": "/nope/deeper", "value": 1},
            {"op": "add", "path": "/spec/list/9", "value": 1},
            {"op": "replace", "path": "/spec/list/9", "value": 1},
        ],
    )
    def test_missing_paths_are_a_422(self, op: dict[str, Any]) -> None:
        # handlers/patch.go wraps every Apply error in NewGenericServerResponse(422).
        with pytest.raises(Invalid) as info:
            apply_json_patch(POD, [op])
        assert info.value.message == GENERIC_422

    @pytest.mark.parametrize(
        ("op", "detail"),
        [
            ({"op": "frobnicate", "path": "/a"}, "Unexpected kind: frobnicate"),
            ({"path": "/a", "value": 1}, "Unexpected kind: unknown"),
            ({"op": 5, "path": "/a"}, "Unexpected kind: unknown"),
            (None, "Unexpected kind: unknown"),
            ({"op": "add", "value": 1}, "add operation failed to decode path: missing value"),
            ({"op": "move", "path": "/a"}, "move operation failed to decode from: missing value"),
            ({"op": "add", "path": "no-slash", "value": 1}, None),
        ],
    )
    def test_malformed_operations_are_a_422_like_kube(
        self, op: dict[str, Any] | None, detail: str | None
    ) -> None:
        with pytest.raises(Invalid) as info:
            apply_json_patch(POD, [op])
        assert info.value.message == GENERIC_422
        if detail is not None:
            assert str(info.value.__cause__) == detail

    @pytest.mark.parametrize(
        ("ops", "message"),
        [
            ({"op": "add"}, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
            ("x", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
            (
                ["add"],
                "json: cannot unmarshal string into Go value of type jsonpatch.Operation",
            ),
            ([[1]], "json: cannot unmarshal array into Go value of type jsonpatch.Operation"),
        ],
    )
    def test_a_document_that_is_not_a_list_of_objects_is_a_400(
        self, ops: Any, message: str
    ) -> None:
        with pytest.raises(BadRequest) as info:
            apply_json_patch(POD, ops)
        assert info.value.message == message

    def test_null_document_is_an_empty_patch(self) -> None:
        result = apply_json_patch(POD, None)
        assert result == POD
        assert result is not POD

    def test_too_many_operations_is_a_413(self) -> None:
        ops = [{"op": "test", "path": "/kind", "value": "Pod"}] * (MAX_JSON_PATCH_OPERATIONS + 1)
        with pytest.raises(RequestEntityTooLarge) as info:
            apply_json_patch(POD, ops)
        assert info.value.message == (
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        )
        assert apply_json_patch(POD, ops[:MAX_JSON_PATCH_OPERATIONS]) == POD

    def test_missing_value_reads_as_null_like_evanphx_v4(self) -> None:
        assert apply_json_patch({"a": 1}, [{"op": "add", "path": "/b"}]) == {"a": 1, "b": None}
        assert apply_json_patch({"a": 1}, [{"op": "replace", "path": "/a"}]) == {"a": None}

    def test_result_does_not_alias_the_operation_values(self) -> None:
        ops = [{"op": "add", "path": "/spec/obj", "value": {"k": [1]}}]
        result = apply_json_patch(POD, ops)
        result["spec"]["obj"]["k"].append(2)
        assert ops[0]["value"] == {"k": [1]}

    def test_replacing_the_root_with_a_non_object_is_a_422_on_patch(self) -> None:
        with pytest.raises(Invalid) as info:
            apply_json_patch(POD, [{"op": "replace", "path": "", "value": [1]}])
        assert info.value.causes[0].field == "patch"

    def test_replacing_the_root_with_an_object_works(self) -> None:
        new = {"kind": "Pod", "metadata": {"name": "q"}}
        assert apply_json_patch(POD, [{"op": "replace", "path": "", "value": new}]) == new

    def test_escaped_pointer_segments(self) -> None:
        doc = {"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}}
        ops = [
            {"op": "remove", "path": "/metadata/annotations/a~1b"},
            {"op": "replace", "path": "/metadata/annotations/c~0d", "value": "3"},
        ]
        assert apply_json_patch(doc, ops) == {"metadata": {"annotations": {"c~d": "3"}}}


# --------------------------------------------------------------------------------------
# Strategic merge patch


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def smp(target: dict[str, Any], patch: Any) -> Any:
    return unchanged(apply_strategic_merge_patch, target, patch)


class TestStrategicMergeLists:
    def test_containers_merge_by_name(self) -> None:
        target = pod(containers=[{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}])
        patch = {"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c"}]}}
        result = smp(target, patch)
        assert result["spec"]["containers"] == [
            {"name": "a", "image": "a:1"},
            {"name": "b", "image": "b:2"},
            {"name": "c"},
        ]

    def test_nested_merge_lists_env_ports_mounts(self) -> None:
        container = {
            "name": "app",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "ports": [{"containerPort": 80, "name": "http"}],
            "volumeMounts": [{"mountPath": "/data", "name": "d"}],
            "args": ["--x", "--y"],
        }
        patch = {
            "spec": {
                "containers": [
                    {
                        "name": "app",
                        "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}],
                        "ports": [{"containerPort": 443, "name": "https"}],
                        "volumeMounts": [{"mountPath": "/data", "readOnly": True}],
                        "args": ["--z"],
                    }
                ]
            }
        }
        (merged,) = smp(pod(containers=[container]), patch)["spec"]["containers"]
        assert merged["env"] == [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "3"},
            {"name": "C", "value": "4"},
        ]
        # kube's mergeSortedSlice puts a patch item the live list lacks before the
        # server-only items it cannot be ordered against: the new port comes first.
        assert merged["ports"] == [
            {"containerPort": 443, "name": "https"},
            {"containerPort": 80, "name": "http"},
        ]
        assert merged["volumeMounts"] == [{"mountPath": "/data", "name": "d", "readOnly": True}]
        assert merged["args"] == ["--z"]  # no patch strategy: replaced

    @pytest.mark.parametrize(
        ("field", "key"),
        [
            ("volumes", "name"),
            ("initContainers", "name"),
            ("ephemeralContainers", "name"),
            ("imagePullSecrets", "name"),
            ("hostAliases", "ip"),
            ("topologySpreadConstraints", "topologyKey"),
        ],
    )
    def test_pod_spec_merge_keys(self, field: str, key: str) -> None:
        target = pod(**{field: [{key: "one", "x": 1}, {key: "two", "x": 2}]})
        result = smp(target, {"spec": {field: [{key: "two", "x": 3}]}})
        assert result["spec"][field] == [{key: "one", "x": 1}, {key: "two", "x": 3}]

    def test_tolerations_are_atomic(self) -> None:
        target = pod(tolerations=[{"key": "a"}, {"key": "b"}])
        assert smp(target, {"spec": {"tolerations": [{"key": "c"}]}})["spec"]["tolerations"] == [
            {"key": "c"}
        ]

    def test_finalizers_merge_as_a_set_of_scalars(self) -> None:
        target = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"finalizers": ["a", "b"]}}
        result = smp(target, {"metadata": {"finalizers": ["b", "c", "c"]}})
        assert result["metadata"]["finalizers"] == ["a", "b", "c"]

    def test_delete_from_primitive_list(self) -> None:
        target = {"kind": "Secret", "apiVersion": "v1", "metadata": {"finalizers": ["a", "b", "c"]}}
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}
        assert smp(target, patch)["metadata"]["finalizers"] == ["a", "c"]

    def test_delete_from_primitive_list_of_an_absent_list_is_a_no_op(self) -> None:
        target = {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}}
        patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}
        assert smp(target, patch) == target

    def test_owner_references_merge_by_uid(self) -> None:
        target = {
            "kind": "ConfigMap",
            "apiVersion": "v1",
            "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]},
        }
        patch = {"metadata": {"ownerReferences": [{"uid": "2", "name": "B"}, {"uid": "3"}]}}
        assert smp(target, patch)["metadata"]["ownerReferences"] == [
            {"uid": "1", "name": "a"},
            {"uid": "2", "name": "B"},
            {"uid": "3"},
        ]

    def test_status_conditions_merge_by_type(self) -> None:
        target = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "status": {"conditions": [{"type": "Available", "status": "False"}]},
        }
        patch = {
            "status": {
                "conditions": [
                    {"type": "Progressing", "status": "True"},
                    {"type": "Available", "status": "True"},
                ]
            }
        }
        assert smp(target, patch)["status"]["conditions"] == [
            {"type": "Progressing", "status": "True"},
            {"type": "Available", "status": "True"},
        ]

    def test_order_follows_the_patch_then_the_live_list(self) -> None:
        # kube's normalizeElementOrder: patch items keep the patch order, server-only items
        # are interleaved by their position in the live list.
        target = pod(containers=[{"name": n} for n in ("a", "b", "c", "d")])
        patch = {"spec": {"containers": [{"name": "c"}, {"name": "a"}, {"name": "e"}]}}
        names = [c["name"] for c in smp(target, patch)["spec"]["containers"]]
        assert names == ["b", "c", "a", "e", "d"]

    def test_workloads_merge_their_pod_template(self) -> None:
        for api_version, kind in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "ReplicaSet"),
            ("batch/v1", "Job"),
            ("v1", "ReplicationController"),
        ]:
            target = {
                "apiVersion": api_version,
                "kind": kind,
                "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}},
            }
            patch = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "x"}]}}}}
            result = smp(target, patch)
            assert result["spec"]["template"]["spec"]["containers"] == [
                {"name": "a"},
                {"name": "b", "image": "x"},
            ], kind

    def test_cron_job_template(self) -> None:
        template = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}
        target = {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "spec": {"jobTemplate": {"spec": {"template": template}}},
        }
        patch = {
            "spec": {
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c"}]}}}}
            }
        }
        containers = smp(target, patch)["spec"]["jobTemplate"]["spec"]["template"]["spec"][
            "containers"
        ]
        assert [c["name"] for c in containers] == ["c", "a", "b"]

    def test_service_ports_merge_by_port(self) -> None:
        target = {
            "apiVersion": "v1",
            "kind": "Service",
            "spec": {"ports": [{"port": 80}, {"port": 81}]},
        }
        patch = {"spec": {"ports": [{"port": 81, "name": "x"}]}}
        assert smp(target, patch)["spec"]["ports"] == [{"port": 80}, {"port": 81, "name": "x"}]

    def test_node_pod_cidrs_and_addresses(self) -> None:
        target = {
            "apiVersion": "v1",
            "kind": "Node",
            "spec": {"podCIDRs": ["10.0.0.0/24"]},
            "status": {"addresses": [{"type": "InternalIP", "address": "1.1.1.1"}]},
        }
        patch = {
            "spec": {"podCIDRs": ["fd00::/64"]},
            "status": {"addresses": [{"type": "Hostname", "address": "n"}]},
        }
        result = smp(target, patch)
        assert result["spec"]["podCIDRs"] == ["fd00::/64", "10.0.0.0/24"]
        assert len(result["status"]["addresses"]) == 2

    def test_service_account_secrets_and_namespace_conditions(self) -> None:
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "secrets": [{"name": "a"}]}
        assert smp(sa, {"secrets": [{"name": "b"}]})["secrets"] == [{"name": "b"}, {"name": "a"}]
        ns = {"apiVersion": "v1", "kind": "Namespace", "status": {"conditions": [{"type": "A"}]}}
        patch = {"status": {"conditions": [{"type": "B"}]}}
        assert len(smp(ns, patch)["status"]["conditions"]) == 2

    def test_unknown_kinds_only_know_metadata(self) -> None:
        target = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"finalizers": ["a"]},
            "data": {"containers": "x"},
            "list": [{"name": "a"}],
        }
        patch = {"metadata": {"finalizers": ["b"]}, "list": [{"name": "b"}]}
        result = smp(target, patch)
        assert result["metadata"]["finalizers"] == ["b", "a"]
        assert result["list"] == [{"name": "b"}]

    def test_the_api_group_must_match_a_built_in(self) -> None:
        # A custom kind named like a built-in is not a Pod: its lists are replaced.
        target = {
            "apiVersion": "example.com/v1",
            "kind": "Pod",
            "spec": {"containers": [{"name": "a"}]},
        }
        result = smp(target, {"spec": {"containers": [{"name": "b"}]}})
        assert result["spec"]["containers"] == [{"name": "b"}]


class TestStrategicMergeMaps:
    def test_maps_merge_and_null_deletes(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": "2"}}
        result = smp(target, {"data": {"a": None, "c": "3"}, "absent": None})
        assert result["data"] == {"b": "2", "c": "3"}
        assert "absent" not in result

    def test_scalars_and_type_changes_take_the_patch_value(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap", "a": "x", "b": {"c": 1}, "d": [1]}
        result = smp(target, {"a": 2, "b": "now a string", "d": {"e": None, "f": 1}})
        assert result["a"] == 2
        assert result["b"] == "now a string"
        assert result["d"] == {"f": 1}

    def test_patch_replace_directive_in_a_map(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1", "b": "2"}}
        result = smp(target, {"data": {"$patch": "replace", "c": "3", "d": None}})
        assert result["data"] == {"c": "3"}

    def test_patch_delete_directive_in_a_map(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}, "keep": 1}
        assert smp(target, {"data": {"$patch": "delete"}}) == {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "data": {},
            "keep": 1,
        }

    def test_patch_merge_in_a_map_is_rejected_like_kube(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}}
        with pytest.raises(BadRequest) as info:
            smp(target, {"data": {"$patch": "merge", "b": "2"}})
        assert info.value.message == "unknown patch type: merge in map: map[$patch:merge b:2]"

    def test_new_values_lose_nulls_and_directives(self) -> None:
        target = pod(containers=[{"name": "a"}])
        patch = {
            "spec": {
                "containers": [{"name": "b", "image": None, "env": [{"name": "X", "value": None}]}],
                "newField": {"a": None, "b": {"$patch": "delete"}, "c": 1},
            }
        }
        result = smp(target, patch)
        assert result["spec"]["containers"][0] == {"name": "b", "env": [{"name": "X"}]}
        assert result["spec"]["newField"] == {"c": 1}

    def test_a_new_key_whose_value_is_a_directive_is_not_kept(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap"}
        assert smp(target, {"data": {"$patch": "delete"}}) == target

    def test_unknown_dollar_keys_are_dropped(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}}
        assert smp(target, {"$foo": 1, "data": {"$bar": 2}}) == target

    def test_top_level_directives(self) -> None:
        target = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "1"}}
        assert smp(target, {"$patch": "delete"}) == {}
        assert smp(target, {"$patch": "replace", "kind": "ConfigMap"}) == {"kind": "ConfigMap"}

    def test_patch_must_be_an_object(self) -> None:
        with pytest.raises(BadRequest) as info:
            apply_strategic_merge_patch(pod(), [1])
        assert info.value.message == (
            "json: cannot unmarshal array into Go value of type map[string]interface {}"
        )


class TestStrategicMergeListDirectives:
    def test_delete_item_by_merge_key(self) -> None:
        target = pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
        patch = {"spec": {"containers": [{"$patch": "delete", "name": "b"}, {"name": "d"}]}}
        names = [c["name"] for c in smp(target, patch)["spec"]["containers"]]
        assert names == ["d", "a", "c"]

    def test_replace_the_whole_list(self) -> None:
        target = pod(containers=[{"name": "a"}, {"name": "b"}])
        patch = {"spec": {"containers": [{"name": "x", "image": None}, {"$patch": "replace"}]}}
        assert smp(target, patch)["spec"]["containers"] == [{"name": "x"}]

    def test_merge_directive_in_a_list_is_rejected_like_kube(self) -> None:
        with pytest.raises(BadRequest) as info:
            smp(pod(containers=[{"name": "a"}]), {"spec": {"containers": [{"$patch": "merge"}]}})
        assert info.value.message == "merging lists cannot yet be specified in the patch"

    def test_unknown_directive_in_a_list(self) -> None:
        with pytest.raises(BadRequest) as info:
            smp(pod(containers=[{"name": "a"}]), {"spec": {"containers": [{"$patch": "x"}]}})
        assert info.value.message.startswith("unknown patch type: x in map:")

    def test_delete_directive_needs_the_merge_key(self) -> None:
        with pytest.raises(BadRequest) as info:
            smp(pod(containers=[{"name": "a"}]), {"spec": {"containers": [{"$patch": "delete"}]}})
        assert info.value.message == (
            "map: map[$patch:delete] does not contain declared merge key: name"
        )

    def test_item_without_merge_key(self) -> None:
        with pytest.raises(BadRequest) as info:
            smp(pod(containers=[{"name": "a"}]), {"spec": {"containers": [{"image": "x"}]}})
        assert info.value.message == "map: map[image:x] does not contain declared merge key: name"

    def test_set_element_order(self) -> None:
        target = pod(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}])
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                "containers": [{"name": "b", "image": "x"}],
            }
        }
        result = smp(target, patch)
        assert result["spec"]["containers"] == [
            {"name": "c"},
            {"name": "b", "image": "x"},
            {"name": "a"},
        ]

    def test_set_element_order_without_the_list_in_the_patch(self) -> None:
        target = {"apiVersion": "v1", "kind": "Secret", "metadata": {"finalizers": ["a", "b"]}}
        patch = {"metadata": {"$setElementOrder/finalizers": ["b", "a"]}}
        assert smp(target, patch)["metadata"]["finalizers"] == ["b", "a"]

    def test_set_element_order_for_a_new_list(self) -> None:
        target = pod()
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "b", "image": None}, {"name": "a"}],
            }
        }
        assert smp(target, patch)["spec"]["containers"] == [{"name": "b"}, {"name": "a"}]

    def test_set_element_order_must_match_the_patch_order(self) -> None:
        target = pod(containers=[{"name": "a"}, {"name": "b"}])
        patch = {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}],
            }
        }
        with pytest.raises(BadRequest) as info:
            smp(target, patch)
        assert info.value.message.startswith("The order in patch list:")

    @pytest.mark.parametrize(
        ("patch", "message"),
        [
            ({"spec": {"$setElementOrder": []}}, "invalid patch format of setElementOrder list"),
            (
                {"spec": {"$deleteFromPrimitiveList": ["a"]}},
                "invalid patch format of primitive list",
            ),
            ({"spec": {"$retainKeys": "a"}}, "invalid patch format of retainKeys"),
            (
                {"spec": {"$setElementOrder/containers": "a"}},
                "expected a []interface {}, but received a string",
            ),
        ],
    )
    def test_malformed_directives_are_a_400(self, patch: dict[str, Any], message: str) -> None:
        with pytest.raises(BadRequest) as info:
            smp(pod(containers=[{"name": "a"}]), patch)
        assert info.value.message == message

    def test_retain_keys_clears_unlisted_keys(self) -> None:
        target = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
        }
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
        assert smp(target, patch)["spec"]["strategy"] == {"type": "Recreate"}

    def test_retain_keys_must_list_every_patched_key(self) -> None:
        target = {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"strategy": {}}}
        patch = {"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}
        with pytest.raises(BadRequest) as info:
            smp(target, patch)
        assert info.value.message == "invalid patch format of retainKeys"

    def test_list_of_lists_is_the_generic_422(self) -> None:
        target = {"apiVersion": "v1", "kind": "Secret", "metadata": {"finalizers": [["a"]]}}
        with pytest.raises(Invalid) as info:
            smp(target, {"metadata": {"finalizers": [["b"]]}})
        assert info.value.message == GENERIC_422

    def test_mixed_element_types(self) -> None:
        target = {"apiVersion": "v1", "kind": "Secret", "metadata": {"finalizers": ["a"]}}
        with pytest.raises(BadRequest) as info:
            smp(target, {"metadata": {"finalizers": [1]}})
        assert info.value.message == "list element types are not identical: [[a] [1]]"

    def test_merge_keys_compare_with_their_json_type(self) -> None:
        # Go's interface ==: the int 80 and the string "80" are different keys.
        target = pod(containers=[{"name": "c", "ports": [{"containerPort": 80}]}])
        patch = {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]}}
        ports = smp(target, patch)["spec"]["containers"][0]["ports"]
        assert ports == [{"containerPort": "80"}, {"containerPort": 80}]

    def test_empty_lists(self) -> None:
        target = {"apiVersion": "v1", "kind": "Secret", "metadata": {"finalizers": []}}
        assert smp(target, {"metadata": {"finalizers": []}})["metadata"]["finalizers"] == []


# --------------------------------------------------------------------------------------
# Merge patch with structural sharing (what the store uses for the patches it owns)


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.3:
        return rng.choice([None, 1, "x", True, 2.5, "y"])
    if roll < 0.7:
        return {rng.choice("abcde"): _random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _containers(value: Any) -> set[int]:
    if isinstance(value, dict):
        return {id(value)}.union(*(_containers(v) for v in value.values()))
    if isinstance(value, list):
        return {id(value)}.union(*(_containers(v) for v in value))
    return set()


class TestSharedMergePatch:
    def test_copies_only_what_the_patch_reaches(self) -> None:
        target = {"metadata": {"labels": {"a": "1"}}, "spec": {"x": [1]}, "status": {"p": 1}}
        result = unchanged(
            lambda t, p: apply_merge_patch(t, p, share=True), target, {"status": {"p": 2}}
        )
        assert result == {
            "metadata": {"labels": {"a": "1"}},
            "spec": {"x": [1]},
            "status": {"p": 2},
        }
        assert result is not target and result["status"] is not target["status"]
        assert result["spec"] is target["spec"] and result["metadata"] is target["metadata"]

    def test_equals_the_copying_merge_key_order_included(self) -> None:
        rng = random.Random(1)
        for _ in range(3000):
            target = {rng.choice("abcde"): _random_json(rng, 1) for _ in range(rng.randint(0, 5))}
            patch = (
                _random_json(rng)
                if rng.random() < 0.1
                else {rng.choice("abcde"): _random_json(rng, 1) for _ in range(rng.randint(0, 4))}
            )
            try:
                expected = apply_merge_patch(target, patch)
            except (BadRequest, Invalid) as e:
                with pytest.raises(type(e)):
                    apply_merge_patch(target, patch, share=True)
                continue
            result = unchanged(lambda t, p: apply_merge_patch(t, p, share=True), target, patch)
            assert orjson.dumps(result) == orjson.dumps(expected), (target, patch)
            assert not _containers(result) & _containers(patch)
