"""YAML through libyaml when PyYAML has it: the pure-Python parser takes ~40 ms for a
CRD manifest, which a test that installs one per item pays every time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

__all__ = ["dump", "load", "load_all"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def load(text: str | bytes) -> Any:
    """One document, safely."""
    return yaml.load(text, Loader=_Loader)


def load_all(text: str | bytes) -> Iterator[Any]:
    """Every document, safely."""
    return yaml.load_all(text, Loader=_Loader)


def dump(data: Any) -> str:
    """Block-style YAML."""
    return str(yaml.dump(data, Dumper=_Dumper, default_flow_style=False))
