"""Rebinding the globals of the world's modules: what code inside a simulated world reads
of the process it runs in.

A deterministic world needs its code to read the world's clock (``clock``) and draw from
the world's seeded generator (``entropy``). Both are reached the same way: ``install``
rebinds, in the modules of the named packages, every global bound to one of the real
objects those modules list in their ``REPLACEMENTS`` (the ``datetime`` module and class,
the ``random`` module and its functions) to its stand-in, which answers from the active
world's clock or generator, or as the real one outside a world. ``uninstall()`` puts
every global back. ``world_prefixes()`` says which packages a world's replicas reach.

``ModuleProxy`` is the stand-in for a module: its public names copied in (as fast as on
the real module), a few replaced, anything else forwarded.
"""

from __future__ import annotations

import sys
import threading
import types
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["ModuleProxy", "install", "uninstall", "world_prefixes"]


class ModuleProxy(types.ModuleType):
    """The module ``real`` as patched code sees it: its public names, with ``overrides``
    in place of some; anything else (dunders, names added later) is forwarded. ``what``
    names the proxy in its repr."""

    def __init__(self, real: types.ModuleType, overrides: Mapping[str, Any], what: str) -> None:
        super().__init__(real.__name__, real.__doc__)
        for name, value in vars(real).items():
            if not name.startswith("__"):
                setattr(self, name, value)
        for name, value in overrides.items():
            setattr(self, name, value)
        self.__real = real
        self.__what = what

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__real, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__real)) | set(vars(self)))

    def __repr__(self) -> str:
        return f"<module {self.__real.__name__!r} ({self.__what} proxy of {self.__real!r})>"


def _replacements() -> dict[int, object]:
    """The real objects install() replaces, by identity, and what replaces each."""
    if not _REPLACEMENTS:
        # (imported here: both build their stand-ins on ModuleProxy, from this module)
        from . import clock, entropy

        _REPLACEMENTS.update(clock.REPLACEMENTS)
        _REPLACEMENTS.update(entropy.REPLACEMENTS)
    return _REPLACEMENTS


_REPLACEMENTS: dict[int, object] = {}

# Top-level packages never patched, whatever is asked: the standard library must keep its
# own clock and randomness (logging, asyncio, ssl...), and so must pytest and this plugin,
# which time and report the run from outside the simulated world.
_NEVER = frozenset(sys.stdlib_module_names) | {
    "builtins",
    "pytest",
    "_pytest",
    "pluggy",
    "pytest_ntinvariants",
}


class _State:
    """What ``install`` has done, so repeated calls look only at what is new."""

    def __init__(self) -> None:
        self.prefixes: set[str] = set()
        self.exact: frozenset[str] = frozenset()
        self.dotted: tuple[str, ...] = ()
        # Every module name looked at against the current prefixes.
        self.seen: set[str] = set()
        # Modules patched, by name: a module re-imported under the same name is a new
        # object and needs patching again.
        self.patched: dict[str, types.ModuleType] = {}
        # (module globals, name, original, replacement), for uninstall().
        self.undo: list[tuple[dict[str, Any], str, object, object]] = []


_state = _State()
_lock = threading.Lock()


def _allowed(prefix: str) -> bool:
    return bool(prefix) and prefix.partition(".")[0] not in _NEVER


def _patch(module: types.ModuleType) -> None:
    namespace = getattr(module, "__dict__", None)
    if not isinstance(namespace, dict):
        return
    replacements = _replacements()
    # (collected first: the namespace must not change while it is iterated)
    found = [(k, v) for k, v in namespace.items() if id(v) in replacements]
    for key, original in found:
        # (an id match is an identity match: both real objects live as long as the process)
        replacement = replacements[id(original)]
        namespace[key] = replacement
        _state.undo.append((namespace, key, original, replacement))


def install(prefixes: Iterable[str]) -> None:
    """Rebind, in every loaded module under ``prefixes``, the globals bound to a real
    object ``clock`` or ``entropy`` stands in for (``REPLACEMENTS``): the ``datetime``
    module and class, the ``random`` module and its functions.

    A module matches a prefix when its name equals it or starts with it and a dot.
    Prefixes naming the standard library, pytest, pluggy or this plugin are ignored.

    Idempotent and cheap to repeat: a call visits only modules loaded since the last one
    (and modules re-imported under a patched name), unless it brings new prefixes, which
    are matched against every loaded module once. Modules imported later are patched by
    the next call. A module reloaded in place after being patched is not seen again, and
    one still being imported when visited is patched only as far as it has got.
    """
    wanted = {p for p in prefixes if _allowed(p)}
    with _lock:
        modules = sys.modules
        if not wanted <= _state.prefixes:
            _state.prefixes |= wanted
            _state.exact = frozenset(_state.prefixes)
            _state.dotted = tuple(p + "." for p in _state.prefixes)
            # New prefixes can match modules already looked at: look at all again.
            # (The patched-by-name check below keeps this from patching anything twice.)
            _state.seen.clear()
        if not _state.prefixes:
            return
        # A repeat call with nothing new costs one C-level pass over the module names (no
        # allocation) and one identity check per patched module.
        names: set[str] = set()
        if not _state.seen.issuperset(modules):
            names = modules.keys() - _state.seen
        stale = [n for n, m in _state.patched.items() if modules.get(n, m) is not m]
        if not names and not stale:
            return
        _state.seen |= names
        exact, dotted = _state.exact, _state.dotted
        for name in (*names, *stale):
            if name not in exact and not name.startswith(dotted):
                continue
            module = modules.get(name)
            if module is None or _state.patched.get(name) is module:
                continue
            _patch(module)
            _state.patched[name] = module


def world_prefixes() -> set[str]:
    """What a world's clock and generator should reach: kopf, and every loaded top-level
    package that is not installed as a library (the project's own code: its controller,
    its tests).

    Libraries under ``site-packages`` are left alone (kopf apart): they read the clock for
    their own bookkeeping (certificates, cookies), and some compare classes by identity.
    So are test modules (``conftest``, ``test_*``, ``*_test``): a test compares what it
    reads with real datetimes, and runs outside the world anyway.
    """
    # Nothing imported or dropped since (same count, same newest): the same answer. The
    # count alone is not enough: pytester puts back an older sys.modules of equal size.
    key = (len(sys.modules), next(reversed(sys.modules), None))
    if key == _prefix_cache[0]:
        return set(_prefix_cache[1])
    out = {"kopf"}
    for name, module in list(sys.modules.items()):
        if "." in name or module is None or _is_test_module(name):
            continue
        # (a namespace package has no file: where its first portion lives says the same)
        path = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", ())), "")
        if path and "site-packages" not in path and "dist-packages" not in path:
            out.add(name)
    _prefix_cache[:] = [key, frozenset(out)]
    return out


_prefix_cache: list[Any] = [None, frozenset()]


def _is_test_module(name: str) -> bool:
    return name == "conftest" or name.startswith("test_") or name.endswith("_test")


def uninstall() -> None:
    """Restore every global ``install`` rebound and forget what it saw.

    A global that was rebound again since (by the module itself, or a test's
    ``monkeypatch``) is left alone: it no longer holds what ``install`` put there.
    """
    global _state
    with _lock:
        for namespace, key, original, replacement in reversed(_state.undo):
            if namespace.get(key) is replacement:
                namespace[key] = original
        _state = _State()
