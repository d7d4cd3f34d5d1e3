"""The CEL interpreter against kube's answers on the corpus of ``benchmarks/bench_cel.py``.

Every case of ``benchmarks/cel_corpus.py`` runs on the fake's interpreter only (no
cel-python here): a case without ``known`` must give kube's answer, and a case with one
must still differ (strict xfail), so that a fix shows up and the corpus is updated.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pytest_ntinvariants.apiserver.crd import StructuralSchema


def _corpus() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "cel_corpus.py"
    spec = importlib.util.spec_from_file_location("cel_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("cel_corpus", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


corpus = _corpus()


def _param(case: Any) -> Any:
    marks = [pytest.mark.xfail(reason=case.known, strict=True)] if case.known else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in corpus.CASES])
def test_cel_gives_kubes_answer(case: Any) -> None:
    got = corpus.ours(case)
    assert corpus.agrees(case.expect, got), f"kube: {case.expect}, the fake: {got}"


def test_the_corpus_covers_what_the_issue_names() -> None:
    rules = " ".join(c.rule for c in corpus.CASES)
    for word in (
        "oldSelf",
        ".all(",
        ".exists(",
        "exists_one",
        ".map(",
        ".filter(",
        " in self",
        "startsWith",
        "endsWith",
        "contains",
        "matches",
        "lowerAscii",
        "upperAscii",
        "indexOf",
        "split",
        "join",
        "replace",
        "trim",
        "has(",
        "null",
        "uint",
        "double",
    ):
        assert word in rules, word
    groups = {c.group for c in corpus.CASES}
    assert {"transition", "list", "string", "string ext", "map", "number", "has/null"} <= groups


def test_string_extension_rules_run_in_a_crd() -> None:
    """The strings extension is evaluated in a CRD's rules, not listed as unevaluated."""
    rule = "self.tags.join(',').split(',').all(t, t.trim().lowerAscii() == t)"
    spec_schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "x-kubernetes-validations": [{"rule": rule, "message": "tags must be lowercase"}],
    }
    schema = StructuralSchema({"type": "object", "properties": {"spec": spec_schema}})
    assert schema.unevaluated_rules == []

    def causes(tags: list[str]) -> list[str]:
        obj = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "x"}}
        return [c.message for c in schema.validate({**obj, "spec": {"tags": tags}})]

    assert causes(["a", "b"]) == []
    assert causes(["a", "B"]) == ['Invalid value: "object": tags must be lowercase']
