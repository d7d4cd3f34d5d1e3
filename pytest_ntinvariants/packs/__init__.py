"""Invariant packs: opt-in pytest plugins that teach the generic core about one kind.

A pack plugs in only through the public hooks (``pytest_ntinvariants.hookspecs``) and
public names, as a user's own pack would; enable one with ``-p`` (for example
``-p pytest_ntinvariants.packs.notifications``). Nothing outside this package imports it.
"""
