"""PodDisruptionBudgets (policy/v1): kube's strategy and validation, the columns kubectl
prints, and the protobuf layout kubectl's ``create poddisruptionbudget`` sends.

A budget is created with an empty status (kube's PrepareForCreate: the four counters,
which Go's JSON always writes, at zero); the disruption controller would fill it in, and
here whoever writes ``/status`` does. Its spec is validated as kube's
ValidatePodDisruptionBudget does: ``minAvailable`` or ``maxUnavailable`` (not both), each
a non-negative integer or a percentage up to 100%, a sound label selector, a known
unhealthy-pod eviction policy; its status counters are never negative.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..errors import Cause
from ..gotext import field_invalid, field_not_supported, go_quote
from ..objectmeta import label_selector_causes
from ..resources import ResourceType, builtin_type
from ..versions import WriteContext
from .base import JSON, BaseStrategy, Builtin
from .columns import Column, int_at

__all__ = ["POD_DISRUPTION_BUDGETS"]

# What Go's JSON writes of an empty PodDisruptionBudgetStatus (no omitempty on these).
_STATUS_COUNTERS = ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods")
_EVICTION_POLICIES = ["AlwaysAllow", "IfHealthyBudget"]
_PERCENT = re.compile(r"[0-9]+%")

# k8s.io/api/policy/v1/generated.proto, in protobuf.py's notation.
_LAYOUT = """
PodDisruptionBudget metadata=1:ObjectMeta spec=2:PodDisruptionBudgetSpec
    status=3:PodDisruptionBudgetStatus
PodDisruptionBudgetSpec minAvailable=1:*IntOrString selector=2:*LabelSelector
    maxUnavailable=3:*IntOrString unhealthyPodEvictionPolicy=4:*string
PodDisruptionBudgetStatus observedGeneration=1:int64 disruptedPods=2:{Time}
    disruptionsAllowed=3:int32! currentHealthy=4:int32! desiredHealthy=5:int32!
    expectedPods=6:int32! conditions=7:[Condition]
"""


def _budget(field: str) -> Any:
    """A cell: the budget's ``field`` as kubectl prints it, or N/A."""

    def cell(obj: JSON) -> str:
        value = (obj.get("spec") or {}).get(field)
        return "N/A" if value is None else str(value)

    return cell


def _int_or_string(value: Any) -> str:
    """An IntOrString as Go's %#v prints it (field.Error shows one that way)."""
    if isinstance(value, str):
        return f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(value)}}}"
    return f'intstr.IntOrString{{Type:0, IntVal:{value}, StrVal:""}}'


def _int_or_percent_causes(path: str, value: Any) -> list[Cause]:
    """kube's ValidatePositiveIntOrPercent and IsNotMoreThan100Percent."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return []  # (not an IntOrString: what Go's decoding refuses is not modelled here)
    if isinstance(value, int):
        if value < 0:
            return [field_invalid(path, value, "must be greater than or equal to 0")]
        return []
    shown = _int_or_string(value)
    if not _PERCENT.fullmatch(value):
        return [
            Cause(
                path,
                f"Invalid value: {shown}: a valid percent string must be a numeric string "
                f"followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation "
                f"is '[0-9]+%')",
            )
        ]
    if int(value[:-1]) > 100:
        return [Cause(path, f"Invalid value: {shown}: must not be greater than 100%")]
    return []


def _spec_shown(spec: JSON) -> str:
    """A PodDisruptionBudgetSpec as Go's %#v prints it: its pointers as addresses (fixed
    ones here: only whether each is set is worth reading)."""

    def pointer(go_type: str, name: str, address: int) -> str:
        set_ = spec.get(name) is not None
        return f"(*{go_type})({f'0xc0000{address:05x}' if set_ else 'nil'})"

    return (
        "policy.PodDisruptionBudgetSpec{"
        f"MinAvailable:{pointer('intstr.IntOrString', 'minAvailable', 0x100)}, "
        f"Selector:{pointer('v1.LabelSelector', 'selector', 0x120)}, "
        f"MaxUnavailable:{pointer('intstr.IntOrString', 'maxUnavailable', 0x140)}, "
        "UnhealthyPodEvictionPolicy:"
        f"{pointer('policy.UnhealthyPodEvictionPolicyType', 'unhealthyPodEvictionPolicy', 0x160)}"
        "}"
    )


def _budget_causes(obj: JSON) -> list[Cause]:
    """kube's ValidatePodDisruptionBudget (the same on create and update)."""
    causes: list[Cause] = []
    spec = obj.get("spec")
    if isinstance(spec, dict):
        least, most = spec.get("minAvailable"), spec.get("maxUnavailable")
        if least is not None and most is not None:
            causes.append(
                Cause(
                    "spec",
                    f"Invalid value: {_spec_shown(spec)}: minAvailable and maxUnavailable "
                    f"cannot be both set",
                )
            )
        if least is not None:
            causes += _int_or_percent_causes("spec.minAvailable", least)
        if most is not None:
            causes += _int_or_percent_causes("spec.maxUnavailable", most)
        causes += label_selector_causes("spec.selector", spec.get("selector"))
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in _EVICTION_POLICIES:
            causes.append(
                field_not_supported("spec.unhealthyPodEvictionPolicy", policy, _EVICTION_POLICIES)
            )
    status = obj.get("status")
    if isinstance(status, dict):
        for name in _STATUS_COUNTERS:
            value = status.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                causes.append(
                    field_invalid(f"status.{name}", value, "must be greater than or equal to 0")
                )
    return causes


class _PodDisruptionBudget(BaseStrategy):
    """A PodDisruptionBudget: created with an empty status, validated as kube does."""

    columns: tuple[Column, ...] = (
        Column("Min Available", "string", _budget("minAvailable")),
        Column("Max Unavailable", "string", _budget("maxUnavailable")),
        Column("Allowed Disruptions", "integer", int_at(".status.disruptionsAllowed")),
    )
    protobuf_layout = _LAYOUT

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The budget with kube's empty status (whatever the body said of it)."""
        obj["status"] = dict.fromkeys(_STATUS_COUNTERS, 0)
        return obj

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The budget, its status counters written as Go writes them (zero when absent)."""
        status = obj.get("status")
        if status is None:
            obj["status"] = dict.fromkeys(_STATUS_COUNTERS, 0)
        elif isinstance(status, dict) and any(name not in status for name in _STATUS_COUNTERS):
            # (a new dict: the status may be a stored version's, never written to)
            obj["status"] = {**dict.fromkeys(_STATUS_COUNTERS, 0), **status}
        return obj

    def validate(
        self, rt: ResourceType, obj: JSON, old: JSON | None, ctx: WriteContext
    ) -> Sequence[Cause]:
        """ValidatePodDisruptionBudget."""
        return _budget_causes(obj)


POD_DISRUPTION_BUDGETS = Builtin(
    builtin_type(
        "policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=("pdb",), status=True
    ),
    _PodDisruptionBudget(),
)
