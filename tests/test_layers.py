"""The house rules of the package layout, checked on the import statements themselves.

- the API server knows nothing of pytest or kopf (usable on its own, like moto_server);
- its state (store, resources, selectors, patch, the crd package, errors and the value
  helpers gotext and jsonvalues) imports no transport;
- the reference controller never imports the plugin (it is observed from outside);
- the plugin entry module imports nothing heavy at load time.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATE = ("store", "resources", "selectors", "patch", "crd", "errors", "gotext", "jsonvalues")


def _imports(path: Path) -> set[str]:
    """Top-level module names imported by a file (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _files(*parts: str) -> list[Path]:
    return sorted((ROOT.joinpath(*parts)).rglob("*.py"))


@pytest.mark.parametrize("path", _files("pytest_ntinvariants", "apiserver"), ids=lambda p: p.name)
def test_the_api_server_knows_no_pytest_or_kopf(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in ("pytest", "_pytest", "kopf")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("name", STATE)
def test_state_imports_no_transport(name: str) -> None:
    module = ROOT / "pytest_ntinvariants" / "apiserver" / f"{name}.py"
    # A package (crd) is checked file by file.
    paths = [module] if module.exists() else _files("pytest_ntinvariants", "apiserver", name)
    assert paths, f"no module or package {name}"
    bad = {
        m
        for path in paths
        for m in _imports(path)
        if m.split(".")[0] == "aiohttp"
        or m.startswith(
            (
                "pytest_ntinvariants.apiserver.http",
                "pytest_ntinvariants.apiserver.hosting",
                "pytest_ntinvariants.apiserver.watch",
            )
        )
    }
    assert not bad, f"{name}.py imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files("reference_controller"), ids=lambda p: p.name)
def test_the_controller_never_imports_the_plugin(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] == "pytest_ntinvariants"}
    assert not bad, f"{path.name} imports {sorted(bad)}"


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
