"""CRD structural schemas: pruning, defaulting and validation as kube-apiserver does them.

``StructuralSchema`` is built once from a CRD version's ``openAPIV3Schema`` (through
``compiled_schema``, which shares it between equal documents) and then applied to every
write of a custom resource, in kube's order::

    pruned = schema.prune(obj)            # unknown fields out (Warning 299 / strict 400)
    schema.apply_defaults(obj)
    causes = schema.validate(obj)         # OpenAPI + list types + CEL rules without oldSelf
    if old is not None:
        causes += schema.validate_update(obj, old)   # CEL transition rules (oldSelf)

``validate_schema_document`` makes the checks kube makes on the document itself when a
CRD is written.

Paths, messages and reasons are the real server's (kube 1.32 unless said otherwise); each
module names the kube sources it follows. Surprises of the real server kept on purpose:
errors that kube-openapi does not attach to a field (junctor failures, the CEL root,
"rules were not checked") carry the field ``<nil>``; ``additionalProperties`` keys are
``spec.labels.foo`` in schema errors but ``spec.labels[foo]`` in list-type and CEL
errors.

Not supported (documented, never silently wrong):

* CEL beyond the subset of ``.cel``: a rule that does not parse, or calls a function
  outside it, is listed in ``unevaluated_rules`` and skipped; ``warning()`` says so in
  one line.
* Validation ratcheting (unchanged invalid fields passing on update, GA in 1.30) and the
  validation of ``metadata`` inside embedded resources are not done.
* Formats and patterns are approximated where Python differs from Go (see ``.formats``
  and ``.validation``).
"""

from __future__ import annotations

from .documents import compiled_schema, validate_schema_document
from .structural import StructuralSchema, UnevaluatedRule

__all__ = ["StructuralSchema", "UnevaluatedRule", "compiled_schema", "validate_schema_document"]
