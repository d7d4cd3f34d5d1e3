"""Packaging: a read-only checkout builds and installs without a byte written into it, and
the wheel claims no generic top-level import name (the reference controller ships as
``pytest_ntinvariants.reference_controller``)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a checkout holds besides its sources: left out of the copy, as a fresh clone has none.
LEFT_OUT = shutil.ignore_patterns(
    ".git", "__pycache__", "*.egg-info", "build", "dist", ".tox", ".*_cache", "results"
)


def snapshot(tree: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``tree`` with its size and modification time."""
    return {
        str(p.relative_to(tree)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(tree.rglob("*"))
    }


def read_only_checkout(into: Path) -> Path:
    """A copy of the checkout's sources with every write bit cleared."""
    copy = into / "checkout"
    shutil.copytree(ROOT, copy, ignore=LEFT_OUT)
    for path in [copy, *copy.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return copy


def pip(*args: str) -> None:
    """Run pip offline with the build backend this environment has (the test extra)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_read_only_checkout_builds_and_installs_without_writing_into_it(
    tmp_path: Path,
) -> None:
    """setuptools once wrote ``*.egg-info`` and ``build/`` into the source tree (and, run
    as root, where no mode bit stops a write, wrote them into a read-only copy too: so
    the tree is compared before and after, not only left read-only)."""
    pytest.importorskip("hatchling", reason="the build backend (the test extra installs it)")
    checkout = read_only_checkout(tmp_path)
    before = snapshot(checkout)
    try:
        pip(
            "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "out"), str(checkout)
        )
        pip(
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(tmp_path / "site"),
            str(checkout),
        )
        assert snapshot(checkout) == before
    finally:  # pytest's tmp_path cleanup needs write bits back
        for path in [checkout, *checkout.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    (wheel,) = (tmp_path / "out").glob("pytest_ntinvariants-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"pytest_ntinvariants", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    for shipped in (
        "pytest_ntinvariants/py.typed",
        "pytest_ntinvariants/reference_controller/__init__.py",
        "pytest_ntinvariants/reference_controller/__main__.py",
        "pytest_ntinvariants/reference_controller/crd.yaml",
        "pytest_ntinvariants/reference_controller/deploy.yaml",
        "pytest_ntinvariants/reference_controller/py.typed",
    ):
        assert shipped in names, shipped
    # The installed copy: the plugin's entry point, and the controller under the plugin.
    site = tmp_path / "site"
    assert sorted(p.name for p in site.iterdir() if p.name != "bin") == [
        "pytest_ntinvariants",
        "pytest_ntinvariants-0.1.0.dist-info",
    ]
    entry_points = (site / "pytest_ntinvariants-0.1.0.dist-info" / "entry_points.txt").read_text()
    assert "ntinvariants = pytest_ntinvariants.plugin" in entry_points
    crd = subprocess.run(
        [sys.executable, "-P", "-m", "pytest_ntinvariants.reference_controller", "crd"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        cwd=tmp_path,
        timeout=120,
    )
    assert crd.returncode == 0, crd.stderr
    assert "kind: CustomResourceDefinition" in crd.stdout
