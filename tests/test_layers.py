"""The house rules of the package layout: import-linter's contracts ([tool.importlinter] in
pyproject.toml), run on the import graph itself.

- the API server's layers (hosting over the wire over semantics over storage over kinds
  over values), the CRD machinery's, and the kinds independent of each other;
- the API server knows nothing of pytest, kopf, the clients or the plugin above it;
- the reference controller never imports the plugin (it is observed from outside);
- the plugin entry module imports nothing heavy at load time (checked by running it).

The contracts are only as good as their lists: every module of the server must sit in a
layer (a module in none is not checked), and every module of the plugin must be forbidden
to the server. A copy of the package with a forbidden import added shows each contract
catches what it is meant to.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pytest_ntinvariants"
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS: dict[str, dict[str, Any]] = {c["id"]: c for c in CONFIG["contracts"]}
# The plugin's modules that the server may import: helpers with no plugin in them.
SHARED_HELPERS = {"_files", "_loopthread", "_yaml", "tls"}


def _lint(root: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the packages under ``root`` with ``root``'s pyproject.toml."""
    code = (
        "import sys\n"
        "from importlinter.cli import lint_imports_command\n"
        "lint_imports_command(sys.argv[1:])\n"
    )
    args = ["--no-cache", "--no-logo", *(a for c in contracts for a in ("--contract", c))]
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=120,
    )


def _modules(package: Path) -> set[str]:
    """The names of the modules and subpackages directly in ``package``."""
    return {
        p.stem if p.is_file() else p.name
        for p in package.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()
    }


def _layered(contract: dict[str, Any]) -> set[str]:
    return {
        name.strip()
        for layer in contract["layers"]
        for name in layer.replace(":", "|").split("|")
        if name.strip()
    }


def test_every_contract_is_kept() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("contract", "package"),
    [
        ("apiserver-layers", PACKAGE / "apiserver"),
        ("crd-layers", PACKAGE / "apiserver" / "crd"),
        ("controllers-apart", PACKAGE / "apiserver" / "controllers"),
    ],
)
def test_every_module_sits_in_a_layer(contract: str, package: Path) -> None:
    assert _modules(package) == _layered(CONTRACTS[contract])


def test_the_server_is_forbidden_every_module_of_the_plugin() -> None:
    forbidden = {
        m.removeprefix("pytest_ntinvariants.")
        for m in CONTRACTS["apiserver-standalone"]["forbidden_modules"]
        if m.startswith("pytest_ntinvariants.")
    }
    assert forbidden == _modules(PACKAGE) - {"apiserver", *SHARED_HELPERS}


def test_the_kinds_are_independent_of_each_other() -> None:
    kinds = "pytest_ntinvariants.apiserver.kinds"
    independent = CONTRACTS["kinds-independent"]
    # Every module of the package, by wildcard: a new kind's module is covered without a line
    # here; what the kinds share is the table's imports of them and their imports of the
    # layers below it (the strategy protocol, the columns' cells, the shared merge keys).
    assert independent["modules"] == [f"{kinds}.*"]
    shared = _layered(CONTRACTS["kinds-layers"]) - {"builtin"}
    assert set(independent["ignore_imports"]) == {
        f"{kinds}.builtin -> {kinds}.*",
        *(f"{kinds}.* -> {kinds}.{name}" for name in shared),
    }
    assert _layered(CONTRACTS["kinds-layers"]) <= _modules(PACKAGE / "apiserver" / "kinds")


# A forbidden import added to a copy of the packages, and the contract that must catch it.
BREAKS = [
    ("apiserver-standalone", "pytest_ntinvariants/apiserver/errors.py", "import pytest"),
    (
        "apiserver-standalone",
        "pytest_ntinvariants/apiserver/gotext.py",
        "from pytest_ntinvariants import ledger",
    ),
    ("apiserver-layers", "pytest_ntinvariants/apiserver/selectors.py", "from . import store"),
    ("apiserver-layers", "pytest_ntinvariants/apiserver/store.py", "from . import discovery"),
    ("crd-layers", "pytest_ntinvariants/apiserver/crd/tree.py", "from . import documents"),
    ("kinds-independent", "pytest_ntinvariants/apiserver/kinds/events.py", "from . import data"),
    # (an import of the table by what the kinds share breaks the kinds' independence too)
    ("kinds-layers", "pytest_ntinvariants/apiserver/kinds/base.py", "from . import builtin"),
    (
        "controllers-apart",
        "pytest_ntinvariants/apiserver/controllers/garbage.py",
        "from . import namespaces",
    ),
    ("apiserver-layers", "pytest_ntinvariants/apiserver/kinds/data.py", "from .. import decode"),
    ("server-state-no-transport", "pytest_ntinvariants/apiserver/patch.py", "import aiohttp"),
    ("controller-independent", "reference_controller/config.py", "import pytest_ntinvariants"),
    (
        "shared-helpers",
        "pytest_ntinvariants/_files.py",
        "from pytest_ntinvariants.apiserver import errors",
    ),
    (
        "core-names-no-kind",
        "pytest_ntinvariants/report.py",
        "from pytest_ntinvariants.packs import notifications",
    ),
]
# (a break, another contract it breaks too)
ALSO_BROKEN = {("kinds-layers", "kinds-independent")}


@pytest.mark.parametrize(
    ("contract", "path", "line"), BREAKS, ids=[f"{b[0]}:{b[2]}" for b in BREAKS]
)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, contract: str, path: str, line: str
) -> None:
    for name in ("pytest_ntinvariants", "reference_controller"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    broken = tmp_path / path
    broken.write_text(broken.read_text() + f"\n{line}  # the forbidden import\n")
    result = _lint(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Contracts: 0 kept, 1 broken." in result.stdout
    # ...and only that one: every other contract still holds on the copy.
    others = [c for c in CONTRACTS if c != contract and (contract, c) not in ALSO_BROKEN]
    assert _lint(tmp_path, *others).returncode == 0


@pytest.mark.parametrize(
    "path",
    sorted([*PACKAGE.rglob("*.py"), *(ROOT / "reference_controller").rglob("*.py")]),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_name_crosses_a_module_boundary(path: Path) -> None:
    crossing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        # (a private module, such as _yaml, may be imported whole: its public names are its API)
        base = path.parents[node.level - 1] if node.level else ROOT
        if node.module:
            base = base.joinpath(*node.module.split("."))
        crossing += [
            f"{node.module or '.'}.{alias.name}"
            for alias in node.names
            if alias.name.startswith("_") and not (base / f"{alias.name}.py").exists()
        ]
    assert not crossing, f"{path.name} imports private names {crossing}"


def test_loading_the_plugin_imports_nothing_heavy() -> None:
    code = (
        "import sys, pytest_ntinvariants.plugin\n"
        "heavy = [m for m in ('aiohttp', 'kopf', 'kubernetes', 'cryptography',"
        " 'pytest_ntinvariants.apiserver') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert out == "[]"
