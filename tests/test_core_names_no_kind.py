"""The core names no kind: no module of ``pytest_ntinvariants`` outside ``packs/`` mentions
NotificationRequest, its fields or its pack, imports a pack or the reference controller,
or needs a pack loaded to import.

The import half is also the import-linter contract ``core-names-no-kind`` (pyproject.toml,
checked by tests/test_layers.py); this test checks that the contract names every module of
the core, and reads the text, which a contract does not: a docstring or a string literal
naming the kind is knowledge of it too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_ntinvariants"

#: The kind, its API group, its status and spec fields, its headers and its pack's names.
FORBIDDEN = re.compile(
    r"notification|kubernaut|deliveryAttempts|totalAttempts|successfulDeliveries"
    r"|failedDeliveries|retryPolicy|maxAttempts|time_scale|sink_channels|nr_state"
    r"|recorded_attempts|\bnr-[a-z*]",
    re.IGNORECASE,
)


def core_modules() -> list[Path]:
    """Every Python file of the package outside ``packs/`` (the bundled reference
    controller of a wheel lives in ``reference_controller/``, which is not the core)."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        if parts[0] in ("packs", "reference_controller"):
            continue
        out.append(path)
    return out


def test_the_contract_names_every_module_of_the_core() -> None:
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    [contract] = [
        c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "core-names-no-kind"
    ]
    top = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in core_modules()}
    listed = {m.removeprefix("pytest_ntinvariants.") for m in contract["source_modules"]}
    assert listed == top - {"__init__", "py"}
    assert contract["forbidden_modules"] == ["pytest_ntinvariants.packs", "reference_controller"]


def test_the_core_is_found() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in core_modules()}
    assert {"report.py", "sinks.py", "ledger.py", "invariants/oracles.py"} <= names
    assert not any(n.startswith("packs/") for n in names)


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_core_module_mentions_the_kind(path: Path) -> None:
    found = [
        f"{path.name}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert found == []


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_core_module_imports_a_pack_or_the_reference_controller(path: Path) -> None:
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts)  # 1: a module of the package itself
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the module's own package
                base = ["pytest_ntinvariants", *path.relative_to(PACKAGE).parts[:-1]]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            imported.append(name)
            imported.extend(f"{name}.{alias.name}" for alias in node.names)
    assert depth >= 1
    bad = [
        n
        for n in imported
        if n.startswith(("pytest_ntinvariants.packs", "reference_controller"))
        or n.split(".")[0] == "reference_controller"
    ]
    assert bad == []


def test_the_core_imports_and_judges_without_the_pack() -> None:
    """Every core module imports, and the default registry holds no kind's rules, in a
    fresh interpreter where no pack was ever loaded."""
    modules = sorted(
        ".".join(["pytest_ntinvariants", *p.relative_to(PACKAGE).with_suffix("").parts])
        .removesuffix(".__init__")
        .removesuffix(".__main__")
        for p in core_modules()
    )
    script = f"""
import importlib, sys
for name in {modules!r}:
    importlib.import_module(name)
from pytest_ntinvariants.invariants import default_registry
assert [n for n in default_registry().names() if n.startswith("nr-")] == []
packs = ("pytest_ntinvariants.packs", "reference_controller")
loaded = sorted(m for m in sys.modules if m.startswith(packs))
assert loaded == [], loaded
print("ok", {len(modules)})
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")
