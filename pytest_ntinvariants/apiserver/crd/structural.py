"""``StructuralSchema``: a CRD version's schema, applied to custom resources in kube's order.

It ties the compiled tree (``.tree``) to the walks over an object: pruning and
defaulting (``.pruning``), OpenAPI validation (``.validation``), list types
(``.listtypes``) and CEL rules (``.rules``). CEL rules are not run at all when the
object already has a "blocking" error (Required, NotSupported, TooLong, TooMany,
TypeInvalid); a single ``<nil>`` cause says so instead.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Cause
from .listtypes import list_type_causes
from .pruning import PRUNE, apply_defaults, normalize, prune, prune_nulls
from .rules import Rule, evaluate_rules
from .tree import SchemaNode
from .validation import validate_value

__all__ = ["StructuralSchema", "UnevaluatedRule"]


# Reasons that stop CEL evaluation (registry/customresource/strategy.go, hasBlockingErr).
_BLOCKING = frozenset(
    (
        "FieldValueNotSupported",
        "FieldValueRequired",
        "FieldValueTooLong",
        "FieldValueTooMany",
        "FieldValueTypeInvalid",
    )
)
# field.Invalid(nil, nil, ...): a nil value renders as "null" in 1.32's ErrorBody.
_NOT_CHECKED = Cause(
    "<nil>",
    'Invalid value: "null": some validation rules were not checked because the object was '
    "invalid; correct the existing errors to complete validation",
    "FieldValueInvalid",
)


def _clipped(text: str, limit: int = 120) -> str:
    # A warning is one header line: a rule of thousands of characters is named, not quoted.
    return text if len(text) <= limit else text[:limit] + "..."


@dataclass(frozen=True)
class UnevaluatedRule:
    """An ``x-kubernetes-validations`` rule this fake cannot evaluate, and why."""

    path: str  # the schema node, as a field path: "" for the root, "[*]" for items/keys
    rule: str
    reason: str


class StructuralSchema:
    """A CRD version's ``openAPIV3Schema``, compiled for prune/default/validate.

    Construction never fails on a malformed document (keywords of the wrong type are
    ignored); use ``validate_schema_document`` to reject a CRD the way kube does.
    """

    def __init__(self, openapi_v3_schema: Mapping[str, Any] | None) -> None:
        self.unevaluated_rules: list[UnevaluatedRule] = []
        self._rule_count = 0
        self._has_transition_rules = False
        doc = openapi_v3_schema if isinstance(openapi_v3_schema, Mapping) else {}
        self._root = SchemaNode(doc, self._compile_rule, None)

    @property
    def root(self) -> SchemaNode:
        """The compiled root node of the document."""
        return self._root

    # -- compile-time hook used by SchemaNode

    def _compile_rule(self, raw: Mapping[str, Any], path: str | None, nested: bool) -> Rule:
        rule = Rule(raw, path)
        self._rule_count += 1
        if nested:
            # kube forbids rules under allOf/anyOf/oneOf/not for CRDs; never run them here.
            rule.error = "rules under allOf/anyOf/oneOf/not are not evaluated"
        if rule.program is None or nested:
            self.unevaluated_rules.append(
                UnevaluatedRule("" if path is None else path, rule.text, rule.error or "")
            )
        elif rule.uses_old_self:
            self._has_transition_rules = True
        return rule

    # -- the public API

    def warning(self) -> str | None:
        """A one-line warning naming the rules that are skipped, or None if there are none."""
        if not self.unevaluated_rules:
            return None
        shown = "; ".join(
            f"{r.path or '<root>'}: {_clipped(r.rule)!r} ({r.reason})"
            for r in self.unevaluated_rules
        )
        count = len(self.unevaluated_rules)
        return (
            f"{count} of {self._rule_count} x-kubernetes-validations rule(s) cannot be "
            f"evaluated by this fake API server and are skipped: {shown}"
        ).replace("\n", " ")

    def prune(self, obj: dict[str, Any]) -> list[str]:
        """Remove fields the schema does not declare, in place; return their paths, sorted.

        Root ``apiVersion``, ``kind`` and ``metadata`` are kept, and so are the same fields
        of ``x-kubernetes-embedded-resource`` objects; ``x-kubernetes-preserve-unknown-fields``
        keeps unknown fields (declared ones below it are still pruned). Then, like kube's
        decoder, nulls of non-nullable fields without a default are removed (not reported):
        that is what turns ``"field": null`` into a missing field before validation.
        """
        paths: list[str] = []
        prune(obj, self._root, "", paths, is_root=True)
        prune_nulls(obj, self._root)
        paths.sort()
        return paths

    def apply_defaults(self, obj: dict[str, Any]) -> None:
        """Set ``default`` values of absent fields, in place, like kube's defaulter.

        Defaults apply to absent fields (and non-nullable nulls) of objects that are
        present; a defaulted value is itself defaulted further, so nested defaults apply
        after a parent default. Defaults are copied, never shared.
        """
        apply_defaults(obj, self._root)

    def normalize(
        self, obj: dict[str, Any], unchanged: Container[str] = ()
    ) -> tuple[dict[str, Any], list[str]]:
        """``prune`` then ``apply_defaults``, in one walk and copy-on-write.

        Returns what ``prune(obj)`` followed by ``apply_defaults(obj)`` would leave in
        ``obj`` (equal, with the same key order) and the paths ``prune`` would report, but
        leaves ``obj`` and everything in it untouched: a dict or list that needs a change is
        copied (as a plain dict or list), the rest is shared with ``obj``. The store uses
        this because its versions share unchanged subtrees with each other.

        ``unchanged`` names root fields (never apiVersion, kind or metadata) whose values
        are, untouched, what an earlier ``normalize`` by this schema returned for the same
        field. Those are not walked again where no default below them is an object or an
        array: pruning and dropping nulls again change nothing, and scalar defaults are
        already in place, so the walk would return them as they are and report nothing.
        """
        paths: list[str] = []
        result = normalize(obj, self._root, "", paths, PRUNE, is_root=True, unchanged=unchanged)
        paths.sort()
        return result, paths

    def validate(self, obj: dict[str, Any], unchanged: Container[str] = ()) -> list[Cause]:
        """Validate a whole object as on create: OpenAPI keywords, list types, CEL rules.

        CEL rules that use ``oldSelf`` (transition rules) are not run here (see
        ``validate_update``). Causes come in kube's order: schema, list types, CEL.

        ``unchanged`` names root fields (never apiVersion, kind or metadata) whose values
        are, untouched, values of an object this schema normalized and then validated
        with no causes at all. Their subtrees are not walked again: every check below a
        root field depends only on its value and path, so they would add no cause (their
        CEL rules run only when nothing blocks, as they did then, and passed). Checks of
        the root itself (required, properties counts, its rules and junctors) still see
        the whole object.
        """
        causes: list[Cause] = []
        validate_value(obj, self._root, "", None, causes, unchanged)
        if self._root.lists_below:  # (else list_type_causes finds nothing)
            causes.extend(list_type_causes(obj, self._root, None, unchanged))
        if self._rule_count:
            if any(c.reason in _BLOCKING for c in causes):
                causes.append(_NOT_CHECKED)
            else:
                evaluate_rules(obj, None, self._root, None, False, causes, unchanged)
        return causes

    def validate_update(self, new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
        """The causes an update adds to ``validate(new)``: CEL transition rules.

        Rules that use ``oldSelf`` run where the old object has a value to compare with
        (object fields, map keys, list-type=map items matched by key), as in kube. When
        ``new`` already has a blocking error, ``validate(new)`` reported that rules were
        not checked, and nothing is added here.
        """
        if not self._has_transition_rules:
            return []
        base: list[Cause] = []
        validate_value(new, self._root, "", None, base)
        base.extend(list_type_causes(new, self._root, None))
        if any(c.reason in _BLOCKING for c in base):
            return []
        causes: list[Cause] = []
        evaluate_rules(new, old, self._root, None, True, causes)
        return causes
