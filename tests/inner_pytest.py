"""The ini file of the pytester-based tests' inner pytest runs.

Inner runs re-import their plugins (pytester restores ``sys.modules`` after each run), so
the unrelated plugins some machines have installed are switched off to keep them fast;
pytest-benchmark, where installed, also warns inside xdist workers, which this suite's
``filterwarnings = error`` would turn into a failure.
"""

from __future__ import annotations

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
addopts = -p no:hypothesispytest -p no:kmock -p no:anyio -p no:benchmark
    -p pytest_ntinvariants.packs.notifications
"""
