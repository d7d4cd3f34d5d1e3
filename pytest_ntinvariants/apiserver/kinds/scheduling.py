"""PriorityClasses (scheduling.k8s.io/v1): their type, kube's default and validation, the
columns kubectl prints and the protobuf layout kubectl's ``create priorityclass`` sends.

A class's ``preemptionPolicy`` defaults to ``PreemptLowerPriority`` (SetDefaults_PriorityClass,
on every decoded body, so an update that leaves it out asks for the default). kube's
strategy sets ``generation`` to 1 on create and never bumps it. A create is validated as
ValidatePriorityClass does: a name with the reserved ``system-`` prefix only for the two
system classes with their values, a value at most 10^9 otherwise, a known preemption policy;
an update as ValidatePriorityClassUpdate does: value and preemption policy immutable.

Not modelled: the two system classes a cluster bootstraps (``system-cluster-critical``,
``system-node-critical``) are not there from the start (creating them with their values is
allowed), and the Priority admission plugin's refusal of a second ``globalDefault`` class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import Cause
from ..gotext import field_forbidden, field_invalid, field_not_supported, field_required
from ..resources import ResourceType, builtin_type
from ..versions import WriteContext
from .base import JSON, BaseStrategy, Builtin
from .columns import AGE, Column, path

__all__ = ["PRIORITY_CLASSES"]

_POLICIES = ["PreemptLowerPriority", "Never"]
_SYSTEM_PREFIX = "system-"
# kube's HighestUserDefinablePriority, and its system classes: name -> value (neither is a
# global default).
_HIGHEST_USER_PRIORITY = 1_000_000_000
_SYSTEM_CLASSES = {"system-node-critical": 2_000_001_000, "system-cluster-critical": 2_000_000_000}

# k8s.io/api/scheduling/v1/generated.proto, in protobuf.py's notation.
_LAYOUT = """
PriorityClass metadata=1:ObjectMeta value=2:int32! globalDefault=3:bool description=4
    preemptionPolicy=5:*string
"""


def _system_class_error(name: str, value: Any, global_default: bool) -> str | None:
    """kube's IsKnownSystemPriorityClass: why the class is not a system one, or None."""
    known = _SYSTEM_CLASSES.get(name)
    if known is None:
        return f"{name} is not a known system priority class"
    if value != known:
        return f"value of {name} PriorityClass must be {known}"
    if global_default:
        return f"globalDefault of {name} PriorityClass must be false"
    return None


def _create_causes(obj: JSON) -> list[Cause]:
    """kube's ValidatePriorityClass (beyond metadata, which the store validates)."""
    causes: list[Cause] = []
    name = str((obj.get("metadata") or {}).get("name") or "")
    value = obj.get("value", 0)
    if name.startswith(_SYSTEM_PREFIX):
        error = _system_class_error(name, value, obj.get("globalDefault") is True)
        if error is not None:
            causes.append(
                field_forbidden(
                    "metadata.name",
                    f"priority class names with '{_SYSTEM_PREFIX}' prefix are reserved for "
                    f"system use only. error: {error}",
                )
            )
    elif isinstance(value, int) and value > _HIGHEST_USER_PRIORITY:
        causes.append(
            field_forbidden(
                "value",
                f"maximum allowed value of a user defined priority is {_HIGHEST_USER_PRIORITY}",
            )
        )
    policy = obj.get("preemptionPolicy")
    if policy == "":
        causes.append(field_required("preemptionPolicy"))
    elif policy is not None and policy not in _POLICIES:
        causes.append(field_not_supported("preemptionPolicy", policy, _POLICIES))
    return causes


def _update_causes(obj: JSON, old: JSON) -> list[Cause]:
    """kube's ValidatePriorityClassUpdate: value and preemption policy never change."""
    causes: list[Cause] = []
    if obj.get("value", 0) != old.get("value", 0):
        causes.append(field_forbidden("value", "may not be changed in an update."))
    policy = obj.get("preemptionPolicy")
    if policy != old.get("preemptionPolicy"):
        causes.append(field_invalid("preemptionPolicy", policy, "field is immutable"))
    return causes


def _defaulted(obj: JSON) -> JSON:
    """``obj`` with kube's default preemption policy."""
    if obj.get("preemptionPolicy") is None:
        obj["preemptionPolicy"] = "PreemptLowerPriority"
    return obj


class _PriorityClass(BaseStrategy):
    """A PriorityClass: defaulted and validated as kube does; generation 1, for good."""

    # (kube prints the policy after the age)
    columns: tuple[Column, ...] = (
        Column("Value", "integer", path(".value")),
        Column("Global-Default", "boolean", lambda obj: obj.get("globalDefault") is True),
        AGE,
        Column("PreemptionPolicy", "string", lambda obj: obj.get("preemptionPolicy") or ""),
    )
    prints_age = False
    protobuf_layout = _LAYOUT

    def prepare_create(self, rt: ResourceType, obj: JSON, ctx: WriteContext, state: Any) -> JSON:
        """The class with kube's default and its generation (1)."""
        obj["metadata"]["generation"] = 1
        return _defaulted(obj)

    def prepare_update(
        self, rt: ResourceType, obj: JSON, old: JSON, ctx: WriteContext, state: Any
    ) -> JSON:
        """The class with kube's default (its generation as sent: kube keeps no other)."""
        return _defaulted(obj)

    def validate(
        self, rt: ResourceType, obj: JSON, old: JSON | None, ctx: WriteContext
    ) -> Sequence[Cause]:
        """ValidatePriorityClass on create, ValidatePriorityClassUpdate on update."""
        return _create_causes(obj) if old is None else _update_causes(obj, old)


PRIORITY_CLASSES = Builtin(
    builtin_type(
        "scheduling.k8s.io",
        "v1",
        "priorityclasses",
        "PriorityClass",
        namespaced=False,
        short=("pc",),
        generation=False,
    ),
    _PriorityClass(),
)
