"""``x-kubernetes-validations``: CEL rules compiled once, then run over an object.

As ``schema/cel/validation.go``: rules run on each value of the object that their node
describes, with ``self`` (and ``oldSelf`` for transition rules on update, where the old
object has a value to compare with); ``type: number`` fields are doubles. A rule outside
the subset that ``.cel`` evaluates is kept unevaluated (see
``StructuralSchema.unevaluated_rules``). ``messageExpression`` is evaluated when it is in
the subset, else the rule's ``message`` (or ``failed rule: <rule>``) is used, as kube
does when it fails.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

from ..errors import Cause
from ..gotext import (
    field_duplicate,
    field_forbidden,
    field_invalid,
    field_required,
    path_child,
    path_key,
    path_shown,
)
from .cel import CelError, CelSyntaxError, Expr, Unsupported, parse
from .listtypes import map_list_key
from .tree import SchemaNode, field_schema

__all__ = ["Rule", "evaluate_rules"]


def _to_cel(value: Any, s: SchemaNode | None) -> Any:
    """JSON to CEL values: ``type: number`` fields are doubles even when written as 1."""
    if s is None or not s.has_number:
        return value
    if s.type == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        return {k: _to_cel(v, field_schema(s, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cel(v, s.items) for v in value]
    return value


def evaluate_rules(
    x: Any,
    old: Any,
    s: SchemaNode,
    path: str | None,
    transition: bool,
    out: list[Cause],
    skip: Container[str] = (),
) -> None:
    """Run the rules of ``s`` and below on ``x``, appending the causes of those that fail.

    ``transition``: run the rules that use ``oldSelf`` (with ``old`` the old value), else
    those that do not. ``skip`` names root fields whose subtrees are not walked.
    """
    if x is None or (transition and old is None):
        # Transition rules need an old value, and none exists below a missing one.
        return
    if s.rules:
        _run_rules(x, old, s, path, transition, out)
    if not s.rules_below:
        return
    if isinstance(x, dict):
        old_map = old if isinstance(old, dict) else None
        if s.additional is not None:
            for key, value in x.items():
                if key not in s.properties and key not in skip:
                    prev = old_map.get(key) if old_map is not None else None
                    evaluate_rules(value, prev, s.additional, path_key(path, key), transition, out)
        for key, value in x.items():
            prop = s.properties.get(key)
            if prop is not None and key not in skip:
                prev = old_map.get(key) if old_map is not None else None
                evaluate_rules(value, prev, prop, path_child(path, key), transition, out)
    elif isinstance(x, list) and s.items is not None:
        # Only list-type=map items correlate with old items (cel/validation.go makeMapList).
        olds: dict[Any, Any] = {}
        if transition and s.list_type == "map" and s.list_map_keys and isinstance(old, list):
            for item in old:
                olds.setdefault(map_list_key(item, s.list_map_keys), item)
        for i, value in enumerate(x):
            prev = olds.get(map_list_key(value, s.list_map_keys)) if olds else None
            evaluate_rules(value, prev, s.items, path_key(path, i), transition, out)


def _run_rules(
    x: Any, old: Any, s: SchemaNode, path: str | None, transition: bool, out: list[Cause]
) -> None:
    self_value: Any = None
    old_value: Any = None
    converted = False
    for rule in s.rules:
        if rule.program is None or rule.uses_old_self != transition:
            continue
        if not converted:
            self_value = _to_cel(x, s)
            old_value = _to_cel(old, s) if old is not None else None
            converted = True
        env = {"self": self_value}
        if transition:
            env["oldSelf"] = old_value
        type_name = s.type
        try:
            result = rule.program.ev(env)
        except CelError as exc:
            if str(exc).startswith("no such overload"):
                detail = (
                    f"'{exc}': call arguments did not match a supported operator, function or "
                    f"macro signature for rule: {rule.error_string}"
                )
            else:
                detail = f"{exc} evaluating rule: {rule.error_string}"
            out.append(field_invalid(path_shown(path), type_name, detail))
            continue
        if result is True:
            continue
        out.append(rule.failure(path, type_name, env))


class Rule:
    """One ``x-kubernetes-validations`` entry, parsed once."""

    __slots__ = (
        "error",
        "field_path",
        "message",
        "message_program",
        "program",
        "reason",
        "text",
        "uses_old_self",
    )

    def __init__(self, raw: Mapping[str, Any], path: str | None) -> None:
        rule = raw.get("rule")
        self.text: str = rule if isinstance(rule, str) else ""
        message = raw.get("message")
        self.message: str = message.strip() if isinstance(message, str) else ""
        reason = raw.get("reason")
        self.reason: str | None = reason if isinstance(reason, str) else None
        field_path = raw.get("fieldPath")
        self.field_path: str = field_path.strip() if isinstance(field_path, str) else ""
        self.program: Expr | None = None
        self.error: str | None = None
        self.uses_old_self = False
        try:
            self.program = parse(self.text)
            self.uses_old_self = self.program.uses("oldSelf")
        except (CelSyntaxError, Unsupported) as exc:
            self.error = str(exc)
        self.message_program: Expr | None = None
        expression = raw.get("messageExpression")
        if isinstance(expression, str) and expression.strip():
            try:
                self.message_program = parse(expression)
            except (CelSyntaxError, Unsupported):
                self.message_program = None

    @property
    def error_string(self) -> str:
        """cel/validation.go ruleErrorString: the message, else the rule."""
        return self.message or self.text.strip()

    def failure(self, path: str | None, type_name: str, env: dict[str, Any]) -> Cause:
        """The cause for a rule that evaluated to false (fieldErrorForReason)."""
        detail = ""
        if self.message_program is not None:
            try:
                value = self.message_program.ev(env)
            except CelError:
                value = None
            if isinstance(value, str) and value.strip() and "\n" not in value:
                detail = value
        if not detail:
            detail = self.message or f"failed rule: {self.text.strip()}"
        fld = path
        if self.field_path:
            fld = path_child(path, self.field_path.lstrip("."))
        shown = path_shown(fld)
        # kube <= 1.34 shows the schema type as the value ("object"); 1.35 omits it.
        if self.reason == "FieldValueForbidden":
            return field_forbidden(shown, detail)
        if self.reason == "FieldValueRequired":
            return field_required(shown, detail)
        if self.reason == "FieldValueDuplicate":
            return field_duplicate(shown, type_name)
        return field_invalid(shown, type_name, detail)
